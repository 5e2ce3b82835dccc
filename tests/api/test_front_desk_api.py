"""The front desk's JSON API: walk-ins, staff and session cancellations, reschedule, waiting lists, and
the three races over real HTTP against a multi-process gunicorn."""
from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import time

import requests

from expertbook.clinic.models import Appointment, Slot, WaitlistEntry
from expertbook.extensions import db
from tests.api.test_clinic_api import bearer
from tests.clinic.test_front_desk_races import holding
from tests.factories import make_appointment, make_hospital, make_move_race, make_slot, make_staff, make_user, make_users


def _staff_of(slot: Slot):
    return make_staff(slot.hospital)


def test_walk_in_answers_201_with_the_token_and_shows_in_staff_lists(app, client):
    slot = make_slot(capacity=2)
    staff = _staff_of(slot)
    headers = bearer(app, staff)
    db.session.rollback()
    made = client.post(f"/api/organization/slots/{slot.id}/walk-in", json={"patientName": "Ravi", "contactNumber": "9876543210"}, headers=headers)
    assert made.status_code == 201
    body = made.get_json()
    assert body == {"appointmentId": body["appointmentId"], "tokenNumber": 101, "remainingSlots": 1}
    listed = client.get(f"/api/appointments/all?slotId={slot.id}", headers=headers).get_json()["appointments"]
    assert [(a["tokenNumber"], a["walkIn"], a["patientName"]) for a in listed] == [(101, True, "Ravi")]
    # The errors of a booking: 422 per field, 409 when full, 404 for another hospital's slot or for patients.
    invalid = client.post(f"/api/organization/slots/{slot.id}/walk-in", json={"patientName": "R", "contactNumber": "12", "email": "x"}, headers=headers)
    assert invalid.status_code == 422 and set(invalid.get_json()["fields"]) == {"contactNumber", "email"}
    assert client.post(f"/api/organization/slots/{slot.id}/walk-in", json={"patientName": "S", "contactNumber": "9876543210"}, headers=headers).status_code == 201
    full = client.post(f"/api/organization/slots/{slot.id}/walk-in", json={"patientName": "T", "contactNumber": "9876543210"}, headers=headers)
    assert (full.status_code, full.get_json()) == (409, {"error": "This slot is fully booked"})
    db.session.rollback()  # end the test's read snapshot: the app has written since
    other = make_staff(make_hospital("Other", "Pune"))
    patient = make_user()
    for who in (other, patient):
        answer = client.post(f"/api/organization/slots/{slot.id}/walk-in", json={"patientName": "U", "contactNumber": "9876543210"}, headers=bearer(app, who))
        assert answer.status_code == 404
    assert holding(slot.id) == (2, 2)


def test_staff_cancel_and_session_cancel(app, client):
    slot = make_slot(capacity=3)
    staff = _staff_of(slot)
    headers = bearer(app, staff)
    online = make_appointment(slot, make_user())
    second = make_appointment(slot, make_user())
    db.session.rollback()
    client.post(f"/api/organization/slots/{slot.id}/walk-in", json={"patientName": "Phone Only", "contactNumber": "9123456780"}, headers=headers)
    no_reason = client.post(f"/api/organization/appointments/{online.id}/cancel", json={}, headers=headers)
    assert no_reason.status_code == 422 and "reason" in no_reason.get_json()["fields"]
    cancelled = client.post(f"/api/organization/appointments/{online.id}/cancel", json={"reason": "Doctor rescheduled"}, headers=headers)
    assert cancelled.status_code == 200
    assert {k: cancelled.get_json()["appointment"][k] for k in ("status", "cancelledBy", "cancelReason")} == {
        "status": "cancelled", "cancelledBy": "staff", "cancelReason": "Doctor rescheduled"}
    assert client.post(f"/api/organization/appointments/{online.id}/cancel", json={"reason": "again"}, headers=headers).status_code == 409
    db.session.rollback()
    assert client.post(f"/api/organization/appointments/{online.id}/cancel", json={"reason": "x"}, headers=bearer(app, make_user())).status_code == 404

    ended = client.post(f"/api/organization/slots/{slot.id}/cancel", json={"reason": "Doctor unwell"}, headers=headers)
    assert ended.status_code == 200
    assert ended.get_json() == {"cancelled": 2, "notified": 1, "waitlistNotified": 0,
                                "toPhone": [{"tokenNumber": 103, "patientName": "Phone Only", "contactNumber": "9123456780"}]}
    assert client.post(f"/api/organization/slots/{slot.id}/cancel", json={"reason": "again"}, headers=headers).status_code == 409
    searched = client.get("/api/organization/available-slots", headers=headers).get_json()["slots"]
    assert searched == []
    mine = client.get("/api/appointments/my", headers=bearer(app, db.session.get(Appointment, second.id).user)).get_json()
    assert mine["upcoming"][0]["cancelledBy"] == "session" and mine["upcoming"][0]["slot"]["status"] == "Cancelled"


