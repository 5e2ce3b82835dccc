"""Video rules: Zoom connections (encrypted, refreshed under a lock) and the meeting provider interface.

The booking code calls these four functions and nothing else:

- :func:`create_meeting` → :class:`MeetingResult` (Zoom when the expert has an active connection, else Jitsi);
- :func:`update_meeting` when the booking's time changes;
- :func:`delete_meeting` when it is cancelled (a meeting already gone counts as done);
- :func:`fresh_start_url` when the host clicks "Start meeting" (never stored, never emailed);
- :func:`find_meetings` / :func:`zoom_meeting` after a create whose answer never came: Zoom may have
  made the meeting, which carries our booking's marker in its agenda.

They raise :class:`~expertbook.video.errors.TransientMeetingError` (retry later; see :func:`retry_delay`),
:class:`~expertbook.video.errors.ReauthRequired` (the expert must re-authorize; do not retry) and, rarely,
:class:`~expertbook.video.errors.MeetingProviderError` / :class:`~expertbook.video.errors.MeetingNotFound`.

None of them may be called inside an open service transaction: they talk to Zoom over the network,
and a token refresh takes its own short transaction (the per-credential lock).
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import random
import secrets as secrets_module
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from authlib.integrations.base_client import OAuthError
from flask import current_app
from requests import RequestException
from sqlalchemy import delete, select, update

from expertbook.database import after_commit, transaction, utcnow
from expertbook.extensions import db
from expertbook.web import external_url
from expertbook import crypto
from expertbook.video import signals, zoom
from expertbook.video.errors import (
    MeetingNotFound,
    MeetingProviderError,
    ReauthRequired,
    TransientMeetingError,
)
from expertbook.video.models import CONNECTED, DEAUTHORIZED, RECONNECT_NEEDED, ZoomConnection
from expertbook.video.oauth import token_session, zoom_configured

log = logging.getLogger(__name__)

ZOOM = "zoom"
JITSI = "jitsi"
MEET = "meet"  # Google Meet: the conference of the booking's Google Calendar event (expertbook.calendars.google)
PROVIDERS = (ZOOM, JITSI, MEET)

# Refresh a little before Zoom's expiry (1 hour), so a token never dies between our check and Zoom's.
REFRESH_MARGIN = timedelta(minutes=5)
WEBHOOK_TOLERANCE = timedelta(minutes=5)


# ---------------------------------------------------------------------------- results


@dataclass(frozen=True)
class MeetingResult:
    """What the booking stores: the provider, Zoom's 64-bit meeting id (None for Jitsi and Meet), join URL and
    password; for Meet, ``external_ref`` is the Google calendar that holds the booking's event."""

    provider: str
    meeting_id: int | None
    join_url: str
    password: str | None
    external_ref: str | None = None


@dataclass(frozen=True)
class ZoomAccount:
    """An expert's Zoom connection as the settings page shows it (no tokens)."""

    status: str
    email: str | None
    zoom_user_id: str | None
    account_id: str | None
    connected_at: datetime
    refreshed_at: datetime | None

    @property
    def active(self) -> bool:
        return self.status == CONNECTED


# ---------------------------------------------------------------------------- connections


def _send_after_commit(signal, user_id: int) -> None:
    app = current_app._get_current_object()

    def send() -> None:
        signal.send(app, user_id=user_id)

    after_commit(send)


def _outside_transaction() -> None:
    # A refresh must commit the rotated pair at once, and a refusal must commit "reconnect needed"
    # even though the caller then fails; inside someone else's transaction neither would hold.
    if db.session.info.get("uow_depth"):
        raise RuntimeError("video provider calls must not run inside a service transaction; use after_commit or a job")


def reauthorize_url() -> str:
    """The absolute link for a "please re-authorize Zoom" email (login first, then straight to Zoom)."""
    return external_url("video.zoom_connect")


