"""A Google stand-in: the parts of Google's OAuth and Calendar API (v3) that ExpertBook uses, over real HTTP.

Tests start it on a free loopback port (:class:`GoogleServer`); ``flask --app wsgi google-standin --port N``
serves it for local trials. It behaves like Google where it matters to us:

- ``/o/oauth2/v2/auth`` approves at once and redirects back with ``code`` and ``state``; the code remembers
  the PKCE ``code_challenge`` and ``/token`` refuses a ``code_verifier`` that does not match it; a refresh
  token is given only with ``access_type=offline``;
- a refresh answers a new access token and no new refresh token (Google keeps the refresh token); a revoked
  grant's refresh answers ``400 {"error": "invalid_grant"}``; an expired access token answers 401;
- ``/calendar/v3``: the calendar list, ``freeBusy`` (from the stored events: "free" events, cancelled ones
  and declined ones do not count, as at Google), and events by id: insert (409 for an id taken, also by a
  deleted event), get, patch, update, delete (410 for one already deleted);
- ``conferenceDataVersion=1`` with ``conferenceData.createRequest`` (``hangoutsMeet``) gives the event a
  Meet conference (``entryPoints``, ``hangoutLink``); :attr:`GoogleStandIn.meet_pending` makes the next
  creations answer ``pending`` first, as Google's asynchronous creation does.

The test controls it directly: :meth:`GoogleStandIn.add_busy` puts an event in a calendar,
:meth:`GoogleStandIn.fail` switches faults on (500, 429, hang), :meth:`GoogleStandIn.revoke_all` ends every
grant, and :attr:`GoogleStandIn.calls` counts the calls per endpoint.
"""
from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlencode

from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from expertbook.devtools.zoom_standin import StandInServer

AUTHORIZE = "authorize"
TOKEN_CODE = "token:authorization_code"
TOKEN_REFRESH = "token:refresh_token"
REVOKE = "revoke"
USERINFO = "userinfo"
CALENDAR_LIST = "calendarList"
FREEBUSY = "freeBusy"
EVENT_INSERT = "events:insert"
EVENT_GET = "events:get"
EVENT_PATCH = "events:patch"
EVENT_UPDATE = "events:update"
EVENT_DELETE = "events:delete"
FAULT_KINDS = {"500", "429", "hang"}


@dataclass
class _Fault:
    kind: str
    times: int | None


@dataclass
class _Grant:
    access_token: str
    access_expires: float
    refresh_token: str | None
    revoked: bool = False


def _json(data, status: int = 200, headers: dict | None = None) -> Response:
    return Response(json.dumps(data), status=status, headers=headers, content_type="application/json; charset=UTF-8")


def _error(status: int, reason: str, message: str, headers: dict | None = None) -> Response:
    return _json({"error": {"code": status, "message": message, "errors": [{"domain": "global", "reason": reason, "message": message}]}},
                 status, headers)


