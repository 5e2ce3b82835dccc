"""The emails of video meetings (templates in ``templates/email/video/``), written inside the meeting's transaction.

- a video booking's meeting was created (:data:`~expertbook.video.signals.meeting_ready`) → both sides'
  confirmation, by :func:`expertbook.experts.emails.confirmed_emails`, with the customer's join link
  and the expert's start link (OUR route; never Zoom's start_url);
- a meeting waits for the expert to re-authorize Zoom → ONE ``video/zoom_reauth`` email per refused grant;
- the reminders of confirmed video bookings, with the same links.

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
from expertbook.video.meetings import meeting_for, start_url
from expertbook.video.models import Meeting
from expertbook.video.service import reauthorize_url
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


def on_meeting_ready(sender, booking_id: int, meeting_id: int, **extra) -> None:
    booking = db.session.get(Booking, booking_id)
    meeting = db.session.get(Meeting, meeting_id)
    if booking is None or meeting is None or booking.status != "confirmed":
        return
    booking_emails.confirmed_emails(booking, links(booking, meeting))


def on_meeting_reauth_needed(sender, booking_id: int, meeting_id: int, incident: str, **extra) -> None:
    booking = db.session.get(Booking, booking_id)
    if booking is None:
        return
    expert = booking.expert
    booking_emails.queue(
        "zoom-reauth", expert.user.email, expert.display_name, "video/zoom_reauth",
        {
            "expert_name": expert.display_name, "customer_name": booking.customer_name,
            "service_title": booking.service.title, "attempted_when": booking_emails.when(booking, expert.timezone),
            "reason": "has expired or was revoked", "reauthorize_url": reauthorize_url(),
            "settings_url": external_url("video.settings"),
        },
        subject=f"Action required: re-authorize your Zoom account - {booking.service.title}",
        dedupe_key=f"zoom-reauth:{incident}",  # one email per refused grant, however many bookings wait on it
    )


def video_booking_reminders(now: datetime, until: datetime) -> Iterator[Reminder]:
    """Reminder source: confirmed video bookings starting in [now, until), with their meeting's links."""
    for booking in booking_emails.confirmed_bookings_starting(now, until, video=True):
        yield from booking_emails.booking_reminders(booking, links(booking, meeting_for(booking.id)))


def connect() -> None:
    """Subscribe to the meeting signals and register the reminder source (idempotent)."""
    signals.meeting_ready.connect(on_meeting_ready)
    signals.meeting_reauth_needed.connect(on_meeting_reauth_needed)
    register_reminder_source(video_booking_reminders)