def test_reschedule(app, client):
    first = make_slot(capacity=2)
    second = make_slot(doctor=first.doctor, capacity=1, start=time(14), end=time(15))
    patient = make_user()
    appointment = make_appointment(first, patient)
    headers = bearer(app, patient)
    db.session.rollback()
    missing = client.post(f"/api/appointments/{appointment.id}/reschedule", json={}, headers=headers)
    assert missing.status_code == 422 and "slotId" in missing.get_json()["fields"]
    assert client.post(f"/api/appointments/{appointment.id}/reschedule", json={"slotId": first.id}, headers=headers).status_code == 422
    assert client.post(f"/api/appointments/{appointment.id}/reschedule", json={"slotId": second.id}, headers=bearer(app, make_user())).status_code == 404
    moved = client.post(f"/api/appointments/{appointment.id}/reschedule", json={"slotId": second.id}, headers=headers)
    assert moved.status_code == 200
    body = moved.get_json()
    assert body == {"appointmentId": body["appointmentId"], "tokenNumber": 101, "slotId": second.id}
    # Moving back into a full session is 409, and the appointment stays where it is.
    db.session.rollback()
    make_appointment(db.session.get(Slot, first.id), make_user())
    make_appointment(db.session.get(Slot, first.id), make_user())
    db.session.rollback()
    full = client.post(f"/api/appointments/{body['appointmentId']}/reschedule", json={"slotId": first.id}, headers=headers)
    assert (full.status_code, full.get_json()) == (409, {"error": "This slot is fully booked"})
    mine = client.get("/api/appointments/my", headers=headers).get_json()["upcoming"]
    assert {(a["slotId"], a["status"], a["movedToId"]) for a in mine} == {(first.id, "cancelled", body["appointmentId"]), (second.id, "booked", None)}


def test_waitlist_join_position_leave_and_my_appointments(app, client):
    slot = make_slot(capacity=1)
    holder = make_appointment(slot, make_user())
    first, second = make_users(2)
    db.session.rollback()
    free = make_slot(doctor=db.session.get(Slot, slot.id).doctor, start=time(14), end=time(15))
    assert client.post(f"/api/slots/{free.id}/waitlist", json={"patientName": "A", "contactNumber": "9876543210"}, headers=bearer(app, first)).status_code == 409
    joined = client.post(f"/api/slots/{slot.id}/waitlist", json={"patientName": "A", "contactNumber": "9876543210"}, headers=bearer(app, first))
    assert joined.status_code == 201 and joined.get_json()["position"] == 1
    again = client.post(f"/api/slots/{slot.id}/waitlist", json={"patientName": "A", "contactNumber": "9876543210"}, headers=bearer(app, first))
    assert again.status_code == 409
    bad = client.post(f"/api/slots/{slot.id}/waitlist", json={"patientName": "B", "contactNumber": "1"}, headers=bearer(app, second))
    assert bad.status_code == 422 and set(bad.get_json()["fields"]) == {"contactNumber"}
    behind = client.post(f"/api/slots/{slot.id}/waitlist", json={"patientName": "B", "contactNumber": "9876543210"}, headers=bearer(app, second)).get_json()
    assert behind["position"] == 2
    [entry] = client.get("/api/appointments/my", headers=bearer(app, second)).get_json()["waitlist"]
    assert (entry["waitlistId"], entry["position"], entry["status"], entry["slot"]["slotId"]) == (behind["waitlistId"], 2, "waiting", slot.id)
    assert client.delete(f"/api/waitlist/{joined.get_json()['waitlistId']}", headers=bearer(app, second)).status_code == 404
    left = client.delete(f"/api/waitlist/{joined.get_json()['waitlistId']}", headers=bearer(app, first))
    assert left.get_json() == {"waitlistId": joined.get_json()["waitlistId"], "status": "left"}
    assert client.get("/api/appointments/my", headers=bearer(app, second)).get_json()["waitlist"][0]["position"] == 1
    # A cancellation gives the place to the person still waiting; their list entry becomes an appointment.
    assert client.post(f"/api/appointments/{holder.id}/cancel", headers=bearer(app, db.session.get(Appointment, holder.id).user)).status_code == 200
    mine = client.get("/api/appointments/my", headers=bearer(app, second)).get_json()
    assert mine["waitlist"] == [] and [(a["tokenNumber"], a["patientName"]) for a in mine["upcoming"]] == [(102, "B")]
    gone = client.delete(f"/api/waitlist/{behind['waitlistId']}", headers=bearer(app, second))
    assert gone.status_code == 409 and "token 102" in gone.get_json()["error"]