def _instant(value: dict) -> datetime:
    if "dateTime" in value:
        return datetime.fromisoformat(value["dateTime"].replace("Z", "+00:00")).astimezone(UTC)
    return datetime.fromisoformat(value["date"]).replace(tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class GoogleStandIn:
    """The stand-in's state and its WSGI application (the object itself is the WSGI callable)."""

    def __init__(self, client_id: str = "standin-google-client.apps.googleusercontent.com",
                 client_secret: str = "standin-google-secret", email: str = "expert.google@example.com", access_ttl: int = 3599):
        self.client_id = client_id
        self.client_secret = client_secret
        self.email = email
        self.sub = str(secrets.randbelow(10**20))
        self.access_ttl = access_ttl
        self.hang_seconds = 30.0
        self.meet_pending = 0  # how many next conference creations answer "pending" first
        self.calls: Counter[str] = Counter()
        self.calendars: dict[str, dict] = {
            email: {"id": email, "summary": email, "primary": True, "accessRole": "owner", "timeZone": "UTC"},
            "work@group.calendar.google.com": {"id": "work@group.calendar.google.com", "summary": "Work", "accessRole": "owner", "timeZone": "UTC"},
        }
        self.events: dict[str, dict[str, dict]] = {calendar_id: {} for calendar_id in self.calendars}
        self._pending_conferences: dict[str, int] = {}  # event id -> reads left before it is ready
        self._codes: dict[str, dict] = {}
        self._grants: list[_Grant] = []
        self._faults: dict[str, _Fault] = {}
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._url_map = Map([
            Rule("/o/oauth2/v2/auth", endpoint="authorize", methods=["GET"]),
            Rule("/token", endpoint="token", methods=["POST"]),
            Rule("/revoke", endpoint="revoke", methods=["POST"]),
            Rule("/v1/userinfo", endpoint="userinfo", methods=["GET"]),
            Rule("/calendar/v3/users/me/calendarList", endpoint="calendar_list", methods=["GET"]),
            Rule("/calendar/v3/freeBusy", endpoint="freebusy", methods=["POST"]),
            Rule("/calendar/v3/calendars/<calendar_id>/events", endpoint="insert_event", methods=["POST"]),
            Rule("/calendar/v3/calendars/<calendar_id>/events/<event_id>", endpoint="event", methods=["GET", "PATCH", "PUT", "DELETE"]),
        ])

    # ------------------------------------------------------------------ control (used by tests)

    def fail(self, endpoint: str, kind: str, times: int | None = 1) -> None:
        """Make the next ``times`` calls of ``endpoint`` fail with ``kind`` (500, 429 or hang)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}")
        with self._lock:
            self._faults[endpoint] = _Fault(kind, times)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def expire_access_tokens(self) -> None:
        with self._lock:
            for grant in self._grants:
                grant.access_expires = 0

    def revoke_all(self) -> None:
        """End every grant, as an expert removing ExpertBook from their Google Account would."""
        with self._lock:
            for grant in self._grants:
                grant.revoked = True

    def add_busy(self, calendar_id: str, start: datetime, end: datetime, *, transparency: str = "opaque", summary: str = "Busy") -> str:
        """Put an event (made by the expert elsewhere) into a calendar; returns its id."""
        event_id = secrets.token_hex(12)
        with self._lock:
            self.events[self._calendar_id(calendar_id)][event_id] = {
                "id": event_id, "status": "confirmed", "summary": summary, "transparency": transparency,
                "start": {"dateTime": _iso(start)}, "end": {"dateTime": _iso(end)},
            }
        return event_id

    @property
    def live_refresh_tokens(self) -> list[str]:
        with self._lock:
            return [g.refresh_token for g in self._grants if not g.revoked and g.refresh_token]

    def live_events(self, calendar_id: str) -> list[dict]:
        """The calendar's events that are not deleted."""
        with self._lock:
            return [dict(event) for event in self.events[self._calendar_id(calendar_id)].values() if event.get("status") != "cancelled"]

    def stop(self) -> None:
        self._stopping.set()

    # ------------------------------------------------------------------ WSGI

    def __call__(self, environ, start_response):
        request = Request(environ)
        try:
            endpoint, values = self._url_map.bind_to_environ(environ).match()
            response = getattr(self, f"_{endpoint}")(request, **values)
        except NotFound:
            response = _error(404, "notFound", "Not Found")
        except HTTPException as error:
            response = error.get_response(environ)
        return response(environ, start_response)

    def _count_and_fault(self, name: str) -> Response | None:
        with self._lock:
            self.calls[name] += 1
            fault = self._faults.get(name)
            if fault is None:
                return None
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    del self._faults[name]
        if fault.kind == "500":
            return _error(500, "backendError", "Backend Error")
        if fault.kind == "429":
            return _error(429, "rateLimitExceeded", "Rate Limit Exceeded", {"Retry-After": "7"})
        self._stopping.wait(self.hang_seconds)
        return _error(503, "backendError", "Service unavailable")

    def _calendar_id(self, calendar_id: str) -> str:
        return self.email if calendar_id == "primary" else calendar_id

    def _client_ok(self, request: Request) -> bool:
        return secrets.compare_digest(request.form.get("client_id", ""), self.client_id) and secrets.compare_digest(
            request.form.get("client_secret", ""), self.client_secret)

    def _bearer_ok(self, request: Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.lower().startswith("bearer "):
            return False
        token = header[7:].strip()
        with self._lock:
            return any(not g.revoked and g.access_expires > time.time() and secrets.compare_digest(g.access_token, token) for g in self._grants)

    def _guard(self, request: Request, name: str) -> Response | None:
        if fault := self._count_and_fault(name):
            return fault
        if not self._bearer_ok(request):
            return _error(401, "authError", "Invalid Credentials")
        return None

    # ------------------------------------------------------------------ OAuth

    def _authorize(self, request: Request) -> Response:
        if fault := self._count_and_fault(AUTHORIZE):
            return fault
        args = request.args
        redirect_uri = args.get("redirect_uri", "")
        if args.get("client_id") != self.client_id or not redirect_uri:
            return _json({"error": "invalid_client"}, 400)
        back = {"state": args["state"]} if "state" in args else {}
        challenge = args.get("code_challenge")
        if args.get("response_type") != "code" or not challenge or args.get("code_challenge_method") != "S256":
            back["error"] = "invalid_request"
        else:
            code = "4/" + secrets.token_urlsafe(24)
            with self._lock:
                self._codes[code] = {"redirect_uri": redirect_uri, "challenge": challenge, "at": time.time(),
                                     "offline": args.get("access_type") == "offline", "scope": args.get("scope", "")}
            back["code"] = code
            back["scope"] = args.get("scope", "")
        separator = "&" if "?" in redirect_uri else "?"
        return Response(status=302, headers={"Location": redirect_uri + separator + urlencode(back)})

    def _token_answer(self, grant: _Grant, scope: str, with_refresh: bool) -> Response:
        body = {"access_token": grant.access_token, "expires_in": self.access_ttl, "scope": scope, "token_type": "Bearer"}
        if with_refresh and grant.refresh_token:
            body["refresh_token"] = grant.refresh_token
        return _json(body, headers={"Cache-Control": "no-store"})

    def _token(self, request: Request) -> Response:
        grant_type = request.form.get("grant_type", "")
        name = TOKEN_REFRESH if grant_type == "refresh_token" else TOKEN_CODE
        if fault := self._count_and_fault(name):
            return fault
        if not self._client_ok(request):
            return _json({"error": "invalid_client", "error_description": "The OAuth client was not found."}, 401)
        if grant_type == "authorization_code":
            with self._lock:
                data = self._codes.pop(request.form.get("code", ""), None)
            if data is None or time.time() - data["at"] > 600 or request.form.get("redirect_uri") != data["redirect_uri"]:
                return _json({"error": "invalid_grant", "error_description": "Bad Request"}, 400)
            verifier = request.form.get("code_verifier", "")
            expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii", "replace")).digest()).rstrip(b"=").decode()
            if not verifier or not secrets.compare_digest(expected, data["challenge"]):
                return _json({"error": "invalid_grant", "error_description": "Missing code verifier."}, 400)
            grant = _Grant("ya29." + secrets.token_urlsafe(40), time.time() + self.access_ttl,
                           "1//" + secrets.token_urlsafe(40) if data["offline"] else None)
            with self._lock:
                self._grants.append(grant)
            return self._token_answer(grant, data["scope"], True)
        if grant_type == "refresh_token":
            offered = request.form.get("refresh_token", "")
            with self._lock:
                grant = next((g for g in self._grants if not g.revoked and g.refresh_token and secrets.compare_digest(g.refresh_token, offered)), None)
                if grant is None:
                    return _json({"error": "invalid_grant", "error_description": "Token has been expired or revoked."}, 400)
                grant.access_token = "ya29." + secrets.token_urlsafe(40)
                grant.access_expires = time.time() + self.access_ttl
            return self._token_answer(grant, "", False)
        return _json({"error": "unsupported_grant_type"}, 400)

    def _revoke(self, request: Request) -> Response:
        if fault := self._count_and_fault(REVOKE):
            return fault
        token = request.args.get("token") or request.form.get("token", "")
        with self._lock:
            for grant in self._grants:
                if token and token in (grant.access_token, grant.refresh_token):
                    grant.revoked = True
                    return _json({})
        return _json({"error": "invalid_token", "error_description": "Token expired or revoked"}, 400)

    def _userinfo(self, request: Request) -> Response:
        return self._guard(request, USERINFO) or _json({"sub": self.sub, "email": self.email, "email_verified": True})

    # ------------------------------------------------------------------ Calendar API v3

    def _calendar_list(self, request: Request) -> Response:
        if refused := self._guard(request, CALENDAR_LIST):
            return refused
        with self._lock:
            items = [dict(calendar, kind="calendar#calendarListEntry") for calendar in self.calendars.values()]
        return _json({"kind": "calendar#calendarList", "items": items})

    def _freebusy(self, request: Request) -> Response:
        if refused := self._guard(request, FREEBUSY):
            return refused
        body = request.get_json(silent=True) or {}
        try:
            low, high = _instant({"dateTime": body["timeMin"]}), _instant({"dateTime": body["timeMax"]})
        except (KeyError, ValueError):
            return _error(400, "invalid", "Bad Request")
        answer = {}
        with self._lock:
            for item in body.get("items") or ():
                calendar_id = self._calendar_id(item.get("id", ""))
                if calendar_id not in self.events:
                    answer[item.get("id")] = {"errors": [{"domain": "global", "reason": "notFound"}], "busy": []}
                    continue
                busy = []
                for event in self.events[calendar_id].values():
                    if event.get("status") == "cancelled" or event.get("transparency") == "transparent":
                        continue
                    start, end = _instant(event["start"]), _instant(event["end"])
                    if start < high and end > low:
                        busy.append({"start": _iso(max(start, low)), "end": _iso(min(end, high))})
                answer[item.get("id")] = {"busy": sorted(busy, key=lambda b: b["start"])}
        return _json({"kind": "calendar#freeBusy", "timeMin": body["timeMin"], "timeMax": body["timeMax"], "calendars": answer})

    def _conference(self, event_id: str, request_body: dict) -> dict:
        create = (request_body.get("conferenceData") or {}).get("createRequest") or {}
        if (create.get("conferenceSolutionKey") or {}).get("type") != "hangoutsMeet":
            return {}
        code = "-".join("".join(secrets.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(n)) for n in (3, 4, 3))
        conference = {
            "createRequest": dict(create, status={"statusCode": "success"}),
            "entryPoints": [{"entryPointType": "video", "uri": f"https://meet.google.com/{code}", "label": f"meet.google.com/{code}"}],
            "conferenceSolution": {"key": {"type": "hangoutsMeet"}, "name": "Google Meet"},
            "conferenceId": code,
        }
        if self.meet_pending > 0:
            self.meet_pending -= 1
            self._pending_conferences[event_id] = 1
        return conference

    def _shown(self, event: dict) -> dict:
        """The event as an answer shows it: a conference still being made says ``pending`` (once)."""
        shown = dict(event)
        left = self._pending_conferences.get(event["id"])
        if left and "conferenceData" in event:
            self._pending_conferences[event["id"]] = left - 1
            if self._pending_conferences[event["id"]] <= 0:
                del self._pending_conferences[event["id"]]
            data = dict(event["conferenceData"])
            data.pop("entryPoints", None)
            data["createRequest"] = dict(data["createRequest"], status={"statusCode": "pending"})
            shown["conferenceData"] = data
            shown.pop("hangoutLink", None)
        return shown

    def _insert_event(self, request: Request, calendar_id: str) -> Response:
        if refused := self._guard(request, EVENT_INSERT):
            return refused
        body = request.get_json(silent=True)
        calendar_id = self._calendar_id(calendar_id)
        if not isinstance(body, dict) or "start" not in body or "end" not in body:
            return _error(400, "required", "Missing start or end")
        if calendar_id not in self.events:
            return _error(404, "notFound", "Not Found")
        event_id = body.get("id") or secrets.token_hex(13)
        with self._lock:
            if event_id in self.events[calendar_id]:
                return _error(409, "duplicate", "The requested identifier already exists.")
            event = {key: value for key, value in body.items() if key != "conferenceData"}
            event.update(id=event_id, status=body.get("status", "confirmed"), iCalUID=f"{event_id}@google.com",
                         htmlLink=f"https://www.google.com/calendar/event?eid={event_id}", sequence=0)
            if request.args.get("conferenceDataVersion") == "1" and body.get("conferenceData"):
                conference = self._conference(event_id, body)
                if conference:
                    event["conferenceData"] = conference
                    event["hangoutLink"] = conference["entryPoints"][0]["uri"]
            self.events[calendar_id][event_id] = event
            return _json(self._shown(event))

    def _event(self, request: Request, calendar_id: str, event_id: str) -> Response:
        name = {"GET": EVENT_GET, "PATCH": EVENT_PATCH, "PUT": EVENT_UPDATE, "DELETE": EVENT_DELETE}[request.method]
        if refused := self._guard(request, name):
            return refused
        calendar_id = self._calendar_id(calendar_id)
        with self._lock:
            event = self.events.get(calendar_id, {}).get(event_id)
            if event is None:
                return _error(404, "notFound", "Not Found")
            if request.method == "GET":
                return _json(self._shown(event))
            if request.method == "DELETE":
                if event.get("status") == "cancelled":
                    return _error(410, "deleted", "Resource has been deleted")
                event["status"] = "cancelled"
                return Response(status=204)
            body = request.get_json(silent=True)
            if not isinstance(body, dict):
                return _error(400, "invalid", "Bad Request")
            if request.method == "PUT":
                kept = {key: event[key] for key in ("id", "iCalUID", "htmlLink", "conferenceData", "hangoutLink") if key in event}
                event.clear()
                event.update(kept)
            for key, value in body.items():
                if key == "conferenceData":
                    continue
                event[key] = value
            event["status"] = body.get("status", "confirmed")
            event["sequence"] = int(event.get("sequence", 0)) + 1
            if request.args.get("conferenceDataVersion") == "1" and body.get("conferenceData") and "conferenceData" not in event:
                conference = self._conference(event_id, body)
                if conference:
                    event["conferenceData"] = conference
                    event["hangoutLink"] = conference["entryPoints"][0]["uri"]
            return _json(self._shown(event))


class GoogleServer(StandInServer):
    """Serve a :class:`GoogleStandIn` over HTTP on loopback in a background thread (as the Zoom stand-in's
    server does); :meth:`config` gives the ``GOOGLE_*`` settings that point an app at it."""

    def __init__(self, standin: GoogleStandIn | None = None, host: str = "127.0.0.1", port: int = 0):
        super().__init__(standin or GoogleStandIn(), host, port)

    def config(self) -> dict[str, str]:
        return standin_config(self.url, self.standin)


def standin_config(url: str, standin: GoogleStandIn) -> dict[str, str]:
    """The ExpertBook settings that point the Google integration at a stand-in served at ``url``."""
    return {
        "GOOGLE_CLIENT_ID": standin.client_id,
        "GOOGLE_CLIENT_SECRET": standin.client_secret,
        "GOOGLE_AUTHORIZE_URL": f"{url}/o/oauth2/v2/auth",
        "GOOGLE_TOKEN_URL": f"{url}/token",
        "GOOGLE_REVOKE_URL": f"{url}/revoke",
        "GOOGLE_USERINFO_URL": f"{url}/v1/userinfo",
        "GOOGLE_CALENDAR_API_URL": f"{url}/calendar/v3",
    }
