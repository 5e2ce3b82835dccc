"""Bookings written into the expert's chosen calendar: an outbox of calendar events.

1. A booking becomes confirmed. Inside its transaction (a signal receiver) :func:`booking_confirmed` writes
   a ``pending`` :class:`~expertbook.calendars.models.CalendarEvent` row for the expert's write calendar, so
   the event exists exactly when the booking committed: never lost.
2. After the commit the row's job runs (:mod:`expertbook.calendars.queue`): :func:`sync` claims the row,
   builds the event from the booking as it is NOW (time, status, the meeting's join link, the expert's
   manage link), writes it OUTSIDE any transaction, then records the outcome. The event's UID is the
   booking's (CalDAV: the resource is named after it; Google: the event id is derived from it), so a
   write repeated after a lost answer replaces the event instead of adding a second one.
3. A reschedule, a cancellation, a decline, and the meeting's link arriving (the video area calls
   :func:`booking_changed`) make the row due again: the job updates the event, or deletes it once the
   booking is no longer active.
4. A temporary fault is retried with backoff for as long as it lasts; a refused password or Google grant
   parks the row (``waiting``) until the expert mends the connection; the relay hook (:func:`relay`)
   re-dispatches whatever is due and not waiting in the queue.

The event carries no ORGANIZER or ATTENDEE: a calendar server that schedules would otherwise email the
customer an invitation from the expert's account.
"""
from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import or_, select, update

from expertbook import crypto
from expertbook.calendars import caldav_client, google, health, queue
from expertbook.calendars.errors import CalendarError, CalendarRefused, CalendarRejected, CalendarUnavailable, ReauthNeeded
from expertbook.calendars.models import (
    CALDAV,
    EVENT_DELETED,
    EVENT_FAILED,
    EVENT_PENDING,
    EVENT_WAITING,
    EVENT_WRITTEN,
    CalendarConnection,
    CalendarEvent,
    RemoteCalendar,
)
from expertbook.database import after_commit, transaction, utcnow
from expertbook.experts.calendar import meeting_links
from expertbook.experts.models import ACTIVE_STATUSES, Booking
from expertbook.extensions import db
from expertbook.ics import calendar_ics, event as ics_event
from expertbook.web import external_url

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- inside the booking transaction


def _write_calendar_id(user_id: int) -> int | None:
    return db.session.scalar(
        select(RemoteCalendar.id)
        .join(CalendarConnection, CalendarConnection.id == RemoteCalendar.connection_id)
        .where(CalendarConnection.user_id == user_id, RemoteCalendar.write_bookings.is_(True))
    )


def _rows(booking_id: int) -> list[CalendarEvent]:
    return list(db.session.scalars(
        select(CalendarEvent).where(CalendarEvent.booking_id == booking_id).with_for_update(of=CalendarEvent)
        .execution_options(populate_existing=True)
    ))


def _due_now(event: CalendarEvent) -> None:
    event.status = EVENT_PENDING
    event.attempts = 0
    event.next_attempt_at = utcnow()
    dispatch_after_commit(event)


def booking_confirmed(booking_id: int) -> None:
    """A booking became confirmed: its event is to be written into the expert's write calendar (if any)."""
    booking = db.session.get(Booking, booking_id)
    if booking is None:
        return
    rows = _rows(booking_id)
    target = _write_calendar_id(booking.expert.user_id)
    if target is not None and all(row.calendar_id != target for row in rows):
        row = CalendarEvent(booking_id=booking_id, calendar_id=target, status=EVENT_PENDING, attempts=0, next_attempt_at=utcnow())
        db.session.add(row)
        db.session.flush()
        rows.append(row)
    for row in rows:
        _due_now(row)


def booking_changed(booking_id: int) -> None:
    """A booking moved, ended, or its meeting link arrived: its events (wherever they were written) are due again."""
    for row in _rows(booking_id):
        if row.status == EVENT_WAITING:
            row.next_attempt_at = None  # still waiting for the expert to mend the connection; it reads the booking then
            continue
        _due_now(row)


