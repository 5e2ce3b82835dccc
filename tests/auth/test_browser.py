"""In a real browser: a person registers, logs in, becomes an expert and logs out; and someone who
forgot their password gets back in through the emailed link (read from the loopback SMTP server)."""
from urllib.parse import urlsplit

import pytest

from tests.auth.conftest import link_in
from tests.factories import PASSWORD, make_user

pytestmark = pytest.mark.browser


@pytest.fixture
def app_config(mail_app_config):
    return mail_app_config


def test_register_login_become_expert_logout(live_server, browser_page):
    page = browser_page()
    page.goto(live_server + "/register")
    page.get_by_label("Full name").fill("Browser Person")
    page.get_by_label("Email").fill("browser@example.com")
    page.get_by_label("Password", exact=True).fill("a long browser password")
    page.get_by_label("Repeat password").fill("a long browser password")
    page.get_by_role("button", name="Create account").click()
    # Registration answers alike for new and taken addresses: check your email, then log in.
    page.wait_for_url("**/check-email")
    page.get_by_text("browser@example.com").wait_for()

    page.goto(live_server + "/login")
    page.get_by_label("Email").fill("browser@example.com")
    page.get_by_label("Password").fill("wrong password here")
    page.get_by_role("button", name="Log in").click()
    page.get_by_text("Invalid email or password.").wait_for()
    page.get_by_label("Password").fill("a long browser password")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(live_server + "/")

    page.goto(live_server + "/profile")
    # Becoming an expert sets up a public profile; name, handle and (from the browser) time zone are prefilled.
    assert page.get_by_label("Display name").input_value() == "Browser Person"
    page.get_by_label("Public handle").fill("browser-person")
    page.get_by_role("button", name="Become an expert").click()
    page.wait_for_url("**/experts/settings/services")
    page.get_by_text("You are now an expert").wait_for()
    page.goto(live_server + "/profile")
    page.get_by_text("You are an expert").first.wait_for()
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(live_server + "/")
    page.goto(live_server + "/profile")
    page.wait_for_url("**/login?next=/profile")


def test_forgot_password_email_link_new_password_logged_in(live_server, browser_page, smtp):
    make_user(name="Forgetful Person", email="forgetful@example.com")
    page = browser_page()
    page.goto(live_server + "/login")
    page.get_by_role("link", name="Forgot your password?").click()
    page.wait_for_url("**/forgot-password")
    page.get_by_label("Email").fill("forgetful@example.com")
    page.get_by_role("button", name="Send me a link").click()
    page.get_by_text("we have sent it a link to choose a new password").wait_for()

    [message] = smtp.wait_for(1)
    link = link_in(message, "/reset-password/")
    token = urlsplit(link).path.rsplit("/", 1)[1]
    # The email's links point at BASE_URL; the browser opens the same path on the test server.
    page.goto(live_server + urlsplit(link).path)
    page.wait_for_url(live_server + "/reset-password")  # the token has left the address bar
    assert token not in page.url
    page.set_viewport_size({"width": 360, "height": 740})
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    page.get_by_label("New password", exact=True).fill("a fresh browser password")
    page.get_by_label("Repeat new password").fill("a fresh browser password")
    page.get_by_role("button", name="Set new password").click()
    page.wait_for_url("**/profile")
    page.get_by_text("Your password was changed, and you are logged in.").wait_for()
    page.get_by_text("forgetful@example.com").first.wait_for()

    # The old password no longer works; the new one does. (On a phone, Log out is in the menu.)
    page.get_by_role("button", name="Menu").click()
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(live_server + "/")
    page.goto(live_server + "/login")
    page.get_by_label("Email").fill("forgetful@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_text("Invalid email or password.").wait_for()
    page.get_by_label("Password").fill("a fresh browser password")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(live_server + "/")


def test_account_pages_fit_a_360_pixel_screen(live_server, browser_page):
    """The account pages (banner, security, deletion, forgot) need no sideways scrolling on a phone (the reset
    page is measured in the flow above)."""
    user = make_user(name="Narrow Screen Person With A Long Name", email="a-rather-long-address-for-a-phone@example.com", verified=False)
    page = browser_page()
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto(live_server + "/forgot-password")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    page.goto(live_server + "/login")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(live_server + "/")
    for path in ("/profile", "/profile/security", "/profile/delete", "/check-email"):
        page.goto(live_server + path)
        if path == "/profile":
            page.locator("#verify-banner").wait_for()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, f"{path} is {width}px wide at 360px"
