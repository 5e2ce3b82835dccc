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


def connect_google(client, standin_url: str):
    """Run the whole Google OAuth flow for the logged-in ``client`` against the stand-in, as a browser would:
    our /calendars/google/connect, the stand-in's consent (approved at once), our callback. Returns the callback's answer."""
    import requests
    from urllib.parse import urlsplit

    start = client.get("/calendars/google/connect")
    assert start.status_code == 302, start.status_code
    authorize_url = start.headers["Location"]
    assert authorize_url.startswith(standin_url + "/o/oauth2/v2/auth?")
    back = requests.get(authorize_url, allow_redirects=False, timeout=10)
    assert back.status_code == 302, back.text
    target = urlsplit(back.headers["Location"])
    return client.get(f"{target.path}?{target.query}")


def expire_google_token(user_id: int) -> None:
    """Make the stored Google access token look expired, so the next call refreshes it."""
    from expertbook import crypto
    from expertbook.database import transaction

    db.session.rollback()
    with transaction():
        found = db.session.scalar(select(CalendarConnection).where(CalendarConnection.user_id == user_id, CalendarConnection.kind == "google"))
        data = crypto.decrypt(found.secrets)
        data["expires_at"] = 0
        found.secrets = crypto.encrypt(data)