def _secrets(connection: ZoomConnection) -> dict[str, Any]:
    return crypto.decrypt(connection.secrets) if connection.secrets else {}


def _token_fields(token: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of an OAuth token answer we keep; ``expires_at`` as a UNIX time."""
    expires_at = token.get("expires_at")
    if expires_at is None:
        expires_at = time.time() + int(token.get("expires_in") or 3600)
    return {"access_token": token["access_token"], "refresh_token": token["refresh_token"], "expires_at": float(expires_at)}


def _load(user_id: int, *, lock: bool = False) -> ZoomConnection | None:
    query = select(ZoomConnection).where(ZoomConnection.user_id == user_id)
    if lock:
        query = query.with_for_update(of=ZoomConnection).execution_options(populate_existing=True)
    return db.session.scalar(query)


def zoom_account(user_id: int) -> ZoomAccount | None:
    """The user's Zoom connection for display, or None if they never connected (or disconnected)."""
    connection = _load(user_id)
    if connection is None:
        return None
    data = _secrets(connection)
    return ZoomAccount(
        status=connection.status,
        email=data.get("email"),
        zoom_user_id=data.get("zoom_user_id"),
        account_id=data.get("account_id"),
        connected_at=connection.connected_at,
        refreshed_at=connection.refreshed_at,
    )


def fetch_profile(access_token: str) -> dict[str, Any]:
    """Zoom's ``GET /users/me`` for a token (used right after authorization and by the connection test)."""
    response = zoom.send("GET", f"{current_app.config['ZOOM_API_URL']}/users/me", access_token, current_app.config["ZOOM_TIMEOUT"])
    if zoom.is_invalid_token(response):
        raise MeetingProviderError("Zoom refused the new access token", 401, zoom.zoom_code(response))
    return zoom.check(response).json()


def save_connection(user_id: int, token: Mapping[str, Any], profile: Mapping[str, Any]) -> ZoomAccount:
    """Store (or replace) the user's Zoom grant after a successful authorization."""
    data = _token_fields(token) | {
        "zoom_user_id": str(profile.get("id") or ""),
        "email": profile.get("email"),
        "account_id": profile.get("account_id"),
        "active": True,
    }
    with transaction():
        connection = _load(user_id, lock=True)
        now = utcnow()
        if connection is None:
            connection = ZoomConnection(user_id=user_id, connected_at=now)
            db.session.add(connection)
        connection.status = CONNECTED
        connection.secrets = crypto.encrypt(data)
        connection.zoom_user_index = crypto.blind_indexes(data["zoom_user_id"])[0] if data["zoom_user_id"] else None
        connection.connected_at = now
        connection.refreshed_at = now
        _send_after_commit(signals.zoom_connection_changed, user_id)
    log.info("user %s connected Zoom", user_id)
    return zoom_account(user_id)


def _grant_token(connection: ZoomConnection) -> str | None:
    """The token that revokes the grant at Zoom, or None if there is nothing to revoke."""
    if connection.status == DEAUTHORIZED:
        return None
    data = _secrets(connection)
    return data.get("refresh_token") or data.get("access_token")


def _revoke(user_id: int, token: str | None) -> bool:
    """Revoke a grant at Zoom; whether Zoom confirmed it (or there was nothing to revoke)."""
    if not token:
        return True
    try:
        response = token_session().revoke_token(current_app.config["ZOOM_REVOKE_URL"], token=token)
        # Zoom answers 400 for a token it no longer knows: nothing is left to revoke.
        return response.status_code < 500 and response.status_code != 429
    except (RequestException, TransientMeetingError) as error:
        log.warning("could not revoke the Zoom grant of user %s: %s", user_id, error)
        return False


def forget_account(user_id: int) -> None:
    """Account deletion hook: the grant's row goes with the account (ON DELETE CASCADE); it is revoked
    at Zoom once the deletion has committed (an HTTP call never runs inside a transaction)."""
    connection = _load(user_id)
    token = _grant_token(connection) if connection is not None else None
    if token:
        after_commit(lambda: _revoke(user_id, token))


def disconnect(user_id: int) -> bool:
    """Revoke the user's grant at Zoom and delete the tokens.

    Returns whether Zoom confirmed the revocation. The tokens are deleted either way: the expert
    asked us to let go, and a token we no longer hold can no longer be used by us.
    """
    connection = _load(user_id)
    if connection is None:
        return True
    revoked = _revoke(user_id, _grant_token(connection))
    with transaction():
        db.session.execute(delete(ZoomConnection).where(ZoomConnection.user_id == user_id))
        # Meetings waiting on the old grant would otherwise wait for good: they go to Jitsi now.
        _send_after_commit(signals.zoom_connection_changed, user_id)
    log.info("user %s disconnected Zoom (revoked at Zoom: %s)", user_id, revoked)
    return revoked


def _mark_reconnect_needed(user_id: int) -> None:
    """Mark a connected credential ``reconnect_needed``; only the call that changes it sends the signal."""
    with transaction():
        result = db.session.execute(
            update(ZoomConnection)
            .where(ZoomConnection.user_id == user_id, ZoomConnection.status == CONNECTED)
            .values(status=RECONNECT_NEEDED, updated_at=utcnow())
        )
        if result.rowcount:
            _send_after_commit(signals.zoom_reauth_required, user_id)


def access_token(user_id: int, rejected: str | None = None) -> str:
    """A valid Zoom access token for ``user_id``, refreshed first if it expires within :data:`REFRESH_MARGIN`.

    ``rejected`` is a token Zoom just refused (401 code 124): it is refreshed even if not yet due.
    Zoom rotates refresh tokens (a used one is dead), so the refresh runs under a per-credential lock:
    ``SELECT ... FOR UPDATE`` on PostgreSQL, the write transaction on SQLite. After taking the lock the
    expiry is checked again, so of two workers that raced here only the first calls Zoom; the second
    uses the pair the first saved. The new pair is committed before it is returned.

    Raises :class:`ReauthRequired` (and marks the connection ``reconnect_needed``) if Zoom refuses the
    refresh, and :class:`TransientMeetingError` if Zoom cannot be reached.
    """
    _outside_transaction()
    connection = _load(user_id)
    if connection is None or connection.status == DEAUTHORIZED or not connection.secrets:
        raise ReauthRequired(user_id, "The expert has no Zoom connection.")
    if connection.status == RECONNECT_NEEDED:
        raise ReauthRequired(user_id)
    data = _secrets(connection)
    if data["access_token"] != rejected and data["expires_at"] - time.time() > REFRESH_MARGIN.total_seconds():
        return data["access_token"]

    refused = False
    with transaction():
        connection = _load(user_id, lock=True)
        if connection is None or connection.status != CONNECTED or not connection.secrets:
            refused = True
        else:
            data = _secrets(connection)
            due = data["access_token"] == rejected or data["expires_at"] - time.time() <= REFRESH_MARGIN.total_seconds()
            if due:
                try:
                    token = token_session().refresh_token(
                        current_app.config["ZOOM_TOKEN_URL"], refresh_token=data["refresh_token"]
                    )
                except OAuthError as error:
                    log.warning("Zoom refused to refresh the token of user %s: %s", user_id, error.error)
                    connection.status = RECONNECT_NEEDED
                    data["active"] = False
                    connection.secrets = crypto.encrypt(data)
                    refused = True
                    _send_after_commit(signals.zoom_reauth_required, user_id)
                except RequestException as error:
                    raise TransientMeetingError(f"Zoom's token endpoint could not be reached: {error.__class__.__name__}") from error
                else:
                    data.update(_token_fields(token))
                    connection.secrets = crypto.encrypt(data)
                    connection.refreshed_at = utcnow()
    if refused:
        raise ReauthRequired(user_id)
    return data["access_token"]


def _api(user_id: int, method: str, path: str, json: Any = None):
    """Call Zoom's API as ``user_id``; a refused access token (401 code 124) gets one refresh and one retry."""
    config = current_app.config
    url = f"{config['ZOOM_API_URL']}{path}"
    token = access_token(user_id)
    response = zoom.send(method, url, token, config["ZOOM_TIMEOUT"], json)
    if zoom.is_invalid_token(response):
        token = access_token(user_id, rejected=token)
        response = zoom.send(method, url, token, config["ZOOM_TIMEOUT"], json)
        if zoom.is_invalid_token(response):
            # A token fresh from the token endpoint refused too: the grant is gone (app removed, scopes changed).
            _mark_reconnect_needed(user_id)
            raise ReauthRequired(user_id)
    return zoom.check(response)


def check_connection(user_id: int) -> ZoomAccount:
    """Check the connection works by asking Zoom who the user is; refreshes the token if due."""
    profile = _api(user_id, "GET", "/users/me").json()
    account = zoom_account(user_id)
    if account is not None and profile.get("email") and profile.get("email") != account.email:
        with transaction():
            connection = _load(user_id, lock=True)
            if connection is not None and connection.secrets:
                data = _secrets(connection) | {"email": profile["email"]}
                connection.secrets = crypto.encrypt(data)
        account = zoom_account(user_id)
    return account


def handle_deauthorization(zoom_user_id: str) -> int:
    """Zoom told us a user removed our app: forget their tokens and mark the connection gone.

    Returns how many connections matched.
    """
    if not zoom_user_id:
        return 0
    with transaction():
        users = db.session.scalars(
            update(ZoomConnection)
            .where(ZoomConnection.zoom_user_index.in_(crypto.blind_indexes(zoom_user_id)))
            .values(status=DEAUTHORIZED, secrets=None, zoom_user_index=None, updated_at=utcnow())
            .returning(ZoomConnection.user_id)
        ).all()
        for user_id in users:
            _send_after_commit(signals.zoom_connection_changed, user_id)
    if users:
        log.info("Zoom deauthorized %s connection(s)", len(users))
    return len(users)


def rotate_keys(batch: int = 200) -> int:
    """Re-encrypt every stored Zoom secret with the first key of ``TOKEN_ENCRYPTION_KEYS``; returns the count."""
    done = 0
    last_id = 0
    while True:
        with transaction():
            rows = db.session.scalars(
                select(ZoomConnection)
                .where(ZoomConnection.id > last_id)
                .order_by(ZoomConnection.id)
                .limit(batch)
                .with_for_update(of=ZoomConnection)
            ).all()
            for connection in rows:
                if connection.secrets:
                    connection.secrets = crypto.rotate(connection.secrets)
                    zoom_user_id = _secrets(connection).get("zoom_user_id")
                    connection.zoom_user_index = crypto.blind_indexes(zoom_user_id)[0] if zoom_user_id else None
                    done += 1
        if not rows:
            return done
        last_id = rows[-1].id


# ---------------------------------------------------------------------------- webhook


def verify_webhook_signature(
    secret: str, timestamp: str | None, body: bytes, signature: str | None, now: datetime | None = None
) -> bool:
    """Check Zoom's ``x-zm-signature``: ``v0=`` + HMAC-SHA256 of ``v0:{timestamp}:{body}``, and a fresh timestamp."""
    if not secret or not timestamp or not signature or not timestamp.isdigit():
        return False
    sent_at = datetime.fromtimestamp(int(timestamp), UTC)
    if abs((now or utcnow()) - sent_at) > WEBHOOK_TOLERANCE:
        return False
    message = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), signature.encode())


