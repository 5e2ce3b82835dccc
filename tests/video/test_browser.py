"""An expert connects Zoom (through the stand-in), tests the connection and disconnects, in a real browser."""
import pytest

from expertbook.video.standin import REVOKE, TOKEN_CODE, USERS_ME
from tests.factories import PASSWORD, make_expert_user

pytestmark = pytest.mark.browser


def test_expert_connects_tests_and_disconnects_zoom(app, live_server, browser_page, zoom):
    app.config["BASE_URL"] = live_server  # the OAuth redirect URI must point at this server
    expert = make_expert_user(email="zoom.browser@example.com")
    page = browser_page()
    page.goto(live_server + "/login")
    page.get_by_label("Email").fill(expert.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(live_server + "/")

    page.get_by_role("link", name="Video").click()
    page.wait_for_url(live_server + "/video/settings")
    page.get_by_role("button", name="Connect Zoom").click()  # a link styled as a button

    page.wait_for_url(live_server + "/video/settings")
    page.get_by_text(f"Zoom is connected as {zoom.standin.user['email']}").wait_for()
    assert page.locator("#zoom-email").inner_text() == zoom.standin.user["email"]
    assert page.locator("#zoom-state").inner_text().strip() == "Connected"
    assert zoom.standin.calls[TOKEN_CODE] == 1

    page.get_by_role("button", name="Test connection").click()
    page.get_by_text(f"Connection works: Zoom knows you as {zoom.standin.user['email']}.").wait_for()
    assert zoom.standin.calls[USERS_ME] == 2

    page.get_by_role("button", name="Disconnect").click()
    page.get_by_text("Zoom is disconnected and our access is revoked.").wait_for()
    page.get_by_role("button", name="Connect Zoom").wait_for()
    assert page.locator("#zoom-email").count() == 0
    assert zoom.standin.calls[REVOKE] == 1
    assert zoom.standin.live_refresh_tokens == []
