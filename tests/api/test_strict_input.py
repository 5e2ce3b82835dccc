"""Issue 12, "No input gives a 500": every case found, as a regression test of the API.

Bad input answers a clear 4xx with JSON ``{"error", "fields"}`` and stores nothing; JSON types are
strict; ids outside 1..2^31-1 are 404; extreme dates and NUL bytes are refused with a message."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from expertbook.clinic.models import Appointment
from expertbook.experts.models import Booking, Service
from expertbook.extensions import db
from tests import factories
from tests.experts.helpers import next_weekday_at
from tests.factories import PASSWORD, make_appointment, make_expert, make_hospital, make_service, make_slot, make_staff, make_user

HUGE = "99999999999999999999"


def bearer(app, user) -> dict:
    return factories.bearer(user)


def count(model) -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(model))


def assert_field_error(response, *names: str, status: int = 422) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert isinstance(body["error"], str) and body["error"]
    assert set(names) <= set(body["fields"]), body
    return body


# ---------------------------------------------------------------------------- ids beyond the integer range


def test_ids_beyond_the_database_range_are_404(app, client):
    staff = make_staff()
    customer = make_user()
    headers = bearer(app, customer)
    assert client.patch(f"/api/bookings/{HUGE}", json={"action": "cancel"}, headers=headers).status_code == 404
    assert client.patch("/api/bookings/0", json={"action": "cancel"}, headers=headers).status_code == 404
    assert client.post(f"/api/appointments/{2**31}/cancel", headers=headers).status_code == 404
    response = client.get(f"/api/experts/{10**20}/availability?date=2030-01-01", headers=headers)
    assert response.status_code == 404 and "error" in response.get_json()
    for query in ("slotId=-35629367905921", f"slotId={HUGE}", "slotId=0"):
        response = client.get(f"/api/appointments/all?{query}", headers=bearer(app, staff))
        assert response.status_code == 404 and response.get_json() == {"error": "Slot not found"}, query
    assert client.get(f"/api/organization/all-slots?doctorId={HUGE}", headers=bearer(app, staff)).status_code == 404
    assert client.get(f"/api/event-types?expertId=-1", headers=headers).status_code == 404
    # Not a number at all is a field error, not a missing object.
    assert_field_error(client.get("/api/appointments/all?slotId=abc", headers=bearer(app, staff)), "slotId")


def test_body_ids_beyond_the_range_are_404_and_book_nothing(app, client):
    headers = bearer(app, make_user())
    for slot_id in (2**31, -1, 0, 10**30):
        response = client.post("/api/appointments", json={"slotId": slot_id, "patientName": "A", "contactNumber": "9876543210"}, headers=headers)
        assert response.status_code == 404 and response.get_json() == {"error": "Slot not found"}, slot_id
    response = client.post("/api/bookings", json={"serviceId": 2**40, "start": "2030-01-01T10:00:00Z"}, headers=headers)
    assert response.status_code == 404
    assert count(Appointment) == 0 and count(Booking) == 0


# ---------------------------------------------------------------------------- strict JSON types


def test_a_float_or_boolean_id_books_nothing(app, client):
    slot = make_slot()
    headers = bearer(app, make_user())
    for bad in (1.5, float(slot.id), True, str(slot.id), [slot.id], {"id": slot.id}):
        response = client.post("/api/appointments", json={"slotId": bad, "patientName": "A", "contactNumber": "9876543210"}, headers=headers)
        assert_field_error(response, "slotId")
    assert count(Appointment) == 0


def test_expert_booking_fields_take_only_their_types(app, client):
    profile = make_expert(timezone="Europe/London")
    svc = make_service(profile)
    customer = make_user()
    start = next_weekday_at(10).isoformat()
    headers = bearer(app, customer)
    cases = [
        ({"serviceId": True, "start": start}, "serviceId"),
        ({"serviceId": svc.id + 0.5, "start": start}, "serviceId"),
        ({"serviceId": svc.id, "start": start, "notes": {"text": "hi"}}, "notes"),
        ({"serviceId": svc.id, "start": start, "name": ["Erin"]}, "name"),
        ({"serviceId": svc.id, "start": start, "phone": 2079460000}, "phone"),
        ({"serviceId": svc.id, "start": start, "email": None}, "email"),
        ({"serviceId": svc.id, "start": 1767258000}, "start"),
        ({"serviceId": svc.id, "start": start, "notes": "a\u0000b"}, "notes"),
        ({"serviceId": svc.id, "start": start, "name": "Erin \ud800"}, "name"),
    ]
    for payload, field in cases:
        assert_field_error(client.post("/api/bookings", json=payload, headers=headers), field)
    assert count(Booking) == 0
    # The same request with the right types is booked.
    ok = client.post("/api/bookings", json={"serviceId": svc.id, "start": start, "name": "Erin", "notes": "hi"}, headers=headers)
    assert ok.status_code == 201 and ok.get_json()["booking"]["customerName"] == "Erin" and ok.get_json()["booking"]["notes"] == "hi"


def test_event_type_fields_take_only_their_types_and_the_forms_bounds(app, client):
    profile = make_expert()
    headers = bearer(app, profile.user)
    base = {"title": "Review", "duration": 30}
    cases = [
        ({"duration": 30.9}, "duration"),
        ({"duration": "30"}, "duration"),
        ({"duration": True}, "duration"),
        ({"duration": 1000000000000}, "duration"),
        ({"duration": 4}, "duration"),
        ({"duration": 481}, "duration"),
        ({"requiresAcceptance": "false"}, "requiresAcceptance"),
        ({"requiresAcceptance": 0}, "requiresAcceptance"),
        ({"hidden": None}, "hidden"),
        ({"price": 1e308}, "price"),
        ({"price": -1}, "price"),
        ({"price": 1_000_000.01}, "price"),
        ({"price": 49.505}, "price"),
        ({"price": "50"}, "price"),
        ({"price": True}, "price"),
        ({"bufferBefore": 1.5}, "bufferBefore"),
        ({"location": "moon"}, "location"),
        ({"title": ["Review"]}, "title"),
        ({"currency": 840}, "currency"),
    ]
    for change, field in cases:
        assert_field_error(client.post("/api/event-types", json={**base, **change}, headers=headers), field)
    huge = assert_field_error(client.post("/api/event-types", json={"title": "X", "duration": 1000000000000, "price": 1e308}, headers=headers), "duration", "price")
    assert huge["fields"]["duration"] == ["Enter a number from 5 to 480."]
    assert huge["fields"]["price"] == ["Enter an amount from 0 to 1,000,000."]
    assert count(Service) == 0
    made = client.post("/api/event-types", json={**base, "price": 49.5, "requiresAcceptance": False, "duration": 480}, headers=headers)
    assert made.status_code == 201
    event = made.get_json()["eventType"]
    assert (event["price"], event["requiresAcceptance"], event["duration"]) == (49.5, False, 480)


def test_non_finite_and_too_deep_json_is_refused(app, client):
    headers = {**bearer(app, make_expert().user), "Content-Type": "application/json"}
    for raw in ('{"title": "X", "duration": 30, "price": NaN}', '{"title": "X", "duration": 30, "price": Infinity}', "[" * 100_000 + "]" * 100_000, '{"title": "X", "duration": 1' + "0" * 5000 + "}"):
        response = client.post("/api/event-types", data=raw, headers=headers)
        assert_field_error(response, "body")
    assert count(Service) == 0


def test_clinic_fields_take_only_their_types(app, client):
    slot = make_slot()
    staff = make_staff()
    patient_headers = bearer(app, make_user())
    for payload, field in [
        ({"slotId": slot.id, "patientName": ["Asha"], "contactNumber": "9876543210"}, "patientName"),
        ({"slotId": slot.id, "patientName": "Asha", "contactNumber": 9876543210}, "contactNumber"),
        ({"slotId": slot.id, "patientName": "A\u0000sha", "contactNumber": "9876543210"}, "patientName"),
    ]:
        assert_field_error(client.post("/api/appointments", json=payload, headers=patient_headers), field)
    staff_headers = bearer(app, staff)
    good = {"doctors": [{"doctorName": "Dr. Rao", "specialization": "ENT"}], "date": "2099-01-01", "timeSlot": "09:00-12:00"}
    for change, field in [
        ({"totalSlots": 10.5}, "totalSlots"),
        ({"totalSlots": True}, "totalSlots"),
        ({"weekdays": [0, 1.5]}, "weekdays"),
        ({"weekdays": [7]}, "weekdays"),
        ({"doctors": {"doctorName": "Dr. Rao"}}, "doctors"),
        ({"doctors": [{"doctorName": ["Dr. Rao"], "specialization": "ENT"}]}, "doctors[0].doctorName"),
        ({"date": 20990101}, "date"),
        ({"date": "20990101"}, "date"),
        ({"timeSlot": "9-12"}, "timeSlot"),
        ({"timeSlot": "25:00-26:00"}, "timeSlot"),
    ]:
        assert_field_error(client.post("/api/organization/save-details", json={**good, **change}, headers=staff_headers), field)
    assert count(Appointment) == 0


def test_an_empty_date_is_not_a_date(app, client):
    profile = make_expert()
    make_service(profile)
    headers = bearer(app, make_user())
    assert_field_error(client.get(f"/api/experts/{profile.id}/availability?date=", headers=headers), "date")
    assert_field_error(client.get(f"/api/experts/{profile.id}/availability", headers=headers), "date")
    assert_field_error(client.get("/api/organization/available-slots?date=", headers=headers), "date")
    assert_field_error(client.get("/api/organization/available-slots?date=2030-02-30", headers=headers), "date")
    assert client.get("/api/organization/available-slots", headers=headers).status_code == 200


def test_accounts_fields_take_only_strings(client):
    for payload, field in [
        ({"name": ["Erin"], "email": "erin@example.com", "password": PASSWORD}, "name"),
        ({"name": "Erin", "email": {"a": 1}, "password": PASSWORD}, "email"),
        ({"name": "Erin", "email": "erin@example.com", "password": 1234567890123}, "password"),
        ({"name": "Erin", "email": "erin@example.com", "password": PASSWORD, "role": ["patient"]}, "role"),
        ({"name": "Erin", "email": "erin@example.com", "password": "p\ud800" * 6}, "password"),
    ]:
        assert_field_error(client.post("/api/auth/signup", json=payload), field)
    assert_field_error(client.post("/api/auth/login", json={"email": ["x@example.com"], "password": PASSWORD}), "email")


def test_become_expert_takes_an_empty_body_or_an_object_of_strings(app, client):
    user = make_user(name="Erin Expert")
    headers = bearer(app, user)
    assert_field_error(client.post("/api/auth/become-expert", json=["x"], headers=headers), "body")
    assert_field_error(client.post("/api/auth/become-expert", json={"timezone": 5}, headers=headers), "timezone")
    made = client.post("/api/auth/become-expert", headers=headers)
    assert made.status_code == 201 and made.get_json()["expert"]["handle"] == "erin-expert"


# ---------------------------------------------------------------------------- extreme dates


@pytest.mark.parametrize(
    "start, message",
    [("9999-12-31T23:59:00-12:00", "That is too far in the future."), ("0001-01-01T00:00:00+01:00", "That is too far in the past.")],
)
def test_extreme_booking_times_are_422_with_a_message(app, client, start, message):
    profile = make_expert()
    svc = make_service(profile)
    response = client.post("/api/bookings", json={"serviceId": svc.id, "start": start}, headers=bearer(app, make_user()))
    assert assert_field_error(response, "start")["fields"]["start"] == [message]
    assert count(Booking) == 0


def test_extreme_availability_dates_are_422(app, client):
    profile = make_expert()
    make_service(profile)
    headers = bearer(app, make_user())
    for query, message in [("date=9999-12-31&tz=Pacific/Kiritimati", "That is too far in the future."), ("date=0001-01-01&tz=Etc/GMT%2B12", "That is too far in the past.")]:
        response = client.get(f"/api/experts/{profile.id}/availability?{query}", headers=headers)
        assert assert_field_error(response, "date")["fields"]["date"] == [message]
    # The edges of the accepted range still answer (with no free times).
    for day in ("1900-01-01", "2999-12-31"):
        response = client.get(f"/api/experts/{profile.id}/availability?date={day}&tz=Pacific/Kiritimati", headers=headers)
        assert response.status_code == 200 and response.get_json()["slots"] == []


# ---------------------------------------------------------------------------- NUL bytes in query strings


def test_nul_in_api_query_strings_is_400_naming_the_parameter(app, client):
    response = client.get("/api/organization/available-slots?location=%00", headers=bearer(app, make_user()))
    assert response.status_code == 400
    assert response.get_json()["fields"] == {"location": ["Contains characters that are not allowed."]}


# ---------------------------------------------------------------------------- size limit and 405


def test_a_20_mb_body_is_413_json_and_not_read(app, client):
    body = json.dumps({"slotId": 1, "patientName": "A" * (20 * 1024 * 1024), "contactNumber": "9876543210"})
    response = client.post("/api/appointments", data=body, headers={**bearer(app, make_user()), "Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.is_json and response.get_json()["error"]
    assert count(Appointment) == 0


def test_405_answers_carry_allow(client):
    response = client.get("/api/appointments")
    assert response.status_code == 405 and response.is_json
    assert set(response.headers["Allow"].split(", ")) >= {"POST"}
    response = client.delete("/api/bookings")
    assert response.status_code == 405 and {"GET", "POST"} <= set(response.headers["Allow"].split(", "))


def test_the_documents_date_pattern_is_the_accepted_range():
    """/api/openapi.json's date pattern admits exactly the years the API accepts (1900-2999)."""
    import re
    from datetime import date, timedelta

    from expertbook.api import openapi
    from expertbook.web import FIRST_DAY, LAST_DAY

    pattern = re.compile(openapi.DATE["pattern"])
    for day, admitted in ((FIRST_DAY, True), (LAST_DAY, True), (FIRST_DAY - timedelta(days=1), False), (LAST_DAY + timedelta(days=1), False), (date(1, 1, 1), False)):
        assert bool(pattern.search(day.isoformat())) is admitted, day


