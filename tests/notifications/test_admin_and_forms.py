"""The admin's Notifications page, the CLI commands, and header injection refused at the forms."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from expertbook.auth.models import User
from expertbook.extensions import db
from expertbook.notifications.models import OutboxEmail
from tests.factories import login, make_admin, make_staff, make_user, queue_notice
from tests.notifications.conftest import mail_config


@pytest.fixture
def app_config(smtp):
    return mail_config(smtp)


def rows() -> list[OutboxEmail]:
    db.session.rollback()
    return list(db.session.scalars(select(OutboxEmail).order_by(OutboxEmail.id)))


def test_the_page_is_404_for_everyone_but_site_admins(app, client, smtp):
    assert client.get("/notifications").status_code in (302, 401)  # login first
    login(client, make_user())
    assert client.get("/notifications").status_code == 404
    staff_client = app.test_client()
    login(staff_client, make_staff())
    assert staff_client.get("/notifications").status_code == 404
    smtp.then("550 5.1.1 User unknown")
    failed = queue_notice()
    assert client.post_form(f"/notifications/{failed}/retry").status_code == 404
    assert rows()[0].status == "failed"


def test_failed_and_pending_rows_are_listed_with_reason_and_attempts(app, client, smtp):
    smtp.then("550 5.1.1 User <unknown>", "451 4.3.0 Greylisted")
    queue_notice(to_email="gone@example.com", subject="Failed one")
    queue_notice(to_email="later@example.com", subject="Pending one")
    queue_notice(to_email="fine@example.com", subject="Sent one")
    login(client, make_admin())
    page = client.get("/notifications").get_data(as_text=True)
    assert "gone@example.com" in page and "550 5.1.1 User &lt;unknown&gt;" in page  # escaped
    assert "later@example.com" in page and "451 4.3.0 Greylisted" in page and "next attempt" in page
    assert "fine@example.com" not in page  # by default only what is not sent yet
    assert page.count(">Retry</button>") == 1  # only the failed row can be retried
    failed_response = client.get("/notifications?status=failed")
    assert failed_response.status_code == 200
    failed_only = failed_response.get_data(as_text=True)
    assert "gone@example.com" in failed_only and "later@example.com" not in failed_only
    sent_only = client.get("/notifications?status=sent").get_data(as_text=True)
    assert "fine@example.com" in sent_only and "gone@example.com" not in sent_only
    fragment = client.get("/notifications?status=failed", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert fragment.lstrip().startswith('<section id="outbox">')


def test_retry_puts_a_failed_email_back_and_it_is_delivered(app, client, smtp):
    smtp.then("550 5.7.1 Relaying denied")
    outbox_id = queue_notice()
    login(client, make_admin())
    response = client.post_form(f"/notifications/{outbox_id}/retry")
    assert response.status_code == 303
    [row] = rows()
    assert row.status == "sent" and row.attempts == 1  # a fresh set of attempts, delivered in-process
    assert len(smtp.messages) == 1
    # A sent row cannot be "retried" again.
    assert client.post_form(f"/notifications/{outbox_id}/retry").status_code == 404
    # The retry button is a POST with CSRF; a GET changes nothing.
    assert client.get(f"/notifications/{outbox_id}/retry").status_code == 405


def test_retry_needs_the_csrf_token(app, client, smtp):
    smtp.then("550 5.1.1 No")
    outbox_id = queue_notice()
    login(client, make_admin())
    assert client.post(f"/notifications/{outbox_id}/retry").status_code == 400
    assert rows()[0].status == "failed"


def test_make_admin_command(app, smtp):
    user = make_user(email="boss@example.com")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["make-admin", "Boss@Example.com"])
    assert result.exit_code == 0, result.output
    db.session.rollback()
    assert db.session.get(User, user.id).is_admin is True
    result = runner.invoke(args=["make-admin", "nobody@example.com"])
    assert result.exit_code != 0 and "No account" in result.output


def test_relay_and_reminders_commands_run_one_pass(app, smtp):
    app.config["MAIL_SERVER"] = None
    runner = app.test_cli_runner()
    result = runner.invoke(args=["relay"])
    assert result.exit_code == 0 and "0 email(s) dispatched" in result.output
    result = runner.invoke(args=["reminders"])
    assert result.exit_code == 0 and "reminder(s) queued" in result.output


def test_worker_command_refuses_to_run_without_redis(app):
    result = app.test_cli_runner().invoke(args=["worker", "--burst"])
    assert result.exit_code != 0 and "REDIS_URL is not set" in result.output


# ---------------------------------------------------------------------------- header injection at the forms


def _register(client, **fields):
    data = {"name": "Ann Lee", "email": "ann@example.com", "password": "correct horse battery", "confirm": "correct horse battery"}
    data.update(fields)
    return client.post_form("/register", data, htmx=True)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "Ann\r\nBcc: everyone@example.com"),
        ("name", "Ann\nLee"),
        ("name", "Ann <ann@evil.example>"),
        ("email", "ann@example.com\r\nBcc: everyone@example.com"),
        ("email", "ann@example.com, other@example.com"),
    ],
)
def test_registration_refuses_header_injection_with_422(app, client, field, value):
    response = _register(client, **{field: value})
    assert response.status_code == 422
    assert re.search(rf'id="{field}-error"', response.get_data(as_text=True))
    assert db.session.scalar(select(User.id)) is None


def test_registration_with_a_plain_name_still_works(app, client):
    assert _register(client, name="Ann O'Lee-Smith").status_code in (204, 303)