# ---------------------------------------------------------------------------- dispatch


def dispatch_after_commit(event: CalendarEvent) -> None:
    after_commit(partial(dispatch, event.id, event.next_attempt_at))


def dispatch(event_id: int, due: datetime | None = None) -> None:
    """Start the event's job if due (see :mod:`expertbook.calendars.queue`)."""
    queue.dispatch(queue.EVENT_JOB, "event", sync, event_id, due)


def relay(now: datetime | None = None, limit: int = 200) -> int:
    """Relay hook: dispatch every event row that is due and not claimed."""
    now = now or utcnow()
    rows = db.session.execute(
        select(CalendarEvent.id, CalendarEvent.next_attempt_at)
        .where(
            CalendarEvent.next_attempt_at <= now,
            CalendarEvent.status == EVENT_PENDING,
            or_(CalendarEvent.claimed_until.is_(None), CalendarEvent.claimed_until < now),
        )
        .order_by(CalendarEvent.next_attempt_at)
        .limit(limit)
    ).all()
    db.session.rollback()
    return queue.relay_rows(queue.EVENT_JOB, "event", sync, [tuple(row) for row in rows])


# ---------------------------------------------------------------------------- what the event says


def uid(booking: Booking) -> str:
    """The event's UID: the booking's, as in its .ics files (so a calendar that also got the .ics by email
    sees one event)."""
    return f"{booking.ics_uid}@expertbook"


def _lines(booking: Booking) -> tuple[list[str], str | None, str]:
    """The description's lines, the join link (if any) and the expert's manage link."""
    service = booking.service
    manage = external_url("experts.booking_detail", booking_id=booking.id)
    links = meeting_links(booking) if booking.is_active else None
    join = links.join_url if links is not None else None
    customer = f"{booking.customer_name} <{booking.customer_email}>" + (f", {booking.customer_phone}" if booking.customer_phone else "")
    lines = [_("%(service)s (%(minutes)s min), booked with ExpertBook.", service=service.title, minutes=booking.duration_minutes),
             _("Customer: %(customer)s", customer=customer)]
    if join:
        lines.append(_("Join the meeting: %(link)s", link=join))
        if links.start_url and links.start_url != join:
            lines.append(_("Start the meeting (host): %(link)s", link=links.start_url))
    elif service.location_kind == "video":
        lines.append(_("Meeting link pending: it is added here as soon as the meeting exists."))
    if booking.notes:
        lines.append(_("Notes: %(notes)s", notes=booking.notes))
    if booking.status == "pending":
        lines.append(_("Waiting for your acceptance."))
    lines.append(_("Manage this booking: %(link)s", link=manage))
    return lines, join, manage


def _summary(booking: Booking) -> str:
    return _("%(service)s with %(customer)s", service=booking.service.title, customer=booking.customer_name)


def caldav_content(booking: Booking) -> str:
    """The booking as the iCalendar object stored in a CalDAV calendar (no METHOD, no attendees)."""
    lines, join, manage = _lines(booking)
    service = booking.service
    one = ics_event(
        uid(booking), booking.start_at, booking.end_at, _summary(booking),
        sequence=booking.ics_sequence, status="TENTATIVE" if booking.status == "pending" else "CONFIRMED",
        timezone=booking.expert.timezone, description="\n".join(lines),
        location=join or service.location_detail or service.location_label, url=manage,
        stamp=booking.updated_at, created=booking.created_at, modified=booking.updated_at,
    )
    return calendar_ics([one], method=None)


def google_content(booking: Booking) -> dict[str, Any]:
    """The booking as a Google Calendar event body (no attendees, no conference: see :func:`google.meet_event`)."""
    lines, join, manage = _lines(booking)
    service, zone = booking.service, booking.expert.timezone
    return {
        "summary": _summary(booking),
        "description": "\n".join(lines),
        "location": join or service.location_detail or service.location_label,
        "start": {"dateTime": booking.start_at.isoformat(), "timeZone": zone},
        "end": {"dateTime": booking.end_at.isoformat(), "timeZone": zone},
        "status": "tentative" if booking.status == "pending" else "confirmed",
        "source": {"title": "ExpertBook", "url": manage},
        "extendedProperties": {"private": {"expertbookUid": uid(booking)}},
    }