# ---------------------------------------------------------------------------- the endpoints added since: front desk, guests, accounts


def test_front_desk_endpoints_take_only_their_types_and_ids(app, client):
    hospital = make_hospital()
    staff = make_staff(hospital)
    slot = make_slot(hospital, capacity=1)
    other = make_slot(hospital, doctor=slot.doctor, days_ahead=2)
    patient = make_user()
    appointment = make_appointment(slot, patient)
    staff_headers, patient_headers = bearer(app, staff), bearer(app, patient)
    for payload, field in [
        ({"patientName": ["Asha"], "contactNumber": "9876543210"}, "patientName"),
        ({"patientName": "Asha", "contactNumber": 9876543210}, "contactNumber"),
        ({"patientName": "Asha", "contactNumber": "9876543210", "email": ["a@example.com"]}, "email"),
        ({"patientName": "Asha", "contactNumber": "9876543210", "email": None}, "email"),
        ({"patientName": "A\u0000sha", "contactNumber": "9876543210"}, "patientName"),
    ]:
        assert_field_error(client.post(f"/api/organization/slots/{other.id}/walk-in", json=payload, headers=staff_headers), field)
        if "email" not in payload:  # a waiting list takes no email
            assert_field_error(client.post(f"/api/slots/{slot.id}/waitlist", json=payload, headers=patient_headers), field)
    for reason in (["ill"], 5, None, {"text": "ill"}, "x" * 301, "a\u0000b"):
        assert_field_error(client.post(f"/api/organization/appointments/{appointment.id}/cancel", json={"reason": reason}, headers=staff_headers), "reason")
        assert_field_error(client.post(f"/api/organization/slots/{slot.id}/cancel", json={"reason": reason}, headers=staff_headers), "reason")
    for slot_id in (1.5, True, str(other.id), [other.id]):
        assert_field_error(client.post(f"/api/appointments/{appointment.id}/reschedule", json={"slotId": slot_id}, headers=patient_headers), "slotId")
    for slot_id in (2**31, 0, -1, 10**30):
        response = client.post(f"/api/appointments/{appointment.id}/reschedule", json={"slotId": slot_id}, headers=patient_headers)
        assert response.status_code == 404 and response.get_json() == {"error": "Slot not found"}, slot_id
    for path in (f"/api/organization/slots/{HUGE}/walk-in", f"/api/organization/appointments/{HUGE}/cancel",
                 f"/api/organization/slots/{2**31}/cancel", f"/api/appointments/{HUGE}/reschedule", f"/api/slots/{HUGE}/waitlist"):
        assert client.post(path, json={}, headers=staff_headers).status_code == 404, path
    assert client.delete(f"/api/waitlist/{HUGE}", headers=patient_headers).status_code == 404
    # Nothing was written: the one appointment is still the only one, and still booked.
    assert count(Appointment) == 1 and db.session.get(Appointment, appointment.id).status == Appointment.BOOKED


