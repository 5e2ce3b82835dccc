"""Registration that reveals nothing (API), "Download my data" and "Delete my account" (real SMTP)."""
from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import func, select

from expertbook.auth.models import LoginSession, User
from expertbook.clinic import waitlist
from expertbook.clinic.models import Appointment, Slot
from expertbook.experts import service as experts
from expertbook.experts.models import Booking
from expertbook.extensions import db
from expertbook.notifications.models import OutboxEmail
from tests.auth.conftest import text_of, to
from tests.experts.helpers import book_kwargs, next_weekday_at
from tests.factories import (
    PASSWORD,
    bearer,
    login,
    make_appointment,
    make_doctor,
    make_expert,
    make_hospital,
    make_service,
    make_slot,
    make_staff,
    make_user,
    queue_notice,
)


@pytest.fixture
def app_config(mail_app_config):
    return mail_app_config


# ---------------------------------------------------------------------------- registration reveals nothing


@pytest.mark.parametrize("door", ["/api/auth/register", "/api/auth/signup"])
def test_api_registration_answers_alike_and_tells_the_owner(client, smtp, door):
    make_user(email="owner@example.com", name="The Owner")
    taken = client.post(door, json={"name": "Someone", "email": "OWNER@example.com", "password": PASSWORD})
    fresh = client.post(door, json={"name": "Newcomer", "email": "newcomer@example.com", "password": PASSWORD})
    assert (taken.status_code, taken.get_json()) == (fresh.status_code, fresh.get_json()) == (202, {"status": "check your email"})
    assert "token" not in taken.get_json()
    messages = smtp.wait_for(2)
    by_address = {to(m): m for m in messages}
    attempt = by_address["owner@example.com"]
    assert attempt["Subject"] == "Someone tried to register with your email address"
    assert "/login" in text_of(attempt) and "/forgot-password" in text_of(attempt)
    assert by_address["newcomer@example.com"]["Subject"] == "Confirm your email address"
    db.session.rollback()
    assert db.session.scalar(select(User.name).where(User.email == "owner@example.com")) == "The Owner"  # untouched


def test_hospital_signup_with_a_taken_email_makes_no_hospital(client, smtp):
    from expertbook.clinic.models import Hospital

    make_user(email="taken@h.example")
    response = client.post(
        "/api/auth/signup",
        json={"name": "A", "email": "taken@h.example", "password": PASSWORD, "role": "hospital", "hospitalName": "Ghost", "location": "Pune"},
    )
    assert response.status_code == 202
    db.session.rollback()
    assert db.session.scalar(select(Hospital)) is None


def test_bad_registration_input_is_422_with_fields_alike_for_taken_and_new(client, smtp):
    make_user(email="taken@example.com")
    for email in ("taken@example.com", "new@example.com"):
        response = client.post("/api/auth/register", json={"name": "X", "email": email, "password": "short"})
        assert response.status_code == 422 and set(response.get_json()["fields"]) == {"password"}
    assert smtp.messages == []


def test_registration_is_throttled_per_client_address(app, client, smtp):
    app.config["REGISTER_LIMIT_PER_IP"] = "2 per hour"
    answers = [
        client.post("/api/auth/register", json={"name": "X", "email": f"r{n}@example.com", "password": PASSWORD}).status_code
        for n in range(2)
    ]
    assert answers == [202, 202]
    assert client.post_form("/register", {"name": "X", "email": "r3@example.com", "password": PASSWORD, "confirm": PASSWORD}).status_code == 429
    other_ip = client.post("/api/auth/signup", json={"name": "X", "email": "r4@example.com", "password": PASSWORD}, environ_base={"REMOTE_ADDR": "10.1.1.1"})
    assert other_ip.status_code == 202


def test_registration_takes_as_long_for_a_taken_address(app, client, smtp, monkeypatch):
    """Argon2 runs for both (before the address is looked up); what differs after it is padded away.
    (Argon2 itself is stubbed here: on a loaded test machine its own time varies more than the floor.)"""
    from expertbook.auth import service as accounts

    monkeypatch.setattr(accounts, "hash_password", lambda password: "$argon2id$v=19$m=65536,t=3,p=4$stub$stub")
    app.config["ACCOUNT_ANSWER_SECONDS"] = 0.6
    make_user(email="slow@example.com")
    timings = {}
    for email in ("slow@example.com", "quick@example.com"):
        started = time.monotonic()
        assert client.post("/api/auth/register", json={"name": "X", "email": email, "password": PASSWORD}).status_code == 202
        timings[email] = time.monotonic() - started
    assert min(timings.values()) >= 0.6
    assert abs(timings["slow@example.com"] - timings["quick@example.com"]) < 0.2


