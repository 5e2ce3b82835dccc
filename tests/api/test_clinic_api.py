"""The clinic JSON API: the seed's endpoints and field names, its error table, tenant isolation and the HTTP race."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests
from sqlalchemy import func, select

from expertbook.clinic import states
from expertbook.clinic.models import Appointment, Slot
from expertbook.extensions import db
from tests import factories
from tests.factories import make_appointment, make_hospital, make_slot, make_staff, make_user, make_users


def bearer(app, user) -> dict:
    return factories.bearer(user)


def _written(slot_id: int | None = None) -> tuple[int, int]:
    db.session.rollback()
    appointments = db.session.scalar(select(func.count()).select_from(Appointment))
    booked = db.session.scalar(select(Slot.booked_count).where(Slot.id == slot_id)) if slot_id else 0
    return appointments, booked


def test_staff_save_details_then_patient_searches_and_books(app, client):
    staff = make_staff(make_hospital("Apollo", "Chennai"))
    tomorrow = states.local_today(staff.hospital.timezone) + timedelta(days=1)
    staff_headers = bearer(app, staff)
    db.session.rollback()  # end the test's read snapshot before the app writes elsewhere
    response = client.post(
        "/api/organization/save-details",
        json={
            "hospitalName": "Apollo",
            "location": "Chennai",
            "doctors": [{"doctorName": "Dr. Sharma", "specialization": "Cardiology"}, {"doctorName": "Dr. Rao", "specialization": "Dermatology"}],
            "date": tomorrow.isoformat(),
            "timeSlot": "09:00-12:00",
        },
        headers=staff_headers,
    )
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["created"] == 2
    first = body["slots"][0]
    assert {k: first[k] for k in ("hospitalName", "location", "totalSlots", "bookedSlots", "availableSlots", "isActive", "timeSlot", "date")} == {
        "hospitalName": "Apollo", "location": "Chennai", "totalSlots": 10, "bookedSlots": 0, "availableSlots": 10,
        "isActive": True, "timeSlot": "09:00-12:00", "date": tomorrow.isoformat(),
    }

    patient = make_user()
    found = client.get(
        f"/api/organization/available-slots?date={tomorrow}&location=chennai&specialization=cardio", headers=bearer(app, patient)
    ).get_json()["slots"]
    assert [s["doctorName"] for s in found] == ["Dr. Sharma"]
    booked = client.post(
        "/api/appointments",
        json={"slotId": found[0]["slotId"], "patientName": "Asha", "contactNumber": "9876543210"},
        headers=bearer(app, patient),
    )
    assert booked.status_code == 201
    assert booked.get_json()["tokenNumber"] == 101 and booked.get_json()["remainingSlots"] == 9
    mine = client.get("/api/appointments/my", headers=bearer(app, patient)).get_json()
    assert [a["tokenNumber"] for a in mine["upcoming"]] == [101] and mine["past"] == []
    assert mine["upcoming"][0]["slot"]["doctorName"] == "Dr. Sharma"
    all_appts = client.get("/api/appointments/all", headers=staff_headers).get_json()["appointments"]
    assert [(a["patientName"], a["contactNumber"]) for a in all_appts] == [("Asha", "9876543210")]
    slots = client.get("/api/organization/all-slots", headers=staff_headers).get_json()["slots"]
    assert sorted((s["doctorName"], s["bookedSlots"]) for s in slots) == [("Dr. Rao", 0), ("Dr. Sharma", 1)]


def test_idempotency_key_header_returns_the_same_booking(app, client):
    slot = make_slot()
    patient = make_user()
    headers = {**bearer(app, patient), "Idempotency-Key": "retry-key-0001"}
    payload = {"slotId": slot.id, "patientName": "Asha", "contactNumber": "9876543210"}
    first = client.post("/api/appointments", json=payload, headers=headers)
    second = client.post("/api/appointments", json=payload, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.get_json()["appointment"]["appointmentId"] == second.get_json()["appointment"]["appointmentId"]
    assert second.headers["Idempotent-Replayed"] == "true"
    assert _written(slot.id) == (1, 1)


# ---------------------------------------------------------------------------- the seed's error table


def test_full_slot_is_409_and_writes_nothing(app, client):
    slot = make_slot(capacity=1, booked=1)
    response = client.post("/api/appointments", json={"slotId": slot.id, "patientName": "A", "contactNumber": "9876543210"}, headers=bearer(app, make_user()))
    assert response.status_code == 409 and response.get_json() == {"error": "This slot is fully booked"}
    assert _written(slot.id) == (0, 1)


def test_unknown_slot_is_404_and_writes_nothing(app, client):
    response = client.post("/api/appointments", json={"slotId": 424242, "patientName": "A", "contactNumber": "9876543210"}, headers=bearer(app, make_user()))
    assert response.status_code == 404 and response.get_json() == {"error": "Slot not found"}
    assert _written() == (0, 0)


def test_no_token_is_401_and_writes_nothing(app, client):
    slot = make_slot()
    response = client.post("/api/appointments", json={"slotId": slot.id, "patientName": "A", "contactNumber": "9876543210"})
    assert response.status_code == 401 and response.get_json() == {"error": "No login token found"}
    assert _written(slot.id) == (0, 0)


@pytest.mark.parametrize("with_key", [False, True])
def test_a_token_whose_account_is_gone_is_401_and_writes_nothing(app, client, with_key):
    """Booking skips the separate account lookup; the appointment's foreign key refuses the account instead."""
    slot = make_slot()
    user = make_user()
    token = factories.api_token(user)
    db.session.delete(user)
    db.session.commit()
    headers = {"Authorization": f"Bearer {token}", **({"Idempotency-Key": "gone-account-1"} if with_key else {})}
    response = client.post("/api/appointments", json={"slotId": slot.id, "patientName": "A", "contactNumber": "9876543210"}, headers=headers)
    assert response.status_code == 401 and response.get_json() == {"error": "Invalid token"}
    assert _written(slot.id) == (0, 0)
    assert client.get("/api/appointments/my", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_expired_token_is_401_and_writes_nothing(app, client):
    slot = make_slot()
    expired = factories.api_token(make_user(), hours=-1)
    response = client.post(
        "/api/appointments", json={"slotId": slot.id, "patientName": "A", "contactNumber": "9876543210"}, headers={"Authorization": f"Bearer {expired}"}
    )
    assert response.status_code == 401 and response.get_json() == {"error": "Token expired"}
    assert _written(slot.id) == (0, 0)


@pytest.mark.parametrize("change", ["closed", "past"])
def test_availability_changed_is_409_and_writes_nothing(app, client, change):
    slot = make_slot(closed=True) if change == "closed" else make_slot(days_ahead=-1)
    response = client.post("/api/appointments", json={"slotId": slot.id, "patientName": "A", "contactNumber": "9876543210"}, headers=bearer(app, make_user()))
    assert response.status_code == 409 and response.get_json() == {"error": "Slot availability changed, please refresh"}
    assert _written(slot.id) == (0, 0)


def test_missing_and_invalid_fields_are_422_with_each_field(app, client):
    slot = make_slot()
    headers = bearer(app, make_user())
    missing = client.post("/api/appointments", json={"slotId": slot.id}, headers=headers)
    assert missing.status_code == 422
    assert missing.get_json()["error"] == "Please fill in all fields"
    assert set(missing.get_json()["fields"]) == {"patientName", "contactNumber"}
    invalid = client.post("/api/appointments", json={"slotId": slot.id, "patientName": "A", "contactNumber": "12345"}, headers=headers)
    assert invalid.status_code == 422
    assert invalid.get_json()["fields"] == {"contactNumber": ["The contact number must be exactly 10 digits."]}
    bad_key = client.post(
        "/api/appointments", json={"slotId": slot.id, "patientName": "A", "contactNumber": "9876543210"}, headers={**headers, "Idempotency-Key": "x"}
    )
    assert bad_key.status_code == 422 and "Idempotency-Key" in bad_key.get_json()["fields"]
    assert _written(slot.id) == (0, 0)


def test_save_details_validation_names_fields(app, client):
    staff = make_staff()
    response = client.post(
        "/api/organization/save-details",
        json={"doctors": [{"doctorName": "", "specialization": "ENT"}], "date": "2020-01-01", "timeSlot": "12:00-09:00", "totalSlots": 0},
        headers=bearer(app, staff),
    )
    assert response.status_code == 422
    assert set(response.get_json()["fields"]) == {"doctors[0].doctorName", "date", "timeSlot", "totalSlots"}
    assert db.session.scalar(select(func.count()).select_from(Slot)) == 0


# ---------------------------------------------------------------------------- access


def test_staff_endpoints_are_scoped_to_their_hospital_and_hidden_from_patients(app, client):
    mine = make_slot()
    other_hospital = make_hospital("Other", "Delhi")
    theirs = make_slot(other_hospital)
    make_appointment(theirs, make_user(), patient_name="Secret Patient")
    staff = make_staff(mine.hospital, email="mine@h.example")
    slots = client.get("/api/organization/all-slots", headers=bearer(app, staff)).get_json()["slots"]
    assert [s["slotId"] for s in slots] == [mine.id]
    appointments = client.get("/api/appointments/all", headers=bearer(app, staff)).get_json()["appointments"]
    assert appointments == []
    patient = make_user()
    assert client.get("/api/organization/all-slots", headers=bearer(app, patient)).status_code == 404
    assert client.get("/api/appointments/all", headers=bearer(app, patient)).status_code == 404
    assert client.post("/api/organization/save-details", json={"doctors": [], "date": "2030-01-01"}, headers=bearer(app, patient)).status_code == 404


def test_patients_see_and_cancel_only_their_own(app, client):
    slot = make_slot()
    owner, other = make_users(2)
    appointment = make_appointment(slot, owner)
    assert client.get("/api/appointments/my", headers=bearer(app, other)).get_json() == {"upcoming": [], "past": [], "waitlist": []}
    assert client.post(f"/api/appointments/{appointment.id}/cancel", headers=bearer(app, other)).status_code == 404
    cancelled = client.post(f"/api/appointments/{appointment.id}/cancel", headers=bearer(app, owner))
    assert cancelled.status_code == 200 and cancelled.get_json()["appointment"]["status"] == "cancelled"


# ---------------------------------------------------------------------------- the race, over real HTTP


def test_200_patients_racing_over_http_against_gunicorn_get_exactly_the_capacity(app, gunicorn_server):
    slot_id = make_slot(capacity=10).id
    headers = [bearer(app, u) for u in make_users(200)]
    url = gunicorn_server(workers=3)

    def attempt(h: dict):
        response = requests.post(
            url + "/api/appointments", json={"slotId": slot_id, "patientName": "Racer", "contactNumber": "9876543210"}, headers=h, timeout=60
        )
        return response.status_code, response.json()

    with ThreadPoolExecutor(max_workers=40) as pool:
        outcomes = list(pool.map(attempt, headers))
    booked = sorted(body["tokenNumber"] for status, body in outcomes if status == 201)
    refused = [(status, body) for status, body in outcomes if status != 201]
    assert booked == list(range(101, 111))
    assert len(refused) == 190 and all(r == (409, {"error": "This slot is fully booked"}) for r in refused)
    assert sorted(body["remainingSlots"] for status, body in outcomes if status == 201) == list(range(10))
    assert _written(slot_id) == (10, 10)
