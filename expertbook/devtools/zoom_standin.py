"""A Zoom stand-in: the parts of Zoom's OAuth and REST API v2 that ExpertBook uses, served over real HTTP.

Tests start it on a free loopback port (:class:`StandInServer`); ``flask --app wsgi zoom-standin --port N``
serves it for local trials. It behaves like Zoom where it matters to us:

- ``/oauth/authorize`` approves at once and redirects back with ``code`` and ``state``; the code remembers
  the PKCE ``code_challenge`` and ``/oauth/token`` refuses a ``code_verifier`` that does not match it;
- refresh tokens rotate: a used one is dead and answers ``400 {"error": "invalid_grant", "reason": "Invalid Token!"}``;
- access tokens expire after :attr:`ZoomStandIn.access_ttl` seconds and then answer ``401 {"code": 124}``;
- meeting ids are 64-bit integers (11 digits, like Zoom's), a deleted or unknown meeting answers
  ``404 {"code": 3001}``, and every ``GET`` of a meeting returns a new ``start_url`` (Zoom's expire after 2 h).

- ``GET /users/me/meetings`` lists the meetings (with their ``agenda``) in pages of ``page_size``, linked
  by ``next_page_token``, as Zoom's list does.

The test controls it directly: :meth:`ZoomStandIn.fail` switches faults on (500, 429 with ``Retry-After``,
a hang, 401 code 124; ``slow``: the call does its work at once but answers only after
:attr:`ZoomStandIn.slow_seconds`, as a Zoom that made the meeting but answered after our timeout;
``late``: the call waits that long, then does its work and answers, as a Zoom that makes the meeting
only after our timeout) and :attr:`ZoomStandIn.calls` counts the calls per endpoint.
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

# Endpoint names, used both for the call counters and to target faults.
AUTHORIZE = "authorize"
TOKEN_CODE = "token:authorization_code"
TOKEN_REFRESH = "token:refresh_token"
REVOKE = "revoke"
USERS_ME = "users/me"
MEETING_CREATE = "meetings:create"
MEETING_LIST = "meetings:list"
MEETING_GET = "meetings:get"
MEETING_PATCH = "meetings:patch"
MEETING_DELETE = "meetings:delete"
FAULT_KINDS = {"500", "429", "hang", "401", "slow", "late"}


@dataclass
class _Fault:
    kind: str
    times: int | None  # None: until cleared
    retry_after: int


@dataclass
class _Grant:
    """One authorization: its current tokens. Rotation replaces them; revocation ends the grant."""

    id: int
    access_token: str
    access_expires: float
    refresh_token: str
    revoked: bool = False


def _json(data, status: int = 200, headers: dict | None = None) -> Response:
    return Response(json.dumps(data), status=status, headers=headers, content_type="application/json;charset=UTF-8")


def _zoom_error(status: int, code: int, message: str, headers: dict | None = None) -> Response:
    return _json({"code": code, "message": message}, status, headers)


def _iso(ts: float | datetime) -> str:
    moment = ts if isinstance(ts, datetime) else datetime.fromtimestamp(ts, UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ZoomStandIn:
    """The stand-in's state and its WSGI application (the object itself is the WSGI callable)."""

    def __init__(
        self,
        client_id: str = "standin-client-id",
        client_secret: str = "standin-client-secret",
        user_email: str = "expert.zoom@example.com",
        access_ttl: int = 3599,
        require_pkce: bool = True,
    ):
        self.client_id = client_id
        self.client_secret = client_secret
        self.access_ttl = access_ttl
        self.require_pkce = require_pkce
        self.token_delay = 0.0  # seconds the token endpoint waits, to widen race windows in tests
        self.hang_seconds = 30.0
        self.slow_seconds = 5.0
        self._late = threading.local()  # how long the current request's answer waits (a "slow" fault)
        self.user = {
            "id": "zU" + secrets.token_urlsafe(12),
            "first_name": "Stand",
            "last_name": "In",
            "display_name": "Stand In",
            "email": user_email,
            "type": 2,
            "role_name": "Owner",
            "pmi": 5551234567,
            "use_pmi": False,
            "timezone": "UTC",
            "verified": 1,
            "dept": "",
            "created_at": _iso(time.time()),
            "language": "en-US",
            "status": "active",
            "role_id": "0",
            "account_id": "acct" + secrets.token_urlsafe(10),
            "account_number": 10009239,
            "cluster": "us05",
        }
        self.calls: Counter[str] = Counter()
        self.meetings: dict[int, dict] = {}
        self.deleted: set[int] = set()
        self._codes: dict[str, dict] = {}
        self._grants: list[_Grant] = []
        self._faults: dict[str, _Fault] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._url_map = Map(
            [
                Rule("/oauth/authorize", endpoint="authorize", methods=["GET"]),
                Rule("/oauth/token", endpoint="token", methods=["POST"]),
                Rule("/oauth/revoke", endpoint="revoke", methods=["POST"]),
                Rule("/v2/users/me", endpoint="users_me", methods=["GET"]),
                Rule("/v2/users/me/meetings", endpoint="create_meeting", methods=["POST"]),
                Rule("/v2/users/me/meetings", endpoint="list_meetings", methods=["GET"]),
                Rule("/v2/meetings/<int:meeting_id>", endpoint="meeting", methods=["GET", "PATCH", "DELETE"]),
                Rule("/j/<int:meeting_id>", endpoint="join_page", methods=["GET"]),
                Rule("/s/<int:meeting_id>", endpoint="start_page", methods=["GET"]),
            ]
        )

    # ------------------------------------------------------------------ control (used by tests)

    def fail(self, endpoint: str, kind: str, times: int | None = 1, retry_after: int = 7) -> None:
        """Make the next ``times`` calls of ``endpoint`` fail with ``kind`` (500, 429, hang, 401, slow or late)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; use one of {sorted(FAULT_KINDS)}")
        with self._lock:
            self._faults[endpoint] = _Fault(kind, times, retry_after)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def expire_access_tokens(self) -> None:
        """Let every issued access token expire now, as time passing would."""
        with self._lock:
            for grant in self._grants:
                grant.access_expires = 0

    def revoke_all(self) -> None:
        """End every grant, as an expert removing the app in Zoom's marketplace would."""
        with self._lock:
            for grant in self._grants:
                grant.revoked = True

    @property
    def live_refresh_tokens(self) -> list[str]:
        with self._lock:
            return [g.refresh_token for g in self._grants if not g.revoked]

    def stop(self) -> None:
        """Release hanging requests so the server can shut down."""
        self._stopping.set()

    # ------------------------------------------------------------------ WSGI

    def __call__(self, environ, start_response):
        request = Request(environ)
        self._late.seconds = 0.0
        try:
            endpoint, values = self._url_map.bind_to_environ(environ).match()
            response = getattr(self, f"_{endpoint}")(request, **values)
        except NotFound:
            response = _zoom_error(404, 404, "Not found.")
        except HTTPException as error:
            response = error.get_response(environ)
        if self._late.seconds:  # the work is done; only the answer is late
            self._stopping.wait(self._late.seconds)
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
        if fault.kind == "slow":
            self._late.seconds = self.slow_seconds
            return None
        if fault.kind == "late":
            self._stopping.wait(self.slow_seconds)
            return None
        if fault.kind == "500":
            return _zoom_error(500, 500, "Internal server error.")
        if fault.kind == "429":
            return _zoom_error(
                429, 429, "You have reached the maximum per-second rate limit for this API. Try again later.",
                {"Retry-After": str(fault.retry_after)},
            )
        if fault.kind == "401":
            return _zoom_error(401, 124, "Invalid access token.")
        self._stopping.wait(self.hang_seconds)
        return _zoom_error(504, 504, "Gateway timeout.")

    def _client_ok(self, request: Request) -> bool:
        auth = request.authorization
        return bool(
            auth
            and auth.type == "basic"
            and secrets.compare_digest(auth.username or "", self.client_id)
            and secrets.compare_digest(auth.password or "", self.client_secret)
        )

    def _bearer_grant(self, request: Request) -> _Grant | None:
        header = request.headers.get("Authorization", "")
        if not header.lower().startswith("bearer "):
            return None
        token = header[7:].strip()
        with self._lock:
            for grant in self._grants:
                if not grant.revoked and secrets.compare_digest(grant.access_token, token):
                    return grant if grant.access_expires > time.time() else None
        return None

    # ------------------------------------------------------------------ OAuth

    def _authorize(self, request: Request) -> Response:
        if fault := self._count_and_fault(AUTHORIZE):
            return fault
        args = request.args
        redirect_uri = args.get("redirect_uri", "")
        if args.get("client_id") != self.client_id or not redirect_uri:
            return _json({"error": "invalid_client", "reason": "Invalid client_id or redirect_uri"}, 400)
        back = {"state": args["state"]} if "state" in args else {}
        challenge = args.get("code_challenge")
        if args.get("response_type") != "code":
            back["error"] = "unsupported_response_type"
        elif challenge and args.get("code_challenge_method", "plain") != "S256":
            back["error"] = "invalid_request"
        elif self.require_pkce and not challenge:
            back["error"] = "invalid_request"
        else:
            code = secrets.token_urlsafe(24)
            with self._lock:
                self._codes[code] = {"redirect_uri": redirect_uri, "challenge": challenge, "at": time.time()}
            back["code"] = code
        separator = "&" if "?" in redirect_uri else "?"
        return Response(status=302, headers={"Location": redirect_uri + separator + urlencode(back)})

    def _new_grant(self) -> _Grant:
        grant = _Grant(
            id=len(self._grants) + 1,
            access_token="zat." + secrets.token_urlsafe(40),
            access_expires=time.time() + self.access_ttl,
            refresh_token="zrt." + secrets.token_urlsafe(40),
        )
        self._grants.append(grant)
        return grant

    def _token_answer(self, grant: _Grant) -> Response:
        return _json(
            {
                "access_token": grant.access_token,
                "token_type": "bearer",
                "refresh_token": grant.refresh_token,
                "expires_in": self.access_ttl,
                "scope": "meeting:write:meeting meeting:read:meeting meeting:delete:meeting user:read:user",
                "api_url": "https://api.zoom.us",
            },
            headers={"Cache-Control": "no-store"},
        )

    def _token(self, request: Request) -> Response:
        grant_type = request.form.get("grant_type", "")
        name = TOKEN_REFRESH if grant_type == "refresh_token" else TOKEN_CODE
        if fault := self._count_and_fault(name):
            return fault
        if self.token_delay:
            time.sleep(self.token_delay)
        if not self._client_ok(request):
            return _json({"reason": "Invalid client_id or client_secret", "error": "invalid_client"}, 401)
        if grant_type == "authorization_code":
            with self._lock:
                data = self._codes.pop(request.form.get("code", ""), None)
            if data is None or time.time() - data["at"] > 300:
                return _json({"reason": "Invalid authorization code", "error": "invalid_grant"}, 400)
            if request.form.get("redirect_uri") != data["redirect_uri"]:
                return _json({"reason": "Invalid redirect_uri", "error": "invalid_grant"}, 400)
            if data["challenge"]:
                verifier = request.form.get("code_verifier", "")
                digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
                expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
                if not verifier or not secrets.compare_digest(expected, data["challenge"]):
                    return _json({"reason": "Invalid code_verifier", "error": "invalid_grant"}, 400)
            with self._lock:
                grant = self._new_grant()
            return self._token_answer(grant)
        if grant_type == "refresh_token":
            offered = request.form.get("refresh_token", "")
            with self._lock:
                grant = next((g for g in self._grants if not g.revoked and secrets.compare_digest(g.refresh_token, offered)), None)
                if grant is None:
                    return _json({"reason": "Invalid Token!", "error": "invalid_grant"}, 400)
                # Rotation: the presented refresh token dies now; the old access token dies too.
                grant.refresh_token = "zrt." + secrets.token_urlsafe(40)
                grant.access_token = "zat." + secrets.token_urlsafe(40)
                grant.access_expires = time.time() + self.access_ttl
            return self._token_answer(grant)
        return _json({"reason": "Unsupported grant type", "error": "unsupported_grant_type"}, 400)

    def _revoke(self, request: Request) -> Response:
        if fault := self._count_and_fault(REVOKE):
            return fault
        if not self._client_ok(request):
            return _json({"reason": "Invalid client_id or client_secret", "error": "invalid_client"}, 401)
        token = request.args.get("token") or request.form.get("token", "")
        with self._lock:
            for grant in self._grants:
                if token and token in (grant.access_token, grant.refresh_token):
                    grant.revoked = True
                    return _json({"status": "success"})
        return _json({"reason": "Invalid Token!", "error": "invalid_request"}, 400)

    # ------------------------------------------------------------------ REST API v2

    def _api_guard(self, request: Request, name: str) -> Response | None:
        if fault := self._count_and_fault(name):
            return fault
        if self._bearer_grant(request) is None:
            return _zoom_error(401, 124, "Invalid access token.")
        return None

    def _users_me(self, request: Request) -> Response:
        return self._api_guard(request, USERS_ME) or _json(self.user)

    def _meeting_settings(self, given: dict, base: dict | None = None) -> dict:
        settings = dict(base or {
            "host_video": False,
            "participant_video": False,
            "join_before_host": False,
            "jbh_time": 0,
            "mute_upon_entry": False,
            "waiting_room": False,
            "auto_recording": "none",
            "approval_type": 2,
            "audio": "both",
            "use_pmi": False,
            "meeting_authentication": False,
            "encryption_type": "enhanced_encryption",
        })
        settings.update({k: v for k, v in (given or {}).items()})
        return settings

    def _create_meeting(self, request: Request) -> Response:
        if refused := self._api_guard(request, MEETING_CREATE):
            return refused
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not body.get("topic"):
            return _zoom_error(400, 300, "Validation Failed.")
        with self._lock:
            meeting_id = secrets.randbelow(20_000_000_000) + 80_000_000_000  # 11 digits, > 2**32
            while meeting_id in self.meetings or meeting_id in self.deleted:
                meeting_id = secrets.randbelow(20_000_000_000) + 80_000_000_000
            self.meetings[meeting_id] = {}  # reserve the id; filled in below
        password = body.get("password") or secrets.token_hex(3)
        base = request.host_url.rstrip("/")
        pwd = secrets.token_urlsafe(24)
        meeting = {
            "uuid": base64.b64encode(secrets.token_bytes(16)).decode(),
            "id": meeting_id,
            "host_id": self.user["id"],
            "host_email": self.user["email"],
            "assistant_id": "",
            "topic": body["topic"],
            "type": int(body.get("type", 2)),
            "status": "waiting",
            "start_time": body.get("start_time"),
            "duration": int(body.get("duration", 60)),
            "timezone": body.get("timezone", "UTC"),
            "agenda": body.get("agenda", ""),
            "created_at": _iso(time.time()),
            "join_url": f"{base}/j/{meeting_id}?pwd={pwd}",
            "password": password,
            "h323_password": "".join(secrets.choice("0123456789") for _ in range(6)),
            "pstn_password": "".join(secrets.choice("0123456789") for _ in range(6)),
            "encrypted_password": pwd,
            "settings": self._meeting_settings(body.get("settings") or {}),
            "pre_schedule": False,
        }
        with self._lock:
            self.meetings[meeting_id] = meeting
        return _json(dict(meeting, start_url=self._start_url(base, meeting_id)), 201)

    def _list_meetings(self, request: Request) -> Response:
        if refused := self._api_guard(request, MEETING_LIST):
            return refused
        if request.args.get("type", "scheduled") not in {"scheduled", "live", "upcoming", "upcoming_meetings", "previous_meetings"}:
            return _zoom_error(400, 300, "Invalid field.")
        try:
            page_size = min(max(int(request.args.get("page_size", 30)), 1), 300)
            start = int(request.args.get("next_page_token") or 0)
        except ValueError:
            return _zoom_error(400, 300, "Invalid field.")
        with self._lock:
            listed = [m for m in self.meetings.values() if m]  # an id being created is not listed yet
        page = listed[start:start + page_size]
        keys = ("uuid", "id", "host_id", "topic", "type", "start_time", "duration", "timezone", "agenda", "created_at", "join_url")
        return _json({
            "page_size": page_size,
            "total_records": len(listed),
            "next_page_token": str(start + page_size) if start + page_size < len(listed) else "",
            "meetings": [{key: meeting[key] for key in keys} for meeting in page],
        })

    @staticmethod
    def _start_url(base: str, meeting_id: int) -> str:
        return f"{base}/s/{meeting_id}?zak={secrets.token_urlsafe(32)}"

    def _meeting(self, request: Request, meeting_id: int) -> Response:
        name = {"GET": MEETING_GET, "PATCH": MEETING_PATCH, "DELETE": MEETING_DELETE}[request.method]
        if refused := self._api_guard(request, name):
            return refused
        with self._lock:
            meeting = self.meetings.get(meeting_id)
            if meeting is None:
                return _zoom_error(404, 3001, f"Meeting does not exist: {meeting_id}.")
            if request.method == "DELETE":
                del self.meetings[meeting_id]
                self.deleted.add(meeting_id)
                return Response(status=204)
            if request.method == "PATCH":
                body = request.get_json(silent=True)
                if not isinstance(body, dict):
                    return _zoom_error(400, 300, "Validation Failed.")
                for key in ("topic", "start_time", "duration", "timezone", "agenda", "password"):
                    if key in body:
                        meeting[key] = body[key]
                if "settings" in body:
                    meeting["settings"] = self._meeting_settings(body["settings"], meeting["settings"])
                return Response(status=204)
            current = dict(meeting)
        return _json(dict(current, start_url=self._start_url(request.host_url.rstrip("/"), meeting_id)))

    # ------------------------------------------------------------------ where join and start URLs lead

    def _room_page(self, meeting_id: int, role: str) -> Response:
        with self._lock:
            meeting = self.meetings.get(meeting_id)
        if meeting is None:
            return Response("<!doctype html><title>Not found</title><p>This meeting does not exist.</p>", 404,
                            content_type="text/html")
        html = (
            f"<!doctype html><title>Zoom stand-in</title><h1>Zoom stand-in meeting</h1>"
            f"<p>Meeting ID: <span id='meeting-id'>{meeting_id}</span></p><p>Role: <span id='role'>{role}</span></p>"
        )
        return Response(html, content_type="text/html")

    def _join_page(self, request: Request, meeting_id: int) -> Response:
        return self._room_page(meeting_id, "participant")

    def _start_page(self, request: Request, meeting_id: int) -> Response:
        return self._room_page(meeting_id, "host")


