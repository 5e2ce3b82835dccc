"""One test per security item of the foundation; each fails if its protection is taken away."""
import re
import time

import pytest
from argon2 import Type, extract_parameters
from flask import session
from sqlalchemy import select, text

from expertbook import create_app
from expertbook.auth.models import User
from expertbook.extensions import db
from expertbook.web import is_safe_next
from tests.conftest import _test_config
from tests.factories import PASSWORD, login, login_via_form, make_user


# ---------------------------------------------------------------------------- CSRF


def test_form_post_without_csrf_token_is_refused_and_writes_nothing(client):
    response = client.post("/register", data={"name": "X", "email": "x@example.com", "password": PASSWORD, "confirm": PASSWORD})
    assert response.status_code == 400
    assert db.session.scalar(select(User)) is None


def test_htmx_post_sends_token_as_header(client):
    user = make_user()
    login(client, user)
    profile = {"display_name": "Someone", "handle": "someone", "timezone": "UTC"}
    refused = client.post("/profile/become-expert", data=profile, headers={"HX-Request": "true"})
    assert refused.status_code == 400
    token = client.csrf_token()
    accepted = client.post("/profile/become-expert", data=profile, headers={"HX-Request": "true", "X-CSRFToken": token})
    assert accepted.status_code == 204 and accepted.headers["HX-Redirect"] == "/experts/settings/services"
    db.session.refresh(user)
    assert user.is_expert


def test_body_carries_the_csrf_header_for_htmx(client):
    body = client.get("/").get_data(as_text=True)
    assert re.search(r'<body hx-headers=\'\{"X-CSRFToken": "[^"]+"\}\'>', body)


def test_csrf_token_from_another_session_is_refused(client, make_client):
    other = make_client()
    foreign_token = other.csrf_token()
    client.get("/")
    response = client.post(
        "/register", data={"csrf_token": foreign_token, "name": "X", "email": "x@example.com", "password": PASSWORD, "confirm": PASSWORD}
    )
    assert response.status_code == 400


# ---------------------------------------------------------------------------- no state change on GET


def _snapshot() -> dict:
    tables = [t.name for t in db.metadata.sorted_tables]
    return {t: db.session.execute(text(f'SELECT * FROM "{t}" ORDER BY 1')).all() for t in tables}


def test_no_get_route_changes_state(app, client):
    user = make_user(hospital=None)
    login(client, user)
    before = _snapshot()
    for rule in app.url_map.iter_rules():
        if "GET" in rule.methods and not rule.arguments and not rule.rule.startswith("/static"):
            client.get(rule.rule)
    db.session.rollback()
    assert _snapshot() == before


@pytest.mark.parametrize("path", ["/logout", "/profile/become-expert", "/profile/password"])
def test_writes_refuse_get(client, path):
    login(client, make_user())
    assert client.get(path).status_code == 405


# ---------------------------------------------------------------------------- sessions


def test_session_is_cleared_at_login(client):
    make_user(email="fix@example.com")
    with client.session_transaction() as sess:
        sess["planted"] = "attacker"
        sess["_user_id"] = "attacker-chosen-id"
    login_via_form(client, "fix@example.com")
    with client.session_transaction() as sess:
        assert "planted" not in sess
        assert sess["_user_id"] != "attacker-chosen-id"


def test_logout_ends_the_session_even_for_a_copied_cookie(app, client, make_client):
    make_user(email="copy@example.com")
    login_via_form(client, "copy@example.com")
    stolen = client.get_cookie("session").value
    client.post_form("/logout")
    thief = make_client()
    thief.set_cookie("session", stolen)
    assert thief.get("/profile").status_code == 302


def test_password_change_ends_other_sessions(client, make_client):
    user = make_user()
    laptop = make_client()
    login(laptop, user)
    login(client, user)
    assert laptop.get("/profile").status_code == 200
    client.post_form("/profile/password", {"current_password": PASSWORD, "new_password": "another long password"})
    assert client.get("/profile").status_code == 200
    assert laptop.get("/profile").status_code == 302


