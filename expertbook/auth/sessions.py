"""Login sessions: every logged-in browser and every API bearer token is one ``login_sessions`` row.

A browser's cookie holds a random token; an API token (a signed JWT, see ``expertbook.api.service``)
holds a random session id. The row is stored under the SHA-256 of that secret. Deleting rows is how
logging out works, everywhere: one browser, one API token, every session but this one, or all of
them (a password change or reset, a deleted account).
"""
from __future__ import annotations

import ipaddress
import re
import secrets
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import bindparam, delete, select, update

from expertbook.auth.models import API, WEB, LoginSession, User
from expertbook.auth.tokens import digest
from expertbook.database import transaction, utcnow
from expertbook.extensions import db

# "Last seen" is refreshed at most this often per session: one small write every few minutes of
# activity, never a write per request.
LAST_SEEN_EVERY = timedelta(minutes=5)
MAX_USER_AGENT = 255


# ---------------------------------------------------------------------------- where a login comes from


def ip_prefix(address: str | None) -> str | None:
    """The network part of a client address: IPv4 /24, IPv6 /48 (never the full address)."""
    try:
        ip = ipaddress.ip_address((address or "").strip())
    except ValueError:
        return None
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


_BROWSERS = (
    ("Edge", re.compile(r"Edg(e|A|iOS)?/")),
    ("Opera", re.compile(r"OPR/|Opera")),
    ("Samsung Internet", re.compile(r"SamsungBrowser/")),
    ("Firefox", re.compile(r"Firefox/|FxiOS/")),
    ("Chrome", re.compile(r"Chrome/|CriOS/|Chromium/")),
    ("Safari", re.compile(r"Safari/")),
    ("curl", re.compile(r"^curl/")),
    ("Python", re.compile(r"python-requests|python-urllib|httpx|aiohttp", re.I)),
    ("Android app", re.compile(r"okhttp", re.I)),
)
_SYSTEMS = (
    ("iPhone", re.compile(r"iPhone")),
    ("iPad", re.compile(r"iPad")),
    ("Android", re.compile(r"Android")),
    ("ChromeOS", re.compile(r"CrOS")),
    ("Windows", re.compile(r"Windows")),
    ("macOS", re.compile(r"Mac OS X|Macintosh")),
    ("Linux", re.compile(r"Linux|X11")),
)


def device_label(user_agent: str | None) -> str:
    """A short human description of a user agent: "Firefox on Linux", "Chrome on Android", "Unknown device"."""
    agent = user_agent or ""
    browser = next((name for name, pattern in _BROWSERS if pattern.search(agent)), None)
    system = next((name for name, pattern in _SYSTEMS if pattern.search(agent)), None)
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or "Unknown device"


def _clean_agent(user_agent: str | None) -> str | None:
    agent = "".join(ch for ch in (user_agent or "") if ch.isprintable()).strip()
    return agent[:MAX_USER_AGENT] or None


# ---------------------------------------------------------------------------- opening and checking


def _open(user_id: int, kind: str, expires_at: datetime, secret: str, user_agent: str | None, ip: str | None, now: datetime) -> None:
    with transaction():
        db.session.add(
            LoginSession(
                token_hash=digest(secret),
                user_id=user_id,
                kind=kind,
                created_at=now,
                expires_at=expires_at,
                last_seen_at=now,
                user_agent=_clean_agent(user_agent),
                ip_prefix=ip_prefix(ip),
            )
        )


