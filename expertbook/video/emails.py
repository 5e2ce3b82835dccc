"""The emails of video meetings (templates in ``templates/email/video/``), written inside the meeting's transaction.

- a video booking's meeting was created (:data:`~expertbook.video.signals.meeting_ready`) → both sides'
  confirmation, by :func:`expertbook.experts.emails.confirmed_emails`, with the customer's join link
  and the expert's start link (OUR route; never Zoom's start_url);
- a video booking moved → both sides, by :func:`expertbook.experts.emails.rescheduled_emails`, with the
  meeting's links (a move PATCHes the meeting, so they stay the same); a moved request accepted again →
  the confirmations with the links at once (its meeting exists already, so no ``meeting_ready`` follows);
- a meeting waits for the expert to re-authorize Zoom → ONE ``video/zoom_reauth`` email per refused grant,
  listing every booking that waits on it, in the words of the Video settings page;
- the reminders of confirmed video bookings, with the same links; and the links of the booking's
  calendar files (:func:`ready_links`, registered with :mod:`expertbook.experts.calendar`).

:func:`connect` is called once per application (by the video blueprint); connecting again is a no-op.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import datetime

from expertbook.experts import emails as booking_emails
from expertbook.experts.models import Booking
from expertbook.extensions import db
from expertbook.notifications.service import Reminder, register_reminder_source
from expertbook.video import signals
from expertbook.video.meetings import meeting_for, start_url, waiting_on_reauth
from expertbook.video.models import MEETING_CREATED, Meeting
from expertbook.video.service import reauthorize_url, zoom_account
from expertbook.web import external_url


def links(booking: Booking, meeting: Meeting | None) -> booking_emails.MeetingLinks:
    """What the booking's emails say about ``meeting`` (None while it does not exist yet)."""
    join_url = meeting.join_url if meeting is not None else None
    # A meeting re-created after it vanished at Zoom sends new links: the key names the meeting.
    key = f"{meeting.id}:{hashlib.sha256(join_url.encode()).hexdigest()[:16]}" if meeting is not None and join_url else "0"
    return booking_emails.MeetingLinks(
        join_url=join_url,
        meeting_id=str(meeting.external_id) if meeting is not None and meeting.external_id else None,
        start_url=start_url(booking.id),
        key=key,
    )


def ready_links(booking: Booking) -> booking_emails.MeetingLinks | None:
    """The links of the booking's meeting once it exists (None before, or for a meeting that is gone):
    what its calendar files and the emails of a move carry."""
    meeting = meeting_for(booking.id)
    if meeting is None or meeting.status != MEETING_CREATED or not meeting.join_url:
        return None
    return links(booking, meeting)


def on_meeting_ready(sender, booking_id: int, meeting_id: int, **extra) -> None:
    booking = db.session.get(Booking, booking_id)
    meeting = db.session.get(Meeting, meeting_id)
    if booking is None or meeting is None or booking.status != "confirmed":
        return
    booking_emails.confirmed_emails(booking, links(booking, meeting))


def on_meeting_reauth_needed(sender, booking_id: int, meeting_id: int, incident: str, **extra) -> None:
    booking = db.session.get(Booking, booking_id)
    meeting = db.session.get(Meeting, meeting_id)
    if booking is None or (meeting is not None and meeting.provider == "meet"):
        # A Meet meeting waits on the expert's Google grant, whose one re-authorization email the calendars
        # area sent when Google refused it (expertbook.calendars.health): no second email about it.
        return
    expert = booking.expert
    # Every booking waiting on this grant, in the expert's zone (the meetings' job parks them all with the first).
    waiting = [
        {"customer_name": b.customer_name, "service_title": b.service.title, "when": booking_emails.when(b, expert.timezone)}
        for b in waiting_on_reauth(expert.user_id)
    ] or [{"customer_name": booking.customer_name, "service_title": booking.service.title,
           "when": booking_emails.when(booking, expert.timezone)}]
    account = zoom_account(expert.user_id)
    booking_emails.queue(
        "zoom-reauth", expert.user.email, expert.display_name, "video/zoom_reauth",
        {
            "expert_name": expert.display_name, "customer_name": booking.customer_name,
            "service_title": booking.service.title, "attempted_when": booking_emails.when(booking, expert.timezone),
            "waiting": waiting, "zoom_email": account.email if account is not None else None,
            "reason": "has expired or was revoked", "reauthorize_url": reauthorize_url(),
            "settings_url": external_url("video.settings"),
        },
        subject="Action required: re-authorize your Zoom account - "
        + (booking.service.title if len(waiting) == 1 else f"{len(waiting)} bookings waiting"),
        dedupe_key=f"zoom-reauth:{incident}",  # one email per refused grant, however many bookings wait on it
    )


def on_booking_rescheduled(sender, booking_id: int, previous_start: datetime, previous_end: datetime, by_customer: bool = False,
                           back_to_pending: bool = False, **extra) -> None:
    """A video booking moved: both sides are told with the meeting's links, which a move (a PATCH) keeps;
    a meeting still being made is announced as following."""
    booking = db.session.get(Booking, booking_id)
    if booking is None or booking.service.location_kind != "video":
        return
    booking_emails.rescheduled_emails(booking, previous_start, previous_end, by_customer=by_customer,
                                      back_to_pending=back_to_pending, links=ready_links(booking), link_follows=True)


def on_booking_confirmed(sender, booking_id: int, accepted: bool = False, **extra) -> None:
    """A request the customer had moved is accepted again: its meeting already exists (moved with it), so
    no ``meeting_ready`` follows; the confirmations with the links go out now."""
    booking = db.session.get(Booking, booking_id)
    if not accepted or booking is None or booking.service.location_kind != "video":
        return
    found = ready_links(booking)
    if found is not None:
        booking_emails.confirmed_emails(booking, found)


def video_booking_reminders(now: datetime, until: datetime) -> Iterator[Reminder]:
    """Reminder source: confirmed video bookings starting in [now, until), with their meeting's links."""
    for booking in booking_emails.confirmed_bookings_starting(now, until, video=True):
        yield from booking_emails.booking_reminders(booking, links(booking, meeting_for(booking.id)))


def connect() -> None:
    """Subscribe to the meeting and booking signals, register the reminder source and give the booking
    calendar files their links (idempotent)."""
    from expertbook.experts import signals as booking_signals
    from expertbook.experts.calendar import register_meeting_links

    register_meeting_links(ready_links)
    booking_signals.booking_rescheduled.connect(on_booking_rescheduled)
    booking_signals.booking_confirmed.connect(on_booking_confirmed)
    signals.meeting_ready.connect(on_meeting_ready)
    signals.meeting_reauth_needed.connect(on_meeting_reauth_needed)
    register_reminder_source(video_booking_reminders)
