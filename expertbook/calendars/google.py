"""Google Calendar over its REST API (v3) with the expert's OAuth grant: tokens refreshed under a lock, the
calendar list, free/busy, and one booking's event (with a Google Meet conference when asked).

The same client pattern as Zoom (:mod:`expertbook.video.service`): the access token is refreshed a little
before it expires, under a per-connection lock (``SELECT ... FOR UPDATE`` on PostgreSQL, the write
transaction on SQLite), so two workers never both spend the refresh; a refused refresh marks the
connection ``reconnect_needed`` (and queues the one re-authorization email) in its own committed
transaction. None of these functions may run inside an open service transaction.

A booking's event id is derived from its UID (:func:`event_id`): writing it again finds it (409) and
updates it, so an event is never duplicated, and the calendar write-out and the Meet meeting of one
booking meet in the same event.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import requests
from authlib.integrations.base_client import OAuthError
from flask import current_app
from sqlalchemy import select

from expertbook import crypto
from expertbook.calendars import health
from expertbook.calendars.caldav_client import FoundCalendar
from expertbook.calendars.errors import CalendarRejected, CalendarUnavailable, ReauthNeeded
from expertbook.calendars.models import GOOGLE, RECONNECT_NEEDED, CalendarConnection
from expertbook.calendars.oauth import retry_after_seconds, token_session
from expertbook.database import transaction
from expertbook.extensions import db

log = logging.getLogger(__name__)

REFRESH_MARGIN = timedelta(minutes=5)
FREEBUSY_SPAN = timedelta(days=60)  # one free/busy query covers at most this much; longer ranges are split
RATE_LIMITS = {"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded"}


class Gone(CalendarRejected):
    """The event does not exist (404) or was deleted (410)."""


class Duplicate(CalendarRejected):
    """An event with this id exists already (409)."""


def event_id(booking_uid: str) -> str:
    """The Google event id of a booking: its UID, lower-case hex, which Google's base32hex ids allow."""
    cleaned = "".join(ch for ch in booking_uid.lower() if ch in "0123456789abcdefghijklmnopqrstuv")
    return ("eb" + cleaned)[:1024]


def _outside_transaction() -> None:
    if db.session.info.get("uow_depth"):
        raise RuntimeError("Google calls must not run inside a service transaction; use after_commit or a job")


def _load(user_id: int, *, lock: bool = False) -> CalendarConnection | None:
    query = select(CalendarConnection).where(CalendarConnection.user_id == user_id, CalendarConnection.kind == GOOGLE)
    if lock:
        query = query.with_for_update(of=CalendarConnection).execution_options(populate_existing=True)
    return db.session.scalar(query)