def url_validation_answer(secret: str, plain_token: str) -> dict[str, str]:
    """Zoom's ``endpoint.url_validation`` challenge answer."""
    encrypted = hmac.new(secret.encode(), plain_token.encode(), hashlib.sha256).hexdigest()
    return {"plainToken": plain_token, "encryptedToken": encrypted}


# ---------------------------------------------------------------------------- meetings


def provider_for(expert_user_id: int, requested: str | None = None) -> str:
    """The provider a new meeting uses: Jitsi when asked for, or when the expert has no Zoom connection;
    Google Meet when asked for and the expert connected Google Calendar (else Jitsi).

    A connection waiting for re-authorization still means Zoom (or Meet): the meeting waits for the expert
    rather than silently moving to another provider.
    """
    if requested == MEET:
        from expertbook.calendars import google
        from expertbook.calendars.oauth import google_configured

        return MEET if google_configured() and google.connected(expert_user_id) else JITSI
    if requested == JITSI or not zoom_configured():
        return JITSI
    connection = _load(expert_user_id)
    if connection is None or connection.status == DEAUTHORIZED:
        return JITSI
    return ZOOM


def _jitsi_meeting() -> MeetingResult:
    room = "ExpertBook-" + secrets_module.token_urlsafe(18)  # 144 random bits: unguessable, no password needed
    return MeetingResult(JITSI, None, f"{current_app.config['JITSI_BASE_URL']}/{room}", None)


