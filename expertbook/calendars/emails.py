"""The calendars area's one email (templates in ``templates/email/calendars/``): a connection broke.

Written inside the transaction that records the breakage (:mod:`expertbook.calendars.health`), once per
breakage: its dedupe key names the connection and the moment it started failing. For Google's refused
refresh it asks the expert to re-authorize (the words of the calendar page: "Re-authorize"); for a CalDAV
server it says whether the server was unreachable or refused the password. Either way it says that
bookings go on: ExpertBook keeps taking them, and the calendar catches up once the connection works.
"""
from __future__ import annotations

from flask_babel import gettext as _

from expertbook.calendars.models import CALDAV, RECONNECT_NEEDED, REFUSED, CalendarConnection
from expertbook.extensions import db
from expertbook.notifications.service import never_costs_the_change, queue_email
from expertbook.web import external_url


def connection_label(connection: CalendarConnection) -> str:
    """What the expert knows the connection as: the CalDAV user and server, or the Google account."""
    from expertbook import crypto
    from urllib.parse import urlsplit

    data = crypto.decrypt(connection.secrets) if connection.secrets else {}
    if connection.kind == CALDAV:
        return f"{data.get('username', '')} @ {urlsplit(data.get('url', '')).hostname or ''}".strip()
    return data.get("email") or "Google"


def connection_broken(connection: CalendarConnection) -> int | None:
    """Queue the email about this connection's breakage (at most once per breakage)."""
    from expertbook.auth.models import User

    user = db.session.get(User, connection.user_id)
    if user is None or connection.failing_since is None:
        return None
    provider = "CalDAV" if connection.kind == CALDAV else "Google Calendar"
    if connection.status == RECONNECT_NEEDED:
        subject = _("Action required: re-authorize Google Calendar")
    elif connection.status == REFUSED:
        subject = _("Your calendar refused ExpertBook's password: %(provider)s", provider=provider)
    else:
        subject = _("ExpertBook cannot reach your calendar: %(provider)s", provider=provider)
    context = {
        "name": user.name,
        "provider": provider,
        "account": connection_label(connection),
        "status": connection.status,
        "error": connection.last_error or "",
        "calendars_url": external_url("calendars.index"),
        "reauthorize_url": external_url("calendars.google_connect") if connection.status == RECONNECT_NEEDED else None,
    }
    key = f"calendar-broken:{connection.id}:{connection.failing_since.strftime('%Y%m%dT%H%M%S.%f')}"
    with never_costs_the_change(f"calendar-broken to user {user.id}"):
        return queue_email("calendar-broken", user.email, user.name, "calendars/connection_broken", context,
                           subject=subject, dedupe_key=key)
    return None