def test_guest_bookings_reschedules_and_booking_ids_take_only_their_types(app, client):
    profile = make_expert(timezone="Europe/London")
    svc = make_service(profile)
    customer = make_user()
    headers = bearer(app, customer)
    start = next_weekday_at(10).isoformat()
    for payload, field in [
        ({"serviceId": svc.id, "start": start, "email": "guest@example.com"}, "name"),
        ({"serviceId": svc.id, "start": start, "name": ["Erin"], "email": "guest@example.com"}, "name"),
        ({"serviceId": svc.id, "start": start, "name": "Erin", "email": {"a": "b"}}, "email"),
        ({"serviceId": True, "start": start, "name": "Erin", "email": "guest@example.com"}, "serviceId"),
        ({"serviceId": svc.id, "start": "9999-12-31T23:59:00-12:00", "name": "Erin", "email": "guest@example.com"}, "start"),
        ({"serviceId": svc.id, "start": start, "name": "Erin", "email": "guest@example.com", "notes": {"text": "hi"}}, "notes"),
    ]:
        assert_field_error(client.post("/api/bookings", json=payload), field)
    assert count(Booking) == 0
    made = client.post("/api/bookings", json={"serviceId": svc.id, "start": start, "name": "Erin", "email": "guest@example.com"})
    assert made.status_code == 201 and made.get_json()["manageUrl"]

    booking = client.post("/api/bookings", json={"serviceId": svc.id, "start": next_weekday_at(14).isoformat()}, headers=headers).get_json()["booking"]
    for payload, field in [
        ({"action": "reschedule"}, "start"),
        ({"action": "reschedule", "start": 1767258000}, "start"),
        ({"action": "reschedule", "start": "0001-01-01T00:00:00+01:00"}, "start"),
        ({"action": "reschedule", "start": start, "reason": ["late"]}, "reason"),
        ({"action": ["cancel"]}, "action"),
    ]:
        assert_field_error(client.patch(f"/api/bookings/{booking['id']}", json=payload, headers=headers), field)
    assert client.get(f"/api/bookings/{booking['id']}", headers=headers).get_json()["booking"]["start"] == booking["start"]
    for booking_id in (HUGE, "0", str(2**31)):
        assert client.get(f"/api/bookings/{booking_id}", headers=headers).status_code == 404
        assert client.patch(f"/api/bookings/{booking_id}", json={"action": "cancel"}, headers=headers).status_code == 404


def test_password_reset_and_forgot_password_take_only_strings(client):
    assert_field_error(client.post("/api/auth/forgot-password", json={"email": ["a@example.com"]}), "email")
    assert_field_error(client.post("/api/auth/forgot-password", json={"email": "a\u0000@example.com"}), "email")
    assert_field_error(client.post("/api/auth/reset-password", json={"token": 12345678901234567890, "password": PASSWORD}), "token")
    assert_field_error(client.post("/api/auth/reset-password", json={"token": "x" * 40, "password": True}), "password")
    assert_field_error(client.post("/api/auth/register", json={"name": "Erin", "email": "e@example.com", "password": ["x"]}), "password")
