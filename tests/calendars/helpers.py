"""Shared steps of the calendar tests.

The readers end their read transaction before returning plain snapshots: on SQLite (WAL) a test session
that kept a read open across a request's commit could not write afterwards (its snapshot is stale).
"""
from __future__ import annotations

from types import SimpleNamespace

from sqlalchemy import select

from expertbook.calendars.models import CalendarConnection, CalendarEvent, RemoteCalendar
from expertbook.extensions import db
from tests.calendars.radicale_server import PASSWORD, USER


def _snapshot(row) -> SimpleNamespace | None:
    if row is None:
        return None
    return SimpleNamespace(**{column.key: getattr(row, column.key) for column in row.__table__.columns})


def connect_caldav(client, radicale, password: str = PASSWORD):
    """Connect the logged-in expert's CalDAV account through the calendar page's form."""
    return client.post_form("/calendars/caldav", {"url": radicale.url, "username": USER, "password": password})


def connection(kind: str = "caldav") -> SimpleNamespace | None:
    """The (only) connection of ``kind``, as it is now."""
    db.session.rollback()
    found = _snapshot(db.session.scalar(select(CalendarConnection).where(CalendarConnection.kind == kind)))
    db.session.rollback()
    return found


def calendar_id(name: str) -> int:
    db.session.rollback()
    found = db.session.scalar(select(RemoteCalendar.id).where(RemoteCalendar.name == name))
    db.session.rollback()
    return found


def choose(client, connection_id: int, check: list[str], write: str | None):
    """Save the connection's choices through the page: calendars checked for conflicts by name, and the write calendar."""
    data = {"check": [calendar_id(name) for name in check], "write": str(calendar_id(write)) if write else ""}
    return client.post_form(f"/calendars/{connection_id}/choices", data, htmx=True)


def events_of(booking_id: int) -> list[SimpleNamespace]:
    db.session.rollback()
    found = [_snapshot(row) for row in db.session.scalars(select(CalendarEvent).where(CalendarEvent.booking_id == booking_id))]
    db.session.rollback()
    return found