def token_fields(token: Mapping[str, Any], previous: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The parts of a token answer we keep. Google sends a refresh token only with the first grant (and on
    consent); a refresh answer without one keeps the one we have."""
    expires_at = token.get("expires_at")
    if expires_at is None:
        expires_at = time.time() + int(token.get("expires_in") or 3600)
    refresh = token.get("refresh_token") or (previous or {}).get("refresh_token")
    return {"access_token": token["access_token"], "refresh_token": refresh, "expires_at": float(expires_at)}


def connected(user_id: int) -> bool:
    """Whether the user has a Google connection (working or waiting for re-authorization)."""
    return _load(user_id) is not None


def reauth_incident(user_id: int) -> str | None:
    """Names the refused grant while the connection waits for re-authorization (None otherwise): the same
    string for everything that waits on it, so its consequences can be counted once."""
    connection = _load(user_id)
    if connection is None or connection.status != RECONNECT_NEEDED:
        return None
    return f"google:{connection.id}:{connection.connected_at.strftime('%Y%m%dT%H%M%S.%f')}"


def access_token(user_id: int, rejected: str | None = None) -> str:
    """A valid access token for ``user_id``, refreshed first if it expires within :data:`REFRESH_MARGIN` (or
    is ``rejected``, a token Google just refused). Raises :class:`ReauthNeeded` (and marks the connection)
    when Google refuses the refresh, :class:`CalendarUnavailable` when Google cannot be reached."""
    _outside_transaction()
    connection = _load(user_id)
    if connection is None or not connection.secrets:
        raise ReauthNeeded(user_id, "The expert has no Google connection.")
    if connection.status == RECONNECT_NEEDED:
        raise ReauthNeeded(user_id)
    data = crypto.decrypt(connection.secrets)
    if data["access_token"] != rejected and data["expires_at"] - time.time() > REFRESH_MARGIN.total_seconds():
        return data["access_token"]

    refused = False
    with transaction():
        connection = _load(user_id, lock=True)
        if connection is None or connection.status == RECONNECT_NEEDED:
            refused = True
        else:
            data = crypto.decrypt(connection.secrets)
            due = data["access_token"] == rejected or data["expires_at"] - time.time() <= REFRESH_MARGIN.total_seconds()
            if due:
                try:
                    token = token_session().refresh_token(current_app.config["GOOGLE_TOKEN_URL"], refresh_token=data["refresh_token"])
                except OAuthError as error:
                    log.warning("Google refused to refresh the token of user %s: %s", user_id, error.error)
                    health.mark_broken(connection, RECONNECT_NEEDED, f"Google refused to refresh our access: {error.error}")
                    refused = True
                except requests.RequestException as error:
                    raise CalendarUnavailable(f"Google's token endpoint could not be reached: {error.__class__.__name__}") from error
                else:
                    data.update(token_fields(token, data))
                    connection.secrets = crypto.encrypt(data)
    if refused:
        raise ReauthNeeded(user_id)
    return data["access_token"]


def _send(method: str, url: str, token: str, json: Any = None, params: Mapping[str, Any] | None = None) -> requests.Response:
    try:
        return requests.request(
            method, url, json=json, params=params,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=float(current_app.config["CALENDAR_TIMEOUT"]), allow_redirects=False,
        )
    except requests.Timeout as error:
        raise CalendarUnavailable(f"Google did not answer {method} in time") from error
    except requests.RequestException as error:
        raise CalendarUnavailable(f"Google could not be reached: {error.__class__.__name__}") from error


def _reason(response: requests.Response) -> tuple[str, str]:
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        return "", ""
    if not isinstance(error, dict):
        return str(error), ""
    reasons = [item.get("reason", "") for item in error.get("errors") or () if isinstance(item, dict)]
    return str(error.get("message", ""))[:300], (reasons[0] if reasons else "")


def check(response: requests.Response) -> requests.Response:
    """Return a successful answer, else raise what it means."""
    status = response.status_code
    if status < 400:
        return response
    message, reason = _reason(response)
    if status == 429 or status >= 500 or (status == 403 and reason in RATE_LIMITS):
        raise CalendarUnavailable(f"Google answered {status} {reason}".strip(), retry_after_seconds(response.headers.get("Retry-After")))
    if status in (404, 410):
        raise Gone(f"Google answered {status}: {message}")
    if status == 409:
        raise Duplicate(f"Google answered 409: {message}")
    log.warning("Google refused %s %s: %s %s %s", response.request.method, response.url.split("?")[0], status, reason, message)
    raise CalendarRejected(f"Google refused the request ({status} {reason}): {message}")


def api(user_id: int, method: str, path: str, json: Any = None, params: Mapping[str, Any] | None = None) -> requests.Response:
    """Call the Calendar API as ``user_id``; a refused access token (401) gets one refresh and one retry."""
    url = current_app.config["GOOGLE_CALENDAR_API_URL"] + path
    token = access_token(user_id)
    response = _send(method, url, token, json, params)
    if response.status_code == 401:
        token = access_token(user_id, rejected=token)
        response = _send(method, url, token, json, params)
        if response.status_code == 401:
            # A token fresh from the token endpoint refused too: the grant is gone.
            with transaction():
                connection = _load(user_id, lock=True)
                if connection is not None:
                    health.mark_broken(connection, RECONNECT_NEEDED, "Google refused a fresh access token")
            raise ReauthNeeded(user_id)
    return check(response)


def fetch_profile(token: str) -> dict[str, Any]:
    """Who the token's account is (``email``, ``sub``), right after authorization."""
    response = _send("GET", current_app.config["GOOGLE_USERINFO_URL"], token)
    if response.status_code == 401:
        raise CalendarRejected("Google refused the new access token")
    return check(response).json()


def calendars(user_id: int) -> list[FoundCalendar]:
    """The account's calendars we may read busy times of, by name (primary first)."""
    found: list[tuple[bool, str, FoundCalendar]] = []
    page_token = ""
    for _ in range(20):  # 250 calendars a page; nobody has 5,000
        params = {"maxResults": 250, "minAccessRole": "freeBusyReader"} | ({"pageToken": page_token} if page_token else {})
        page = api(user_id, "GET", "/users/me/calendarList", params=params).json()
        for item in page.get("items") or ():
            name = str(item.get("summaryOverride") or item.get("summary") or item.get("id"))[:255]
            found.append((not item.get("primary"), name.lower(), FoundCalendar(str(item["id"]), name)))
        page_token = page.get("nextPageToken") or ""
        if not page_token:
            break
    return [calendar for *_, calendar in sorted(found, key=lambda item: item[:2])]


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def busy_times(user_id: int, calendar_ids: list[str], start: datetime, end: datetime) -> dict[str, list[tuple[datetime, datetime]]]:
    """Each calendar's busy intervals in ``[start, end)``, from Google's free/busy (which applies the calendar's
    own rules: "free" events, all-day events, recurrences, declined invitations)."""
    result: dict[str, list[tuple[datetime, datetime]]] = {calendar_id: [] for calendar_id in calendar_ids}
    if not calendar_ids:
        return result
    piece = start
    while piece < end:
        piece_end = min(end, piece + FREEBUSY_SPAN)
        body = {"timeMin": _rfc3339(piece), "timeMax": _rfc3339(piece_end), "items": [{"id": calendar_id} for calendar_id in calendar_ids]}
        answer = api(user_id, "POST", "/freeBusy", json=body).json()
        for calendar_id, info in (answer.get("calendars") or {}).items():
            if calendar_id not in result:
                continue
            if info.get("errors"):
                reasons = ", ".join(str(error.get("reason")) for error in info["errors"] if isinstance(error, dict))
                if any(reason in ("backendError", "internalError") for reason in reasons.split(", ")):
                    raise CalendarUnavailable(f"Google could not read calendar busy times: {reasons}")
                raise CalendarRejected(f"Google refused to read a calendar's busy times: {reasons}")
            for busy in info.get("busy") or ():
                result[calendar_id].append((_parse(busy["start"]), _parse(busy["end"])))
        piece = piece_end
    return result


def _path(calendar_id: str, google_event_id: str | None = None) -> str:
    path = f"/calendars/{quote(calendar_id, safe='')}/events"
    return path + (f"/{quote(google_event_id, safe='')}" if google_event_id else "")


def upsert_event(user_id: int, calendar_id: str, google_event_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """Create the event with this id, or update it if it exists (also one deleted before: it is revived).

    The update is a PATCH without ``conferenceData``, so a Meet conference the event has is kept.
    """
    try:
        return api(user_id, "POST", _path(calendar_id), json=body | {"id": google_event_id}).json()
    except Duplicate:
        return api(user_id, "PATCH", _path(calendar_id, google_event_id), json=body | {"status": body.get("status", "confirmed")}).json()


def delete_event(user_id: int, calendar_id: str, google_event_id: str) -> None:
    """Delete the event; one already gone counts as deleted."""
    try:
        api(user_id, "DELETE", _path(calendar_id, google_event_id))
    except Gone:
        log.info("Google event %s was already deleted", google_event_id)


def _meet_link(event: Mapping[str, Any]) -> tuple[str | None, bool]:
    """The event's Meet link, and whether its conference is still being made (Google creates it asynchronously)."""
    conference = event.get("conferenceData") or {}
    for entry in conference.get("entryPoints") or ():
        if entry.get("entryPointType") == "video" and entry.get("uri"):
            return str(entry["uri"]), False
    status = ((conference.get("createRequest") or {}).get("status") or {}).get("statusCode")
    if event.get("hangoutLink"):
        return str(event["hangoutLink"]), False
    return None, status == "pending"


def meet_event(user_id: int, calendar_id: str, google_event_id: str, body: dict[str, Any]) -> str:
    """Make sure the booking's event exists with a Google Meet conference; returns its join link.

    The conference is asked for with ``conferenceData.createRequest`` (``conferenceDataVersion=1``), its
    ``requestId`` the event id, so asking again never makes a second one. An event the calendar write-out
    made first (409) gets the conference added by a PATCH. Google makes conferences asynchronously: one
    still ``pending`` is a :class:`CalendarUnavailable` (try again shortly).
    """
    params = {"conferenceDataVersion": 1}
    conference = {"createRequest": {"requestId": google_event_id, "conferenceSolutionKey": {"type": "hangoutsMeet"}}}
    try:
        event = api(user_id, "POST", _path(calendar_id), json=body | {"id": google_event_id, "conferenceData": conference}, params=params).json()
    except Duplicate:
        event = api(user_id, "GET", _path(calendar_id, google_event_id)).json()
        link, _pending = _meet_link(event)
        if (link is None and not _pending) or event.get("status") == "cancelled":
            event = api(user_id, "PATCH", _path(calendar_id, google_event_id),
                        json=body | {"status": "confirmed", "conferenceData": conference}, params=params).json()
    link, pending = _meet_link(event)
    if link is None:
        if pending:
            raise CalendarUnavailable("Google is still creating the Meet conference")
        raise CalendarRejected("Google created the event without a Meet conference")
    return link


def move_event(user_id: int, calendar_id: str, google_event_id: str, body: dict[str, Any]) -> None:
    """Change the event's time (and text); its conference, and so its Meet link, stays."""
    api(user_id, "PATCH", _path(calendar_id, google_event_id), json=body)


def write_calendar_id(user_id: int) -> str:
    """Where a Meet booking's event goes: the Google calendar bookings are written into, else the primary one."""
    from expertbook.calendars.models import RemoteCalendar

    chosen = db.session.scalar(
        select(RemoteCalendar.remote_id)
        .join(CalendarConnection, CalendarConnection.id == RemoteCalendar.connection_id)
        .where(CalendarConnection.user_id == user_id, CalendarConnection.kind == GOOGLE, RemoteCalendar.write_bookings.is_(True))
    )
    return chosen or "primary"


def revoke(token: str | None) -> bool:
    """Revoke a grant at Google; whether Google confirmed it (or there was nothing to revoke)."""
    if not token:
        return True
    try:
        response = token_session().revoke_token(current_app.config["GOOGLE_REVOKE_URL"], token=token)
        return response.status_code < 500 and response.status_code != 429
    except (requests.RequestException, CalendarUnavailable) as error:
        log.warning("could not revoke a Google grant: %s", error)
        return False


def grant_token(connection: CalendarConnection) -> str | None:
    """The token that revokes the grant (the refresh token, else the access token)."""
    data = crypto.decrypt(connection.secrets) if connection.secrets else {}
    return data.get("refresh_token") or data.get("access_token")

