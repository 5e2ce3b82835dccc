"""A person registers, logs in, becomes an expert and logs out in a real browser."""
import pytest

pytestmark = pytest.mark.browser


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
