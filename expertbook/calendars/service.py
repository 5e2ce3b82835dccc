"""Calendar rules: an expert's connections (CalDAV, Google), which calendars block bookings and which one
receives them, and the busy times read from them.

Busy times are read by a job, never by a page: :func:`refresh` reads a connection's checked calendars and
replaces their rows in ``calendar_busy`` under the expert's booking lock, and :func:`busy_for` (the busy
source the experts area asks, inside the booking's transaction) reads only those rows. So the booking
page never waits on a remote server, and a booking commits only if the busy times known at its commit
leave its time free. The relay hook (:func:`relay`) dispatches the read of every connection whose busy
times are older than ``CALENDAR_BUSY_TTL_SECONDS``.

A remote calendar that is down or refuses the password never blocks booking: the read fails, the last
busy times known stay in use, the connection shows its state and last error on the calendar page, and
the expert gets one email when it breaks (:mod:`expertbook.calendars.health`).
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import and_, delete, insert, or_, select, update

from expertbook import crypto
from expertbook.calendars import busy, caldav_client, google, health, queue, signals, writes
from expertbook.calendars.errors import CalendarError, CalendarRefused, CalendarUnavailable, ReauthNeeded
from expertbook.calendars.models import (
    CALDAV,
    CONNECTED,
    GOOGLE,
    RECONNECT_NEEDED,
    BusyInterval,
    CalendarConnection,
    CalendarEvent,
    RemoteCalendar,
)
from expertbook.database import after_commit, transaction, utcnow
from expertbook.errors import NotFound, ValidationFailed
from expertbook.experts import service as experts
from expertbook.experts.models import ACTIVE_STATUSES, Booking, ExpertProfile, Service
from expertbook.extensions import db

log = logging.getLogger(__name__)

PAST = timedelta(days=1)  # busy times are read from a day back (a booking never starts in the past)


# ---------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class ConnectionView:
    """A connection as the calendar page shows it (no secrets)."""

    id: int
    kind: str
    status: str
    account: str
    last_error: str | None
    failing_since: datetime | None
    last_ok_at: datetime | None
    calendars: list[RemoteCalendar]

    @property
    def broken(self) -> bool:
        return self.status != CONNECTED


def _secrets(connection: CalendarConnection) -> dict[str, Any]:
    return crypto.decrypt(connection.secrets) if connection.secrets else {}


def connections_of(user_id: int) -> list[ConnectionView]:
    """The user's connections (CalDAV first), each with its calendars by name."""
    from expertbook.calendars.emails import connection_label

    rows = db.session.scalars(
        select(CalendarConnection).where(CalendarConnection.user_id == user_id).order_by(CalendarConnection.kind)
    ).all()
    calendars = db.session.scalars(
        select(RemoteCalendar).where(RemoteCalendar.connection_id.in_([row.id for row in rows])).order_by(RemoteCalendar.name, RemoteCalendar.id)
    ).all() if rows else []
    return [
        ConnectionView(row.id, row.kind, row.status, connection_label(row), row.last_error, row.failing_since, row.last_ok_at,
                       [calendar for calendar in calendars if calendar.connection_id == row.id])
        for row in rows
    ]


def _own(user_id: int, connection_id: int, *, lock: bool = False) -> CalendarConnection:
    query = select(CalendarConnection).where(CalendarConnection.id == connection_id)
    if lock:
        query = query.with_for_update(of=CalendarConnection).execution_options(populate_existing=True)
    connection = db.session.scalar(query)
    if connection is None or connection.user_id != user_id:
        raise NotFound("Calendar connection not found")
    return connection


