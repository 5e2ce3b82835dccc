"""The emails of expert bookings: written in the same transaction as the change that causes them.

Every receiver here runs INSIDE the booking's transaction and only calls
:func:`expertbook.notifications.service.queue_email`, whose row commits with the change and is sent
after the commit. Templates are in ``templates/email/experts/``. Which email goes where:

- request made (needs acceptance) → the expert: ``request_pending`` with links to the booking page,
  whose Accept / Decline buttons POST (a link in an email never changes a booking);
- confirmed at once, not a video booking → both sides: ``booking_customer`` and ``booking_expert``;
  an accepted request → the customer ``request_accepted`` (with the place, or "the link follows") and the expert
  ``booking_expert``;
- a video booking's confirmation emails wait for its meeting: :mod:`expertbook.video.emails` sends them
  with :func:`confirmed_emails` and the meeting's :class:`MeetingLinks` (the customer's join link, the
  expert's start link: OUR route, never Zoom's start_url), and reminds video bookings the same way;
- declined → the customer (``request_declined``); cancelled → both sides (``booking_cancelled``, METHOD:CANCEL).

:func:`connect` is called once per application (by the experts blueprint); connecting again is a no-op.
"""
from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select

from expertbook.experts import signals as booking_signals
from expertbook.experts.calendar import MeetingLinks, booking_ics, meeting_links
from expertbook.experts.models import Booking, Service
from expertbook.experts.service import manage_url
from expertbook.extensions import db
from expertbook.notifications.service import Reminder, never_costs_the_change, queue_email, register_reminder_source
from expertbook.web import external_url


# ---------------------------------------------------------------------------- helpers


def booking_url(booking_id: int) -> str:
    """The absolute link to a booking's page (its customer and its expert both see it there)."""
    return external_url("experts.booking_detail", booking_id=booking_id)


def customer_url(booking: Booking) -> str:
    """The customer's link to the booking: its page, or for a guest (no account) the private manage link."""
    return manage_url(booking) if booking.customer_id is None else booking_url(booking.id)


def when(booking: Booking, timezone: str) -> str:
    """The booking's date and time window in ``timezone``, e.g. "Wed 04 Mar 2030, 09:30-10:30 (Europe/London)"."""
    return window(booking.start_at, booking.end_at, timezone)


def window(start: datetime, end: datetime, timezone: str) -> str:
    """A date and time window in ``timezone`` (see :func:`when`)."""
    zone = ZoneInfo(timezone)
    start, end = start.astimezone(zone), end.astimezone(zone)
    return f"{start:%a %d %b %Y, %H:%M}-{end:%H:%M} ({timezone})"


def _where(booking: Booking) -> str:
    service = booking.service
    if service.location_kind == "video":
        return ""
    return f"{service.location_label}: {service.location_detail}" if service.location_detail else service.location_label


def _ics(booking: Booking, links: MeetingLinks | None = None, *, for_expert: bool = False) -> str:
    """The booking's calendar file for one side (each side's carries its own meeting link)."""
    return booking_ics(booking, links, for_expert=for_expert).decode()


def queue(kind: str, to_email: str, to_name: str, template: str, context: dict, **options) -> int | None:
    """Queue one email in the caller's transaction; a problem with it never undoes the booking."""
    with never_costs_the_change(f"{kind} to {to_email!r}"):
        return queue_email(kind, to_email, to_name, template, context, **options)
    return None


def _booking(booking_id: int) -> Booking | None:
    return db.session.get(Booking, booking_id)


# ---------------------------------------------------------------------------- the emails


def _customer_confirmation(booking: Booking, links: MeetingLinks | None) -> None:
    ics = _ics(booking, links)
    service, expert = booking.service, booking.expert
    queue(
        "expert-booking-customer", booking.customer_email, booking.customer_name, "experts/booking_customer",
        {
            "customer_name": booking.customer_name, "expert_name": expert.display_name, "service_title": service.title,
            "when": when(booking, booking.customer_timezone), "duration_minutes": booking.duration_minutes,
            "join_url": links.join_url if links else None, "meeting_id": links.meeting_id if links else None,
            "where": _where(booking), "booking_url": customer_url(booking), "cancel_url": customer_url(booking),
        },
        subject=f"Your appointment is confirmed - {service.title}", ics=ics,
        dedupe_key=f"booking-confirmed:{booking.id}:customer:{links.key if links else '0'}:{booking.ics_sequence}",
    )


