"""What an operator watches: request ids, logs (JSON or text) with no secret in them, and Prometheus metrics.

- **Request ids.** Every request gets one: the ``X-Request-ID`` header if it is a sane one (nginx sends its
  ``$request_id``), else a new one. It is answered in ``X-Request-ID``, written into every log line the
  request causes, carried into the RQ jobs the request leads to (``job.meta["request_ids"]``), and written
  into the emails those jobs send (an ``X-Request-ID`` header), so one booking can be followed from nginx's
  access log through the worker to the recipient's mailbox.
- **Logs.** One JSON object per line (``LOG_FORMAT=json``, production's default) or plain text
  (``LOG_FORMAT=text``, development's). Either way every line is redacted: the tokens of reset,
  verification, manage, move and calendar-feed links never reach a log, whoever logs them.
- **Metrics.** ``GET /metrics`` (expertbook.main.views) in Prometheus's text format: one histogram
  observation per request (endpoint, method, status), bookings made and refused, and, read when scraped,
  the outbox's backlog, the workers' heartbeats and the Zoom and SMTP failures the workers counted. Under
  gunicorn the processes share their numbers through ``PROMETHEUS_MULTIPROC_DIR`` (deploy/gunicorn.conf.py).

Infrastructure: it imports no area.
"""
from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import socket
import sys
import time
import traceback
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from flask import Flask

# ---------------------------------------------------------------------------- secrets in URLs

# The paths whose next segment is a secret token: password reset, email verification, a guest's manage
# link, a clinic move link, an expert's calendar feed. deploy/nginx/expertbook.conf's access-log map lists
# the same (tests/test_deploy.py checks), and Zoom's OAuth callback carries its one-time code in the query.
TOKEN_PATHS = ("reset-password", "verify-email", "experts/manage", "experts/feed", "clinic/move")
_TOKEN_IN_PATH = re.compile(r"(/(?:" + "|".join(re.escape(p) for p in TOKEN_PATHS) + r")/+)[^\s/?#\"'&<>]+")
_QUERY_SECRET = re.compile(r"(/video/zoom/callback\?)[^\s\"'<>]+")


def redact(text: str) -> str:
    """``text`` with every link token (and Zoom's OAuth code) replaced by ``[redacted]``."""
    if "/" not in text:
        return text
    return _QUERY_SECRET.sub(r"\1[redacted]", _TOKEN_IN_PATH.sub(r"\1[redacted]", text))


# ---------------------------------------------------------------------------- request ids

REQUEST_ID_HEADER = "X-Request-ID"
# nginx's $request_id is 32 hex digits; a client's or another proxy's may be a UUID or similar. Anything
# longer or with other characters is replaced, so a log line cannot be forged or bloated through it.
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}")

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("expertbook_request_id", default=None)


def new_request_id() -> str:
    return uuid.uuid4().hex


def valid_request_id(value: str | None) -> str | None:
    """``value`` if it is an acceptable request id (1-100 of ``A-Z a-z 0-9 . _ : -``), else None."""
    if value and _VALID_REQUEST_ID.fullmatch(value):
        return value
    return None


def current_request_id() -> str | None:
    """The request id of what this thread is doing now (a request, or a job one led to), if any."""
    return _request_id.get()


@contextmanager
def request_id_context(request_id: str | None) -> Iterator[None]:
    """Run the block with ``request_id`` as the current one (None: none)."""
    token = _request_id.set(request_id)
    try:
        yield
    finally:
        _request_id.reset(token)


# ---------------------------------------------------------------------------- logging