def test_the_doctors_directory_over_the_api(app, client):
    """Staff list, add, rename and deactivate their hospital's doctors; the slots show the new name;
    another hospital's staff and patients get 404; bad input answers 422 naming the field."""
    from expertbook.clinic.models import Doctor
    from tests.factories import make_doctor

    slot = make_slot()
    staff = _staff_of(slot)
    headers = bearer(app, staff)
    db.session.rollback()
    listed = client.get("/api/organization/doctors", headers=headers).get_json()["doctors"]
    assert [(d["doctorName"], d["active"]) for d in listed] == [(slot.doctor.name, True)]

    added = client.post("/api/organization/doctors", json={"doctorName": "Dr. Kavya Menon", "specialization": "Neurology", "bio": "Headaches"}, headers=headers)
    assert added.status_code == 201
    doctor = added.get_json()["doctor"]
    assert doctor == {"doctorId": doctor["doctorId"], "doctorName": "Dr. Kavya Menon", "specialization": "Neurology", "bio": "Headaches", "active": True}
    again = client.post("/api/organization/doctors", json={"doctorName": "Dr. Kavya Menon", "specialization": "Neurology"}, headers=headers)
    assert again.status_code == 422 and set(again.get_json()["fields"]) == {"doctorName"}
    wrong = client.post("/api/organization/doctors", json={"doctorName": 7, "bio": "x" * 501}, headers=headers)
    assert wrong.status_code == 422 and set(wrong.get_json()["fields"]) == {"doctorName", "specialization", "bio"}

    # A partial change keeps the rest; the slots read the directory, so the new name shows at once.
    doctor_id = slot.doctor_id
    renamed = client.patch(f"/api/organization/doctors/{doctor_id}", json={"doctorName": "Dr. A. Sharma"}, headers=headers)
    assert renamed.status_code == 200 and renamed.get_json()["doctor"]["specialization"] == slot.doctor.specialization
    shown = client.get("/api/organization/all-slots", headers=headers).get_json()["slots"]
    assert {s["doctorName"] for s in shown} == {"Dr. A. Sharma"}
    off = client.patch(f"/api/organization/doctors/{doctor_id}", json={"active": False}, headers=headers)
    assert off.status_code == 200 and off.get_json()["doctor"]["active"] is False and off.get_json()["doctor"]["doctorName"] == "Dr. A. Sharma"
    assert client.patch(f"/api/organization/doctors/{doctor_id}", json={"active": "no"}, headers=headers).status_code == 422

    db.session.rollback()
    theirs = make_doctor(make_hospital("Other", "Pune"), "Dr. Other")
    for who in (make_staff(theirs.hospital), make_user()):
        assert client.patch(f"/api/organization/doctors/{doctor_id}", json={"active": True}, headers=bearer(app, who)).status_code == 404
    assert client.patch(f"/api/organization/doctors/{theirs.id}", json={"active": False}, headers=headers).status_code == 404
    assert client.get("/api/organization/doctors", headers=bearer(app, make_user())).status_code == 404
    db.session.rollback()
    assert db.session.get(Doctor, theirs.id, populate_existing=True).active is True
    assert db.session.get(Doctor, doctor_id, populate_existing=True).active is False


def test_the_front_desk_is_in_the_openapi_document(client):
    document = client.get("/api/openapi.json").get_json()
    paths = document["paths"]
    assert set(paths["/organization/slots/{slot_id}/walk-in"]["post"]["responses"]) >= {"201", "404", "409", "422"}
    assert "post" in paths["/organization/appointments/{appointment_id}/cancel"]
    assert "post" in paths["/organization/slots/{slot_id}/cancel"]
    assert set(paths["/appointments/{appointment_id}/reschedule"]["post"]["responses"]) >= {"200", "409"}
    assert "post" in paths["/slots/{slot_id}/waitlist"] and "delete" in paths["/waitlist/{waitlist_id}"]
    assert {"get", "post"} <= set(paths["/organization/doctors"]) and "patch" in paths["/organization/doctors/{doctor_id}"]
    my = paths["/appointments/my"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["properties"]
    assert my["waitlist"]["items"] == {"$ref": "#/components/schemas/WaitlistEntry"}
    schemas = document["components"]["schemas"]
    assert {"WalkIn", "Reason", "Reschedule", "JoinWaitlist", "WaitlistEntry"} <= set(schemas)
    assert "Cancelled" in schemas["Slot"]["properties"]["status"]["enum"]


# ---------------------------------------------------------------------------- the races, over real HTTP


def _race_http(calls: list, workers: int = 40) -> list:
    """POST every (url, json, headers) at once from many threads; returns (status, body) in order."""
    barrier = threading.Barrier(min(workers, len(calls)), timeout=60)
    started = iter(range(len(calls)))
    lock = threading.Lock()

    def send(call):
        method, url, payload, headers = call
        with lock:
            index = next(started)
        if index < barrier.parties:
            barrier.wait()
        response = requests.request(method, url, json=payload, headers=headers, timeout=120)
        return response.status_code, response.json()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(send, calls, timeout=600))


