"""Email verification: the emailed single-use 7-day link (real SMTP), the banner, what stays unpublished until
then (an expert's public page, a hospital's slots), resending, ``emailVerified`` and the demo accounts."""
from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from expertbook.auth.models import AccountToken, User
from expertbook.clinic.models import Hospital
from expertbook.database import utcnow
from expertbook.extensions import db
from tests.auth.conftest import link_in, text_of, to
from tests.factories import PASSWORD, bearer, login, make_expert, make_hospital, make_service, make_slot, make_staff, make_user

INVALID = "This link has expired or was already used"


@pytest.fixture
def app_config(mail_app_config):
    return mail_app_config


def _verify_path(smtp, count: int = 1) -> str:
    message = smtp.wait_for(count)[count - 1]
    assert message["Subject"] == "Confirm your email address"
    return urlsplit(link_in(message, "/verify-email/")).path


def _register(client, email: str = "new@example.com"):
    return client.post_form("/register", {"name": "New Person", "email": email, "password": PASSWORD, "confirm": PASSWORD})


def test_a_new_account_gets_a_single_use_link_that_verifies_it(client, make_client, smtp):
    _register(client)
    path = _verify_path(smtp)
    assert "for 7 days" in text_of(smtp.messages[0]) and to(smtp.messages[0]) == "new@example.com"
    first = client.get(path)
    assert first.status_code == 303 and first.headers["Location"] == "/verify-email"  # the token leaves the URL
    page = client.get("/verify-email")
    assert page.status_code == 200 and "Confirm my email" in page.get_data(as_text=True)
    db.session.rollback()
    assert not db.session.scalar(select(User.email_verified_at))  # opening the link changes nothing (GET)
    done = client.post_form("/verify-email")
    assert done.status_code == 303 and done.headers["Location"] == "/login"
    db.session.rollback()
    assert db.session.scalar(select(User.email_verified_at)) is not None
    # Single use: the same link, in another browser, now answers like a wrong one.
    other = make_client()
    other.get(path)
    reused = other.get("/verify-email")
    assert reused.status_code == 400 and INVALID in reused.get_data(as_text=True)
    assert other.post_form("/verify-email").status_code == 400