def start_session(user_id: int, *, user_agent: str | None = None, ip: str | None = None) -> str:
    """Open a browser login session for ``user_id`` and return its secret token (for the cookie)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    # As long as the session cookie (SESSION_DAYS), so one setting decides how long a login lasts.
    _open(user_id, WEB, now + current_app.permanent_session_lifetime, token, user_agent, ip, now)
    return token


def start_api_session(user_id: int, expires_at: datetime, *, user_agent: str | None = None, ip: str | None = None) -> str:
    """Open the session an API token stands for, until ``expires_at`` (the token's own expiry); returns its id."""
    session_id = secrets.token_urlsafe(24)
    _open(user_id, API, expires_at, session_id, user_agent, ip, utcnow())
    return session_id


def _touch(token_hash: str, now: datetime) -> None:
    """Record activity (see LAST_SEEN_EVERY); a lost race with a logout simply updates nothing."""
    with transaction() as session:
        session.execute(
            update(LoginSession)
            .where(LoginSession.token_hash == token_hash)
            .values(last_seen_at=now)
            .execution_options(synchronize_session=False)
        )


def user_for_session(token: str | None) -> User | None:
    """The user of a live browser session, or None if it ended or expired."""
    if not token:
        return None
    token_hash = digest(token)
    login = db.session.scalar(select(LoginSession).where(LoginSession.token_hash == token_hash, LoginSession.kind == WEB))
    now = utcnow()
    if login is None or login.expires_at <= now:
        return None
    user = login.user
    if login.last_seen_at is None or now - login.last_seen_at >= LAST_SEEN_EVERY:
        _touch(token_hash, now)
    user.session_token = token
    return user


_t = LoginSession.__table__
# The check of an API token: one indexed lookup by primary key (it replaced the lookup of the
# account, which a deleted account's sessions follow through ON DELETE CASCADE).
_API_SESSION = select(_t.c.last_seen_at).where(
    _t.c.token_hash == bindparam("token_hash"),
    _t.c.user_id == bindparam("user_id"),
    _t.c.kind == API,
    _t.c.expires_at > bindparam("now", type_=_t.c.expires_at.type),
)


def api_session_alive(token_hash: str, user_id: int) -> bool:
    """Whether the API session ``token_hash`` of ``user_id`` is still open (not logged out, not revoked)."""
    now = utcnow()
    found = db.session.connection().execute(_API_SESSION, {"token_hash": token_hash, "user_id": user_id, "now": now}).first()
    if found is None:
        return False
    last_seen = found.last_seen_at
    if last_seen is None or now - last_seen >= LAST_SEEN_EVERY:
        _touch(token_hash, now)
    return True


def api_session_clause(token_hash_param: str = "session_hash", user_id_param: str = "user_id", now_param: str = "now"):
    """The SQL condition "this API session is open", for a write that checks it inside its own statement.

    The clinic booking, the API's hottest write, puts it in its UPDATE's WHERE clause instead of
    asking first: a revoked token then costs that statement nothing extra and saves a round trip.
    """
    return (
        select(_t.c.token_hash)
        .where(
            _t.c.token_hash == bindparam(token_hash_param, type_=_t.c.token_hash.type),
            _t.c.user_id == bindparam(user_id_param),
            _t.c.kind == API,
            _t.c.expires_at > bindparam(now_param, type_=_t.c.expires_at.type),
        )
        .exists()
    )


# ---------------------------------------------------------------------------- listing and ending


def sessions_of(user_id: int) -> list[LoginSession]:
    """The user's open sessions (browsers and API tokens), most recently active first."""
    rows = db.session.scalars(
        select(LoginSession).where(LoginSession.user_id == user_id, LoginSession.expires_at > utcnow())
    ).all()
    return sorted(rows, key=lambda row: row.last_seen_at or row.created_at, reverse=True)


def end_session(token: str | None) -> None:
    """End the browser session of this cookie token; a copy of the cookie is worthless afterwards."""
    if token:
        end_by_hash(digest(token))


def end_by_hash(token_hash: str, user_id: int | None = None) -> bool:
    """End one session by its stored hash (only the user's own when ``user_id`` is given); True if one ended."""
    with transaction() as session:
        query = delete(LoginSession).where(LoginSession.token_hash == token_hash)
        if user_id is not None:
            query = query.where(LoginSession.user_id == user_id)
        return bool(session.execute(query).rowcount)


def end_all(user_id: int, keep_token_hash: str | None = None) -> int:
    """End every session and API token of the user but ``keep_token_hash``; joins the caller's transaction."""
    with transaction() as session:
        query = delete(LoginSession).where(LoginSession.user_id == user_id)
        if keep_token_hash is not None:
            query = query.where(LoginSession.token_hash != keep_token_hash)
        return session.execute(query).rowcount or 0


def purge_expired(now: datetime | None = None) -> int:
    """Delete expired sessions (run by the worker's tick); returns how many went."""
    with transaction() as session:
        return session.execute(delete(LoginSession).where(LoginSession.expires_at <= (now or utcnow()))).rowcount or 0
