"""Login sessions and API tokens: tokens die with a password change, a reset, a logout (that token only)
and "log out everywhere"; /profile/security lists the sessions and ends them; the worker's tick deletes
expired ones; the token check costs one lookup and the clinic booking none of its own."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from expertbook.auth import sessions
from expertbook.auth.models import AccountToken, LoginSession
from expertbook.clinic.models import Appointment, Slot
from expertbook.database import utcnow
from expertbook.extensions import db
from expertbook.notifications.service import run_relay_hooks
from tests.clinic.test_query_counts import count_statements
from tests.factories import PASSWORD, login, make_slot, make_user

CHROME_ANDROID = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36"
FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def _login_api(client, email: str, password: str = PASSWORD, agent: str = "curl/8.5.0") -> dict:
    response = client.post("/api/auth/login", json={"email": email, "password": password}, headers={"User-Agent": agent})
    assert response.status_code == 200, response.get_json()
    return {"Authorization": f"Bearer {response.get_json()['token']}"}


def _me(client, headers) -> int:
    return client.get("/api/auth/me", headers=headers).status_code


def test_a_password_change_on_the_profile_kills_every_api_token(client):
    """The issue's finding: log in through the API, change the password on /profile, GET /api/auth/me: was 200."""
    user = make_user(email="change@example.com")
    token = _login_api(client, user.email)
    assert _me(client, token) == 200
    login(client, user)
    assert client.post_form("/profile/password", {"current_password": PASSWORD, "new_password": "another long password"}).status_code == 303
    assert _me(client, token) == 401
    assert client.get("/api/auth/me", headers=token).get_json() == {"error": "Invalid token"}
    assert client.get("/profile").status_code == 200  # the browser that made the change stays logged in


def test_api_logout_ends_that_token_only(client, make_client):
    user = make_user(email="two-tokens@example.com")
    phone, laptop = _login_api(client, user.email), _login_api(client, user.email)
    browser = make_client()
    login(browser, user)
    assert client.post("/api/auth/logout", headers=phone).status_code == 204
    assert _me(client, phone) == 401
    assert client.post("/api/auth/logout", headers=phone).status_code == 401
    assert _me(client, laptop) == 200
    assert browser.get("/profile").status_code == 200


def test_api_logout_everywhere_ends_every_token_and_browser(client, make_client):
    user = make_user(email="everywhere@example.com")
    phone, laptop = _login_api(client, user.email), _login_api(client, user.email)
    browser = make_client()
    login(browser, user)
    other = make_user()
    others_token = _login_api(client, other.email)
    assert client.post("/api/auth/logout-everywhere", headers=phone).status_code == 204
    assert _me(client, phone) == _me(client, laptop) == 401
    assert browser.get("/profile").status_code == 302
    assert _me(client, others_token) == 200


def test_the_security_page_lists_sessions_and_logs_one_out(client, make_client):
    user = make_user(email="devices@example.com")
    phone = make_client()
    assert phone.post_form("/login", {"email": user.email, "password": PASSWORD}, headers={"User-Agent": CHROME_ANDROID},
                           environ_base={"REMOTE_ADDR": "203.0.113.77"}).status_code == 303
    client.post_form("/login", {"email": user.email, "password": PASSWORD}, headers={"User-Agent": FIREFOX_LINUX})
    token = _login_api(client, user.email, agent="python-requests/2.32")
    page = client.get("/profile/security")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Chrome on Android" in html and "Firefox on Linux" in html and "API token · Python" in html
    assert "203.0.113.0/24" in html and "203.0.113.77" not in html  # the network, never the address
    assert "This browser" in html and "First seen" in html and "last seen" in html

    db.session.rollback()
    phone_hash = db.session.scalar(select(LoginSession.token_hash).where(LoginSession.user_agent == CHROME_ANDROID))
    assert client.post_form(f"/profile/security/sessions/{phone_hash}/end").status_code == 303
    assert phone.get("/profile").status_code == 302
    assert _me(client, token) == 200 and client.get("/profile").status_code == 200
    # Someone else's session is not yours to end: 404, and it stays.
    db.session.rollback()
    stranger = make_user()
    strangers = make_client()
    login(strangers, stranger)
    db.session.rollback()
    stranger_hash = db.session.scalar(select(LoginSession.token_hash).where(LoginSession.user_id == stranger.id))
    assert client.post_form(f"/profile/security/sessions/{stranger_hash}/end").status_code == 404
    assert strangers.get("/profile").status_code == 200


