"""Video's subscriptions: a meeting for every confirmed video booking, moved with it, deleted when it ends.

The booking receivers run inside the booking's transaction (see :mod:`expertbook.experts.signals`):
they only write the meeting row and leave the provider call to a job started after the commit.
:func:`connect` is called once per application; connecting the same functions again is a no-op.
"""
from __future__ import annotations

from expertbook.experts import signals as booking_signals
from expertbook.video import meetings
from expertbook.video import signals as video_signals


def on_booking_confirmed(sender, booking_id: int, **extra) -> None:
    meetings.booking_confirmed(booking_id)


def on_booking_ended(sender, booking_id: int, **extra) -> None:
    meetings.booking_ended(booking_id)


def on_booking_rescheduled(sender, booking_id: int, **extra) -> None:
    meetings.booking_rescheduled(booking_id)


def on_zoom_connection_changed(sender, user_id: int, **extra) -> None:
    # Sent after the change committed: resuming writes in its own transaction, then dispatches.
    meetings.resume_expert(user_id)


def meeting_links(booking):
    """The links the booking's calendar files carry: the customer's join link and the expert's start
    route, once the meeting exists (None before)."""
    import hashlib

    from expertbook.experts.calendar import MeetingLinks

    meeting = meetings.meeting_for(booking.id)
    if meeting is None or meeting.status != "created" or not meeting.join_url:
        return None
    return MeetingLinks(
        join_url=meeting.join_url,
        meeting_id=str(meeting.external_id) if meeting.external_id else None,
        start_url=meetings.start_url(booking.id),
        key=f"{meeting.id}:{hashlib.sha256(meeting.join_url.encode()).hexdigest()[:16]}",
    )


def connect() -> None:
    """Subscribe to the booking and Zoom signals, give the calendar files their links, and join the relay pass (idempotent)."""
    from expertbook.experts.calendar import register_meeting_links
    from expertbook.notifications.service import register_relay_hook

    register_meeting_links(meeting_links)
    booking_signals.booking_confirmed.connect(on_booking_confirmed)
    booking_signals.booking_cancelled.connect(on_booking_ended)
    booking_signals.booking_declined.connect(on_booking_ended)
    booking_signals.booking_rescheduled.connect(on_booking_rescheduled)
    video_signals.zoom_connection_changed.connect(on_zoom_connection_changed)
    register_relay_hook(meetings.relay)