# ---------------------------------------------------------------------------- download my data


def test_download_my_data_holds_account_appointments_bookings_services_and_emails(client):
    patient = make_user(name="Data Owner", email="data@example.com")
    slot = make_slot(make_hospital("Data Hospital", "Pune"))
    make_appointment(slot, patient, patient_name="Data Owner")
    full = make_slot(make_hospital("Busy Hospital", "Pune"), capacity=1)
    make_appointment(full, make_user())
    waitlist.join_waitlist(full.id, patient.id, "Data Owner's mother", "9876543210")
    expert = make_expert(name="Some Expert")
    service = make_service(expert, title="Chat")
    experts.book(patient.id, service.id, next_weekday_at(10), **book_kwargs(patient))
    own = make_expert(name="Also Expert", email="also@example.com")
    make_service(own, title="My Own Service")
    queue_notice(to_email="data@example.com", subject="A notice for you")
    queue_notice(to_email="someone-else@example.com", subject="Not yours")
    login(client, patient)
    response = client.get("/profile/data")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == 'attachment; filename="expertbook-my-data.json"'
    data = json.loads(response.get_data(as_text=True))
    assert data["account"]["email"] == "data@example.com" and data["account"]["emailVerified"] is True
    assert [a["hospital"] for a in data["appointments"]] == ["Data Hospital"]
    assert [(w["hospital"], w["patientName"], w["contactNumber"], w["status"]) for w in data["waitingLists"]] == [
        ("Busy Hospital", "Data Owner's mother", "9876543210", "waiting")
    ]
    assert [b["service"] for b in data["bookings"]["made"]] == ["Chat"]
    assert data["expertProfile"] is None and data["services"] == []
    subjects = [e["subject"] for e in data["emails"]]
    assert "A notice for you" in subjects and "Not yours" not in subjects
    assert len(data["sessions"]) == 1
    # An expert's export holds their services and profile.
    login(client, own.user)
    theirs = json.loads(client.get("/profile/data").get_data(as_text=True))
    assert theirs["expertProfile"]["displayName"] == "Also Expert"
    assert [s["title"] for s in theirs["services"]] == ["My Own Service"]


def test_download_needs_a_login(client):
    assert client.get("/profile/data").status_code == 302


# ---------------------------------------------------------------------------- delete my account


def _delete(client, password: str = PASSWORD, confirm: bool = True):
    data = {"password": password}
    if confirm:
        data["confirm"] = "y"
    return client.post_form("/profile/delete", data)