def test_log_out_everywhere_else_keeps_this_browser_and_kills_api_tokens(client, make_client):
    user = make_user(email="else@example.com")
    login(client, user)
    laptop = make_client()
    login(laptop, user)
    token = _login_api(client, user.email)
    response = client.post_form("/profile/security/logout-others")
    assert response.status_code == 303
    assert client.get("/profile").status_code == 200
    assert laptop.get("/profile").status_code == 302
    assert _me(client, token) == 401


def test_session_writes_refuse_a_missing_csrf_token(client):
    user = make_user()
    login(client, user)
    assert client.post("/profile/security/logout-others").status_code == 400
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(LoginSession)) == 1


def test_the_workers_tick_deletes_expired_sessions_and_tokens(app, client):
    user = make_user()
    live = login(client, user)
    dead = login(client.application.test_client(), user)
    db.session.execute(
        LoginSession.__table__.update().where(LoginSession.token_hash == sessions.digest(dead)).values(expires_at=utcnow() - timedelta(seconds=1))
    )
    db.session.add(AccountToken(token_hash="x" * 64, user_id=user.id, purpose="reset", bound_to="y", expires_at=utcnow() - timedelta(seconds=1)))
    db.session.add(AccountToken(token_hash="z" * 64, user_id=user.id, purpose="verify", bound_to="y", expires_at=utcnow() + timedelta(days=1)))
    db.session.commit()
    assert run_relay_hooks() >= 2
    db.session.rollback()
    assert db.session.scalars(select(LoginSession.token_hash)).all() == [sessions.digest(live)]
    assert db.session.scalars(select(AccountToken.token_hash)).all() == ["z" * 64]


@pytest.mark.parametrize(
    ("agent", "label"),
    [
        (CHROME_ANDROID, "Chrome on Android"),
        (FIREFOX_LINUX, "Firefox on Linux"),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", "Safari on iPhone"),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36 Edg/126.0", "Edge on Windows"),
        ("curl/8.5.0", "curl"),
        ("", "Unknown device"),
        (None, "Unknown device"),
    ],
)
def test_device_labels(agent, label):
    assert sessions.device_label(agent) == label


@pytest.mark.parametrize(
    ("address", "prefix"),
    [("203.0.113.77", "203.0.113.0/24"), ("2001:db8:1234:5678::1", "2001:db8:1234::/48"), ("::ffff:198.51.100.9", "198.51.100.0/24"), ("nonsense", None), (None, None)],
)
def test_ip_prefixes(address, prefix):
    assert sessions.ip_prefix(address) == prefix


# ---------------------------------------------------------------------------- what the check costs


def _queries(seen: list[str]) -> list[str]:
    return [s for s in seen if s.strip().split()[0].upper() in {"SELECT", "UPDATE", "INSERT", "DELETE", "WITH"}]


def test_a_token_costs_one_indexed_lookup_per_request(client):
    user = make_user(email="cheap@example.com")
    token = _login_api(client, user.email)
    _me(client, token)  # warm-up
    with count_statements() as seen:
        assert _me(client, token) == 200
    queries = _queries(seen)
    # The session check (by primary key) and the user the view shows: as before revocation, two.
    assert len(queries) == 2, queries
    assert "login_sessions" in queries[0] and "users" in queries[1]


def test_the_clinic_booking_checks_the_token_inside_its_own_statement(client, backend):
    user = make_user(email="hot@example.com")
    slot = make_slot()
    token = _login_api(client, user.email)
    body = {"slotId": slot.id, "patientName": "Hot Path", "contactNumber": "9876543210"}
    with count_statements() as seen:
        assert client.post("/api/appointments", json=body, headers=token).status_code == 201
    # No statement of its own reads login_sessions: the check rides in the UPDATE (on PostgreSQL the whole
    # booking runs on the driver directly and no SQLAlchemy statement is seen at all).
    assert not [s for s in _queries(seen) if "login_sessions" in s and not s.lstrip().upper().startswith(("UPDATE", "WITH"))]
    if backend == "sqlite":
        assert any(s.lstrip().upper().startswith("UPDATE SLOTS") and "login_sessions" in s for s in seen)

    assert client.post("/api/auth/logout", headers=token).status_code == 204
    refused = client.post("/api/appointments", json=body, headers=token)
    assert refused.status_code == 401 and refused.get_json() == {"error": "Invalid token"}
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Appointment)) == 1
    assert db.session.scalar(select(Slot.booked_count).where(Slot.id == slot.id)) == 1