def _zoom_time(start_utc: datetime) -> str:
    if start_utc.tzinfo is None:
        raise ValueError("start_utc must be timezone-aware")
    return start_utc.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def create_meeting(
    expert_user_id: int,
    topic: str,
    start_utc: datetime,
    duration_min: int,
    timezone: str,
    recording: bool,
    provider: str | None = None,
    marker: str | None = None,
    booking_uid: str | None = None,
) -> MeetingResult:
    """Create the meeting of one booking.

    ``provider`` is the service's choice (``"zoom"``, ``"jitsi"`` or None for "Zoom if connected");
    without an active Zoom connection the meeting is a Jitsi room. Zoom meetings are scheduled
    (type 2) at ``start_utc`` shown in ``timezone``, with the waiting room on, join-before-host off
    and cloud recording when ``recording`` is true. ``marker`` goes at the start of the agenda, so
    :func:`find_meetings` finds the meeting should this call's answer be lost. A Meet meeting is the
    conference of the booking's Google Calendar event, whose id is derived from ``booking_uid`` (so a
    create repeated after a lost answer finds the same event, and its conference, again).
    """
    _outside_transaction()
    chosen = provider_for(expert_user_id, provider)
    if chosen == JITSI:
        return _jitsi_meeting()
    if chosen == MEET:
        return _meet_meeting(expert_user_id, topic, start_utc, duration_min, timezone, booking_uid)
    body = {
        "topic": topic[:200],
        "type": 2,
        "start_time": _zoom_time(start_utc),
        "duration": int(duration_min),
        "timezone": timezone,
        "settings": {
            "waiting_room": True,
            "join_before_host": False,
            "auto_recording": "cloud" if recording else "none",
        },
    }
    if marker:
        body["agenda"] = f"{marker} (booked with ExpertBook)"
    meeting = _api(expert_user_id, "POST", "/users/me/meetings", body).json()
    return MeetingResult(ZOOM, int(meeting["id"]), meeting["join_url"], meeting.get("password"))


