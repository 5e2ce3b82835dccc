"""Rotating SECRET_KEY as docs/operations.md says (the new key in SECRET_KEY, the old one in
SECRET_KEY_FALLBACKS, every process restarted) keeps everything in flight working: a browser's login,
a form opened before the rotation, an API token, an emailed reset link, a guest's manage link, a clinic
move link, and an email queued before the rotation and sent after it (real SMTP). Everything made
afterwards is signed with the new key alone. Dropping the old key (the last step of the procedure, or
skipping the fallback) refuses whatever only it signed: what a leaked key signed stops working.

The restart is a second app built from the same database with the new settings, as a process
restarted with the new environment file is.
"""
from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest

from expertbook import create_app
from expertbook.clinic import links
from expertbook.database import utcnow
from expertbook.experts import service as experts
from expertbook.extensions import db
from expertbook.notifications import service as outbox
from tests.auth.conftest import link_in
from tests.conftest import Client, _test_config
from tests.experts.helpers import next_weekday_at
from tests.factories import PASSWORD, login_via_form, make_appointment, make_expert, make_service, make_slot, make_user
from tests.notifications.conftest import mail_config, smtp  # noqa: F401 - the fixture

OLD_KEY = "the-key-before-the-rotation-0123456789"
NEW_KEY = "the-key-after-the-rotation-9876543210"
NEW_PASSWORD = "a password chosen after the rotation"


@pytest.fixture
def app_config(smtp):  # noqa: F811
    return mail_config(smtp, SECRET_KEY=OLD_KEY)


def restarted(database_url: str, smtp, key: str, fallbacks: list[str]):  # noqa: F811
    """The app as a process restarted with ``SECRET_KEY=key`` and ``SECRET_KEY_FALLBACKS=fallbacks``."""
    app = create_app(_test_config(database_url, **mail_config(smtp, SECRET_KEY=key, SECRET_KEY_FALLBACKS=fallbacks)))
    app.test_client_class = Client
    return app


def carry_cookies(source, target) -> None:
    """Give ``target`` (a client of the restarted app) the cookies of ``source``: the same browser."""
    for cookie in source._cookies.values():
        target.set_cookie(cookie.key, cookie.value, domain=cookie.domain, path=cookie.path)


def csrf_of(page) -> str:
    return re.search(r'"X-CSRFToken": "([^"]+)"', page.get_data(as_text=True)).group(1)


class InFlight:
    """What exists before the rotation: made by the app running with the old key."""

    def __init__(self, client, smtp):  # noqa: F811
        self.patient = make_user(email="patient@example.com")
        self.forgetful = make_user(email="forgetful@example.com")
        expert = make_expert(timezone="Europe/London")
        consult = make_service(expert, location_kind="in_person")
        slot = make_slot()
        appointment = make_appointment(slot, self.patient)
        booking = experts.book(None, consult.id, next_weekday_at(10), name="Gita Guest", email="gita@example.com")
        self.manage_path = urlsplit(experts.manage_url(booking)).path
        self.move_path = f"/clinic/move/{links.move_token(appointment.id)}"
        db.session.commit()

        # A browser logged in, with a form open (its CSRF token) on the security page.
        assert login_via_form(client, self.patient.email).status_code == 303
        self.form_token = csrf_of(client.get("/profile/security"))
        # An API client's token.
        self.bearer = {"Authorization": "Bearer " + client.post("/api/auth/login", json={"email": self.patient.email, "password": PASSWORD}).get_json()["token"]}
        # A reset link in someone's inbox, not used yet.
        before = len(smtp.messages)
        assert client.post("/api/auth/forgot-password", json={"email": self.forgetful.email}).status_code == 202
        self.reset_path = urlsplit(link_in(smtp.wait_for(before + 1)[-1], "/reset-password/")).path
        # An email queued and not sent yet (the SMTP server refuses it for now): a verification link.
        smtp.then("451 4.3.0 Try again later")
        assert client.post("/api/auth/register", json={"name": "Late Mail", "email": "late@example.com", "password": PASSWORD}).status_code == 202
        self.sent_before = len(smtp.wait_for(before + 1))


