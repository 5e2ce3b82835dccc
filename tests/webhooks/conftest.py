"""Fixtures of the webhook tests: a real HTTP receiver on loopback whose answers a test scripts, and an
app that may reach it (plain http, private addresses) with short timeouts and backoff."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography.fernet import Fernet


@dataclass
class Received:
    """One request as the receiver got it: the raw body and the headers (lower-case names)."""

    path: str
    headers: dict[str, str]
    body: bytes
    answered: int | None = None


@dataclass
class Receiver:
    """``script`` holds one action per coming request: a status code (``500``), ``"hang:<seconds>"`` (answer
    200 only after that long) or ``"redirect:<url>"`` (a 302). With the script empty it answers ``default``."""

    url: str = ""
    script: list = field(default_factory=list)
    default: int = 200
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def then(self, *actions) -> "Receiver":
        self.script.extend(actions)
        return self

    def wait_for(self, count: int, timeout: float = 15.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.requests) < count:
            time.sleep(0.02)
        return list(self.requests)

    def delivered(self) -> list[Received]:
        """The requests it answered with a 2xx."""
        return [r for r in self.requests if r.answered is not None and 200 <= r.answered < 300]


def _handler(receiver: Receiver):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            received = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            with receiver.lock:
                receiver.requests.append(received)
                action = receiver.script.pop(0) if receiver.script else receiver.default
            if isinstance(action, str) and action.startswith("hang:"):
                time.sleep(float(action[5:]))
                action = 200
            if isinstance(action, str) and action.startswith("redirect:"):
                received.answered = 302
                self.send_response(302)
                self.send_header("Location", action[9:])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            received.answered = int(action)
            text = b"ok" if 200 <= received.answered < 300 else b"receiver says no"
            try:
                self.send_response(received.answered)
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)
            except OSError:  # the client gave up (a timeout test)
                pass

    return Handler


@pytest.fixture
def receiver():
    """A scripted HTTP receiver on 127.0.0.1 (a free port), stopped after the test."""
    found = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(found))
    server.daemon_threads = True
    found.url = f"http://127.0.0.1:{server.server_port}/hooks/expertbook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield found
    server.shutdown()
    server.server_close()


@pytest.fixture
def encryption_key() -> str:
    return Fernet.generate_key().decode()


def webhook_config(**extra) -> dict:
    """What lets an app reach a loopback receiver, with short timeouts and backoff."""
    return {
        "WEBHOOK_ALLOW_HTTP": True,
        "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": True,
        "WEBHOOK_TIMEOUT_SECONDS": 2.0,
        "WEBHOOK_RETRY_BASE_SECONDS": 0.05,
        "WEBHOOK_RETRY_MAX_SECONDS": 0.2,
    } | extra


@pytest.fixture
def app_config(encryption_key):
    return webhook_config(TOKEN_ENCRYPTION_KEYS=encryption_key)