def test_100_online_bookings_and_20_walk_ins_over_http(app, gunicorn_server):
    slot = make_slot(capacity=10)
    staff = _staff_of(slot)
    slot_id = slot.id
    patients = [bearer(app, u) for u in make_users(100)]
    desk = bearer(app, staff)
    db.session.rollback()
    url = gunicorn_server(workers=3)
    calls = [("POST", url + "/api/appointments", {"slotId": slot_id, "patientName": "Online", "contactNumber": "9876543210"}, h) for h in patients]
    calls += [("POST", url + f"/api/organization/slots/{slot_id}/walk-in", {"patientName": f"Walk-in {n}", "contactNumber": "9876543210"}, desk) for n in range(20)]
    random.Random(15).shuffle(calls)
    outcomes = _race_http(calls)
    tokens = sorted(body["tokenNumber"] for status, body in outcomes if status == 201)
    assert tokens == list(range(101, 111))
    assert [o for o in outcomes if o[0] != 201] == [(409, {"error": "This slot is fully booked"})] * 110
    assert holding(slot_id) == (10, 10)


def test_5_cancellations_over_http_promote_the_first_5_waiting_in_order(app, gunicorn_server):
    slot = make_slot(capacity=5)
    holders = [make_appointment(slot, u) for u in make_users(5)]
    slot_id = slot.id
    waiters = make_users(7)
    cancels = [(f"/api/appointments/{a.id}/cancel", bearer(app, a.user)) for a in holders]
    joins = [bearer(app, u) for u in waiters]
    db.session.rollback()
    url = gunicorn_server(workers=3)
    entries = []
    for n, headers in enumerate(joins):  # one after the other: the order of the list is the order they joined
        answer = requests.post(url + f"/api/slots/{slot_id}/waitlist", json={"patientName": f"Waiter {n}", "contactNumber": "9876543210"}, headers=headers, timeout=30)
        assert answer.status_code == 201 and answer.json()["position"] == n + 1
        entries.append(answer.json()["waitlistId"])
    outcomes = _race_http([("POST", url + path, None, headers) for path, headers in cancels])
    assert [status for status, _ in outcomes] == [200] * 5

    db.session.rollback()
    rows = [db.session.get(WaitlistEntry, e, populate_existing=True) for e in entries]
    assert [r.status for r in rows] == ["promoted"] * 5 + ["waiting"] * 2
    assert [db.session.get(Appointment, r.appointment_id).token_number for r in rows[:5]] == [106, 107, 108, 109, 110]
    assert len({r.appointment_id for r in rows[:5]}) == 5
    assert holding(slot_id) == (5, 5)
    positions = [requests.get(url + "/api/appointments/my", headers=h, timeout=30).json()["waitlist"] for h in joins[5:]]
    assert [[w["position"] for w in p] for p in positions] == [[1], [2]]


def test_20_moves_over_http_into_3_places_while_others_book(app, gunicorn_server):
    target, old, before = make_move_race()
    target_id = target.id
    sources = {slot_id for slot_id, _ in before.values()}
    moves = [("POST", f"/api/appointments/{a.id}/reschedule", {"slotId": target_id}, bearer(app, a.user)) for a in old]
    books = [("POST", "/api/appointments", {"slotId": target_id, "patientName": "Booker", "contactNumber": "9876543210"}, bearer(app, u)) for u in make_users(20)]
    db.session.rollback()
    url = gunicorn_server(workers=3)
    calls = [(m, url + path, payload, headers) for m, path, payload, headers in moves + books]
    random.Random(16).shuffle(calls)
    outcomes = _race_http(calls)

    won = [body for status, body in outcomes if status in (200, 201)]
    assert sorted(body["tokenNumber"] for body in won) == [101, 102, 103]
    assert [o for o in outcomes if o[0] not in (200, 201)] == [(409, {"error": "This slot is fully booked"})] * 37
    assert holding(target_id) == (3, 3)
    moved_to = {body["appointmentId"] for status, body in outcomes if status == 200}
    for appointment_id, (slot_id, token) in before.items():
        row = db.session.get(Appointment, appointment_id, populate_existing=True)
        if row.moved_to_id is not None:
            assert row.status == "cancelled" and row.moved_to_id in moved_to
        else:  # the move failed: the old appointment is exactly as it was
            assert (row.status, row.slot_id, row.token_number) == ("booked", slot_id, token)
    assert sum(1 for a in before if db.session.get(Appointment, a).moved_to_id) == len(moved_to)
    for source in sources:
        booked, rows = holding(source)
        assert booked == rows
