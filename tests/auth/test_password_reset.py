"""Password reset: neutral answers, the emailed single-use link (real SMTP), the clean URL, binding to the
current password, the end of every session and token, the API, throttling and the logs."""
from __future__ import annotations

import json
import logging
import re
import time
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select, text

from expertbook.auth import tokens
from expertbook.auth.models import AccountToken, LoginSession, User
from expertbook.database import utcnow
from expertbook.extensions import db
from expertbook.notifications.models import OutboxEmail
from tests.auth.conftest import link_in, text_of, to
from tests.factories import PASSWORD, api_token, login, login_via_form, make_user

INVALID = "This link has expired or was already used"
NEW_PASSWORD = "a brand new password"


@pytest.fixture
def app_config(mail_app_config):
    return mail_app_config


def _ask(client, email: str):
    return client.post_form("/forgot-password", {"email": email})


def _reset_link(smtp, count: int = 1) -> str:
    message = smtp.wait_for(count)[count - 1]
    assert message["Subject"] == "Reset your ExpertBook password"
    return link_in(message, "/reset-password/")


def _path(link: str) -> str:
    return urlsplit(link).path


def test_the_login_page_offers_forgot_password(client):
    page = client.get("/login").get_data(as_text=True)
    assert 'href="/forgot-password"' in page and "Forgot your password?" in page


def test_forgot_password_answers_alike_and_only_an_account_gets_the_email(client, make_client, smtp):
    make_user(email="owner@example.com")
    known = _ask(client, "Owner@Example.com")
    unknown = _ask(make_client(), "nobody@example.com")
    assert known.status_code == unknown.status_code == 200
    assert "we have sent it a link to choose a new password" in known.get_data(as_text=True)

    def page(response, typed):  # the same page but for the address typed and the session's CSRF token
        return re.sub(r'"X-CSRFToken": "[^"]+"', "", response.get_data(as_text=True).replace(typed, "ADDRESS"))

    assert page(known, "Owner@Example.com") == page(unknown, "nobody@example.com")
    [message] = smtp.wait_for(1)
    time.sleep(0.2)
    assert len(smtp.messages) == 1 and to(message) == "owner@example.com"
    assert "for 30 minutes" in text_of(message)


def test_forgot_password_bad_input_is_422_and_sends_nothing(client, smtp):
    response = _ask(client, "not an address")
    assert response.status_code == 422 and 'aria-invalid="true"' in response.get_data(as_text=True)
    api = client.post("/api/auth/forgot-password", json={"email": "not an address"})
    assert api.status_code == 422 and "email" in api.get_json()["fields"]
    assert client.post("/api/auth/forgot-password", json={}).get_json()["fields"] == {"email": ["This field is required."]}
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(OutboxEmail)) == 0


