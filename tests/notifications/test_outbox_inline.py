"""The outbox without Redis: rows are written with the caller's transaction and delivered in-process
after commit, to a real SMTP server on loopback (or to the log when there is no MAIL_SERVER)."""
from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from expertbook.auth.models import User
from expertbook.database import transaction, utcnow
from expertbook.errors import ValidationFailed
from expertbook.extensions import db
from expertbook.notifications import service
from expertbook.ics import event_ics
from expertbook.notifications.models import OutboxEmail
from tests.factories import queue_notice
from tests.notifications.conftest import mail_config


@pytest.fixture
def app_config(smtp):
    return mail_config(smtp)


def rows() -> list[OutboxEmail]:
    db.session.rollback()  # a fresh snapshot: the writes under test were committed by other sessions
    return list(db.session.scalars(select(OutboxEmail).order_by(OutboxEmail.id)))


def test_queue_email_joins_the_callers_transaction_and_delivers_after_commit(app, smtp):
    """The generic usage: a service writes its change and its email in one transaction."""
    with transaction():
        db.session.add(User(name="Ann", email="ann@example.com", password_hash="x"))
        assert smtp.messages == []  # nothing leaves before the commit
        outbox_id = service.queue_email(
            "notice", "ann@example.com", "Ann & Lee's \"Co\"", "notice",
            {"heading": "Welcome", "message": "<script>alert(1)</script> & you", "action_url": "http://testserver.example/a?b=1&c=2"},
            subject="Welcome to ExpertBook",
        )
        assert smtp.messages == []
    [message] = smtp.wait_for(1)
    [row] = rows()
    assert row.id == outbox_id and row.status == "sent" and row.attempts == 1 and row.sent_at is not None
    assert message["Message-ID"] == row.message_id
    assert message["Subject"] == "Welcome to ExpertBook"
    assert message["To"].addresses[0].addr_spec == "ann@example.com"
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "<script>alert(1)</script> & you" in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; you" in html and "<script>" not in html
    assert "Ann &amp; Lee&#39;s &#34;Co&#34;" in html  # the recipient's name is user content too
    assert message["To"].addresses[0].display_name == 'Ann & Lee\'s "Co"'
    assert 'href="http://testserver.example/a?b=1&amp;c=2"' in html


def test_a_rolled_back_change_sends_nothing(app, smtp):
    with pytest.raises(RuntimeError):
        with transaction():
            service.queue_email("notice", "a@example.com", "A", "notice", {"heading": "h", "message": "m"}, subject="s")
            raise RuntimeError("the booking failed")
    assert rows() == []
    time.sleep(0.1)
    assert smtp.messages == []


def test_without_mail_server_the_email_is_written_to_the_log(app, smtp, notification_logs):
    app.config["MAIL_SERVER"] = None
    queue_notice(subject="Logged, not sent", message="Offline demo body")
    [row] = rows()
    assert row.status == "sent"
    assert "Subject: Logged, not sent" in notification_logs.text
    assert "Offline demo body" in notification_logs.text
    assert smtp.messages == [] and smtp.data_commands == 0


def test_the_ics_is_attached_with_its_method(app, smtp):
    start = utcnow() + timedelta(days=2)
    ics = event_ics("booking-1@testserver.example", start, start + timedelta(hours=1), "Consulting", method="CANCEL", sequence=1)
    queue_notice(ics=ics)
    [message] = smtp.wait_for(1)
    assert message.get_content_type() == "multipart/mixed"
    [attachment] = list(message.iter_attachments())
    assert attachment.get_content_type() == "text/calendar"
    assert attachment.get_param("method") == "CANCEL"
    assert attachment.get_filename() == "cancel.ics"
    assert "METHOD:CANCEL" in attachment.get_content() and "STATUS:CANCELLED" in attachment.get_content()
    assert message.get_body(("html",)) is not None and message.get_body(("plain",)) is not None


@pytest.mark.parametrize(
    ("to_email", "to_name", "field"),
    [
        ("victim@example.com\r\nBcc: all@example.com", "Ann", "to_email"),
        ("victim@example.com, other@example.com", "Ann", "to_email"),
        ("victim@example.com;other@example.com", "Ann", "to_email"),
        ("Ann <victim@example.com>", "Ann", "to_email"),
        ("not-an-address", "Ann", "to_email"),
        ("ann@example.com", "Ann\r\nBcc: all@example.com", "to_name"),
        ("ann@example.com", "Ann\nLee", "to_name"),
        ("ann@example.com", "x@example.com, y@example.com", "to_name"),
    ],
)
def test_header_injection_is_refused_by_the_service(app, smtp, to_email, to_name, field):
    with pytest.raises(ValidationFailed) as error:
        queue_notice(to_email=to_email, to_name=to_name)
    assert field in error.value.errors
    assert rows() == []


def test_a_subject_with_a_line_break_is_refused(app, smtp):
    with pytest.raises(ValidationFailed) as error:
        queue_notice(subject="Hi\r\nBcc: all@example.com")
    assert "subject" in error.value.errors


def test_a_dedupe_key_queues_once_and_never_breaks_the_callers_transaction(app, smtp):
    first = queue_notice(dedupe_key="zoom-reauth:7:1")
    with transaction():
        db.session.add(User(name="Kept", email="kept@example.com", password_hash="x"))
        assert service.queue_email("notice", "a@example.com", "A", "notice", {"heading": "h", "message": "m"},
                                   subject="again", dedupe_key="zoom-reauth:7:1") is None
    assert first is not None
    assert [row.id for row in rows()] == [first]
    assert db.session.scalar(select(User.id).where(User.email == "kept@example.com")) is not None
    assert len(smtp.wait_for(1)) == 1