# A listing's pages are read up to this many (300 meetings each): the search stays bounded however many
# meetings an account has; a meeting beyond it is not adopted but still deleted with the booking (see
# expertbook.video.meetings).
LIST_PAGES = 10
LIST_PAGE_SIZE = 300  # Zoom's largest


def find_meetings(expert_user_id: int, marker: str) -> list[int]:
    """The ids of the expert's scheduled Zoom meetings whose agenda carries ``marker``, oldest first.

    Reads Zoom's list of the user's scheduled meetings (past but unexpired, live and upcoming), page
    by page, at most :data:`LIST_PAGES` pages. Raises like every Zoom call.
    """
    found: list[tuple[str, int]] = []
    token = ""
    for _ in range(LIST_PAGES):
        query = {"type": "scheduled", "page_size": LIST_PAGE_SIZE} | ({"next_page_token": token} if token else {})
        page = _api(expert_user_id, "GET", f"/users/me/meetings?{urlencode(query)}").json()
        for meeting in page.get("meetings") or ():
            if marker in str(meeting.get("agenda") or ""):
                found.append((str(meeting.get("created_at") or ""), int(meeting["id"])))
        token = page.get("next_page_token") or ""
        if not token:
            break
    else:
        log.warning("user %s has more than %s pages of Zoom meetings; searched those for %s", expert_user_id, LIST_PAGES, marker)
    return [meeting_id for _, meeting_id in sorted(found, key=lambda item: item[0])]  # stable: Zoom's order within a second