def _hash(content: str | dict) -> str:
    text = content if isinstance(content, str) else json.dumps(content, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------------------- the job


def _claim(event_id: int, now: datetime) -> datetime | None:
    claim = now + timedelta(seconds=queue.job_seconds())
    with transaction() as session:
        claimed = session.execute(
            update(CalendarEvent)
            .where(
                CalendarEvent.id == event_id,
                CalendarEvent.status == EVENT_PENDING,
                CalendarEvent.next_attempt_at <= now,
                or_(CalendarEvent.claimed_until.is_(None), CalendarEvent.claimed_until < now),
            )
            .values(claimed_until=claim)
            .execution_options(synchronize_session=False)
        ).rowcount
    return claim if claimed == 1 else None


def _owned(event_id: int, claim: datetime) -> CalendarEvent | None:
    event = db.session.scalar(
        select(CalendarEvent).where(CalendarEvent.id == event_id).with_for_update(of=CalendarEvent).execution_options(populate_existing=True)
    )
    if event is None or event.claimed_until != claim:
        log.warning("calendar event %s: the job lost its claim before recording its outcome", event_id)
        return None
    return event


def _desired(booking: Booking, kind: str) -> tuple[str, Any, str | None]:
    """(plan, content, hash): "put" with the content, or "delete"."""
    if booking.status not in ACTIVE_STATUSES:
        return "delete", None, None
    content = caldav_content(booking) if kind == CALDAV else google_content(booking)
    return "put", content, _hash(content)


def sync(event_id: int, now: datetime | None = None) -> str:
    """The event job: bring the calendar in line with the booking. Idempotent; returns what it did:
    ``"written"``, ``"deleted"``, ``"retry"``, ``"waiting"``, ``"failed"`` or ``"skipped"``."""
    now = now or utcnow()
    claim = _claim(event_id, now)
    if claim is None:
        return "skipped"
    event = db.session.get(CalendarEvent, event_id, populate_existing=True)
    if event is None:  # its calendar was disconnected meanwhile
        return "skipped"
    booking = db.session.get(Booking, event.booking_id, populate_existing=True)
    calendar = db.session.get(RemoteCalendar, event.calendar_id)
    connection = calendar.connection
    kind, user_id, remote_id, connection_id = connection.kind, connection.user_id, calendar.remote_id, connection.id
    data = crypto.decrypt(connection.secrets)
    plan, content, content_hash = _desired(booking, kind)
    the_uid = uid(booking)
    unchanged = plan == "put" and event.status == EVENT_WRITTEN and event.content_hash == content_hash
    db.session.rollback()  # no snapshot or lock is held while the server is called
    if unchanged:
        return _finish(event_id, claim, outcome="skipped", next_attempt_at=None)
    try:
        if kind == CALDAV:
            account = caldav_client.Account(data["url"], data["username"], data["password"])
            try:
                if plan == "put":
                    caldav_client.put_event(account, remote_id, the_uid, content)
                else:
                    caldav_client.delete_event(account, remote_id, the_uid)
            except caldav_client.UnsafeURL as error:
                raise CalendarRefused(f"the server's address may not be used: {error}") from error
        elif plan == "put":
            google.upsert_event(user_id, remote_id, google.event_id(booking_uid(the_uid)), content)
        else:
            google.delete_event(user_id, remote_id, google.event_id(booking_uid(the_uid)))
    except CalendarUnavailable as error:
        return _retry_later(event_id, claim, connection_id, error)
    except (CalendarRefused, ReauthNeeded) as error:
        return _park(event_id, claim, connection_id, error)
    except CalendarRejected as error:
        log.warning("calendar event %s: the server refused to %s it: %s", event_id, plan, error)
        return _finish(event_id, claim, outcome="failed", status=EVENT_FAILED, next_attempt_at=None, last_error=str(error)[:2000])
    except Exception as error:  # noqa: BLE001 - a bug or an unexpected answer: retry, loudly
        log.exception("calendar event %s: unexpected error during %s", event_id, plan)
        return _retry_later(event_id, claim, connection_id, CalendarUnavailable(repr(error)))
    if plan == "put":
        return _finish(event_id, claim, outcome="written", status=EVENT_WRITTEN, content_hash=content_hash, attempts=0,
                       last_error=None, next_attempt_at=None, connection_id=connection_id, recheck=True)
    return _finish(event_id, claim, outcome="deleted", status=EVENT_DELETED, content_hash=None, attempts=0, last_error=None,
                   next_attempt_at=None, connection_id=connection_id, recheck=True)


def booking_uid(event_uid: str) -> str:
    """The booking's own UID inside the event's (``<uid>@expertbook``)."""
    return event_uid.split("@", 1)[0]


def _finish(event_id: int, claim: datetime, *, outcome: str, connection_id: int | None = None, recheck: bool = False, **values) -> str:
    """Record an outcome if the claim is still ours; release it. A success also says the connection works."""
    with transaction():
        event = _owned(event_id, claim)
        if event is None:
            return "skipped"
        for name, value in values.items():
            setattr(event, name, value)
        event.claimed_until = None
        if recheck:
            booking = db.session.get(Booking, event.booking_id, populate_existing=True)
            calendar = db.session.get(RemoteCalendar, event.calendar_id)
            plan, _content, content_hash = _desired(booking, calendar.connection.kind)
            if (plan == "put" and content_hash != event.content_hash) or (plan == "delete" and event.status != EVENT_DELETED):
                _due_now(event)  # the booking changed again while the server was being called
        if connection_id is not None:
            connection = db.session.scalar(
                select(CalendarConnection).where(CalendarConnection.id == connection_id).with_for_update(of=CalendarConnection)
            )
            if connection is not None and health.mark_ok(connection):
                resume_connection(connection_id)
    return outcome


def _retry_later(event_id: int, claim: datetime, connection_id: int, error: CalendarUnavailable) -> str:
    with transaction():
        event = _owned(event_id, claim)
        if event is None:
            return "skipped"
        event.attempts += 1
        event.claimed_until = None
        event.last_error = str(error)[:2000]
        due = utcnow() + timedelta(seconds=queue.retry_delay(event.attempts, error.retry_after))
        event.next_attempt_at = due
        _mark_connection(connection_id, error)
        log.info("calendar event %s: attempt %s failed (%s); retrying at %s", event_id, event.attempts, error, due.isoformat())
        dispatch_after_commit(event)
    return "retry"


def _park(event_id: int, claim: datetime, connection_id: int, error: CalendarError) -> str:
    with transaction():
        event = _owned(event_id, claim)
        if event is None:
            return "skipped"
        event.status = EVENT_WAITING
        event.claimed_until = None
        event.next_attempt_at = None  # resumed when the connection works again
        event.last_error = str(error)[:2000]
        _mark_connection(connection_id, error)
    return "waiting"


def _mark_connection(connection_id: int, error: CalendarError) -> None:
    connection = db.session.scalar(
        select(CalendarConnection).where(CalendarConnection.id == connection_id).with_for_update(of=CalendarConnection)
    )
    if connection is not None:
        health.mark_broken(connection, health.status_for(error), str(error))


def resume_connection(connection_id: int) -> int:
    """The connection works again: its events that waited are due now (inside the caller's transaction)."""
    rows = db.session.scalars(
        select(CalendarEvent)
        .join(RemoteCalendar, RemoteCalendar.id == CalendarEvent.calendar_id)
        .where(RemoteCalendar.connection_id == connection_id, CalendarEvent.status.in_((EVENT_WAITING, EVENT_PENDING)))
        .with_for_update(of=CalendarEvent)
    ).all()
    for event in rows:
        _due_now(event)
    return len(rows)