def test_wrong_and_expired_links_answer_alike(client, smtp):
    _register(client)
    path = _verify_path(smtp)
    client.get("/verify-email/" + "y" * 43)
    wrong = client.get("/verify-email")
    db.session.rollback()
    db.session.execute(AccountToken.__table__.update().values(expires_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    client.get(path)
    expired = client.get("/verify-email")
    assert wrong.status_code == expired.status_code == 400
    assert INVALID in wrong.get_data(as_text=True) and INVALID in expired.get_data(as_text=True)
    assert client.post_form("/verify-email").status_code == 400


def test_the_link_lasts_email_verification_days(app, client, smtp):
    _register(client)
    db.session.rollback()
    token = db.session.scalar(select(AccountToken))
    assert timedelta(days=6, hours=23) < token.expires_at - token.created_at <= timedelta(days=7)


def test_an_unverified_account_sees_a_gentle_banner_with_a_resend_button(client, smtp):
    user = make_user(email="banner@example.com", verified=False)
    login(client, user)
    page = client.get("/clinic/search").get_data(as_text=True)
    assert 'id="verify-banner"' in page and "banner@example.com" in page
    assert client.get("/profile").status_code == 200  # everything works meanwhile
    resent = client.post_form("/verify-email/resend", {"next": "/clinic/search"})
    assert resent.status_code == 303 and resent.headers["Location"] == "/clinic/search"
    assert _verify_path(smtp)
    verified = make_user(email="fine@example.com")
    login(client, verified)
    assert 'id="verify-banner"' not in client.get("/clinic/search").get_data(as_text=True)


def test_resending_replaces_the_earlier_link_and_the_api_answers_202_then_409(client, make_client, smtp):
    user = make_user(email="resend@example.com", verified=False)
    headers = bearer(user)
    assert client.get("/api/auth/me", headers=headers).get_json()["user"]["emailVerified"] is False
    assert client.post("/api/auth/resend-verification", headers=headers).status_code == 202
    assert client.post("/api/auth/resend-verification", headers=headers).status_code == 202
    first, second = _verify_path(smtp, 1), _verify_path(smtp, 2)
    client.get(first)
    assert client.get("/verify-email").status_code == 400  # replaced by the second link
    client.get(second)
    assert client.post_form("/verify-email").status_code == 303
    assert client.get("/api/auth/me", headers=headers).get_json()["user"]["emailVerified"] is True
    already = client.post("/api/auth/resend-verification", headers=headers)
    assert already.status_code == 409 and already.get_json() == {"error": "Your email address is already verified"}
    assert client.post("/api/auth/resend-verification").status_code == 401


def test_resending_is_throttled_per_account(app, client, smtp):
    app.config["VERIFICATION_RESEND_LIMIT"] = "2 per hour"
    user = make_user(verified=False)
    headers = bearer(user)
    assert [client.post("/api/auth/resend-verification", headers=headers).status_code for _ in range(3)] == [202, 202, 429]
    login(client, user)
    assert client.post_form("/verify-email/resend").status_code == 429  # the same account's bucket
    other = make_user(verified=False)
    assert client.post("/api/auth/resend-verification", headers=bearer(other)).status_code == 202


# ---------------------------------------------------------------------------- what waits for verification


def test_an_unverified_experts_pages_are_hidden_from_the_public_until_verified(client, make_client, smtp):
    profile = make_expert(handle="quiet-expert", verified=False)
    service = make_service(profile, title="Advice", slug="advice")
    public = make_client()
    customer = make_user()
    assert public.get("/expert/quiet-expert").status_code == 404
    assert public.get("/expert/quiet-expert/advice").status_code == 404
    assert "quiet-expert" not in public.get("/experts").get_data(as_text=True)
    assert client.get(f"/api/experts/{profile.id}/availability?date=2030-01-07", headers=bearer(customer)).status_code == 404
    assert client.get(f"/api/event-types?expertId={profile.id}", headers=bearer(customer)).status_code == 404
    start = "2030-01-07T10:00:00+00:00"
    booking = client.post("/api/bookings", json={"serviceId": service.id, "start": start, "name": "C", "email": "c@example.com"}, headers=bearer(customer))
    assert booking.status_code == 404
    # The expert sees their own page, with what to do.
    owner = make_client()
    login(owner, profile.user)
    page = owner.get("/expert/quiet-expert")
    assert page.status_code == 200 and "Verify your email to publish" in page.get_data(as_text=True)

    owner.post_form("/verify-email/resend")
    owner.get(_verify_path(smtp))
    assert owner.post_form("/verify-email").status_code == 303
    assert public.get("/expert/quiet-expert").status_code == 200
    assert "quiet-expert" in public.get("/experts").get_data(as_text=True)
    assert "Verify your email to publish" not in owner.get("/expert/quiet-expert").get_data(as_text=True)


def test_a_hospitals_slots_are_hidden_until_a_staff_admin_verifies(client, make_client, smtp):
    hospital = make_hospital("Quiet Clinic", "Pune", published=False)
    admin = make_staff(hospital, email="admin@quiet.example", verified=False)
    slot = make_slot(hospital)
    patient = make_user()
    public = make_client()
    assert "Quiet Clinic" not in public.get("/clinic/search").get_data(as_text=True)
    assert public.get(f"/clinic/slots/{slot.id}").status_code == 404
    assert client.get("/api/organization/available-slots", headers=bearer(patient)).get_json() == {"slots": []}
    booking = client.post("/api/appointments", json={"slotId": slot.id, "patientName": "P", "contactNumber": "9876543210"}, headers=bearer(patient))
    assert booking.status_code == 404 and booking.get_json() == {"error": "Slot not found"}
    staff = make_client()
    login(staff, admin)
    assert "Verify your email to publish" in staff.get("/clinic/staff/slots").get_data(as_text=True)

    staff.post_form("/verify-email/resend")
    assert "your public page and your slots are not shown" in text_of(smtp.wait_for(1)[0])
    staff.get(_verify_path(smtp))
    staff.post_form("/verify-email")
    db.session.rollback()
    assert db.session.get(Hospital, hospital.id).published
    assert "Quiet Clinic" in public.get("/clinic/search").get_data(as_text=True)
    booked = client.post("/api/appointments", json={"slotId": slot.id, "patientName": "P", "contactNumber": "9876543210"}, headers=bearer(patient))
    assert booked.status_code == 201


def test_a_verified_colleague_made_staff_admin_publishes_the_hospital(client, smtp):
    hospital = make_hospital("Slow Clinic", "Pune", published=False)
    admin = make_staff(hospital, email="slow-admin@example.com", verified=False)
    colleague = make_user(email="colleague@example.com")
    login(client, admin)
    assert client.post_form("/clinic/staff", {"email": "colleague@example.com"}).status_code == 303
    db.session.rollback()
    assert not db.session.get(Hospital, hospital.id).published
    # Already on the staff: ticking "Also a staff admin" promotes them (and a verified admin publishes).
    assert client.post_form("/clinic/staff", {"email": "colleague@example.com", "make_admin": "y"}).status_code == 303
    db.session.rollback()
    assert db.session.get(User, colleague.id).is_staff_admin
    assert db.session.get(Hospital, hospital.id).published


def test_demo_accounts_are_verified_and_get_no_verification_email(app, smtp):
    from expertbook import demo

    logins = demo.load("demo-password-1")
    db.session.rollback()
    for _, email in logins:
        assert db.session.scalar(select(User.email_verified_at).where(User.email == email)) is not None, email
    assert all(db.session.scalars(select(Hospital.published)))
    assert [m for m in smtp.messages if m["Subject"] == "Confirm your email address"] == []