def delete_marked(expert_user_id: int, marker: str, keep: int | None = None) -> int:
    """Delete every Zoom meeting of the expert whose agenda carries ``marker``, except ``keep``; returns how many.

    The sweep for meetings that creates whose answer was lost made. Without a Zoom connection there
    is nothing to delete them with (logged, like :func:`delete_meeting`).
    """
    connection = _load(expert_user_id)
    if connection is None or connection.status == DEAUTHORIZED:
        log.warning("meetings marked %s of user %s not looked for at Zoom: Zoom is no longer connected", marker, expert_user_id)
        return 0
    found = [meeting_id for meeting_id in find_meetings(expert_user_id, marker) if meeting_id != keep]
    for meeting_id in found:
        delete_meeting(expert_user_id, ZOOM, meeting_id)
    if found:
        log.info("deleted %s Zoom meeting(s) marked %s", len(found), marker)
    return len(found)


def zoom_meeting(expert_user_id: int, meeting_id: int) -> MeetingResult:
    """A Zoom meeting as :func:`create_meeting` would have returned it (to adopt one it made unseen)."""
    meeting = _api(expert_user_id, "GET", f"/meetings/{int(meeting_id)}").json()
    return MeetingResult(ZOOM, int(meeting["id"]), meeting["join_url"], meeting.get("password"))


def update_meeting(
    expert_user_id: int,
    provider: str,
    meeting_id: int | None,
    topic: str,
    start_utc: datetime,
    duration_min: int,
    timezone: str,
    external_ref: str | None = None,
    booking_uid: str | None = None,
) -> None:
    """Move a meeting to the booking's new time. Jitsi rooms have no time: nothing to do.

    Raises :class:`MeetingNotFound` if Zoom (or Google) no longer has it (the caller may create a new one).
    """
    if provider == MEET and external_ref and booking_uid:
        with _meet_errors(expert_user_id):
            from expertbook.calendars import google

            google.move_event(expert_user_id, external_ref, google.event_id(booking_uid), _meet_body(topic, start_utc, duration_min, timezone))
        return
    if provider != ZOOM or meeting_id is None:
        return
    body = {"topic": topic[:200], "start_time": _zoom_time(start_utc), "duration": int(duration_min), "timezone": timezone}
    _api(expert_user_id, "PATCH", f"/meetings/{int(meeting_id)}", body)


def delete_meeting(expert_user_id: int, provider: str, meeting_id: int | None, external_ref: str | None = None,
                   booking_uid: str | None = None) -> None:
    """Delete a cancelled booking's meeting. A meeting that is already gone counts as deleted.

    If the expert has since disconnected Zoom there is no grant to delete it with; that is logged
    and counts as done (Zoom keeps the meeting in the expert's own account). The same for Google: a Meet
    meeting is its booking's event, deleted with it.
    """
    if provider == MEET and external_ref and booking_uid:
        from expertbook.calendars import google

        if not google.connected(expert_user_id):
            log.warning("Meet event of user %s not deleted at Google: Google is no longer connected", expert_user_id)
            return
        with _meet_errors(expert_user_id):
            try:
                google.delete_event(expert_user_id, external_ref, google.event_id(booking_uid))
            except MeetingNotFound:
                log.info("the Meet event was already deleted")
        return
    if provider != ZOOM or meeting_id is None:
        return
    connection = _load(expert_user_id)
    if connection is None or connection.status == DEAUTHORIZED:
        log.warning("meeting %s of user %s not deleted at Zoom: Zoom is no longer connected", meeting_id, expert_user_id)
        return
    try:
        _api(expert_user_id, "DELETE", f"/meetings/{int(meeting_id)}")
    except MeetingNotFound:
        log.info("Zoom meeting %s was already deleted", meeting_id)


