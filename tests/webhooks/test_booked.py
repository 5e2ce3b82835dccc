"""appointment.booked: written by the clinic booking's own statement (no receiver of appointment_booked, so
the online booking stays one statement on PostgreSQL), only for the hospitals that want it; walk-ins too."""
from __future__ import annotations

import json

from sqlalchemy import select
from standardwebhooks import Webhook

from expertbook.clinic import booking as clinic_booking
from expertbook.clinic import signals as clinic_signals
from expertbook.extensions import db
from expertbook.webhooks.models import WebhookDelivery
from tests.factories import make_slot, make_staff, make_user
from tests.webhooks.test_delivery import hospital_hook


def test_no_receiver_of_appointment_booked_is_connected(app):
    # What keeps the online booking a single statement on PostgreSQL (clinic.booking._alone).
    assert not clinic_signals.appointment_booked.receivers
    assert any(part.build.__module__ == "expertbook.webhooks.delivery" for part in clinic_signals.booked_rows)


def test_an_online_booking_reaches_the_hospital_that_wants_it(app, receiver, backend):
    staff, subscription, secret = hospital_hook(receiver, ("appointment.booked",))
    other, _, _ = hospital_hook(receiver, ("appointment.cancelled",))  # another hospital, another event
    slot = make_slot(hospital=staff.hospital)
    patient = make_user("Asha Verma")
    db.session.rollback()
    # On PostgreSQL the booking is still its one statement, outside any transaction.
    assert clinic_booking._alone() == (backend == "postgresql")
    made = clinic_booking.book(slot.id, patient.id, "Asha Verma", "9876543210", "booking-key-0001")
    [request] = receiver.wait_for(1)
    payload = Webhook(secret).verify(request.body, request.headers)
    assert payload["type"] == "appointment.booked"
    data = payload["data"]
    assert data["appointmentId"] == made.appointment_id and data["tokenNumber"] == made.token_number == 101
    assert data["status"] == "booked" and data["patientName"] == "Asha Verma" and data["walkIn"] is False
    assert data["session"]["sessionId"] == slot.id and data["session"]["hospitalId"] == staff.hospital_id
    # Named by the statement, composed by the delivery, stored: every attempt sends the same bytes.
    db.session.rollback()
    [row] = db.session.scalars(select(WebhookDelivery)).all()
    assert row.subscription_id == subscription.id and row.ref_id == made.appointment_id and json.loads(row.payload) == payload
    assert row.give_up_at is not None and request.headers["webhook-id"] == row.message_id
    # A replay of the same booking (same idempotency key) is no new event.
    clinic_booking.book(slot.id, patient.id, "Asha Verma", "9876543210", "booking-key-0001")
    db.session.rollback()
    assert len(db.session.scalars(select(WebhookDelivery)).all()) == 1
    # A booking at a hospital nobody subscribed for writes nothing.
    clinic_booking.book(make_slot(hospital=other.hospital).id, patient.id, "Asha Verma", "9876543210")
    db.session.rollback()
    assert len(db.session.scalars(select(WebhookDelivery)).all()) == 1 and len(receiver.requests) == 1


def test_a_refused_booking_writes_no_event(app, receiver):
    staff, _, _ = hospital_hook(receiver, ("appointment.booked",))
    full = make_slot(hospital=staff.hospital, capacity=1, booked=1)
    from expertbook.errors import Conflict

    try:
        clinic_booking.book(full.id, make_user().id, "Asha Verma", "9876543210")
    except Conflict:
        pass
    db.session.rollback()
    assert db.session.scalars(select(WebhookDelivery)).all() == [] and receiver.requests == []


def test_a_walk_in_is_booked_too(app, receiver):
    staff, _, secret = hospital_hook(receiver, ("appointment.booked",))
    slot = make_slot(hospital=staff.hospital)
    made = clinic_booking.walk_in(slot.id, staff.hospital_id, "Ravi Kumar", "9123456780")
    [request] = receiver.wait_for(1)
    data = Webhook(secret).verify(request.body, request.headers)["data"]
    assert data["appointmentId"] == made.appointment_id and data["walkIn"] is True


def test_a_booking_cancelled_before_its_event_is_composed_still_says_booked(app, receiver):
    # The event is composed when first sent; by then the patient may have cancelled. The booked event
    # still describes the appointment as it was booked (the cancellation is its own event).
    from expertbook.clinic import queue

    staff, _, secret = hospital_hook(receiver, ("appointment.booked",))
    receiver.then(500)
    slot = make_slot(hospital=staff.hospital)
    patient = make_user()
    made = clinic_booking.book(slot.id, patient.id, "Asha Verma", "9876543210")
    queue.cancel(made.appointment_id, patient.id)
    from tests.webhooks.test_delivery import deliveries, relay_until

    relay_until(lambda: deliveries()[0].status == "delivered")
    data = Webhook(secret).verify(receiver.requests[-1].body, receiver.requests[-1].headers)["data"]
    assert data["status"] == "booked" and data["cancelledAt"] is None
