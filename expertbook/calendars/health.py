"""A connection's health: ``connected``, or broken (unreachable, password refused, Google re-authorization
needed), with its last error. The expert sees it on the calendar page and gets ONE email when it breaks:
the email's dedupe key names the breakage (the connection and the moment it started), so however many
jobs fail against the same broken server, one email goes out; when it works again the next breakage is a
new one.
"""
from __future__ import annotations

import logging
from datetime import datetime

from expertbook.calendars import emails
from expertbook.calendars.errors import CalendarError, CalendarRefused, ReauthNeeded
from expertbook.calendars.models import CONNECTED, RECONNECT_NEEDED, REFUSED, UNREACHABLE, CalendarConnection
from expertbook.database import utcnow

log = logging.getLogger(__name__)


def status_for(error: CalendarError) -> str:
    """The connection state an error means."""
    if isinstance(error, ReauthNeeded):
        return RECONNECT_NEEDED
    if isinstance(error, CalendarRefused):
        return REFUSED
    return UNREACHABLE


def mark_broken(connection: CalendarConnection, status: str, message: str, now: datetime | None = None) -> bool:
    """Inside a transaction, with ``connection`` locked: record a failure. Returns whether it just broke
    (and so queued the one email of this breakage)."""
    now = now or utcnow()
    newly = connection.failing_since is None
    connection.status = status
    connection.last_error = message[:2000]
    if newly:
        connection.failing_since = now
        log.warning("calendar connection %s (%s) of user %s broke: %s", connection.id, connection.kind, connection.user_id, message)
    # Queued on every failure but sent once: the dedupe key names this breakage. A breakage that began
    # before its kind was known (unreachable, then the password refused) still gets only its first email.
    emails.connection_broken(connection)
    return newly


def mark_ok(connection: CalendarConnection, now: datetime | None = None) -> bool:
    """Inside a transaction, with ``connection`` locked: the server answered. Returns whether it was broken."""
    was_broken = connection.status != CONNECTED
    connection.status = CONNECTED
    connection.last_error = None
    connection.failing_since = None
    connection.last_ok_at = now or utcnow()
    if was_broken:
        log.info("calendar connection %s (%s) of user %s works again", connection.id, connection.kind, connection.user_id)
    return was_broken