def fresh_start_url(expert_user_id: int, meeting_id: int) -> str:
    """The host's start URL, fetched from Zoom now (they expire after two hours): never store or email it."""
    return _api(expert_user_id, "GET", f"/meetings/{int(meeting_id)}").json()["start_url"]


# ---------------------------------------------------------------------------- Google Meet


@contextmanager
def _meet_errors(expert_user_id: int) -> Iterator[None]:
    """Google's failures, as the meeting job classifies them (the calendars area has its own classes)."""
    from expertbook.calendars import errors, google

    try:
        yield
    except errors.CalendarUnavailable as error:
        raise TransientMeetingError(f"Google: {error}", error.retry_after) from error
    except errors.ReauthNeeded as error:
        raise ReauthRequired(expert_user_id, "The expert's Google authorization has expired or was revoked.") from error
    except google.Gone as error:
        raise MeetingNotFound(f"Google: {error}") from error
    except errors.CalendarError as error:
        raise MeetingProviderError(f"Google: {error}") from error


def _meet_body(topic: str, start_utc: datetime, duration_min: int, timezone: str) -> dict[str, Any]:
    end = start_utc + timedelta(minutes=int(duration_min))
    return {
        "summary": topic[:200],
        "start": {"dateTime": start_utc.astimezone(UTC).isoformat(), "timeZone": timezone},
        "end": {"dateTime": end.astimezone(UTC).isoformat(), "timeZone": timezone},
    }


def _meet_meeting(expert_user_id: int, topic: str, start_utc: datetime, duration_min: int, timezone: str,
                  booking_uid: str | None) -> MeetingResult:
    """The booking's Google Calendar event with a Meet conference (in the calendar bookings are written into,
    else the primary one); its conference link is the join link."""
    from expertbook.calendars import google

    if not booking_uid:
        raise ValueError("a Meet meeting needs the booking's UID")
    calendar_id = google.write_calendar_id(expert_user_id)
    with _meet_errors(expert_user_id):
        link = google.meet_event(expert_user_id, calendar_id, google.event_id(booking_uid), _meet_body(topic, start_utc, duration_min, timezone))
    return MeetingResult(MEET, None, link, None, external_ref=calendar_id)


# ---------------------------------------------------------------------------- retries


def retry_delay(
    attempt: int,
    retry_after: float | None = None,
    *,
    base: float = 30.0,
    cap: float = 3600.0,
    max_attempts: int = 10,
    jitter: float | None = None,
) -> float | None:
    """Seconds to wait before retry number ``attempt`` (1 = the first retry), or None to give up.

    Exponential backoff from ``base`` doubling up to ``cap``, with "full jitter" over the upper half
    (``jitter`` in [0, 1), random if not given) so many failed jobs do not return at the same instant.
    A provider's ``Retry-After`` is a floor: we never come back sooner than it asked.
    """
    if attempt < 1:
        raise ValueError("attempt starts at 1")
    if attempt > max_attempts:
        return None
    ceiling = min(cap, base * 2 ** (attempt - 1))
    share = random.random() if jitter is None else jitter
    delay = ceiling / 2 + ceiling / 2 * share
    if retry_after is not None:
        delay = max(delay, float(retry_after))
    return delay