def test_the_link_resets_the_password_once_logs_in_and_ends_every_other_session(client, make_client, smtp):
    user = make_user(email="reset@example.com")
    laptop = make_client()
    login(laptop, user)
    old_token = api_token(user)
    assert _ask(client, user.email).status_code == 200
    link = _reset_link(smtp)

    # The first load moves the token into the session and redirects to the clean URL.
    first = client.get(_path(link))
    assert first.status_code == 303 and first.headers["Location"] == "/reset-password"
    token = _path(link).rsplit("/", 1)[1]
    assert token not in first.headers["Location"]
    form = client.get("/reset-password")
    assert form.status_code == 200 and "Choose a new password" in form.get_data(as_text=True)
    assert token not in form.get_data(as_text=True)

    done = client.post_form("/reset-password", {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert done.status_code == 303 and done.headers["Location"] == "/profile"
    assert client.get("/profile").status_code == 200  # logged in
    assert laptop.get("/profile").status_code == 302  # the other browser is logged out
    assert client.get("/api/auth/me", headers={"Authorization": f"Bearer {old_token}"}).status_code == 401
    # Exactly this browser's new session is left.
    db.session.rollback()  # end the test's own read snapshot
    assert db.session.scalar(select(func.count()).select_from(LoginSession).where(LoginSession.user_id == user.id)) == 1

    notice = smtp.wait_for(2)[1]
    assert notice["Subject"] == "Your ExpertBook password was changed" and to(notice) == user.email
    assert "/forgot-password" in text_of(notice)

    client.post_form("/logout")
    assert login_via_form(client, user.email, PASSWORD).status_code == 422
    assert login_via_form(client, user.email, NEW_PASSWORD).status_code == 303

    # Used up: the same link now says what a wrong one says.
    again = make_client()
    again.get(_path(link))
    reused = again.get("/reset-password")
    assert reused.status_code == 400 and INVALID in reused.get_data(as_text=True)


def test_the_link_is_bound_to_the_password_it_was_sent_for(client, make_client, smtp):
    user = make_user(email="bound@example.com")
    _ask(client, user.email)
    link = _reset_link(smtp)
    # The owner remembers the password and changes it on their profile: the link dies with the old password.
    other = make_client()
    login(other, user)
    assert other.post_form("/profile/password", {"current_password": PASSWORD, "new_password": "changed on profile"}).status_code == 303
    client.get(_path(link))
    response = client.get("/reset-password")
    assert response.status_code == 400 and INVALID in response.get_data(as_text=True)
    api = client.post("/api/auth/reset-password", json={"token": _path(link).rsplit("/", 1)[1], "password": NEW_PASSWORD})
    assert api.status_code == 400 and api.get_json() == {"error": INVALID}


def test_wrong_expired_and_used_tokens_answer_exactly_alike(app, client, smtp):
    user = make_user(email="alike@example.com")
    _ask(client, user.email)
    good = _path(_reset_link(smtp)).rsplit("/", 1)[1]
    answers = []

    def attempt(token: str):
        response = client.post("/api/auth/reset-password", json={"token": token, "password": NEW_PASSWORD})
        answers.append((response.status_code, response.get_json()))

    attempt("x" * 43)  # wrong
    attempt("not a token at all!")  # malformed
    db.session.rollback()
    db.session.execute(AccountToken.__table__.update().values(expires_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    attempt(good)  # expired
    db.session.execute(AccountToken.__table__.update().values(expires_at=utcnow() + timedelta(minutes=5)))
    db.session.commit()
    assert client.post("/api/auth/reset-password", json={"token": good, "password": NEW_PASSWORD}).status_code == 200
    attempt(good)  # used
    assert answers == [(400, {"error": INVALID})] * 4


def test_a_reset_link_expires_after_password_reset_minutes(app, client, smtp):
    app.config["PASSWORD_RESET_MINUTES"] = 30
    user = make_user(email="minutes@example.com")
    _ask(client, user.email)
    db.session.rollback()
    row = db.session.scalar(select(AccountToken))
    assert timedelta(minutes=29, seconds=50) < row.expires_at - row.created_at <= timedelta(minutes=30)


def test_a_new_request_replaces_the_earlier_link(client, smtp):
    make_user(email="twice@example.com")
    _ask(client, "twice@example.com")
    _ask(client, "twice@example.com")
    first, second = _reset_link(smtp, 1), _reset_link(smtp, 2)
    first_token, second_token = (_path(link).rsplit("/", 1)[1] for link in (first, second))
    assert client.post("/api/auth/reset-password", json={"token": first_token, "password": NEW_PASSWORD}).status_code == 400
    assert client.post("/api/auth/reset-password", json={"token": second_token, "password": NEW_PASSWORD}).status_code == 200


def test_a_too_short_password_is_422_and_keeps_the_token(client, smtp):
    user = make_user(email="short@example.com")
    _ask(client, user.email)
    link = _reset_link(smtp)
    client.get(_path(link))
    short = client.post_form("/reset-password", {"password": "short", "confirm": "short"})
    assert short.status_code == 422 and "Field must be between" in short.get_data(as_text=True)
    mismatch = client.post_form("/reset-password", {"password": NEW_PASSWORD, "confirm": "something else!"})
    assert mismatch.status_code == 422 and "The passwords do not match." in mismatch.get_data(as_text=True)
    token = _path(link).rsplit("/", 1)[1]
    api = client.post("/api/auth/reset-password", json={"token": token, "password": "short"})
    assert api.status_code == 422 and "password" in api.get_json()["fields"]
    assert client.post("/api/auth/reset-password", json={"password": NEW_PASSWORD}).get_json()["fields"] == {"token": ["This field is required."]}
    assert client.post("/api/auth/login", json={"email": user.email, "password": PASSWORD}).status_code == 200  # unchanged
    assert client.post_form("/reset-password", {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD}).status_code == 303


def test_the_token_is_stored_only_as_a_hash_and_the_outbox_holds_it_sealed(client, smtp):
    make_user(email="hash@example.com")
    _ask(client, "hash@example.com")
    token = _path(_reset_link(smtp)).rsplit("/", 1)[1]
    db.session.rollback()
    stored = db.session.scalar(select(AccountToken.token_hash))
    assert stored == tokens.digest(token) and token not in stored
    for table in ("account_tokens", "outbox_emails", "login_sessions"):
        dump = json.dumps([list(map(str, row)) for row in db.session.execute(text(f"SELECT * FROM {table}"))])
        assert token not in dump, f"the reset token is readable in {table}"


def test_the_api_answers_202_alike_and_resets_with_the_emailed_token(client, smtp):
    user = make_user(email="api-reset@example.com")
    token_before = api_token(user)
    known = client.post("/api/auth/forgot-password", json={"email": "API-reset@example.com"})
    unknown = client.post("/api/auth/forgot-password", json={"email": "ghost@example.com"})
    assert (known.status_code, known.get_json()) == (unknown.status_code, unknown.get_json()) == (202, {"status": "check your email"})
    token = _path(_reset_link(smtp)).rsplit("/", 1)[1]
    done = client.post("/api/auth/reset-password", json={"token": token, "password": NEW_PASSWORD})
    assert done.status_code == 200 and done.get_json() == {"status": "password changed"}
    assert client.get("/api/auth/me", headers={"Authorization": f"Bearer {token_before}"}).status_code == 401
    assert client.post("/api/auth/login", json={"email": user.email, "password": NEW_PASSWORD}).status_code == 200


def test_a_reset_verifies_the_address_it_reached(client, smtp):
    user = make_user(email="unverified@example.com", verified=False)
    _ask(client, user.email)
    token = _path(_reset_link(smtp)).rsplit("/", 1)[1]
    client.post("/api/auth/reset-password", json={"token": token, "password": NEW_PASSWORD})
    db.session.rollback()
    assert db.session.get(User, user.id).email_verified


@pytest.fixture
def slow_answers(app):
    app.config["ACCOUNT_ANSWER_SECONDS"] = 0.4


def test_the_answer_takes_as_long_for_an_account_as_for_none(app, client, make_client, smtp, slow_answers):
    make_user(email="timed@example.com")
    durations = {}
    for email in ("timed@example.com", "untimed@example.com", "timed@example.com", "untimed@example.com"):
        started = time.monotonic()
        response = make_client().post("/api/auth/forgot-password", json={"email": email})
        durations.setdefault(email, []).append(time.monotonic() - started)
        assert response.status_code == 202
    everything = [d for ds in durations.values() for d in ds]
    assert min(everything) >= 0.4
    # The padding hides the difference (a token, an email and an SMTP delivery, or nothing).
    assert abs(min(durations["timed@example.com"]) - min(durations["untimed@example.com"])) < 0.2


def _from(ip: str) -> dict:
    return {"environ_base": {"REMOTE_ADDR": ip}}


def test_forgot_password_is_throttled_per_address_whatever_the_door_or_client(app, client, smtp):
    app.config["PASSWORD_RESET_LIMIT_PER_ADDRESS"] = "2 per hour"
    make_user(email="limited@example.com")
    assert client.post_form("/forgot-password", {"email": "limited@example.com"}, **_from("10.0.0.1")).status_code == 200
    assert client.post("/api/auth/forgot-password", json={"email": "LIMITED@example.com"}, **_from("10.0.0.2")).status_code == 202
    assert client.post_form("/forgot-password", {"email": "limited@example.com"}, **_from("10.0.0.3")).status_code == 429
    assert client.post("/api/auth/forgot-password", json={"email": "limited@example.com"}, **_from("10.0.0.4")).status_code == 429
    assert client.post("/api/auth/forgot-password", json={"email": "someone-else@example.com"}, **_from("10.0.0.4")).status_code == 202
    assert len(smtp.wait_for(2)) == 2


def test_forgot_password_is_throttled_per_client_address(app, client, smtp):
    app.config["PASSWORD_RESET_LIMIT_PER_IP"] = "3 per hour"
    for n in range(3):
        assert client.post("/api/auth/forgot-password", json={"email": f"probe{n}@example.com"}, **_from("10.0.0.9")).status_code == 202
    assert client.post("/api/auth/forgot-password", json={"email": "probe9@example.com"}, **_from("10.0.0.9")).status_code == 429
    assert client.post_form("/forgot-password", {"email": "probe9@example.com"}, **_from("10.0.0.9")).status_code == 429
    assert client.post("/api/auth/forgot-password", json={"email": "probe9@example.com"}, **_from("10.0.0.10")).status_code == 202


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(self.format(record))


def test_the_token_never_reaches_the_request_logs(app, live_server, smtp):
    """Werkzeug's request log (as gunicorn's access log) shows /reset-password/[redacted]."""
    import requests

    make_user(email="logs@example.com")
    records = _Records()
    logger = logging.getLogger("werkzeug")
    logger.addHandler(records)
    previous, logger.disabled = logger.disabled, False
    try:
        session = requests.Session()
        page = session.get(live_server + "/forgot-password", timeout=10).text
        csrf = page.split('name="csrf_token" type="hidden" value="', 1)[1].split('"', 1)[0]
        session.post(live_server + "/forgot-password", data={"csrf_token": csrf, "email": "logs@example.com"}, timeout=10)
        link = _reset_link(smtp)
        token = _path(link).rsplit("/", 1)[1]
        answer = session.get(live_server + _path(link), allow_redirects=False, timeout=10)
        assert answer.status_code == 303
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any("/reset-password/" in line for line in records.lines):
            time.sleep(0.05)
    finally:
        logger.removeHandler(records)
        logger.disabled = previous
    logged = "\n".join(records.lines)
    assert "/reset-password/[redacted]" in logged
    assert token not in logged


def test_gunicorn_access_records_are_redacted_too():
    from expertbook.auth.redact import TokenFilter

    record = logging.LogRecord("gunicorn.access", logging.INFO, __file__, 1, '%(h)s "%(r)s" %(s)s', None, None)
    record.args = {"h": "127.0.0.1", "r": "GET /verify-email/abcDEF123_-x HTTP/1.1", "s": "303", "U": "/verify-email/abcDEF123_-x"}
    TokenFilter().filter(record)
    assert record.getMessage() == '127.0.0.1 "GET /verify-email/[redacted] HTTP/1.1" 303'
    assert record.args["U"] == "/verify-email/[redacted]"