def test_expired_login_session_is_refused(client):
    from expertbook.auth.models import LoginSession
    from datetime import timedelta
    from expertbook.database import utcnow

    user = make_user()
    login(client, user)
    db.session.execute(LoginSession.__table__.update().values(expires_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    assert client.get("/profile").status_code == 302


def test_cookies_are_httponly_and_lax(client):
    make_user(email="c@example.com")
    response = login_via_form(client, "c@example.com")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


def test_cookies_are_secure_in_production(database_url):
    app = create_app(_test_config(database_url, PRODUCTION=True, SESSION_COOKIE_SECURE=True))
    from expertbook.config import from_env

    config = from_env({"EXPERTBOOK_ENV": "production", "SECRET_KEY": "k" * 32})
    assert config["SESSION_COOKIE_SECURE"] is True
    assert from_env({"EXPERTBOOK_ENV": "development"})["SESSION_COOKIE_SECURE"] is False
    with app.test_request_context("/"):
        session["x"] = 1
    assert app.config["SESSION_COOKIE_SECURE"]


def test_production_refuses_to_start_without_a_secret_key(monkeypatch, database_url):
    from expertbook.config import ConfigError

    monkeypatch.setenv("EXPERTBOOK_ENV", "production")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setenv("DATABASE_URL", database_url)
    with pytest.raises(ConfigError):
        create_app()
    monkeypatch.setenv("SECRET_KEY", "dev-only-not-secret")
    with pytest.raises(ConfigError):
        create_app()


# ---------------------------------------------------------------------------- passwords


def test_passwords_are_hashed_with_argon2id_at_owasp_strength(client):
    client.post_form("/register", {"name": "H", "email": "h@example.com", "password": PASSWORD, "confirm": PASSWORD})
    stored = db.session.scalar(select(User.password_hash))
    assert PASSWORD not in stored
    params = extract_parameters(stored)
    assert params.type is Type.ID
    # OWASP: at least m=19 MiB with t=2, p=1.
    assert params.memory_cost >= 19 * 1024 and params.time_cost >= 2


# ---------------------------------------------------------------------------- login throttling


def _strip_tokens(body: str) -> str:
    return re.sub(r'(value="|"X-CSRFToken": ")[^"]+', r"\1", body)


def test_unknown_user_and_wrong_password_look_identical(client, make_client):
    make_user(email="known@example.com")
    a = login_via_form(client, "known@example.com", "wrong password!!")
    b = login_via_form(make_client(), "unknown@example.com", "wrong password!!")
    assert a.status_code == b.status_code == 422
    assert _strip_tokens(a.get_data(as_text=True)) == _strip_tokens(b.get_data(as_text=True))


class FakeClock:
    """Stands in for the rate limiter's clock, so windows pass without sleeping or racing the machine's load."""

    def __init__(self):
        self.now = time.time()

    def time(self) -> float:
        return self.now


@pytest.fixture
def limiter_clock(monkeypatch):
    import limits.storage.memory

    clock = FakeClock()
    monkeypatch.setattr(limits.storage.memory, "time", clock)
    return clock


@pytest.fixture
def short_limits(app, limiter_clock):
    app.config["LOGIN_LIMIT_PER_ACCOUNT"] = "3 per minute"
    app.config["LOGIN_LIMIT_PER_IP"] = "6 per minute"
    return limiter_clock


def _attempt(client, email, password="wrong password!!", ip="10.0.0.1"):
    token = client.csrf_token()
    return client.post(
        "/login", data={"csrf_token": token, "email": email, "password": password}, environ_base={"REMOTE_ADDR": ip}
    )


def test_login_is_throttled_per_account_across_ips_and_recovers(client, short_limits):
    make_user(email="victim@example.com")
    for i in range(3):
        assert _attempt(client, "victim@example.com", ip=f"10.0.1.{i}").status_code == 422
    assert _attempt(client, "victim@example.com", ip="10.0.1.99").status_code == 429
    # Other accounts are unaffected...
    assert _attempt(client, "other@example.com", ip="10.0.1.98").status_code == 422
    # ...and the lock is not for good: once the window passes, the right password works.
    short_limits.now += 61
    assert _attempt(client, "victim@example.com", password=PASSWORD, ip="10.0.1.97").status_code == 303


def test_login_is_throttled_per_ip(client, short_limits):
    for i in range(6):
        assert _attempt(client, f"spray{i}@example.com", ip="10.0.2.1").status_code == 422
    assert _attempt(client, "spray-more@example.com", ip="10.0.2.1").status_code == 429
    assert _attempt(client, "spray-more@example.com", ip="10.0.2.2").status_code == 422


def test_the_form_and_the_api_share_one_login_throttle(client, short_limits):
    """Two doors to the same accounts must not double the guesses an attacker gets."""
    make_user(email="shared@example.com")

    def api_attempt(email, ip):
        return client.post("/api/auth/login", json={"email": email, "password": "wrong password!!"}, environ_base={"REMOTE_ADDR": ip})

    assert _attempt(client, "shared@example.com", ip="10.0.3.1").status_code == 422
    assert api_attempt("Shared@Example.com", "10.0.3.2").status_code == 401  # the same account, however written
    assert _attempt(client, "shared@example.com", ip="10.0.3.3").status_code == 422
    assert api_attempt("shared@example.com", "10.0.3.4").status_code == 429
    assert _attempt(client, "shared@example.com", ip="10.0.3.5").status_code == 429
    # Per address too: six failures from one address, through either door, and it waits.
    for i in range(3):
        assert api_attempt(f"api{i}@example.com", "10.0.4.1").status_code == 401
        assert _attempt(client, f"form{i}@example.com", ip="10.0.4.1").status_code == 422
    assert api_attempt("api-more@example.com", "10.0.4.1").status_code == 429


def test_behind_a_proxy_each_client_has_its_own_address(app, client, short_limits):
    from werkzeug.middleware.proxy_fix import ProxyFix

    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1)  # what PROXY_HOPS=1 does in create_app

    def through_proxy(email, client_ip):
        token = client.csrf_token()
        return client.post("/login", data={"csrf_token": token, "email": email, "password": "wrong password!!"},
                           environ_base={"REMOTE_ADDR": "10.9.9.9"}, headers={"X-Forwarded-For": client_ip})

    for i in range(6):
        assert through_proxy(f"spray{i}@example.com", "203.0.113.7").status_code == 422
    assert through_proxy("spray-more@example.com", "203.0.113.7").status_code == 429
    # Someone else behind the same proxy is not locked out by that client's failures.
    assert through_proxy("someone@example.com", "198.51.100.4").status_code == 422


def test_proxy_hops_installs_proxy_fix(database_url):
    from werkzeug.middleware.proxy_fix import ProxyFix

    from tests.conftest import _test_config

    assert not isinstance(create_app(_test_config(database_url)).wsgi_app, ProxyFix)
    fixed = create_app(_test_config(database_url, PROXY_HOPS=2)).wsgi_app
    assert isinstance(fixed, ProxyFix) and fixed.x_for == 2 and fixed.x_proto == 2


def test_successful_logins_are_not_counted(client, short_limits):
    make_user(email="happy@example.com")
    for _ in range(5):
        assert _attempt(client, "happy@example.com", password=PASSWORD).status_code == 303
        client.post_form("/logout")


def _rate_limit_headers(response) -> list[str]:
    return [name for name in response.headers.keys() if "ratelimit" in name.lower() or name.lower() == "retry-after"]


def test_account_answers_carry_no_rate_limit_headers_though_other_limited_ones_do(app, client):
    """A bucket keyed on an email address would tell a second client, through X-RateLimit-Remaining, that
    someone just asked to reset (or tried to log in to) that address; the answers of the account
    endpoints, their 429s included, say nothing of their limits. The guest booking API still does."""
    app.config["PASSWORD_RESET_LIMIT_PER_ADDRESS"] = "2 per hour"
    user = make_user(email="quiet@example.com")
    login(client, user)
    answers = {
        "forgot (page)": client.post_form("/forgot-password", {"email": "asked@example.com"}),
        "forgot (API)": client.post("/api/auth/forgot-password", json={"email": "asked@example.com"}),
        "forgot, refused (API)": client.post("/api/auth/forgot-password", json={"email": "asked@example.com"}),
        "register (page)": client.post_form("/register", {"name": "N", "email": "n@example.com", "password": PASSWORD, "confirm": PASSWORD}),
        "register (API)": client.post("/api/auth/register", json={"name": "M", "email": "m@example.com", "password": PASSWORD}),
        "resend": client.post_form("/verify-email/resend"),
        "login (page)": client.post_form("/login", {"email": "quiet@example.com", "password": "wrong password!!"}),
        "login (API)": client.post("/api/auth/login", json={"email": "quiet@example.com", "password": "wrong password!!"}),
    }
    assert answers["forgot, refused (API)"].status_code == 429
    assert {what: _rate_limit_headers(answer) for what, answer in answers.items()} == {what: [] for what in answers}
    from tests.experts.helpers import next_weekday_at
    from tests.factories import make_expert, make_service

    consult = make_service(make_expert())
    guest = client.post("/api/bookings", json={"serviceId": consult.id, "start": next_weekday_at(10).isoformat(), "name": "G", "email": "g@example.com"})
    assert guest.status_code == 201 and "X-RateLimit-Remaining" in _rate_limit_headers(guest)


# ---------------------------------------------------------------------------- redirects


@pytest.mark.parametrize(
    "target",
    ["//evil.example", "/\\evil.example", "https:evil.example", "\\\\evil.example", "%2F%2Fevil.example",
     "javascript:alert(1)", "https://evil.example/", "/\t/evil.example", ""],
)
def test_next_only_redirects_to_same_site_paths(client, target):
    make_user(email="n@example.com")
    response = login_via_form(client, "n@example.com", next=target)
    assert response.status_code == 303
    assert response.headers["Location"] == "/"
    assert not is_safe_next(target)


def test_next_same_site_path_is_followed(client):
    make_user(email="n@example.com")
    response = login_via_form(client, "n@example.com", next="/profile?tab=1")
    assert response.headers["Location"] == "/profile?tab=1"


# ---------------------------------------------------------------------------- headers, errors, htmx


def test_security_headers_and_a_csp_without_unsafe_sources(client):
    response = client.get("/login")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp
    assert "unsafe" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "same-origin"
    body = response.get_data(as_text=True)
    assert '"allowEval":false' in body and '"includeIndicatorStyles":false' in body
    assert "<script>" not in body and " style=" not in body


def test_htmx_request_with_expired_session_gets_hx_redirect(client):
    response = client.get("/profile", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"] == "/login?next=/profile"
    assert response.get_data() == b""


def test_production_error_pages_show_no_traceback(database_url):
    app = create_app(_test_config(database_url, TESTING=False, PRODUCTION=True))

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals")

    @app.get("/api/boom")
    def api_boom():
        raise RuntimeError("secret internals")

    response = app.test_client().get("/boom")
    body = response.get_data(as_text=True)
    assert response.status_code == 500
    assert "Traceback" not in body and "secret internals" not in body
    assert "Something went wrong" in body
    api = app.test_client().get("/api/boom")
    assert api.status_code == 500 and api.get_json() == {"error": "Something went wrong on our side. Please try again."}


def test_other_peoples_objects_are_404(client):
    login(client, make_user())
    assert client.get("/clinic/staff").status_code == 404


def test_user_content_is_escaped(client):
    user = make_user(name="<script>alert(1)</script>")
    login(client, user)
    body = client.get("/profile").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
