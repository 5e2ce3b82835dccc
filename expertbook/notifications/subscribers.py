"""The emails of expert bookings: written in the same transaction as the change that causes them.

Every receiver here runs INSIDE the booking's (or the meeting's) transaction and only calls
:func:`expertbook.notifications.service.queue_email`, whose row commits with the change and is sent
after the commit. Which email goes where:

- request made (needs acceptance) → the expert: ``request_pending`` with links to the booking page,
  whose Accept / Decline buttons POST (a link in an email never changes a booking);
- confirmed at once, not a video booking → both sides: ``expert_booking_customer`` and ``expert_booking_expert``;
  an accepted request → the customer ``request_accepted`` (with the place, or "the link follows") and the expert
  ``expert_booking_expert``;
- a video booking's confirmation emails wait for its meeting (:data:`expertbook.video.signals.meeting_ready`),
  so they carry the customer's join link and the expert's start link (OUR route; never Zoom's start_url);
- declined → the customer (``request_declined``); cancelled → both sides (``booking_cancelled``, METHOD:CANCEL);
- a meeting that waits for the expert to re-authorize Zoom → ONE ``zoom_reauth`` email per refused grant.

:func:`connect` is called once per application; connecting the same functions again is a no-op.
"""
from __future__ import annotations

import hashlib
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select

from expertbook.experts import signals as booking_signals
from expertbook.experts.calendar import booking_ics
from expertbook.experts.models import Booking
from expertbook.extensions import db
from expertbook.notifications.service import Reminder, never_costs_the_change, queue_email, register_reminder_source
from expertbook.web import external_url



# ---------------------------------------------------------------------------- helpers


def booking_url(booking_id: int) -> str:
    """The absolute link to a booking's page (its customer and its expert both see it there)."""
    return external_url("experts.booking_detail", booking_id=booking_id)


def when(booking: Booking, timezone: str) -> str:
    """The booking's date and time window in ``timezone``, e.g. "Wed 04 Mar 2030, 09:30-10:30 (Europe/London)"."""
    zone = ZoneInfo(timezone)
    start, end = booking.start_at.astimezone(zone), booking.end_at.astimezone(zone)
    return f"{start:%a %d %b %Y, %H:%M}-{end:%H:%M} ({timezone})"


def _where(booking: Booking) -> str:
    service = booking.service
    if service.location_kind == "video":
        return ""
    return f"{service.location_label}: {service.location_detail}" if service.location_detail else service.location_label


def _ics(booking: Booking) -> str:
    return booking_ics(booking).decode()


def _queue(kind: str, to_email: str, to_name: str, template: str, context: dict, **options) -> int | None:
    """Queue one email in the caller's transaction; a problem with it never undoes the booking."""
    with never_costs_the_change(f"{kind} to {to_email!r}"):
        return queue_email(kind, to_email, to_name, template, context, **options)
    return None


def _booking(booking_id: int) -> Booking | None:
    return db.session.get(Booking, booking_id)


# ---------------------------------------------------------------------------- the emails


def _customer_confirmation(booking: Booking, join_url: str | None, meeting_id: str | None, suffix: str, ics: str) -> None:
    service, expert = booking.service, booking.expert
    _queue(
        "expert-booking-customer", booking.customer_email, booking.customer_name, "expert_booking_customer",
        {
            "customer_name": booking.customer_name, "expert_name": expert.display_name, "service_title": service.title,
            "when": when(booking, booking.customer_timezone), "duration_minutes": booking.duration_minutes,
            "join_url": join_url, "meeting_id": meeting_id, "where": _where(booking),
            "booking_url": booking_url(booking.id), "cancel_url": booking_url(booking.id),
        },
        subject=f"Your appointment is confirmed - {service.title}", ics=ics,
        dedupe_key=f"booking-confirmed:{booking.id}:customer:{suffix}",
    )