def _timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _access_fields(record: logging.LogRecord) -> dict[str, Any]:
    """gunicorn's access log passes its atoms as the record's arguments: keep the useful ones as fields."""
    atoms = record.args if isinstance(record.args, dict) else {}
    fields: dict[str, Any] = {}
    for atom, name in (("h", "remote_addr"), ("m", "method"), ("U", "path"), ("s", "status"), ("B", "bytes"), ("M", "duration_ms")):
        value = atoms.get(atom)
        if value not in (None, "-"):
            fields[name] = redact(value) if isinstance(value, str) else value
    request_id = valid_request_id(str(atoms.get("{x-request-id}o") or ""))
    if request_id:
        fields["request_id"] = request_id
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the request id and the job, if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        if record.name == "gunicorn.access":
            entry.update(_access_fields(record))
        request_id = getattr(record, "request_id", None) or current_request_id()
        if request_id and "request_id" not in entry:
            entry["request_id"] = request_id
        for name in ("job_id", "outbox_id"):
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = redact("".join(traceback.format_exception(*record.exc_info)))
        elif record.exc_text:
            entry["exception"] = redact(record.exc_text)
        if record.stack_info:
            entry["stack"] = redact(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """Plain lines for development: ``time level logger [request id]: message``, redacted too."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(request_part)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None) or current_request_id()
        if record.name == "gunicorn.access":
            request_id = _access_fields(record).get("request_id")
        record.request_part = f" [{request_id}]" if request_id else ""
        return redact(super().format(record))


def formatter(log_format: str | None = None) -> logging.Formatter:
    """The formatter ``LOG_FORMAT`` asks for (``json`` or ``text``; read from the environment when not given)."""
    if log_format is None:
        from expertbook import config

        log_format = config.from_env()["LOG_FORMAT"]
    return JsonFormatter() if log_format == "json" else TextFormatter()


def LogFormatter() -> logging.Formatter:  # noqa: N802 - a factory for logging.config's "()" key
    """The formatter of deploy/gunicorn.conf.py's loggers: the app's own, chosen by ``LOG_FORMAT``."""
    return formatter()


_HANDLER_MARK = "_expertbook_handler"


def configure_logging(log_format: str) -> None:
    """Send the root logger's records to stderr in ``log_format`` (idempotent: one handler, the last format)."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, _HANDLER_MARK, False)), None)
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        setattr(handler, _HANDLER_MARK, True)
        root.addHandler(handler)
    handler.setFormatter(formatter(log_format))
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


# ---------------------------------------------------------------------------- metrics

# Booking endpoints by their URL rule (public addresses, stable across refactors) and method: a POST
# answered 2xx/3xx made a booking, 409 or 429 refused one, any other 4xx was invalid input.
BOOKING_RULES = {
    "/clinic/slots/<int:slot_id>/book": "clinic",
    "/clinic/staff/slots/<int:slot_id>/walk-in": "clinic",
    "/api/appointments": "clinic",
    "/api/organization/slots/<int:slot_id>/walk-in": "clinic",
    "/expert/<handle>/<slug>": "expert",
    "/api/bookings": "expert",
}

# Request latency buckets (seconds): a booking takes a few milliseconds; a page render tens of them.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_metrics: dict[str, Any] = {}


def _define_metrics() -> dict[str, Any]:
    """The process's metric objects, made once (prometheus_client reads PROMETHEUS_MULTIPROC_DIR then)."""
    if not _metrics:
        from prometheus_client import Counter, Histogram

        _metrics["requests"] = Histogram(
            "expertbook_http_request_duration_seconds", "Time to answer a request, by endpoint, method and status",
            ["endpoint", "method", "status"], buckets=LATENCY_BUCKETS)
        _metrics["bookings"] = Counter(
            "expertbook_bookings", "Booking attempts by kind (clinic, expert) and outcome (made, refused, invalid)",
            ["kind", "outcome"])
        _metrics["failures"] = Counter(
            "expertbook_failures", "Failed calls to SMTP or Zoom counted in this process (without Redis)", ["service", "kind"])
    return _metrics


class _Instrumented:
    """WSGI middleware: the request id (in, out and in the logs) and one histogram observation per request."""

    def __init__(self, wsgi_app, app: Flask):
        self.wsgi_app = wsgi_app
        self.app = app
        self.metrics = _define_metrics()
        self._bookings: dict[tuple[str, str], str] | None = None

    def booking_kind(self, endpoint: str, method: str) -> str | None:
        if self._bookings is None:  # the URL map is complete once the app serves
            self._bookings = {
                (rule.endpoint, "POST"): BOOKING_RULES[rule.rule]
                for rule in self.app.url_map.iter_rules() if rule.rule in BOOKING_RULES and "POST" in (rule.methods or ())
            }
        return self._bookings.get((endpoint, method))

    def __call__(self, environ, start_response):
        request_id = valid_request_id(environ.get("HTTP_X_REQUEST_ID")) or new_request_id()
        environ["HTTP_X_REQUEST_ID"] = request_id
        header = (REQUEST_ID_HEADER, request_id)
        status_code = [500]

        def respond(status, headers, exc_info=None):
            status_code[0] = int(status.split(" ", 1)[0])
            headers = [h for h in headers if h[0].lower() != "x-request-id"]
            headers.append(header)
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        token = _request_id.set(request_id)
        started = time.perf_counter()
        try:
            return self.wsgi_app(environ, respond)
        finally:
            elapsed = time.perf_counter() - started
            _request_id.reset(token)
            self._observe(environ, status_code[0], elapsed)

    def _observe(self, environ, status: int, elapsed: float) -> None:
        endpoint = environ.get("expertbook.endpoint") or "none"
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in _METHODS:
            method = "other"
        try:
            self.metrics["requests"].labels(endpoint, method, str(status)).observe(elapsed)
            kind = self.booking_kind(endpoint, method) if method == "POST" else None
            if kind:
                outcome = "made" if status < 400 else "refused" if status in (409, 429) else "invalid" if status < 500 else None
                if outcome:
                    self.metrics["bookings"].labels(kind, outcome).inc()
        except Exception:  # metrics must never cost a request
            logging.getLogger(__name__).exception("could not record the request's metrics")


_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


def init_app(app: Flask) -> None:
    """Request ids, logs and request metrics for ``app``."""
    configure_logging(app.config["LOG_FORMAT"])

    @app.before_request
    def _note_endpoint():
        from flask import request

        # The matched URL rule's endpoint, for the middleware's labels (a 404 has none: "none").
        request.environ["expertbook.endpoint"] = request.endpoint

    app.wsgi_app = _Instrumented(app.wsgi_app, app)


# ---------------------------------------------------------------------------- what the workers report (through Redis)

HEARTBEATS_KEY = "expertbook:worker-heartbeats"
FAILURES_KEY = "expertbook:failures"
# A worker not seen for this long is forgotten by the metrics (it stopped, or was replaced).
FORGET_WORKER_SECONDS = 3600


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def beat(redis, name: str | None = None, now: float | None = None) -> None:
    """Record that the worker ``name`` (this process by default) is alive now. Raises redis errors."""
    redis.hset(HEARTBEATS_KEY, name or worker_name(), f"{now if now is not None else time.time():.3f}")


def heartbeats(redis, now: float | None = None) -> dict[str, float]:
    """Seconds since each worker still remembered was last seen; forgets those gone for an hour."""
    now = now if now is not None else time.time()
    ages = {}
    stale = []
    for raw_name, raw_value in (redis.hgetall(HEARTBEATS_KEY) or {}).items():
        name = raw_name.decode() if isinstance(raw_name, bytes) else raw_name
        try:
            age = max(now - float(raw_value), 0.0)
        except ValueError:
            age = float("inf")
        if age > FORGET_WORKER_SECONDS:
            stale.append(raw_name)
        else:
            ages[name] = age
    if stale:
        redis.hdel(HEARTBEATS_KEY, *stale)
    return ages


def count_failure(service: str, kind: str) -> None:
    """Count one failed call to ``service`` (``smtp``, ``zoom``) of ``kind`` (``transient``, ``permanent``).

    With Redis the count is shared by every process on every machine (the workers make most of these
    calls, and have no metrics endpoint of their own); without it, this process counts. Never raises.
    """
    from flask import current_app, has_app_context

    try:
        redis_url = current_app.config.get("REDIS_URL") if has_app_context() else None
        if redis_url:
            from redis import Redis

            client = current_app.extensions.get("observability_redis")
            if client is None:
                client = Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=1)
                current_app.extensions["observability_redis"] = client
            client.hincrby(FAILURES_KEY, f"{service}:{kind}", 1)
        else:
            _define_metrics()["failures"].labels(service, kind).inc()
    except Exception as exc:  # a lost count is better than a failed send
        logging.getLogger(__name__).warning("could not count a %s failure (%s)", service, exc)


