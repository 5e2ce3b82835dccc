"""Request ids, JSON logs with no secret in them, GET /metrics and the workers' heartbeat in /healthz."""
from __future__ import annotations

import io
import json
import logging
import time
import uuid
from datetime import timedelta

import pytest

from expertbook import observability
from expertbook.database import utcnow
from expertbook.extensions import db
from expertbook.notifications.models import PENDING, OutboxEmail
from tests.conftest import redis_database
from tests.factories import make_slot, make_users


@pytest.fixture
def redis_url():
    yield from redis_database(3)  # main's own (area numbers are below tests.conftest.AREA_DATABASES)


# ---------------------------------------------------------------------------- request ids


def test_every_answer_carries_a_request_id_taken_from_the_request_or_made(client):
    given = client.get("/healthz", headers={"X-Request-ID": "abc123-DEF.4:5_6"})
    assert given.headers["X-Request-ID"] == "abc123-DEF.4:5_6"
    made = client.get("/no-such-page")
    assert made.status_code == 404 and len(made.headers["X-Request-ID"]) == 32
    assert client.get("/healthz").headers["X-Request-ID"] != made.headers["X-Request-ID"]


@pytest.mark.parametrize("bad", ["a" * 101, "abc def", "abc\u00e9", "-leading", "<script>", "a\"b", "x;y"])
def test_a_request_id_of_another_shape_is_replaced(client, bad):
    answered = client.get("/healthz", headers={"X-Request-ID": bad}).headers["X-Request-ID"]
    assert answered != bad and len(answered) == 32 and int(answered, 16) >= 0


# ---------------------------------------------------------------------------- logs


