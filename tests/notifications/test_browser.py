"""A site administrator finds a failed email on the Notifications page and retries it, in a real browser."""
import pytest

from tests.factories import PASSWORD, make_admin, queue_notice
from tests.notifications.conftest import mail_config

pytestmark = pytest.mark.browser


@pytest.fixture
def app_config(smtp):
    return mail_config(smtp)


def test_admin_retries_a_failed_email(app, smtp, live_server, browser_page):
    smtp.then("550 5.1.1 Mailbox <unavailable>")
    queue_notice(to_email="bounced@example.com", subject="Your token")
    queue_notice(to_email="delivered@example.com", subject="Delivered")
    admin = make_admin(email="admin@example.com")
    page = browser_page()
    page.goto(live_server + "/login")
    page.get_by_label("Email").fill(admin.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(live_server + "/")
    page.get_by_role("link", name="Notifications").click()
    page.get_by_text("550 5.1.1 Mailbox <unavailable>").wait_for()
    assert page.get_by_text("delivered@example.com").count() == 0
    page.get_by_role("link", name="Sent (1)").click()  # an htmx swap of the list
    page.get_by_text("delivered@example.com").wait_for()
    page.get_by_role("link", name="Failed (1)").click()
    page.get_by_text("bounced@example.com").wait_for()
    page.get_by_role("button", name="Retry").click()
    page.get_by_text("is queued again").wait_for()
    assert len(smtp.wait_for(2)) == 2
    assert sorted(m["To"].addresses[0].addr_spec for m in smtp.messages) == ["bounced@example.com", "delivered@example.com"]