class StandInServer:
    """Serve a :class:`ZoomStandIn` (or another stand-in's WSGI app) over HTTP on loopback in a background thread.

    ``with StandInServer() as zoom: ...`` gives ``zoom.url`` and ``zoom.standin``; :meth:`config`
    returns the ``ZOOM_*`` settings that point an ExpertBook app at it.
    """

    def __init__(self, standin: ZoomStandIn | None = None, host: str = "127.0.0.1", port: int = 0):
        from werkzeug.serving import make_server

        self.standin = standin or ZoomStandIn()
        self._server = make_server(host, port, self.standin, threaded=True)
        self.url = f"http://{host}:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name=type(self.standin).__name__, daemon=True)

    def start(self) -> StandInServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.standin.stop()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> StandInServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def config(self) -> dict[str, str]:
        return standin_config(self.url, self.standin)


def standin_config(url: str, standin: ZoomStandIn) -> dict[str, str]:
    """The ExpertBook settings that point the Zoom integration at a stand-in served at ``url``."""
    return {
        "ZOOM_CLIENT_ID": standin.client_id,
        "ZOOM_CLIENT_SECRET": standin.client_secret,
        "ZOOM_AUTHORIZE_URL": f"{url}/oauth/authorize",
        "ZOOM_TOKEN_URL": f"{url}/oauth/token",
        "ZOOM_REVOKE_URL": f"{url}/oauth/revoke",
        "ZOOM_API_URL": f"{url}/v2",
    }
