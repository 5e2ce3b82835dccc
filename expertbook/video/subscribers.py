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


def on_meeting_ready(sender, booking_id: int, **extra) -> None:
    # Inside the meeting's transaction: the booking's calendar event is rewritten with the join link.
    from expertbook.calendars import writes

    writes.booking_changed(booking_id)


def on_zoom_connection_changed(sender, user_id: int, **extra) -> None:
    # Sent after the change committed: resuming writes in its own transaction, then dispatches.
    meetings.resume_expert(user_id)


def on_google_connection_changed(sender, user_id: int, **extra) -> None:
    # The expert connected, re-authorized or disconnected Google: Meet meetings that waited are made again
    # (with Meet, or with Jitsi once Google is gone).
    meetings.resume_expert(user_id)


def connect() -> None:
    """Subscribe to the booking and Zoom signals and join the relay pass (idempotent)."""
    from expertbook.auth.service import register_account_deletion_hook
    from expertbook.calendars.signals import google_connection_changed
    from expertbook.notifications.service import register_relay_hook
    from expertbook.video.service import forget_account

    booking_signals.booking_confirmed.connect(on_booking_confirmed)
    booking_signals.booking_cancelled.connect(on_booking_ended)
    booking_signals.booking_declined.connect(on_booking_ended)
    booking_signals.booking_rescheduled.connect(on_booking_rescheduled)
    video_signals.zoom_connection_changed.connect(on_zoom_connection_changed)
    video_signals.meeting_ready.connect(on_meeting_ready)
    google_connection_changed.connect(on_google_connection_changed)
    register_relay_hook(meetings.relay)
    register_account_deletion_hook(forget_account)