def confirmed_emails(booking: Booking, meeting=None, *, customer: bool = True) -> None:
    """Both sides' confirmation: the customer's with the join link, the expert's with our start link.

    ``meeting`` is the booking's :class:`~expertbook.video.models.Meeting` for a video booking;
    ``customer=False`` leaves the customer out (they were just told by ``request_accepted``).
    """
    from expertbook.video.meetings import start_url

    service, expert = booking.service, booking.expert
    meeting_id = str(meeting.external_id) if meeting is not None and meeting.external_id else None
    join_url = meeting.join_url if meeting is not None else None
    # A meeting re-created after it vanished at Zoom sends new links: the key names the meeting.
    suffix = f"{meeting.id}:{hashlib.sha256(join_url.encode()).hexdigest()[:16]}" if meeting is not None and join_url else "0"
    ics = _ics(booking)  # the same calendar for both sides, built once (this runs inside the booking's transaction)
    if customer:
        _customer_confirmation(booking, join_url, meeting_id, suffix, ics)
    _queue(
        "expert-booking-expert", expert.user.email, expert.display_name, "expert_booking_expert",
        {
            "expert_name": expert.display_name, "customer_name": booking.customer_name,
            "customer_email": booking.customer_email, "service_title": service.title,
            "when": when(booking, expert.timezone), "duration_minutes": booking.duration_minutes,
            "start_meeting_url": start_url(booking.id) if meeting is not None else None,
            "meeting_id": meeting_id, "where": _where(booking), "booking_url": booking_url(booking.id),
        },
        subject=f"New booking: {service.title} with {booking.customer_name}", ics=ics,
        dedupe_key=f"booking-confirmed:{booking.id}:expert:{suffix}",
    )


def on_booking_requested(sender, booking_id: int, **extra) -> None:
    booking = _booking(booking_id)
    if booking is None:
        return
    expert, link = booking.expert, booking_url(booking.id)
    _queue(
        "request-pending", expert.user.email, expert.display_name, "request_pending",
        {
            "expert_name": expert.display_name, "customer_name": booking.customer_name,
            "customer_email": booking.customer_email, "service_title": booking.service.title,
            "when": when(booking, expert.timezone), "duration_minutes": booking.duration_minutes, "note": booking.notes,
            # Both open the booking page, whose Accept / Decline buttons POST: a GET never changes it.
            "accept_url": link, "decline_url": link,
        },
        subject=f"Booking request: {booking.service.title} with {booking.customer_name}",
    )


def on_booking_confirmed(sender, booking_id: int, accepted: bool = False, **extra) -> None:
    booking = _booking(booking_id)
    if booking is None:
        return
    video = booking.service.location_kind == "video"
    if accepted:
        _queue(
            "request-accepted", booking.customer_email, booking.customer_name, "request_accepted",
            {
                "customer_name": booking.customer_name, "expert_name": booking.expert.display_name,
                "service_title": booking.service.title, "when": when(booking, booking.customer_timezone),
                "duration_minutes": booking.duration_minutes, "join_url": None, "link_follows": video,
                "where": _where(booking), "booking_url": booking_url(booking.id),
            },
            subject=f"{booking.expert.display_name} accepted your booking", ics=_ics(booking),
        )
    if not video:  # a video booking's confirmations go out with the links, once its meeting exists
        confirmed_emails(booking, customer=not accepted)


def on_booking_declined(sender, booking_id: int, **extra) -> None:
    booking = _booking(booking_id)
    if booking is None:
        return
    _queue(
        "request-declined", booking.customer_email, booking.customer_name, "request_declined",
        {
            "customer_name": booking.customer_name, "expert_name": booking.expert.display_name,
            "service_title": booking.service.title, "when": when(booking, booking.customer_timezone),
            "reason": booking.cancel_reason or None,
            "browse_url": external_url("experts.public_profile", handle=booking.expert.handle),
        },
        subject="Your booking request was declined", ics=_ics(booking),
    )