def test_deleting_cancels_the_future_anonymises_the_past_and_deletes_the_rest(client, make_client, smtp):
    patient = make_user(name="Leaving Patient", email="leaving@example.com")
    hospital = make_hospital("Keeper Hospital", "Pune")
    doctor = make_doctor(hospital)
    future = make_slot(hospital, doctor, days_ahead=2)
    upcoming = make_appointment(future, patient, patient_name="Leaving Patient", contact="9123456789")
    past = make_slot(hospital, doctor, days_ahead=-3)
    visited = make_appointment(past, patient, patient_name="Leaving Patient", status="arrived")
    expert = make_expert(name="Kept Expert", email="expert@example.com")
    service = make_service(expert, title="Consult")
    booking = experts.book(patient.id, service.id, next_weekday_at(11), **book_kwargs(patient, notes="private notes"))
    smtp.wait_for(2)  # the booking's confirmations
    before = len(smtp.messages)
    queue_notice(to_email="leaving@example.com", subject="Old notice")
    smtp.wait_for(before + 1)
    token = bearer(patient)
    patient_id, upcoming_id, visited_id, future_id, booking_id = patient.id, upcoming.id, visited.id, future.id, booking.id
    other_browser = make_client()
    login(other_browser, patient)
    login(client, patient)

    page = client.get("/profile/delete")
    assert page.status_code == 200 and "Delete my account" in page.get_data(as_text=True)
    assert _delete(client, "wrong password!!").status_code == 422
    assert _delete(client, confirm=False).status_code == 422
    db.session.rollback()
    assert db.session.get(User, patient.id) is not None  # nothing happened yet

    response = _delete(client)
    assert response.status_code == 303 and response.headers["Location"] == "/"
    assert client.get("/profile").status_code == 302
    assert other_browser.get("/profile").status_code == 302
    assert client.get("/api/auth/me", headers=token).status_code == 401

    db.session.rollback()
    db.session.expunge_all()
    assert db.session.get(User, patient_id) is None
    assert db.session.scalar(select(func.count()).select_from(LoginSession)) == 0
    # The hospital keeps both appointments, anonymised; the future one is cancelled and its place freed.
    kept = {a.id: a for a in db.session.scalars(select(Appointment))}
    assert kept[upcoming_id].status == "cancelled" and kept[visited_id].status == "arrived"
    assert {(a.patient_name, a.contact_number, a.user_id) for a in kept.values()} == {("Deleted patient", "", None)}
    assert db.session.scalar(select(Slot.booked_count).where(Slot.id == future_id)) == 0
    # The expert keeps the booking, cancelled and anonymised, and was told by email; the patient was not.
    kept_booking = db.session.get(Booking, booking_id)
    assert kept_booking.status == "cancelled" and kept_booking.customer_id is None
    assert (kept_booking.customer_name, kept_booking.customer_email, kept_booking.customer_phone, kept_booking.notes) == ("Deleted patient", "", "", "")
    new = smtp.wait_for(before + 2)[before + 1:]
    time.sleep(0.3)
    new = smtp.messages[before + 1:]
    assert [to(m) for m in new] == ["expert@example.com"]
    assert new[0]["Subject"].startswith("Cancelled: Consult")
    assert "The customer deleted their account." in text_of(new[0])
    # The emails to the address are gone with it.
    assert db.session.scalar(select(func.count()).select_from(OutboxEmail).where(OutboxEmail.to_email == "leaving@example.com")) == 0


def test_an_expert_with_upcoming_bookings_is_told_to_cancel_them_first(client, smtp):
    expert = make_expert(name="Busy Expert", email="busy@example.com")
    service = make_service(expert)
    customer = make_user()
    experts.book(customer.id, service.id, next_weekday_at(9), **book_kwargs(customer))
    login(client, expert.user)
    page = client.get("/profile/delete").get_data(as_text=True)
    assert "1 upcoming booking as an expert" in page and 'id="delete-form"' not in page
    refused = _delete(client)
    assert refused.status_code == 409 and "upcoming booking" in refused.get_data(as_text=True)
    db.session.rollback()
    assert db.session.get(User, expert.user_id) is not None


def test_an_expert_without_upcoming_bookings_goes_with_profile_and_services(client, smtp):
    expert = make_expert(name="Retiring Expert", handle="retiring")
    make_service(expert, title="Old service")
    login(client, expert.user)
    assert _delete(client).status_code == 303
    assert client.get("/expert/retiring").status_code == 404


def test_the_last_staff_admin_is_told_to_name_another_first(client, make_client, smtp):
    hospital = make_hospital("Solo Clinic", "Pune")
    admin = make_staff(hospital, email="solo@example.com")
    nurse = make_staff(hospital, admin=False, email="nurse@example.com")
    admin_id, nurse_id = admin.id, nurse.id
    login(client, admin)
    refused = _delete(client)
    body = refused.get_data(as_text=True)
    assert refused.status_code == 409 and "last staff admin of Solo Clinic" in body and "Also a staff admin" in body
    # Done as told: the nurse becomes a staff admin; now the admin may go, and the hospital keeps an admin.
    assert client.post_form("/clinic/staff", {"email": "nurse@example.com", "make_admin": "y"}).status_code == 303
    assert _delete(client).status_code == 303
    db.session.rollback()
    assert db.session.get(User, admin_id) is None and db.session.get(User, nurse_id).is_staff_admin
    # A staff member who is not the last admin simply leaves.
    colleague = make_staff(hospital, admin=False, email="colleague@example.com")
    leaver = make_client()
    login(leaver, colleague)
    assert _delete(leaver).status_code == 303


def test_delete_needs_a_login_and_a_csrf_token(client):
    assert client.get("/profile/delete").status_code == 302
    user = make_user()
    login(client, user)
    assert client.post("/profile/delete", data={"password": PASSWORD, "confirm": "y"}).status_code == 400
    db.session.rollback()
    assert db.session.get(User, user.id) is not None