def busy_for(expert_id: int, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """The busy source of :mod:`expertbook.experts.service`: the expert's external busy intervals touching
    ``[start, end)``, as last read (rows exist only for calendars checked for conflicts)."""
    rows = db.session.execute(
        select(BusyInterval.start_at, BusyInterval.end_at).where(
            BusyInterval.expert_id == expert_id, BusyInterval.end_at > start, BusyInterval.start_at < end
        )
    )
    return [(row.start_at, row.end_at) for row in rows]


# ---------------------------------------------------------------------------- connecting


def _clean(value: str | None, field: str, limit: int, required: bool = True) -> str:
    value = (value or "").strip()
    if required and not value:
        raise ValidationFailed({field: _("This field is required.")})
    if len(value) > limit or any(ord(ch) < 0x20 for ch in value):
        raise ValidationFailed({field: _("Keep it under %(limit)s characters, without control characters.", limit=limit)})
    return value


def connect_caldav(user_id: int, url: str, username: str, password: str) -> CalendarConnection:
    """Connect (or reconnect with new details) the user's CalDAV account: log in, list its calendars, store
    the password encrypted, and read the busy times of the calendars checked for conflicts.

    The server is asked while the expert waits (bounded by ``CALENDAR_TIMEOUT``); a URL that may not be
    used, a refused password or an unreachable server is a ValidationFailed naming the field.
    """
    errors: dict[str, str] = {}
    cleaned: dict[str, str] = {}
    for field, value, limit in (("url", url, 500), ("username", username, 200), ("password", password, 500)):
        try:
            cleaned[field] = _clean(value, field, limit)
        except ValidationFailed as error:
            errors.update({k: v[0] for k, v in error.errors.items()})
    if errors:
        raise ValidationFailed(errors)
    account = caldav_client.Account(cleaned["url"], cleaned["username"], cleaned["password"])
    try:
        found = caldav_client.calendars(account)
    except caldav_client.UnsafeURL as error:
        log.info("user %s gave a CalDAV URL that may not be used: %s", user_id, error)
        raise ValidationFailed({"url": _("Use the https address of your CalDAV server (a public one).")}) from None
    except CalendarRefused:
        raise ValidationFailed({"password": _("The server refused this user name and password. Use an app password if your provider has them.")}) from None
    except CalendarError as error:
        log.info("user %s: CalDAV server not usable: %s", user_id, error)
        raise ValidationFailed({"url": _("No CalDAV server answered at this address. Check it and try again.")}) from None
    if not found:
        raise ValidationFailed({"url": _("This account has no calendar that can hold events.")})
    data = {"url": account.url, "username": account.username, "password": account.password}
    return _save_connection(user_id, CALDAV, data, found)


def save_google(user_id: int, token: Mapping[str, Any], profile: Mapping[str, Any]) -> CalendarConnection:
    """Store (or replace) the user's Google grant after a successful authorization, then list its calendars."""
    data = google.token_fields(token) | {"email": profile.get("email"), "sub": str(profile.get("sub") or "")}
    connection = _save_connection(user_id, GOOGLE, data, None)
    try:
        found = google.calendars(user_id)
    except CalendarError as error:
        log.warning("user %s connected Google but its calendars could not be listed: %s", user_id, error)
        return connection
    with transaction():
        connection = _own(user_id, connection.id, lock=True)
        _sync_calendars(connection, found)
        connection.next_refresh_at = utcnow()
        _dispatch_refresh_after_commit(connection)
    return connection


def _save_connection(user_id: int, kind: str, data: dict[str, Any], found: list[caldav_client.FoundCalendar] | None) -> CalendarConnection:
    now = utcnow()
    with transaction():
        experts.require_profile(user_id)
        connection = db.session.scalar(
            select(CalendarConnection).where(CalendarConnection.user_id == user_id, CalendarConnection.kind == kind)
            .with_for_update(of=CalendarConnection)
        )
        if connection is None:
            connection = CalendarConnection(user_id=user_id, kind=kind)
            db.session.add(connection)
        connection.secrets = crypto.encrypt(data)
        connection.connected_at = now
        health.mark_ok(connection, now)
        connection.next_refresh_at = now
        connection.claimed_until = None
        db.session.flush()
        if found is not None:
            _sync_calendars(connection, found)
        writes.resume_connection(connection.id)
        _dispatch_refresh_after_commit(connection)
        if kind == GOOGLE:
            _send_after_commit(user_id)
    log.info("user %s connected %s calendars", user_id, kind)
    return connection


def _sync_calendars(connection: CalendarConnection, found: Iterable[caldav_client.FoundCalendar]) -> None:
    """Bring the connection's calendar rows in line with what the server lists, keeping the expert's choices.

    A first connection checks every calendar for conflicts (the safe default: no double booking); new
    calendars of an existing connection are left unchecked until the expert says so.
    """
    existing = {calendar.remote_id: calendar for calendar in db.session.scalars(
        select(RemoteCalendar).where(RemoteCalendar.connection_id == connection.id)
    )}
    first = not existing
    seen = set()
    for item in found:
        seen.add(item.remote_id)
        calendar = existing.get(item.remote_id)
        if calendar is None:
            db.session.add(RemoteCalendar(connection_id=connection.id, remote_id=item.remote_id, name=item.name, check_conflicts=first))
        elif calendar.name != item.name:
            calendar.name = item.name
    for remote_id, calendar in existing.items():
        if remote_id not in seen:  # deleted at the server: its busy times and events' rows go with it
            db.session.delete(calendar)
    db.session.flush()


def set_choices(user_id: int, connection_id: int, checked: Iterable[int], write_to: int | None) -> None:
    """Which of the connection's calendars block bookings (``checked``), and where bookings are written:
    ``write_to``, a calendar of any of the user's connections, or None to write nowhere. ``write_to`` of
    another connection is left as it is when it is not one of this connection's calendars."""
    checked = set(checked)
    with transaction():
        connection = _own(user_id, connection_id, lock=True)
        calendars = db.session.scalars(select(RemoteCalendar).where(RemoteCalendar.connection_id == connection.id)).all()
        ids = {calendar.id for calendar in calendars}
        if not checked <= ids or (write_to is not None and write_to not in ids):
            raise ValidationFailed({"calendars": _("Choose calendars of this account.")})
        profile = experts.require_profile(user_id)
        experts.lock_expert(profile.id)  # unchecking frees times: in order with the bookings
        newly_checked = False
        for calendar in calendars:
            wanted = calendar.id in checked
            if calendar.check_conflicts and not wanted:
                db.session.execute(delete(BusyInterval).where(BusyInterval.calendar_id == calendar.id))
                calendar.busy_fetched_at = None
            newly_checked |= wanted and not calendar.check_conflicts
            calendar.check_conflicts = wanted
        if write_to is not None or any(calendar.write_bookings for calendar in calendars):
            # One calendar per expert receives bookings: choosing one here unsets any other.
            db.session.execute(
                update(RemoteCalendar)
                .where(RemoteCalendar.connection_id.in_(select(CalendarConnection.id).where(CalendarConnection.user_id == user_id)))
                .values(write_bookings=RemoteCalendar.id == write_to)
                .execution_options(synchronize_session=False)
            )
        if newly_checked:
            connection.next_refresh_at = utcnow()
            _dispatch_refresh_after_commit(connection)
    db.session.expire_all()


def write_calendar(user_id: int) -> RemoteCalendar | None:
    """The calendar the user's bookings are written into, if they chose one."""
    return db.session.scalar(
        select(RemoteCalendar)
        .join(CalendarConnection, CalendarConnection.id == RemoteCalendar.connection_id)
        .where(CalendarConnection.user_id == user_id, RemoteCalendar.write_bookings.is_(True))
    )


def disconnect(user_id: int, connection_id: int) -> bool:
    """Forget a connection: its secrets, calendars, busy times and pending writes. Events already written stay
    in the calendar. A Google grant is revoked first; returns whether Google confirmed it (True for CalDAV)."""
    connection = _own(user_id, connection_id)
    revoked = google.revoke(google.grant_token(connection)) if connection.kind == GOOGLE else True
    kind = connection.kind
    with transaction():
        connection = _own(user_id, connection_id, lock=True)
        profile = experts.profile_of(user_id)
        if profile is not None:
            experts.lock_expert(profile.id)  # its busy times stop blocking: in order with the bookings
        db.session.delete(connection)
        if kind == GOOGLE:
            _send_after_commit(user_id)
    log.info("user %s disconnected %s calendars (revoked: %s)", user_id, kind, revoked)
    return revoked


def _send_after_commit(user_id: int) -> None:
    app = current_app._get_current_object()
    after_commit(lambda: signals.google_connection_changed.send(app, user_id=user_id))


# ---------------------------------------------------------------------------- reading busy times


def _dispatch_refresh_after_commit(connection: CalendarConnection) -> None:
    after_commit(partial(dispatch_refresh, connection.id, connection.next_refresh_at))


def dispatch_refresh(connection_id: int, due: datetime | None = None) -> None:
    """Start the read of a connection's busy times if due (see :mod:`expertbook.calendars.queue`)."""
    queue.dispatch(queue.REFRESH_JOB, "refresh", refresh, connection_id, due)


def relay(now: datetime | None = None, limit: int = 200) -> int:
    """Relay hook: dispatch the read of every connection whose busy times are due, unless it is claimed."""
    now = now or utcnow()
    rows = db.session.execute(
        select(CalendarConnection.id, CalendarConnection.next_refresh_at)
        .where(
            CalendarConnection.next_refresh_at <= now,
            or_(CalendarConnection.claimed_until.is_(None), CalendarConnection.claimed_until < now),
        )
        .order_by(CalendarConnection.next_refresh_at)
        .limit(limit)
    ).all()
    db.session.rollback()
    return queue.relay_rows(queue.REFRESH_JOB, "refresh", refresh, [tuple(row) for row in rows])


def _claim(connection_id: int, now: datetime) -> datetime | None:
    claim = now + timedelta(seconds=queue.job_seconds())
    with transaction() as session:
        claimed = session.execute(
            update(CalendarConnection)
            .where(
                CalendarConnection.id == connection_id,
                or_(CalendarConnection.claimed_until.is_(None), CalendarConnection.claimed_until < now),
            )
            .values(claimed_until=claim)
            .execution_options(synchronize_session=False)
        ).rowcount
    return claim if claimed == 1 else None


def _owned(connection_id: int, claim: datetime) -> CalendarConnection | None:
    connection = db.session.scalar(
        select(CalendarConnection).where(CalendarConnection.id == connection_id)
        .with_for_update(of=CalendarConnection).execution_options(populate_existing=True)
    )
    if connection is None or connection.claimed_until != claim:
        log.warning("calendar connection %s: the read lost its claim before recording its outcome", connection_id)
        return None
    return connection


def _ttl() -> timedelta:
    return timedelta(seconds=float(current_app.config["CALENDAR_BUSY_TTL_SECONDS"]))


def read_remote(kind: str, user_id: int, data: Mapping[str, Any], remote_ids: list[str], start: datetime, end: datetime,
                zone: str) -> dict[str, list[tuple[datetime, datetime]]]:
    """The busy intervals of calendars at the server, by remote id. Raises a CalendarError."""
    if kind == CALDAV:
        account = caldav_client.Account(data["url"], data["username"], data["password"])
        try:
            return caldav_client.busy_times(account, remote_ids, start, end, zone)
        except caldav_client.UnsafeURL as error:
            raise CalendarRefused(f"the server's address may not be used: {error}") from error
    return google.busy_times(user_id, remote_ids, start, end)


def refresh(connection_id: int, now: datetime | None = None) -> str:
    """Read the busy times of a connection's checked calendars and store them (the job). Idempotent.

    Returns ``"read"``, ``"failed"`` (recorded on the connection; the last busy times stay in use) or
    ``"skipped"`` (claimed elsewhere, or gone).
    """
    now = now or utcnow()
    claim = _claim(connection_id, now)
    if claim is None:
        return "skipped"
    connection = db.session.get(CalendarConnection, connection_id, populate_existing=True)
    if connection is None:  # disconnected meanwhile
        return "skipped"
    profile = experts.profile_of(connection.user_id)
    kind, user_id, data = connection.kind, connection.user_id, _secrets(connection)
    checked = {calendar.id: calendar.remote_id for calendar in connection.calendars if calendar.check_conflicts}
    status = connection.status
    db.session.rollback()  # no snapshot or lock is held while the server is asked
    if profile is None:
        return _finish(connection_id, claim, next_refresh_at=None)
    if status == RECONNECT_NEEDED:
        return _finish(connection_id, claim, next_refresh_at=None)  # nothing works until the expert re-authorizes
    if not checked:
        # Nothing to read: the connection's state stays what the last real answer said.
        return _finish(connection_id, claim, next_refresh_at=utcnow() + _ttl())
    start, end = now - PAST, now + timedelta(days=int(current_app.config["CALENDAR_BUSY_DAYS"]))
    try:
        found = read_remote(kind, user_id, data, list(checked.values()), start, end, profile.timezone)
    except CalendarError as error:
        return _record_failure(connection_id, claim, error, now)
    with transaction():
        experts.lock_expert(profile.id)  # bookings of this expert wait while the busy times change
        connection = _owned(connection_id, claim)
        if connection is None:
            return "skipped"

        still_checked = set(db.session.scalars(
            select(RemoteCalendar.id).where(RemoteCalendar.connection_id == connection_id, RemoteCalendar.check_conflicts.is_(True))
        ))
        rows = []
        for calendar_id, remote_id in checked.items():
            if calendar_id not in still_checked:
                continue  # unchecked while we read: its times must not come back
            db.session.execute(delete(BusyInterval).where(BusyInterval.calendar_id == calendar_id))
            rows.extend({"calendar_id": calendar_id, "expert_id": profile.id, "start_at": begin, "end_at": finish}
                        for begin, finish in _without_own(kind, calendar_id, profile.id, found.get(remote_id, ()), start, end))
            db.session.execute(update(RemoteCalendar).where(RemoteCalendar.id == calendar_id).values(busy_fetched_at=now))
        if rows:
            db.session.execute(insert(BusyInterval), rows)
        if health.mark_ok(connection, now):
            writes.resume_connection(connection_id)
        connection.claimed_until = None
        connection.next_refresh_at = utcnow() + _ttl()
    log.info("calendar connection %s: %s busy interval(s) read from %s calendar(s)", connection_id, len(rows), len(checked))
    return "read"


def _without_own(kind: str, calendar_id: int, expert_id: int, found, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """A calendar's busy times without the expert's own bookings it holds. CalDAV's reader already skips our
    events by their UID; Google's free/busy cannot say which busy time is ours, so the times of the active
    bookings written into this calendar (or given a Meet event, which may live in it) are taken out. They
    hold their time anyway while active, and must not keep holding it once moved or cancelled."""
    if kind == CALDAV:
        return list(found)
    own = db.session.execute(
        select(Booking.start_at, Booking.end_at)
        .join(Service, Service.id == Booking.service_id)
        .where(
            Booking.expert_id == expert_id, Booking.status.in_(ACTIVE_STATUSES), Booking.start_at < end, Booking.end_at > start,
            or_(
                Booking.id.in_(select(CalendarEvent.booking_id).where(CalendarEvent.calendar_id == calendar_id)),
                and_(Service.location_kind == "video", Service.video_provider == "meet"),
            ),
        )
    ).all()
    return busy.subtract(found, [(row.start_at, row.end_at) for row in own])


def _finish(connection_id: int, claim: datetime, **values) -> str:
    with transaction():
        connection = _owned(connection_id, claim)
        if connection is None:
            return "skipped"
        for name, value in values.items():
            setattr(connection, name, value)
        connection.claimed_until = None
    return "skipped"


def _record_failure(connection_id: int, claim: datetime, error: CalendarError, now: datetime) -> str:
    with transaction():
        connection = _owned(connection_id, claim)
        if connection is None:
            return "skipped"
        status = health.status_for(error)
        health.mark_broken(connection, status, str(error), now)
        connection.claimed_until = None
        if status == RECONNECT_NEEDED:
            connection.next_refresh_at = None  # resumed when the expert re-authorizes
        else:
            retry_after = error.retry_after if isinstance(error, CalendarUnavailable) else None
            # A broken server is asked again no less often than healthy ones are read, and no more often
            # than the retry base allows.
            connection.next_refresh_at = utcnow() + timedelta(seconds=queue.retry_delay(1, retry_after, cap=_ttl().total_seconds()))
    return "failed"


def check_now(user_id: int, connection_id: int) -> str:
    """The expert's "Check now": list the connection's calendars again and read their busy times, while the
    expert waits (bounded by ``CALENDAR_TIMEOUT`` per call). Returns ``"read"`` or ``"failed"`` (recorded on
    the connection, as a job's failure would be)."""
    connection = _own(user_id, connection_id)
    kind, data = connection.kind, _secrets(connection)
    db.session.rollback()
    try:
        if kind == CALDAV:
            try:
                found = caldav_client.calendars(caldav_client.Account(data["url"], data["username"], data["password"]))
            except caldav_client.UnsafeURL as error:
                raise CalendarRefused(f"the server's address may not be used: {error}") from error
        else:
            found = google.calendars(user_id)
    except ReauthNeeded:
        return "failed"  # marked, with its one email, where Google refused
    except CalendarError as error:
        with transaction():
            connection = _own(user_id, connection_id, lock=True)
            health.mark_broken(connection, health.status_for(error), str(error))
        return "failed"
    with transaction():
        connection = _own(user_id, connection_id, lock=True)
        _sync_calendars(connection, found)
        if health.mark_ok(connection):
            writes.resume_connection(connection_id)
        connection.claimed_until = None  # the expert asked: this read goes ahead of a stuck claim
        connection.next_refresh_at = utcnow()
    return "failed" if refresh(connection_id) == "failed" else "read"


# ---------------------------------------------------------------------------- accounts and keys


def forget_account(user_id: int) -> None:
    """Account deletion hook: the rows go with the account (ON DELETE CASCADE); a Google grant is revoked
    once the deletion has committed."""
    connection = google._load(user_id)
    token = google.grant_token(connection) if connection is not None else None
    if token:
        after_commit(lambda: google.revoke(token))


def account_data(user_id: int) -> dict[str, Any]:
    """"Download my data": the user's calendar connections and choices (never their secrets)."""
    return {"calendarConnections": [
        {
            "kind": view.kind, "account": view.account, "status": view.status, "lastError": view.last_error,
            "calendars": [{"name": c.name, "checkForConflicts": c.check_conflicts, "writeBookings": c.write_bookings} for c in view.calendars],
        }
        for view in connections_of(user_id)
    ]}


def rotate_keys(batch: int = 200) -> int:
    """Re-encrypt every stored calendar secret with the first key of ``TOKEN_ENCRYPTION_KEYS``; returns the count."""
    done = 0
    last_id = 0
    while True:
        with transaction():
            rows = db.session.scalars(
                select(CalendarConnection).where(CalendarConnection.id > last_id).order_by(CalendarConnection.id).limit(batch)
                .with_for_update(of=CalendarConnection)
            ).all()
            for connection in rows:
                if connection.secrets:
                    connection.secrets = crypto.rotate(connection.secrets)
                    done += 1
        if not rows:
            return done
        last_id = rows[-1].id


def expert_profile(user_id: int) -> ExpertProfile | None:
    """The user's expert profile (calendar pages are for experts only)."""
    return experts.profile_of(user_id)
