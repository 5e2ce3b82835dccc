"""Webhook deliveries against a real receiver on loopback, in-process (no Redis): signatures, retries,
order, giving up, timeouts, redirects and resending."""
from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import select
from standardwebhooks import Webhook

from expertbook.database import transaction, utcnow
from expertbook.extensions import db
from expertbook.notifications.models import OutboxEmail
from expertbook.webhooks import delivery, events, service
from expertbook.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookSubscription
from tests.factories import make_appointment, make_expert, make_service, make_slot, make_staff, make_user


def hospital_hook(receiver, event_types=("appointment.cancelled",), staff=None):
    """A staff admin and a subscription of their hospital to ``event_types`` at the receiver; (staff, subscription, secret)."""
    staff = staff or make_staff()
    subscription, secret = service.create(service.Owner(events.HOSPITAL, staff.hospital_id), receiver.url, list(event_types),
                                          "HMIS", created_by=staff.id)
    return staff, subscription, secret


def deliveries() -> list[WebhookDelivery]:
    db.session.rollback()
    return list(db.session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


def relay_until(done, timeout: float = 15.0) -> None:
    """Run relay passes (the worker's tick) until ``done()``; the backoff here is a fraction of a second."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "not done in time"
        time.sleep(0.05)
        delivery.relay()


def cancel_one(staff, receiver_user=None):
    from expertbook.clinic import queue as clinic

    from expertbook.clinic.models import Slot

    slot = db.session.scalar(select(Slot).where(Slot.hospital_id == staff.hospital_id)) or make_slot(hospital=staff.hospital)
    patient = receiver_user or make_user("Ravi Patel")
    appointment = make_appointment(slot, patient)
    clinic.cancel(appointment.id, patient.id)
    return appointment


def test_a_cancellation_reaches_the_hospital_signed_per_standard_webhooks(app, receiver):
    staff, subscription, secret = hospital_hook(receiver)
    appointment = cancel_one(staff)

    [request] = receiver.wait_for(1)
    # The receiver's side: the official library verifies the signature with the secret shown once.
    payload = Webhook(secret).verify(request.body, request.headers)
    assert payload["type"] == "appointment.cancelled"
    data = payload["data"]
    assert data["appointmentId"] == appointment.id and data["status"] == "cancelled" and data["cancelledBy"] == "patient"
    assert data["session"]["hospitalId"] == staff.hospital_id and data["session"]["doctorName"] == "Dr. Sharma"
    assert request.headers["content-type"] == "application/json"
    [row] = deliveries()
    assert row.status == "delivered" and row.attempts == 1 and request.headers["webhook-id"] == row.message_id
    assert json.loads(row.payload) == payload
    # A wrong secret, or a changed body, does not verify.
    from standardwebhooks.webhooks import WebhookVerificationError

    with pytest.raises(WebhookVerificationError):
        Webhook(service.signing.new_secret()).verify(request.body, request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(request.body.replace(b"cancelled", b"booked", 1), request.headers)
    # The secret is stored encrypted, not as itself.
    stored = db.session.get(WebhookSubscription, subscription.id).secret
    assert secret not in stored and service.signing.unseal(stored) == secret


def test_nobody_subscribed_writes_nothing_and_other_hospitals_hear_nothing(app, receiver):
    hospital_hook(receiver, ("appointment.booked",))  # another event
    other, _, _ = hospital_hook(receiver)  # another hospital's subscription to the event
    cancel_one(make_staff())
    assert deliveries() == [] and receiver.requests == []
    cancel_one(other)
    assert len(receiver.wait_for(1)) == 1


def test_a_receiver_that_answers_500_three_times_gets_the_event_on_the_fourth_try_once(app, receiver):
    receiver.then(500, 500, 500)
    staff, _, secret = hospital_hook(receiver)
    cancel_one(staff)
    relay_until(lambda: deliveries()[0].status == "delivered")
    time.sleep(0.5)
    delivery.relay()  # a later pass finds nothing to do
    requests = receiver.wait_for(4)
    assert [r.answered for r in requests] == [500, 500, 500, 200]
    assert len(receiver.delivered()) == 1
    # Every attempt is the same message (same webhook-id and body), signed afresh.
    assert len({r.headers["webhook-id"] for r in requests}) == 1 and len({r.body for r in requests}) == 1
    for request in requests:
        Webhook(secret).verify(request.body, request.headers)
    [row] = deliveries()
    assert row.attempts == 4 and row.last_status == 200 and row.last_error is None
    attempts = db.session.scalars(select(WebhookAttempt).where(WebhookAttempt.delivery_id == row.id).order_by(WebhookAttempt.attempt)).all()
    assert [(a.attempt, a.status_code, a.error) for a in attempts] == [(1, 500, "HTTP 500"), (2, 500, "HTTP 500"), (3, 500, "HTTP 500"), (4, 200, None)]
    assert attempts[0].response_excerpt == "receiver says no"


def test_a_subscription_gets_its_events_in_order_one_at_a_time(app, receiver):
    receiver.then(503)
    staff, subscription, _ = hospital_hook(receiver)
    first, second = cancel_one(staff), cancel_one(staff)
    # The second event is committed and dispatched, but waits: the first is not delivered yet.
    assert [r.answered for r in receiver.requests] == [503]
    assert [row.status for row in deliveries()] == ["pending", "pending"]
    relay_until(lambda: all(row.status == "delivered" for row in deliveries()))
    received = [json.loads(r.body)["data"]["appointmentId"] for r in receiver.wait_for(3)]
    assert received == [first.id, first.id, second.id]


def test_after_the_retry_window_the_delivery_fails_and_the_owner_is_emailed_once(app, receiver):
    app.config["WEBHOOK_RETRY_HOURS"] = 1 / 3600  # one second
    receiver.default = 500
    staff, subscription, _ = hospital_hook(receiver)
    colleague = make_user("Second Admin", hospital=staff.hospital, staff_admin=True)
    cancel_one(staff)
    cancel_one(staff)
    relay_until(lambda: all(row.status == "failed" for row in deliveries()))
    rows = deliveries()
    assert all(row.last_status == 500 and row.last_error == "HTTP 500" for row in rows)
    assert db.session.get(WebhookSubscription, subscription.id).failing_since is not None
    emails = db.session.scalars(select(OutboxEmail).where(OutboxEmail.kind == "webhook-failed")).all()
    # One incident, one email to each staff admin of the hospital (not one per failed event).
    assert sorted(email.to_email for email in emails) == sorted([staff.email, colleague.email])
    assert all(receiver.url in email.subject for email in emails)
    # A delivery that succeeds ends the incident.
    receiver.default = 200
    service.resend([service.owner_of(subscription)], subscription.id, rows[0].id)
    assert deliveries()[0].status == "delivered"
    assert db.session.get(WebhookSubscription, subscription.id).failing_since is None


def test_a_receiver_slower_than_the_timeout_counts_as_a_failed_attempt(app, receiver):
    app.config["WEBHOOK_TIMEOUT_SECONDS"] = 0.5
    receiver.then("hang:2")
    staff, _, _ = hospital_hook(receiver)
    started = time.monotonic()
    cancel_one(staff)
    assert time.monotonic() - started < 2
    [row] = deliveries()
    attempt = db.session.scalar(select(WebhookAttempt).where(WebhookAttempt.delivery_id == row.id))
    assert row.status == "pending" and attempt.status_code is None and attempt.error == "timed out"
    relay_until(lambda: deliveries()[0].status == "delivered")


def test_redirects_are_not_followed(app, receiver):
    receiver.then(f"redirect:{receiver.url}?followed=1")
    staff, _, _ = hospital_hook(receiver)
    cancel_one(staff)
    [row] = deliveries()
    assert row.status == "pending" and row.last_status == 302 and row.last_error == "HTTP 302"
    assert [r.path for r in receiver.requests] == ["/hooks/expertbook"]


def test_resend_sends_the_same_message_again(app, receiver):
    staff, subscription, secret = hospital_hook(receiver)
    cancel_one(staff)
    [row] = deliveries()
    owners = [service.owner_of(subscription)]
    service.resend(owners, subscription.id, row.id)
    first, again = receiver.wait_for(2)
    assert first.headers["webhook-id"] == again.headers["webhook-id"] and first.body == again.body
    Webhook(secret).verify(again.body, again.headers)
    assert deliveries()[0].attempts == 2
    # Someone else's subscription: as if it did not exist.
    from expertbook.errors import NotFound

    with pytest.raises(NotFound):
        service.resend([service.Owner(events.HOSPITAL, make_staff().hospital_id)], subscription.id, row.id)


def test_a_test_event_is_signed_and_logged(app, receiver):
    staff, subscription, secret = hospital_hook(receiver)
    service.send_test([service.owner_of(subscription)], subscription.id)
    [request] = receiver.wait_for(1)
    payload = Webhook(secret).verify(request.body, request.headers)
    assert payload["type"] == "webhook.test" and payload["data"]["subscriptionId"] == subscription.id


def test_a_paused_subscription_keeps_its_events_until_it_is_resumed(app, receiver):
    staff, subscription, _ = hospital_hook(receiver)
    owners = [service.owner_of(subscription)]
    service.update_subscription(owners, subscription.id, receiver.url, ["appointment.cancelled", "appointment.booked"], "", False)
    cancel_one(staff)
    assert deliveries() == []  # paused: nothing is written for it
    # Events already waiting stay waiting while it is paused.
    service.update_subscription(owners, subscription.id, receiver.url, ["appointment.cancelled"], "", True)
    receiver.then(500)
    cancel_one(staff)
    service.update_subscription(owners, subscription.id, receiver.url, ["appointment.cancelled"], "", False)
    time.sleep(0.3)
    delivery.relay()
    assert len(receiver.requests) == 1 and deliveries()[0].status == "pending"
    service.update_subscription(owners, subscription.id, receiver.url, ["appointment.cancelled"], "", True)
    relay_until(lambda: deliveries()[0].status == "delivered")


# ---------------------------------------------------------------------------- experts


def test_expert_bookings_send_created_rescheduled_and_cancelled(app, receiver):
    from expertbook.experts import service as experts
    from tests.experts.helpers import book_kwargs, next_weekday_at

    expert = make_expert("Dr. Expert")
    subscription, secret = service.create(service.Owner(events.EXPERT, expert.user_id), receiver.url,
                                          ["booking.created", "booking.rescheduled", "booking.cancelled"])
    offering = make_service(expert, location_kind="phone")
    customer = make_user("Ana Customer", "ana@example.com")
    booking = experts.book(customer.id, offering.id, next_weekday_at(10), **book_kwargs(customer))
    experts.reschedule(customer.id, booking.id, next_weekday_at(11))
    experts.cancel(expert.user_id, booking.id, "Unwell")
    received = [Webhook(secret).verify(r.body, r.headers) for r in receiver.wait_for(3)]
    assert [p["type"] for p in received] == ["booking.created", "booking.rescheduled", "booking.cancelled"]
    assert [p["data"]["status"] for p in received] == ["confirmed", "confirmed", "cancelled"]
    assert received[0]["data"]["customerEmail"] == "ana@example.com" and received[2]["data"]["cancelReason"] == "Unwell"
    assert received[1]["data"]["rescheduledFrom"] == received[0]["data"]["start"]


def test_expert_requests_send_created_then_accepted_or_declined(app, receiver):
    from expertbook.experts import service as experts
    from tests.experts.helpers import book_kwargs, next_weekday_at

    expert = make_expert("Dr. Expert")
    subscription, secret = service.create(service.Owner(events.EXPERT, expert.user_id), receiver.url,
                                          ["booking.created", "booking.accepted", "booking.declined"])
    offering = make_service(expert, location_kind="phone", requires_acceptance=True)
    customer = make_user("Ana Customer", "ana@example.com")
    one = experts.book(customer.id, offering.id, next_weekday_at(10), **book_kwargs(customer))
    two = experts.book(customer.id, offering.id, next_weekday_at(12), **book_kwargs(customer))
    experts.respond(expert.user_id, one.id, True)
    experts.respond(expert.user_id, two.id, False)
    received = [Webhook(secret).verify(r.body, r.headers) for r in receiver.wait_for(4)]
    assert [(p["type"], p["data"]["bookingId"], p["data"]["status"]) for p in received] == [
        ("booking.created", one.id, "pending"), ("booking.created", two.id, "pending"),
        ("booking.accepted", one.id, "confirmed"), ("booking.declined", two.id, "declined"),
    ]


def test_rotating_the_encryption_keys_keeps_every_secret(app, receiver):
    from cryptography.fernet import Fernet

    staff, subscription, secret = hospital_hook(receiver)
    old = app.config["TOKEN_ENCRYPTION_KEYS"]
    app.config["TOKEN_ENCRYPTION_KEYS"] = f"{Fernet.generate_key().decode()},{old}"
    result = app.test_cli_runner().invoke(args=["webhooks", "rotate-keys"])
    assert "Re-encrypted 1 webhook signing secret" in result.output
    app.config["TOKEN_ENCRYPTION_KEYS"] = app.config["TOKEN_ENCRYPTION_KEYS"].split(",")[0]  # the old key is gone
    db.session.rollback()
    assert service.signing.unseal(db.session.get(WebhookSubscription, subscription.id).secret) == secret
    service.send_test([service.owner_of(subscription)], subscription.id)
    Webhook(secret).verify(receiver.wait_for(1)[0].body, receiver.requests[0].headers)
