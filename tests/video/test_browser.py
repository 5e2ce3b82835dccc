"""An expert connects Zoom (through the stand-in), tests the connection and disconnects, in a real browser."""
import pytest

from expertbook.devtools.zoom_standin import REVOKE, TOKEN_CODE, USERS_ME
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


def _log_in(page, base, email):
    page.goto(base + "/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(base + "/")


def test_both_buttons_lead_to_the_same_zoom_meeting_each_in_its_role(app, live_server, browser_page, zoom):
    """Seed 003: the expert connects Zoom, a customer books in another browser, and the customer's
    "Join meeting" and the expert's "Start meeting (host)" open the same meeting id at the stand-in."""
    import re

    from expertbook.devtools.zoom_standin import MEETING_CREATE, MEETING_GET
    from tests.factories import make_expert, make_service, make_user

    app.config["BASE_URL"] = live_server
    profile = make_expert("Siva Expert", handle="siva", timezone="Asia/Kolkata")
    make_service(profile, "Technology Consulting Session", slug="tech", min_notice_min=0)
    customer = make_user("Sinduja Vel")
    expert_email, customer_email = profile.user.email, customer.email

    expert_page = browser_page()
    _log_in(expert_page, live_server, expert_email)
    expert_page.goto(live_server + "/video/settings")
    expert_page.get_by_role("button", name="Connect Zoom").click()
    expert_page.get_by_text(f"Zoom is connected as {zoom.standin.user['email']}").wait_for()

    page = browser_page()  # a second browser context: the customer
    _log_in(page, live_server, customer_email)
    page.goto(live_server + "/expert/siva/tech")
    if page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone") != "Asia/Kolkata":
        page.wait_for_url(re.compile(r"tz="))
    if page.locator("a.day-open").count() == 0:
        page.get_by_label("Next month").click()
    page.locator("a.day-open").first.click()
    page.locator("a.time-slot").first.click()
    page.get_by_role("button", name="Confirm booking").click()
    page.wait_for_url(re.compile(r"/experts/bookings/\d+$"))
    booking_url = page.url
    page.locator("[data-status=confirmed]").wait_for()
    join = page.get_by_role("button", name="Join meeting")
    join.wait_for(timeout=20000)  # "Meeting link pending" until the meeting exists; the page polls
    assert page.get_by_role("button", name="Start meeting (host)").count() == 0
    with page.expect_popup() as customer_popup:
        join.click()
    room = customer_popup.value
    room.wait_for_load_state()
    assert re.match(re.escape(zoom.url) + r"/j/\d+", room.url)
    customer_meeting_id = room.locator("#meeting-id").inner_text()
    assert room.locator("#role").inner_text() == "participant"

    expert_page.goto(booking_url)
    start = expert_page.get_by_role("button", name="Start meeting (host)")
    assert expert_page.get_by_role("button", name="Join meeting").count() == 0
    with expert_page.expect_popup() as expert_popup:
        start.click()
    host_room = expert_popup.value
    host_room.wait_for_load_state()
    assert re.match(re.escape(zoom.url) + r"/s/\d+\?zak=", host_room.url)
    assert host_room.locator("#role").inner_text() == "host"
    assert host_room.locator("#meeting-id").inner_text() == customer_meeting_id
    assert zoom.standin.calls[MEETING_CREATE] == 1 and zoom.standin.calls[MEETING_GET] == 1