def _capture(log_format: str) -> tuple[logging.Handler, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(observability.formatter(log_format))
    return handler, stream


def test_json_logs_are_one_object_per_line_with_the_request_id_and_no_token(app, client):
    handler, stream = _capture("json")
    logger = logging.getLogger("expertbook.test")
    logging.getLogger().addHandler(handler)
    try:
        with observability.request_id_context("rid-1"):
            logger.warning("opened /reset-password/sekrit-1 and\n/experts/manage/sekrit-2/cancel")
            try:
                raise ValueError("at /experts/feed/sekrit-3.ics")
            except ValueError:
                logger.exception("failed on /clinic/move/sekrit-4")
        logger.info("no request: /video/zoom/callback?code=sekrit-5&state=x")
    finally:
        logging.getLogger().removeHandler(handler)
    lines = stream.getvalue().splitlines()
    entries = [json.loads(line) for line in lines]
    assert len(entries) == 3
    assert entries[0]["request_id"] == entries[1]["request_id"] == "rid-1" and "request_id" not in entries[2]
    assert entries[0]["level"] == "WARNING" and entries[0]["logger"] == "expertbook.test" and entries[0]["time"].endswith("Z")
    assert "ValueError" in entries[1]["exception"]
    assert "sekrit" not in stream.getvalue()
    assert "/experts/manage/[redacted]/cancel" in entries[0]["message"] and "/experts/feed/[redacted]" in entries[1]["exception"]
    assert entries[2]["message"].endswith("/video/zoom/callback?[redacted]")


def test_text_logs_for_development_are_redacted_too():
    handler, stream = _capture("text")
    logger = logging.getLogger("expertbook.test")
    logger.addHandler(handler)
    try:
        with observability.request_id_context("rid-2"):
            logger.warning("GET /verify-email/sekrit HTTP/1.1")
    finally:
        logger.removeHandler(handler)
    line = stream.getvalue().strip()
    assert "[rid-2]" in line and "/verify-email/[redacted]" in line and "sekrit" not in line and not line.startswith("{")


def test_gunicorns_access_line_becomes_fields_with_the_answered_request_id():
    record = logging.LogRecord("gunicorn.access", logging.INFO, __file__, 1, '%(h)s "%(r)s" %(s)s', None, None)
    record.args = {"h": "10.0.0.1", "r": "GET /experts/manage/sekrit HTTP/1.1", "s": "200", "m": "GET",
                   "U": "/experts/manage/sekrit", "B": 512, "M": 7, "{x-request-id}o": "f" * 32}
    entry = json.loads(observability.JsonFormatter().format(record))
    assert entry["request_id"] == "f" * 32 and entry["status"] == "200" and entry["path"] == "/experts/manage/[redacted]"
    assert "sekrit" not in json.dumps(entry)


def test_log_format_is_a_setting_refused_when_unknown():
    from expertbook.config import ConfigError, from_env

    assert from_env({"EXPERTBOOK_ENV": "production"})["LOG_FORMAT"] == "json"
    assert from_env({"EXPERTBOOK_ENV": "development"})["LOG_FORMAT"] == "text"
    assert from_env({"EXPERTBOOK_ENV": "production", "LOG_FORMAT": "Text"})["LOG_FORMAT"] == "text"
    with pytest.raises(ConfigError):
        from_env({"LOG_FORMAT": "xml"})


# ---------------------------------------------------------------------------- /metrics


def test_metrics_are_refused_to_other_addresses_and_wrong_tokens(app, client):
    app.config.update(METRICS_ALLOW=["10.1.0.0/16"], METRICS_TOKEN="scrape-secret")
    assert client.get("/metrics").status_code == 404  # the test client is 127.0.0.1
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 404
    assert client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"}).status_code == 200
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 200
    app.config.update(METRICS_TOKEN=None)
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 404


def _sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus exposition (0 if absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def test_metrics_count_requests_and_bookings_made_and_refused(app, client):
    from tests.factories import api_token

    slot_id = make_slot(capacity=1).id
    users = make_users(2)
    before = client.get("/metrics").text
    for user in users:
        client.post("/api/appointments", json={"slotId": slot_id, "patientName": "Asha Rao", "contactNumber": "9876543210"},
                    headers={"Authorization": f"Bearer {api_token(user)}"})
    after = client.get("/metrics")
    assert after.status_code == 200 and after.headers["Content-Type"].startswith("text/plain")
    text = after.text
    made = ("expertbook_bookings_total", {"kind": "clinic", "outcome": "made"})
    refused = ("expertbook_bookings_total", {"kind": "clinic", "outcome": "refused"})
    assert _sample(text, made[0], **made[1]) - _sample(before, made[0], **made[1]) == 1
    assert _sample(text, refused[0], **refused[1]) - _sample(before, refused[0], **refused[1]) == 1
    endpoint = next(rule.endpoint for rule in app.url_map.iter_rules() if rule.rule == "/api/appointments" and "POST" in rule.methods)
    count = "expertbook_http_request_duration_seconds_count"
    assert _sample(text, count, endpoint=endpoint, method="POST", status="201") - _sample(before, count, endpoint=endpoint, method="POST", status="201") == 1
    assert _sample(text, count, endpoint=endpoint, method="POST", status="409") - _sample(before, count, endpoint=endpoint, method="POST", status="409") == 1
    # The booking's email is due: the outbox's gauges say so (emails run in-process here, so it may be sent already).
    assert "expertbook_outbox_due_emails" in text and "expertbook_outbox_oldest_due_age_seconds" in text


def test_every_booking_rule_exists(app):
    """The booking metric names its endpoints by URL: a URL that changed would silently stop being counted."""
    rules = {(rule.rule, method) for rule in app.url_map.iter_rules() for method in rule.methods}
    assert [rule for rule in observability.BOOKING_RULES if (rule, "POST") not in rules] == []


def test_metrics_report_the_outbox_backlog_and_the_oldest_due_email(app, client):
    now = utcnow()
    for minutes in (5, 1):
        db.session.add(OutboxEmail(kind="test", to_email="a@example.com", to_name="A", subject="s", template="t",
                                   context={}, message_id=f"<{uuid.uuid4().hex}@x>", status=PENDING, attempts=0,
                                   next_attempt_at=now - timedelta(minutes=minutes)))
    db.session.commit()
    text = client.get("/metrics").text
    assert _sample(text, "expertbook_outbox_due_emails") == 2
    assert _sample(text, "expertbook_outbox_emails", status="pending") == 2
    assert 299 <= _sample(text, "expertbook_outbox_oldest_due_age_seconds") < 400


# ---------------------------------------------------------------------------- workers: heartbeat, failures


def test_healthz_is_degraded_when_no_worker_was_seen_for_2_minutes_while_emails_are_due(app, client, redis_url):
    from redis import Redis

    app.config["REDIS_URL"] = redis_url
    redis = Redis.from_url(redis_url)
    assert client.get("/healthz").get_json()["status"] == "ok"  # nothing due: no worker needed
    db.session.add(OutboxEmail(kind="test", to_email="a@example.com", to_name="A", subject="s", template="t", context={},
                               message_id=f"<{uuid.uuid4().hex}@x>", status=PENDING, attempts=0, next_attempt_at=utcnow()))
    db.session.commit()
    body = client.get("/healthz").get_json()
    assert body["status"] == "degraded" and body["degraded"] == ["workers"] and "no worker seen" in body["workers"]
    observability.beat(redis, "host:1", now=time.time() - 125)
    assert "125 s" in client.get("/healthz").get_json()["workers"]
    observability.beat(redis, "host:2", now=time.time() - 5)
    body = client.get("/healthz").get_json()
    assert body["status"] == "ok" and body["workers"] == "ok"
    text = client.get("/metrics").text
    assert 4 <= _sample(text, "expertbook_worker_heartbeat_age_seconds", worker="host:2") < 30
    assert 4 <= _sample(text, "expertbook_worker_last_seen_age_seconds") < 30


def test_a_running_heartbeat_beats_and_a_stopped_one_is_forgotten(redis_url):
    from redis import Redis

    heartbeat = observability.Heartbeat(redis_url, interval=0.05, name="w:1").start()
    try:
        deadline = time.monotonic() + 5
        while "w:1" not in observability.heartbeats(Redis.from_url(redis_url)) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert observability.heartbeats(Redis.from_url(redis_url))["w:1"] < 1
    finally:
        heartbeat.stop()
    assert "w:1" not in observability.heartbeats(Redis.from_url(redis_url))


def test_smtp_failures_are_counted_for_every_machine_through_redis(app, client, redis_url):
    from expertbook.notifications import mailer
    from tests.conftest import free_port

    app.config.update(REDIS_URL=redis_url, MAIL_SERVER="127.0.0.1", MAIL_PORT=free_port(), MAIL_TIMEOUT=1)
    from email.message import EmailMessage

    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@example.com", "b@example.com", "s"
    message.set_content("hello")
    with pytest.raises(mailer.TransientFailure):
        mailer.deliver(message)  # nobody listens on that port
    assert _sample(client.get("/metrics").text, "expertbook_external_failures_total", service="smtp", kind="transient") == 1