def on_booking_cancelled(sender, booking_id: int, cancelled_by: int | None = None, **extra) -> None:
    booking = _booking(booking_id)
    if booking is None:
        return
    expert = booking.expert
    by_customer = cancelled_by == booking.customer_id
    what = f"{booking.service.title} with {expert.display_name}"
    ics = _ics(booking)  # METHOD:CANCEL, same UID, higher SEQUENCE: calendars remove the event
    common = {"what": what, "reason": booking.cancel_reason or None}
    _queue(
        "booking-cancelled", booking.customer_email, booking.customer_name, "booking_cancelled",
        common | {"when": when(booking, booking.customer_timezone), "cancelled_by": "you" if by_customer else expert.display_name,
                  "rebook_url": external_url("experts.public_profile", handle=expert.handle)},
        subject=f"Cancelled: {what}, {when(booking, booking.customer_timezone)}", ics=ics,
    )
    _queue(
        "booking-cancelled", expert.user.email, expert.display_name, "booking_cancelled",
        common | {"when": when(booking, expert.timezone),
                  "cancelled_by": f"the customer, {booking.customer_name}" if by_customer else "you"},
        subject=f"Cancelled: {booking.service.title} with {booking.customer_name}, {when(booking, expert.timezone)}", ics=ics,
    )


def on_meeting_ready(sender, booking_id: int, meeting_id: int, **extra) -> None:
    from expertbook.video.models import Meeting

    booking = _booking(booking_id)
    meeting = db.session.get(Meeting, meeting_id)
    if booking is None or meeting is None or booking.status != "confirmed":
        return
    confirmed_emails(booking, meeting)


def on_meeting_reauth_needed(sender, booking_id: int, meeting_id: int, incident: str, **extra) -> None:
    from expertbook.video.service import reauthorize_url

    booking = _booking(booking_id)
    if booking is None:
        return
    expert = booking.expert
    _queue(
        "zoom-reauth", expert.user.email, expert.display_name, "zoom_reauth",
        {
            "expert_name": expert.display_name, "customer_name": booking.customer_name,
            "service_title": booking.service.title, "attempted_when": when(booking, expert.timezone),
            "reason": "has expired or was revoked", "reauthorize_url": reauthorize_url(),
            "settings_url": external_url("video.settings"),
        },
        subject=f"Action required: re-authorize your Zoom account - {booking.service.title}",
        dedupe_key=f"zoom-reauth:{incident}",  # one email per refused grant, however many bookings wait on it
    )


# ---------------------------------------------------------------------------- reminders


def expert_booking_reminders(now: datetime, until: datetime):
    """Reminder source: confirmed expert bookings starting in [now, until), one reminder per side."""
    from expertbook.video.meetings import meeting_for, start_url

    bookings = db.session.scalars(
        select(Booking).where(Booking.status == "confirmed", Booking.start_at >= now, Booking.start_at < until)
    ).all()
    for booking in bookings:
        expert = booking.expert
        video = booking.service.location_kind == "video"
        meeting = meeting_for(booking.id) if video else None
        join_url = meeting.join_url if meeting is not None else None
        what = f"{booking.service.title} with {expert.display_name}"
        yield Reminder(
            kind="expert-booking-customer", id=booking.id, to_email=booking.customer_email, to_name=booking.customer_name,
            subject=f"Reminder: {what}, {when(booking, booking.customer_timezone)}",
            context={"what": what, "when": when(booking, booking.customer_timezone), "where": _where(booking),
                     "join_url": join_url, "booking_url": booking_url(booking.id)},
        )
        yield Reminder(
            kind="expert-booking-expert", id=booking.id, to_email=expert.user.email, to_name=expert.display_name,
            subject=f"Reminder: {booking.service.title} with {booking.customer_name}, {when(booking, expert.timezone)}",
            context={"what": f"{booking.service.title} with {booking.customer_name}", "when": when(booking, expert.timezone),
                     "where": _where(booking), "start_meeting_url": start_url(booking.id) if video else None,
                     "booking_url": booking_url(booking.id)},
        )


# ---------------------------------------------------------------------------- wiring


def connect() -> None:
    """Subscribe to the booking and meeting signals and register the reminder source (idempotent)."""
    from expertbook.video import signals as video_signals

    booking_signals.booking_requested.connect(on_booking_requested)
    booking_signals.booking_confirmed.connect(on_booking_confirmed)
    booking_signals.booking_declined.connect(on_booking_declined)
    booking_signals.booking_cancelled.connect(on_booking_cancelled)
    video_signals.meeting_ready.connect(on_meeting_ready)
    video_signals.meeting_reauth_needed.connect(on_meeting_reauth_needed)
    register_reminder_source(expert_booking_reminders)