def test_550_marks_the_row_failed_with_the_reason_and_does_not_retry(app, smtp):
    smtp.then("550 5.1.1 No such mailbox")
    queue_notice()
    [row] = rows()
    assert row.status == "failed" and row.attempts == 1
    assert "550" in row.last_error and "No such mailbox" in row.last_error
    assert service.relay(now=utcnow() + timedelta(days=1)) == 0
    assert service.send(row.id) == "skipped"
    assert smtp.data_commands == 1 and smtp.messages == []


def test_451_is_retried_with_backoff_then_delivered_once(app, smtp):
    smtp.then("451 4.3.0 Try again later", "451 4.3.0 Try again later")
    outbox_id = queue_notice()
    [row] = rows()
    assert row.status == "pending" and row.attempts == 1 and "451" in row.last_error
    assert row.next_attempt_at > utcnow() - timedelta(seconds=1)
    assert service.send(outbox_id) in {"skipped", "retry"}  # not due yet: skipped; due: second 451
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and rows()[0].status != "sent":
        service.relay()
        time.sleep(0.05)
    [row] = rows()
    assert row.status == "sent" and row.attempts == 3
    assert len(smtp.messages) == 1 and smtp.data_commands == 3


def test_transient_failures_stop_at_max_attempts(app, smtp):
    app.config["MAIL_MAX_ATTEMPTS"] = 3
    smtp.then(*["451 4.3.0 busy"] * 10)
    queue_notice()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and rows()[0].status != "failed":
        service.relay()
        time.sleep(0.05)
    [row] = rows()
    assert row.status == "failed" and row.attempts == 3
    assert row.last_error.startswith("gave up after 3 attempts") and "451" in row.last_error
    time.sleep(0.3)
    service.relay()
    assert smtp.data_commands == 3


def test_a_refused_connection_is_transient(app, smtp):
    from tests.conftest import free_port

    app.config["MAIL_PORT"] = free_port()
    queue_notice()
    [row] = rows()
    assert row.status == "pending" and row.attempts == 1 and row.last_error
    app.config["MAIL_PORT"] = smtp.port
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and rows()[0].status != "sent":
        service.relay()
        time.sleep(0.05)
    assert rows()[0].status == "sent" and len(smtp.messages) == 1


def test_a_hanging_server_times_out_and_the_email_is_retried(app, smtp):
    app.config["MAIL_TIMEOUT"] = 0.5
    smtp.then("hang")
    started = time.monotonic()
    queue_notice()
    assert time.monotonic() - started < 5  # MAIL_TIMEOUT is 0.5 s: the caller is not held by the hang
    [row] = rows()
    assert row.status == "pending" and "timed out" in row.last_error
    smtp.release()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and rows()[0].status != "sent":
        service.relay()
        time.sleep(0.05)
    assert rows()[0].status == "sent" and len(smtp.messages) == 1


def test_concurrent_sends_of_one_row_deliver_it_once(app, smtp):
    app.config["MAIL_SERVER"] = None  # queue it without delivering: the row stays pending
    with transaction():
        db.session.add(row := OutboxEmail(
            kind="notice", to_email="a@example.com", to_name="A", subject="s", template="notice",
            context={"heading": "h", "message": "m"}, message_id="<race@testserver.example>",
        ))
    outbox_id = row.id
    app.config["MAIL_SERVER"] = "127.0.0.1"
    results: list[str] = []
    barrier = threading.Barrier(4)

    def worker():
        with app.app_context():
            barrier.wait()
            results.append(service.send(outbox_id))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert sorted(results) == ["sent", "skipped", "skipped", "skipped"]
    assert len(smtp.wait_for(1)) == 1
    time.sleep(0.1)
    assert len(smtp.messages) == 1


def test_ordinary_addresses_and_names_pass(app, smtp):
    queue_notice(to_email="o'brien@example.com", to_name="Siva Kümar O'Brien")
    [message] = smtp.wait_for(1)
    assert message["To"].addresses[0].addr_spec == "o'brien@example.com"
    assert message["To"].addresses[0].display_name == "Siva Kümar O'Brien"


def test_an_unknown_template_is_a_programming_error_and_writes_nothing(app, smtp):
    with pytest.raises(ValueError, match="no email template"):
        with transaction():
            service.queue_email("notice", "a@example.com", "A", "no_such_template", {}, subject="s")
    assert rows() == []


def test_a_row_that_cannot_become_an_email_fails_permanently(app, smtp):
    # Written around the service's validation (as a buggy migration or script might): never sendable.
    with transaction():
        db.session.add(row := OutboxEmail(
            kind="notice", to_email="a@example.com", to_name="A\r\nBcc: all@example.com", subject="s", template="notice",
            context={"heading": "h", "message": "m"}, message_id="<bad@testserver.example>",
        ))
    outbox_id = row.id
    assert service.send(outbox_id) == "failed"
    [row] = rows()
    assert row.status == "failed" and row.attempts == 1 and "invalid header" in row.last_error
    assert smtp.data_commands == 0


def test_a_dedupe_key_never_swallows_the_callers_own_integrity_error(app, smtp):
    from sqlalchemy.exc import IntegrityError

    with transaction():
        db.session.add(User(name="First", email="taken@example.com", password_hash="x"))
    with pytest.raises(IntegrityError):
        with transaction():
            db.session.add(User(name="Second", email="taken@example.com", password_hash="x"))
            service.queue_email("notice", "a@example.com", "A", "notice", {"heading": "h", "message": "m"},
                                subject="s", dedupe_key="once")
    assert rows() == []