def confirmed_emails(booking: Booking, links: MeetingLinks | None = None, *, customer: bool = True) -> None:
    """Both sides' confirmation: the customer's with the join link, the expert's with our start link.

    ``links`` describes the meeting of a video booking (None for other bookings);
    ``customer=False`` leaves the customer out (they were just told by ``request_accepted``).
    """
    service, expert = booking.service, booking.expert
    if customer:
        _customer_confirmation(booking, links)
    queue(
        "expert-booking-expert", expert.user.email, expert.display_name, "experts/booking_expert",
        {
            "expert_name": expert.display_name, "customer_name": booking.customer_name,
            "customer_email": booking.customer_email, "service_title": service.title,
            "when": when(booking, expert.timezone), "duration_minutes": booking.duration_minutes,
            "start_meeting_url": links.start_url if links else None,
            "meeting_id": links.meeting_id if links else None, "where": _where(booking), "booking_url": booking_url(booking.id),
        },
        subject=f"New booking: {service.title} with {booking.customer_name}", ics=_ics(booking, links, for_expert=True),
        # The sequence tells a later confirmation (a moved request accepted again) from a repeat of this one.
        dedupe_key=f"booking-confirmed:{booking.id}:expert:{links.key if links else '0'}:{booking.ics_sequence}",
    )