def shared_failures(redis) -> Iterable[tuple[str, str, float]]:
    """(service, kind, count) of every failure counted in Redis."""
    for raw_field, raw_value in (redis.hgetall(FAILURES_KEY) or {}).items():
        field = raw_field.decode() if isinstance(raw_field, bytes) else raw_field
        service, _, kind = field.partition(":")
        yield service, kind, float(raw_value)


class Heartbeat:
    """A worker's heartbeat: every ``interval`` seconds, in its own thread, this process's time in Redis.

    ``/healthz`` and ``/metrics`` read it: no worker seen for 2 minutes while emails are due means none
    is working. It beats whatever RQ is doing (a long batch included), and stops with the process.
    """

    def __init__(self, redis_url: str, interval: float = 30.0, name: str | None = None):
        import threading

        self.redis_url = redis_url
        self.interval = interval
        self.name = name or worker_name()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="worker-heartbeat", daemon=True)

    def start(self) -> "Heartbeat":
        self.thread.start()
        return self

    def _run(self) -> None:
        from redis import Redis

        client = Redis.from_url(self.redis_url, socket_connect_timeout=2, socket_timeout=2)
        while not self.stopped.is_set():
            try:
                beat(client, self.name)
            except Exception as exc:  # Redis away: the next beat tries again; healthz says redis is down meanwhile
                logging.getLogger(__name__).debug("heartbeat not recorded (%s)", exc)
            self.stopped.wait(self.interval)
        try:
            client.hdel(HEARTBEATS_KEY, self.name)  # a clean stop is not a dead worker
        except Exception:
            pass

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)


def job_request_id(key: int | str | None = None) -> str | None:
    """The request id the RQ job being run carries (for ``key``, of a batch job's ``request_ids``), if any."""
    try:
        from rq import get_current_job

        job = get_current_job()
    except Exception:
        return None
    if job is None:
        return None
    meta = job.meta or {}
    if key is not None:
        return valid_request_id((meta.get("request_ids") or {}).get(str(key)))
    return valid_request_id(meta.get("request_id"))


def job_meta(request_ids: dict[int, str | None] | None = None) -> dict[str, Any]:
    """The ``meta`` of an RQ job to enqueue: the current request id, or one per row of a batch."""
    if request_ids is not None:
        known = {str(key): value for key, value in request_ids.items() if value}
        return {"request_ids": known} if known else {}
    request_id = current_request_id()
    return {"request_id": request_id} if request_id else {}
