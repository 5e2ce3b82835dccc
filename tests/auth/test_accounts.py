"""Registration, login, profile and roles."""
from sqlalchemy import func, select
import pytest

from expertbook.auth.models import User
from expertbook.extensions import db
from tests.factories import PASSWORD, login, login_via_form, make_user


def count_users() -> int:
    return db.session.scalar(select(func.count()).select_from(User))


def _emails(kind: str | None = None) -> list[tuple[str, str]]:
    from expertbook.notifications.models import OutboxEmail

    query = select(OutboxEmail.kind, OutboxEmail.to_email).order_by(OutboxEmail.id)
    return [tuple(row) for row in db.session.execute(query) if kind is None or row[0] == kind]


def test_register_creates_an_unverified_account_and_says_check_your_email(client):
    """Registering no longer logs in (an existing address could not be): the owner verifies, then logs in."""
    response = client.post_form(
        "/register",
        {"name": "  Asha   Rao ", "email": "Asha.Rao@Example.COM", "password": PASSWORD, "confirm": PASSWORD},
    )
    assert response.status_code == 303 and response.headers["Location"] == "/check-email"
    user = db.session.scalar(select(User))
    assert user.email == "asha.rao@example.com"
    assert user.name == "Asha Rao"
    assert not user.is_expert and not user.is_staff and not user.email_verified
    assert _emails() == [("auth-verify-email", "asha.rao@example.com")]
    assert "asha.rao@example.com" in client.get("/check-email").get_data(as_text=True)
    assert client.get("/profile").status_code == 302  # not logged in
    assert login_via_form(client, "asha.rao@example.com").status_code == 303
    assert "Asha Rao" in client.get("/profile").get_data(as_text=True)


def test_register_answers_a_taken_email_exactly_like_a_new_one_and_tells_its_owner(client, make_client):
    make_user(email="taken@example.com")
    taken = client.post_form("/register", {"name": "X", "email": "TAKEN@example.com", "password": PASSWORD, "confirm": PASSWORD})
    fresh = make_client().post_form("/register", {"name": "Y", "email": "fresh@example.com", "password": PASSWORD, "confirm": PASSWORD})
    assert (taken.status_code, taken.headers["Location"]) == (fresh.status_code, fresh.headers["Location"]) == (303, "/check-email")
    assert count_users() == 2
    assert _emails() == [("auth-registration-attempt", "taken@example.com"), ("auth-verify-email", "fresh@example.com")]
    # Trying again within the hour does not email the owner again (no mailbox flooding through the form).
    again = client.post_form("/register", {"name": "X", "email": "taken@example.com", "password": PASSWORD, "confirm": PASSWORD})
    assert again.status_code == 303
    assert len(_emails("auth-registration-attempt")) == 1


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


def test_argon2_never_runs_inside_a_write_transaction(app, monkeypatch):
    """On SQLite a transaction holds the database's write lock; a hash takes about 0.1 s, so it runs before."""
    from expertbook.auth import service as accounts
    from expertbook.clinic import hospitals

    seen = []
    real = accounts.hasher

    class Watched:
        def hash(self, *args):
            seen.append(("hash", bool(db.session.info.get("uow_depth"))))
            return real.hash(*args)

        def verify(self, *args):
            seen.append(("verify", bool(db.session.info.get("uow_depth"))))
            return real.verify(*args)

    monkeypatch.setattr(accounts, "hasher", Watched())
    user = accounts.register_user("Lock Free", "lockfree@example.com", "a-long-password-1")
    hospitals.register_hospital("Free Hospital", "Pune", "Admin", "admin-free@example.com", "a-long-password-1")
    accounts.change_password(user.id, "a-long-password-1", "another-long-password-2")
    assert [kind for kind, _ in seen] == ["hash", "hash", "verify", "hash"]
    assert not any(inside for _, inside in seen)


def test_a_login_session_lasts_as_long_as_session_days(app):
    from datetime import timedelta

    from expertbook.auth import service as accounts
    from expertbook.auth import sessions
    from expertbook.auth.models import LoginSession
    from expertbook.database import utcnow

    app.permanent_session_lifetime = timedelta(days=30)
    user = accounts.register_user("Long Stay", "long@example.com", "a-long-password-1")
    sessions.start_session(user.id)
    expires_at = db.session.scalar(select(LoginSession.expires_at).where(LoginSession.user_id == user.id))
    assert timedelta(days=29, hours=23) < expires_at - utcnow() <= timedelta(days=30)


def test_a_password_changed_meanwhile_is_not_overwritten(app, monkeypatch):
    from expertbook.auth import service as accounts
    from expertbook.errors import ValidationFailed

    user = accounts.register_user("Racer", "racer@example.com", "a-long-password-1")
    real_hash = accounts.hash_password

    def hash_and_race(password):
        # Another tab changes the password between our check of the current one and our write.
        db.session.execute(User.__table__.update().where(User.id == user.id).values(password_hash=real_hash("other-tab-password-3")))
        db.session.commit()
        return real_hash(password)

    monkeypatch.setattr(accounts, "hash_password", hash_and_race)
    with pytest.raises(ValidationFailed):
        accounts.change_password(user.id, "a-long-password-1", "new-long-password-2")
    monkeypatch.setattr(accounts, "hash_password", real_hash)
    assert accounts.authenticate("racer@example.com", "other-tab-password-3") is not None
