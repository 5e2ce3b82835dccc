"""API accounts and bearer tokens."""
from flask import current_app
from sqlalchemy import select

from expertbook.api import service as tokens
from expertbook.auth.models import User
from expertbook.clinic.models import Hospital
from expertbook.extensions import db
from tests import factories
from tests.factories import PASSWORD, login, make_user


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def api_token(client, email: str, password: str = PASSWORD) -> str:
    response = client.post("/api/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.get_json()
    return response.get_json()["token"]


def test_signup_patient_and_hospital(client):
    """Signup answers 202 "check your email" (never a token, never the account); the client then logs in."""
    patient = client.post("/api/auth/signup", json={"name": "Pat", "email": "pat@example.com", "password": PASSWORD, "role": "patient"})
    assert patient.status_code == 202
    assert patient.get_json() == {"status": "check your email"}
    assert client.get("/api/auth/me", headers=bearer(api_token(client, "pat@example.com"))).get_json()["user"]["role"] == "patient"
    hospital = client.post(
        "/api/auth/signup",
        json={"name": "Admin", "email": "admin@h.example", "password": PASSWORD, "role": "hospital", "hospitalName": "Apollo", "location": "Delhi"},
    )
    assert hospital.status_code == 202 and hospital.get_json() == {"status": "check your email"}
    assert client.get("/api/auth/me", headers=bearer(api_token(client, "admin@h.example"))).get_json()["user"]["role"] == "hospital"
    assert db.session.scalar(select(Hospital.name)) == "Apollo"


def test_signup_missing_fields_is_422_with_each_field_and_writes_nothing(client):
    response = client.post("/api/auth/signup", json={"name": "Admin", "role": "hospital"})
    body = response.get_json()
    assert response.status_code == 422
    assert body["error"] == "Please fill in all fields"
    assert set(body["fields"]) == {"email", "password"}
    response = client.post("/api/auth/signup", json={"name": "A", "email": "a@h.example", "password": PASSWORD, "role": "hospital"})
    assert set(response.get_json()["fields"]) == {"hospitalName", "location"}
    assert db.session.scalar(select(User)) is None


def test_register_answers_check_your_email_and_the_account_logs_in(client):
    response = client.post("/api/auth/register", json={"name": "C", "email": "c@example.com", "password": PASSWORD})
    assert response.status_code == 202 and response.get_json() == {"status": "check your email"}
    me = client.get("/api/auth/me", headers=bearer(api_token(client, "c@example.com")))
    assert me.status_code == 200 and me.get_json()["user"]["email"] == "c@example.com"
    assert me.get_json()["user"]["emailVerified"] is False


def test_login_gives_a_bearer_token_with_an_expiry(client):
    make_user(email="l@example.com")
    response = client.post("/api/auth/login", json={"email": "l@example.com", "password": PASSWORD})
    body = response.get_json()
    assert body["tokenType"] == "Bearer" and body["expiresIn"] == current_app.config["API_TOKEN_HOURS"] * 3600
    wrong = client.post("/api/auth/login", json={"email": "l@example.com", "password": "wrong password!"})
    unknown = client.post("/api/auth/login", json={"email": "nobody@example.com", "password": "wrong password!"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.get_json() == unknown.get_json() == {"error": "Invalid email or password"}


def test_token_errors(client, app):
    user = make_user()
    assert client.get("/api/auth/me").get_json() == {"error": "No login token found"}
    assert client.get("/api/auth/me").status_code == 401
    expired = factories.api_token(user, hours=-1)
    response = client.get("/api/auth/me", headers=bearer(expired))
    assert response.status_code == 401 and response.get_json() == {"error": "Token expired"}
    forged = tokens.issue_token(user.id, "any-session", "another secret", tokens.expiry(1))
    assert client.get("/api/auth/me", headers=bearer(forged)).get_json() == {"error": "Invalid token"}
    assert client.get("/api/auth/me", headers=bearer("garbage")).get_json() == {"error": "Invalid token"}


def test_session_cookie_is_not_an_api_credential(client):
    login(client, make_user())
    assert client.get("/profile").status_code == 200
    assert client.get("/api/auth/me").status_code == 401


def test_api_errors_are_json(client):
    response = client.get("/api/nothing-here")
    assert response.status_code == 404
    assert "error" in response.get_json()


def test_openapi_describes_every_api_route(app, client):
    document = client.get("/api/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    described = {(url, method.upper()) for url, ops in document["paths"].items() for method in ops}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/") and rule.endpoint != "api.openapi_document":
            path = rule.rule[len("/api"):].replace("<int:", "{").replace("<", "{").replace(">", "}")
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                assert (path, method) in described, f"{method} {rule.rule} is not in /api/openapi.json"


def test_a_name_our_emails_could_not_carry_is_refused_at_every_door(client):
    """The To: header rule (no "<", ">", "@") holds for the API as for the form, so no email is silently dropped later."""
    for name in ("ann@example.com", "Ann <ann@evil.example>"):
        response = client.post("/api/auth/register", json={"name": name, "email": "ann@example.com", "password": PASSWORD})
        assert response.status_code == 422 and "name" in response.get_json()["fields"]
        signup = client.post("/api/auth/signup", json={"name": name, "email": "ann@example.com", "password": PASSWORD, "role": "patient"})
        assert signup.status_code == 422
    assert db.session.scalar(select(User)) is None