def on_booking_requested(sender, booking_id: int, **extra) -> None:
    booking = _booking(booking_id)
    if booking is None:
        return
    expert, link = booking.expert, booking_url(booking.id)
    queue(
        "request-pending", expert.user.email, expert.display_name, "experts/request_pending",
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
    # A request the customer moved keeps its meeting: accepted again, its confirmation with the links goes
    # out at once (video/emails.py), and a "link follows" note beside it would only muddle the calendar.
    if accepted and not (video and meeting_links(booking) is not None):
        queue(
            "request-accepted", booking.customer_email, booking.customer_name, "experts/request_accepted",
            {
                "customer_name": booking.customer_name, "expert_name": booking.expert.display_name,
                "service_title": booking.service.title, "when": when(booking, booking.customer_timezone),
                "duration_minutes": booking.duration_minutes, "join_url": None, "link_follows": video,
                "where": _where(booking), "booking_url": customer_url(booking),
            },
            subject=f"{booking.expert.display_name} accepted your booking", ics=_ics(booking),
        )
    if not video:  # a video booking's confirmations go out with the links, once its meeting exists
        confirmed_emails(booking, customer=not accepted)


def on_booking_declined(sender, booking_id: int, **extra) -> None:
    booking = _booking(booking_id)
    if booking is None:
        return
    queue(
        "request-declined", booking.customer_email, booking.customer_name, "experts/request_declined",
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
    queue(
        "booking-cancelled", booking.customer_email, booking.customer_name, "booking_cancelled",
        common | {"when": when(booking, booking.customer_timezone), "cancelled_by": "you" if by_customer else expert.display_name,
                  "rebook_url": external_url("experts.public_profile", handle=expert.handle)},
        subject=f"Cancelled: {what}, {when(booking, booking.customer_timezone)}", ics=ics,
    )
    queue(
        "booking-cancelled", expert.user.email, expert.display_name, "booking_cancelled",
        common | {"when": when(booking, expert.timezone),
                  "cancelled_by": f"the customer, {booking.customer_name}" if by_customer else "you"},
        subject=f"Cancelled: {booking.service.title} with {booking.customer_name}, {when(booking, expert.timezone)}", ics=ics,
    )


def rescheduled_emails(booking: Booking, previous_start: datetime, previous_end: datetime, *, by_customer: bool,
                       back_to_pending: bool, links: MeetingLinks | None = None, link_follows: bool = False) -> None:
    """Both sides hear of a move: the new and the old time in their own zone, their meeting link
    (``links``: the customer's join link, the expert's start route; the same as before a PATCH), the
    reason, and a calendar file with the same UID and the higher SEQUENCE, which moves the event."""
    service, expert = booking.service, booking.expert
    common = {"reason": booking.reschedule_reason or None, "where": _where(booking), "link_follows": link_follows and links is None}
    customer_when = when(booking, booking.customer_timezone)
    queue(
        "booking-rescheduled", booking.customer_email, booking.customer_name, "experts/booking_rescheduled",
        common | {
            "recipient_name": booking.customer_name, "what": f"{service.title} with {expert.display_name}",
            "when": customer_when, "previous_when": window(previous_start, previous_end, booking.customer_timezone),
            "moved_by": "you" if by_customer else expert.display_name,
            "pending_note": f"The new time is a request: {expert.display_name} will accept or decline it, and you will get an email either way."
            if booking.status == "pending" else None,
            "join_url": links.join_url if links else None, "booking_url": customer_url(booking),
        },
        subject=f"Moved: {service.title} with {expert.display_name}, now {customer_when}", ics=_ics(booking, links),
        dedupe_key=f"booking-rescheduled:{booking.id}:{booking.ics_sequence}:customer",
    )
    expert_when = when(booking, expert.timezone)
    queue(
        "booking-rescheduled", expert.user.email, expert.display_name, "experts/booking_rescheduled",
        common | {
            "recipient_name": expert.display_name, "what": f"{service.title} with {booking.customer_name}",
            "when": expert_when, "previous_when": window(previous_start, previous_end, expert.timezone),
            "moved_by": f"the customer, {booking.customer_name}" if by_customer else "you",
            "pending_note": "The new time is a request: please accept or decline it on the booking page." if back_to_pending
            else ("It is still a request waiting for your answer." if booking.status == "pending" else None),
            "start_meeting_url": links.start_url if links else None, "booking_url": booking_url(booking.id),
        },
        subject=f"Moved: {service.title} with {booking.customer_name}, now {expert_when}", ics=_ics(booking, links, for_expert=True),
        dedupe_key=f"booking-rescheduled:{booking.id}:{booking.ics_sequence}:expert",
    )


def on_booking_rescheduled(sender, booking_id: int, previous_start: datetime, previous_end: datetime, by_customer: bool = False,
                           back_to_pending: bool = False, **extra) -> None:
    booking = _booking(booking_id)
    if booking is None or booking.service.location_kind == "video":
        return  # a video booking's move is told with its meeting's links, by expertbook.video.emails
    rescheduled_emails(booking, previous_start, previous_end, by_customer=by_customer, back_to_pending=back_to_pending)


# ---------------------------------------------------------------------------- reminders


def booking_reminders(booking: Booking, links: MeetingLinks | None = None) -> Iterator[Reminder]:
    """The two reminders of one booking, the customer's and the expert's (``links`` for a video booking's meeting)."""
    expert = booking.expert
    what = f"{booking.service.title} with {expert.display_name}"
    yield Reminder(
        kind="expert-booking-customer", id=booking.id, to_email=booking.customer_email, to_name=booking.customer_name,
        subject=f"Reminder: {what}, {when(booking, booking.customer_timezone)}",
        context={"what": what, "when": when(booking, booking.customer_timezone), "where": _where(booking),
                 "join_url": links.join_url if links else None, "booking_url": customer_url(booking)},
    )
    yield Reminder(
        kind="expert-booking-expert", id=booking.id, to_email=expert.user.email, to_name=expert.display_name,
        subject=f"Reminder: {booking.service.title} with {booking.customer_name}, {when(booking, expert.timezone)}",
        context={"what": f"{booking.service.title} with {booking.customer_name}", "when": when(booking, expert.timezone),
                 "where": _where(booking), "start_meeting_url": links.start_url if links else None,
                 "booking_url": booking_url(booking.id)},
    )


def confirmed_bookings_starting(now: datetime, until: datetime, *, video: bool) -> list[Booking]:
    """Confirmed bookings starting in [now, until): the video ones, or all the others."""
    kind = Service.location_kind == "video"
    return list(db.session.scalars(
        select(Booking).join(Booking.service)
        .where(Booking.status == "confirmed", Booking.start_at >= now, Booking.start_at < until, kind if video else ~kind)
    ))


def expert_booking_reminders(now: datetime, until: datetime) -> Iterator[Reminder]:
    """Reminder source: confirmed bookings without a meeting starting in [now, until), one reminder per side.

    Video bookings are reminded by :mod:`expertbook.video.emails`, with their meeting's links.
    """
    for booking in confirmed_bookings_starting(now, until, video=False):
        yield from booking_reminders(booking)


# ---------------------------------------------------------------------------- wiring


def connect() -> None:
    """Subscribe to the booking signals and register the reminder source (idempotent)."""
    booking_signals.booking_requested.connect(on_booking_requested)
    booking_signals.booking_confirmed.connect(on_booking_confirmed)
    booking_signals.booking_declined.connect(on_booking_declined)
    booking_signals.booking_cancelled.connect(on_booking_cancelled)
    booking_signals.booking_rescheduled.connect(on_booking_rescheduled)
    register_reminder_source(expert_booking_reminders)
