"""Hospitals register themselves; staff admins add staff; staff pages stay within their hospital."""
from sqlalchemy import select

from expertbook.auth.models import User
from expertbook.clinic.models import Hospital
from expertbook.extensions import db
from tests.factories import PASSWORD, login, login_via_form, make_hospital, make_staff, make_user


def test_hospital_registers_with_its_first_staff_admin(client):
    response = client.post_form(
        "/clinic/register-hospital",
        {"hospital_name": "Lotus Clinic", "location": "Pune", "name": "Dr Meera", "email": "meera@lotus.example", "password": PASSWORD},
    )
    assert response.status_code == 303 and response.headers["Location"] == "/check-email"
    hospital = db.session.scalar(select(Hospital))
    admin = db.session.scalar(select(User))
    assert (hospital.name, hospital.location) == ("Lotus Clinic", "Pune")
    assert admin.hospital_id == hospital.id and admin.is_staff_admin
    assert not hospital.published  # until its admin verifies their email
    login_via_form(client, "meera@lotus.example")
    page = client.get("/clinic/staff").get_data(as_text=True)
    assert "Lotus Clinic" in page and "Verify your email to publish" in page


def test_hospital_registration_with_a_taken_email_answers_alike_and_makes_no_hospital(client):
    make_user(email="meera@lotus.example")
    response = client.post_form(
        "/clinic/register-hospital",
        {"hospital_name": "Lotus Clinic", "location": "Pune", "name": "Dr Meera", "email": "meera@lotus.example", "password": PASSWORD},
    )
    assert response.status_code == 303 and response.headers["Location"] == "/check-email"
    assert db.session.scalar(select(Hospital)) is None


def test_hospital_registration_errors_write_nothing(client):
    response = client.post_form(
        "/clinic/register-hospital",
        {"hospital_name": "", "location": "Pune", "name": "Dr Meera", "email": "meera@lotus.example", "password": "short"},
    )
    assert response.status_code == 422
    assert db.session.scalar(select(Hospital)) is None and db.session.scalar(select(User)) is None


def test_staff_admin_adds_an_existing_account_by_email(client):
    admin = make_staff()
    colleague = make_user(email="nurse@example.com")
    login(client, admin)
    response = client.post_form("/clinic/staff", {"email": "NURSE@example.com"})
    assert response.status_code == 303
    db.session.refresh(colleague)
    assert colleague.hospital_id == admin.hospital_id and not colleague.is_staff_admin


def test_adding_unknown_or_taken_staff_gives_clear_errors(client):
    admin = make_staff()
    other = make_staff(make_hospital("Other", "Delhi"), email="busy@example.com")
    login(client, admin)
    response = client.post_form("/clinic/staff", {"email": "nobody@example.com"})
    assert response.status_code == 422
    assert "Ask them to register first" in response.get_data(as_text=True)
    response = client.post_form("/clinic/staff", {"email": "busy@example.com"})
    assert response.status_code == 409
    assert "another hospital" in response.get_data(as_text=True)
    db.session.refresh(other)
    assert other.hospital_id != admin.hospital_id


def test_staff_pages_are_404_for_people_who_are_not_staff(client):
    login(client, make_user())
    assert client.get("/clinic/staff").status_code == 404


def test_plain_staff_cannot_add_staff(client):
    hospital = make_hospital()
    member = make_staff(hospital, admin=False)
    target = make_user(email="t@example.com")
    login(client, member)
    assert client.post_form("/clinic/staff", {"email": "t@example.com"}).status_code == 404
    db.session.refresh(target)
    assert target.hospital_id is None
