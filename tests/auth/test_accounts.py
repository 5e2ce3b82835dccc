"""Registration, login, profile and roles."""
from sqlalchemy import func, select

from expertbook.auth.models import User
from expertbook.extensions import db
from tests.factories import PASSWORD, login, login_via_form, make_user


def count_users() -> int:
    return db.session.scalar(select(func.count()).select_from(User))


def test_register_creates_account_logs_in_and_normalises_email(client):
    response = client.post_form(
        "/register",
        {"name": "  Asha   Rao ", "email": "Asha.Rao@Example.COM", "password": PASSWORD, "confirm": PASSWORD},
    )
    assert response.status_code == 303
    user = db.session.scalar(select(User))
    assert user.email == "asha.rao@example.com"
    assert user.name == "Asha Rao"
    assert not user.is_expert and not user.is_staff
    assert "Asha Rao" in client.get("/profile").get_data(as_text=True)


def test_register_rejects_duplicate_email_case_insensitively(client):
    make_user(email="taken@example.com")
    response = client.post_form(
        "/register", {"name": "X", "email": "TAKEN@example.com", "password": PASSWORD, "confirm": PASSWORD}
    )
    assert response.status_code == 422
    assert "already exists" in response.get_data(as_text=True)
    assert count_users() == 1


def test_register_invalid_input_answers_422_with_each_fields_message_and_writes_nothing(client):
    response = client.post_form("/register", {"name": "", "email": "not-an-email", "password": "short", "confirm": "other"})
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Please enter your name." in body
    assert "Field must be between" in body  # password length
    assert "The passwords do not match." in body
    assert 'aria-invalid="true"' in body
    assert count_users() == 0


def test_register_under_htmx_returns_only_the_form_fragment(client):
    response = client.post_form("/register", {"name": ""}, htmx=True)
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert body.lstrip().startswith('<form id="register-form"')
    assert "<html" not in body
    assert "HX-Request" in response.headers.get("Vary", "")


def test_email_with_header_injection_is_refused(client):
    response = client.post_form(
        "/register", {"name": "Eve", "email": "eve@example.com\r\nBcc: all@example.com", "password": PASSWORD, "confirm": PASSWORD}
    )
    assert response.status_code == 422
    assert count_users() == 0


def test_login_and_logout(client):
    user = make_user(email="p@example.com")
    response = login_via_form(client, "p@example.com")
    assert response.status_code == 303
    assert client.get("/profile").status_code == 200
    assert client.post_form("/logout").status_code == 303
    assert client.get("/profile").status_code == 302
    assert user.id


def test_become_an_expert_from_the_profile(client):
    user = make_user()
    login(client, user)
    assert "Become an expert" in client.get("/profile").get_data(as_text=True)
    # Becoming an expert sets up a public profile; without its fields nothing changes.
    assert client.post_form("/profile/become-expert").status_code == 422
    db.session.refresh(user)
    assert not user.is_expert
    response = client.post_form(
        "/profile/become-expert", {"display_name": user.name, "handle": "test-expert", "timezone": "Europe/London"}
    )
    assert response.status_code == 303
    db.session.rollback()
    db.session.refresh(user)
    assert user.is_expert
    assert "You are an expert" in client.get("/profile").get_data(as_text=True)


def test_change_password_requires_the_current_one(client):
    user = make_user()
    login(client, user)
    response = client.post_form("/profile/password", {"current_password": "wrong password!", "new_password": "a new long password"})
    assert response.status_code == 422
    assert "not your current password" in response.get_data(as_text=True)
    response = client.post_form("/profile/password", {"current_password": PASSWORD, "new_password": "a new long password"})
    assert response.status_code == 303
    assert client.get("/profile").status_code == 200
    client.post_form("/logout")
    assert login_via_form(client, user.email, "a new long password").status_code == 303