def test_after_a_rotation_with_the_old_key_as_fallback_everything_in_flight_works(app, client, smtp, database_url):  # noqa: F811
    before = InFlight(client, smtp)
    new_app = restarted(database_url, smtp, NEW_KEY, [OLD_KEY])
    with new_app.app_context():
        browser = new_app.test_client()
        carry_cookies(client, browser)
        # The API token still works.
        assert browser.get("/api/auth/me", headers=before.bearer).get_json()["user"]["email"] == before.patient.email
        # The login goes on, and the form opened before the rotation can still be sent.
        assert browser.get("/profile").status_code == 200
        sent = browser.post("/profile/security/logout-others", data={"csrf_token": before.form_token})
        assert sent.status_code == 303, sent.get_data(as_text=True)
        assert browser.get("/profile").status_code == 200
        assert browser.get("/api/auth/me", headers=before.bearer).status_code == 401  # it was logged out just now
        # The guest's manage link and the clinic move link still open.
        guest = new_app.test_client()
        assert guest.get(before.manage_path).status_code == 200
        assert guest.get(before.move_path).status_code == 200
        # The reset link emailed before the rotation still resets the password.
        owner = new_app.test_client()
        assert owner.get(before.reset_path).status_code == 303
        done = owner.post_form("/reset-password", {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
        assert done.status_code == 303 and done.headers["Location"] == "/profile"
        # The email queued before the rotation goes out after it (over SMTP), and its link works.
        outbox.relay(now=utcnow() + timedelta(minutes=5))
        late = smtp.wait_for(before.sent_before + 1)[before.sent_before:]
        verify = [m for m in late if m["Subject"] == "Confirm your email address"]
        assert verify, [m["Subject"] for m in late]
        newcomer = new_app.test_client()
        assert newcomer.get(urlsplit(link_in(verify[0], "/verify-email/")).path).status_code == 303
        assert newcomer.post_form("/verify-email").status_code == 303
        db.session.remove()
        db.engine.dispose()


def test_without_the_old_key_what_it_signed_is_refused_and_the_queued_email_fails_visibly(app, client, smtp, database_url):  # noqa: F811
    """What the documented procedure avoids (restarting without the fallback), and what its last step
    does on purpose (a leaked key signs nothing that is accepted any more)."""
    before = InFlight(client, smtp)
    new_app = restarted(database_url, smtp, NEW_KEY, [])
    with new_app.app_context():
        browser = new_app.test_client()
        carry_cookies(client, browser)
        assert browser.get("/profile").status_code == 302  # logged out
        assert browser.get("/api/auth/me", headers=before.bearer).status_code == 401
        assert browser.get(before.manage_path).status_code == 404
        assert browser.get(before.move_path).status_code == 404
        owner = new_app.test_client()
        owner.get(before.reset_path)
        assert owner.get("/reset-password").status_code == 400
        outbox.relay(now=utcnow() + timedelta(minutes=5))
        [late] = [row for row in outbox.outbox() if row.to_email == "late@example.com"]
        assert late.status == "failed" and "SECRET_KEY" in late.last_error
        assert len(smtp.messages) == before.sent_before  # nothing went out without its link
        db.session.remove()
        db.engine.dispose()


def test_what_the_restarted_app_signs_needs_the_new_key_only(app, client, smtp, database_url):  # noqa: F811
    patient = make_user(email="patient@example.com")
    expert = make_expert(timezone="Europe/London")
    consult = make_service(expert, location_kind="in_person")
    db.session.commit()
    patient_email, consult_id = patient.email, consult.id
    rotating = restarted(database_url, smtp, NEW_KEY, [OLD_KEY])
    with rotating.app_context():
        browser = rotating.test_client()
        assert login_via_form(browser, patient_email).status_code == 303
        form_token = csrf_of(browser.get("/profile/security"))
        bearer = {"Authorization": "Bearer " + browser.post("/api/auth/login", json={"email": patient_email, "password": PASSWORD}).get_json()["token"]}
        booking = experts.book(None, consult_id, next_weekday_at(10), name="Gita Guest", email="gita@example.com")
        manage_path = urlsplit(experts.manage_url(booking)).path
        db.session.remove()
        db.engine.dispose()
    for key, works in ((NEW_KEY, True), (OLD_KEY, False)):
        alone = restarted(database_url, smtp, key, [])
        with alone.app_context():
            other = alone.test_client()
            carry_cookies(browser, other)
            assert (other.get("/api/auth/me", headers=bearer).status_code == 200) is works, key
            assert (other.get(manage_path).status_code == 200) is works, key
            assert (other.get("/profile").status_code == 200) is works, key
            sent = other.post("/profile/security/logout-others", data={"csrf_token": form_token})
            assert (sent.status_code == 303 and sent.headers["Location"] == "/profile/security") is works, key
            db.session.remove()
            db.engine.dispose()
