"""Emails queued by name (``queue_composed``): the booking writes one small row, the worker composes it.

Redis is pointed at a closed port while the booking commits, so its row waits in the outbox exactly as
written; the test then sends it in-process, as a worker would.
"""
from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import delete, func, select, update

from expertbook.auth.models import User
from expertbook.clinic import booking
from expertbook.clinic.models import Appointment
from expertbook.extensions import db
from expertbook.notifications import service
from expertbook.notifications.models import OutboxEmail
from tests.factories import login, make_admin, make_slot, make_user
from tests.notifications.conftest import closed_port_url, mail_config


@pytest.fixture
def app_config(smtp):
    # Redis unreachable: after the commit the row stays pending, untouched, for the test to look at.
    return mail_config(smtp, REDIS_URL=closed_port_url(), RUN_JOBS_INLINE=False)


def _row() -> OutboxEmail:
    db.session.rollback()
    [row] = db.session.scalars(select(OutboxEmail))
    return row


def _deliver_in_process(app) -> None:
    app.config["REDIS_URL"] = ""


def test_a_booking_writes_only_a_named_row_and_sending_composes_it(app, smtp, backend):
    slot = make_slot()
    patient = make_user(name="Priya Raman", email="priya@example.com")
    made = booking.book(slot.id, patient.id, "Karthik Raman", "9876543210")
    row = _row()
    assert (row.kind, row.ref_id, row.status) == ("clinic-token", made.appointment.id, "pending")
    assert row.template is None and row.to_email is None and row.subject is None and row.ics_text is None
    # Due by the app's clock (the worker compares it with its own): on PostgreSQL the booking statement's own time.
    booked_at = db.session.get(Appointment, made.appointment.id).booked_at
    if backend == "postgresql":
        assert row.next_attempt_at == booked_at
    else:
        assert timedelta(0) <= row.next_attempt_at - booked_at < timedelta(seconds=5)
    _deliver_in_process(app)
    assert service.send(row.id) == "sent"
    [message] = smtp.wait_for(1)
    row = _row()
    # The parts are stored with the row, as if it had been written whole.
    assert row.to_email == "priya@example.com" and row.template == "clinic/token_confirmed"
    assert row.subject == message["Subject"] and "Your token 101" in row.subject
    assert row.ics_method == "REQUEST" and "BEGIN:VEVENT" in row.ics_text
    assert message["Message-ID"] == row.message_id
    assert "Karthik Raman" in message.get_body(("plain",)).get_content()


def test_the_admin_page_shows_a_row_not_yet_composed(app, client, smtp):
    slot = make_slot()
    booking.book(slot.id, make_user().id, "A", "9876543210")
    login(client, make_admin(email="admin@example.com"))
    page = client.get("/notifications").get_data(as_text=True)
    assert "clinic-token" in page and "written when first sent" in page
    assert "None" not in page


def test_a_named_email_is_composed_once_and_every_attempt_sends_the_same_message(app, smtp, monkeypatch):
    calls = []
    compose = service._composers["clinic-token"]
    monkeypatch.setitem(service._composers, "clinic-token", lambda ref_id: calls.append(ref_id) or compose(ref_id))
    slot = make_slot()
    booking.book(slot.id, make_user(email="p@example.com").id, "P", "9876543210")
    row_id = _row().id
    _deliver_in_process(app)
    smtp.then("451 4.3.0 Try later")
    assert service.send(row_id) == "retry"
    first = _row()
    assert first.status == "pending" and first.attempts == 1 and first.subject
    # The patient changes their name: the retry still sends the message the first attempt built.
    db.session.execute(update(User).where(User.email == "p@example.com").values(name="Renamed"))
    db.session.commit()
    time.sleep(0.25)  # past the (test-short) backoff
    assert service.send(row_id) == "sent"
    [message] = smtp.wait_for(1)
    assert calls == [first.ref_id]
    assert message["Subject"] == first.subject and "Renamed" not in message["To"]


def test_a_named_email_whose_appointment_is_gone_fails_visibly_and_is_not_retried(app, client, smtp):
    slot = make_slot()
    made = booking.book(slot.id, make_user().id, "A", "9876543210")
    db.session.execute(delete(Appointment).where(Appointment.id == made.appointment.id))
    db.session.commit()
    _deliver_in_process(app)
    assert service.send(_row().id) == "failed"
    row = _row()
    assert row.status == "failed" and "no longer exists" in row.last_error
    assert service.send(row.id) == "skipped"
    assert smtp.messages == []
    # An admin's retry names the kind, as there is no recipient yet.
    login(client, make_admin(email="admin@example.com"))
    assert client.post_form(f"/notifications/{row.id}/retry").status_code == 303
    page = client.get("/notifications?status=failed").get_data(as_text=True)
    assert f"Email {row.id} (clinic-token) is queued again." in page and "to None" not in page


def test_a_named_email_to_an_address_that_cannot_be_mailed_fails_at_sending(app, smtp):
    slot = make_slot()
    patient = make_user(email="ok@example.com")
    booking.book(slot.id, patient.id, "A", "9876543210")
    # Written around the forms, which refuse it: the composer's parts get the same checks as queue_email.
    db.session.execute(update(User).where(User.id == patient.id).values(email="a@b.example, evil@example.com"))
    db.session.commit()
    _deliver_in_process(app)
    assert service.send(_row().id) == "failed"
    row = _row()
    assert "to_email" in row.last_error and row.to_email is None
    assert smtp.messages == []


def test_queue_composed_refuses_a_kind_without_a_composer(app):
    with pytest.raises(ValueError, match="no composer"):
        service.queue_composed("no-such-kind", 1)
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(OutboxEmail)) == 0


def test_an_attempt_that_lost_its_claim_while_composing_sends_nothing(app, smtp, monkeypatch):
    slot = make_slot()
    booking.book(slot.id, make_user().id, "A", "9876543210")
    row_id = _row().id
    compose = service._composers["clinic-token"]

    def slow_composer(ref_id):
        # Meanwhile the claim expired and another worker claimed the row (its attempt number moved on).
        with db.engine.begin() as other:
            other.execute(update(OutboxEmail).where(OutboxEmail.id == row_id).values(attempts=OutboxEmail.attempts + 1))
        return compose(ref_id)

    monkeypatch.setitem(service._composers, "clinic-token", slow_composer)
    _deliver_in_process(app)
    assert service.send(row_id) == "skipped"
    row = _row()
    assert row.status == "sending" and row.template is None and row.message_id is None
    assert smtp.messages == []


def test_rqs_job_timeout_stops_a_batch_and_leaves_its_rows_for_the_relay(app, smtp, monkeypatch):
    from rq.timeouts import JobTimeoutException

    from expertbook.notifications import jobs

    tried = []

    def timed_out(outbox_id):
        tried.append(outbox_id)
        raise JobTimeoutException("Task exceeded maximum timeout value")

    monkeypatch.setattr(service, "send", timed_out)
    with pytest.raises(JobTimeoutException):
        jobs.send_emails([1, 2, 3])
    assert tried == [1]
