"""In a real browser: a customer books a time, the expert accepts it on the dashboard, the customer
sees it confirmed (live) and downloads the .ics."""
import re

import icalendar
import pytest

from tests.factories import PASSWORD, make_expert, make_service, make_user

pytestmark = pytest.mark.browser


def _log_in(page, base, email):
    page.goto(base + "/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(base + "/")


def test_book_accept_confirmed_and_download_ics(live_server, browser_page, tmp_path):
    expert = make_expert("Ada Expert", handle="ada", timezone="Europe/London")
    make_service(expert, "Strategy session", slug="strategy", requires_acceptance=True, min_notice_min=0)
    customer = make_user("Cara Customer")
    expert_email, customer_email = expert.user.email, customer.email

    page = browser_page()
    _log_in(page, live_server, customer_email)
    page.goto(live_server + "/experts")
    page.get_by_role("search").get_by_role("searchbox").fill("strategy")
    page.get_by_role("link", name="Ada Expert").click()
    page.get_by_role("link", name="Strategy session").first.click()
    page.wait_for_url("**/expert/ada/strategy**")
    # The display zone switches once to the browser's (if it differs from the expert's); wait for that first.
    if page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone") != "Europe/London":
        page.wait_for_url(re.compile(r"tz="))
    if page.locator("a.day-open").count() == 0:
        page.get_by_label("Next month").click()
    page.locator("a.day-open").first.click()
    page.locator("a.time-slot").first.wait_for()
    slot_label = page.locator("a.time-slot").first.inner_text()
    page.locator("a.time-slot").first.click()
    assert page.get_by_label("Your name").input_value() == "Cara Customer"  # prefilled from the account
    page.get_by_label("Notes for the expert").fill("Looking forward to it")
    page.get_by_role("button", name="Request booking").click()
    page.wait_for_url(re.compile(r"/experts/bookings/\d+$"))
    page.locator("[data-status=pending]").wait_for()
    assert slot_label in page.locator("#booking-detail").inner_text()

    expert_page = browser_page()
    _log_in(expert_page, live_server, expert_email)
    expert_page.goto(live_server + "/expert-dashboard")
    request_row = expert_page.locator("#pending-requests .booking-row")
    request_row.get_by_text("Cara Customer").wait_for()
    request_row.get_by_role("button", name="Accept").click()
    expert_page.locator("#pending-requests").get_by_text("No pending requests.").wait_for()
    expert_page.locator("#upcoming [data-status=confirmed]").wait_for()

    # The customer's booking page polls and shows the change without a reload.
    page.locator("[data-status=confirmed]").wait_for(timeout=20000)
    page.goto(live_server + "/my-bookings")
    row = page.locator(".booking-row").first
    row.locator("[data-status=confirmed]").wait_for()
    with page.expect_download() as download_info:
        row.get_by_role("button", name="Add to calendar").click()
    path = tmp_path / "booking.ics"
    download_info.value.save_as(path)
    cal = icalendar.Calendar.from_ical(path.read_bytes())
    event = cal.walk("VEVENT")[0]
    assert str(cal["METHOD"]) == "REQUEST"
    assert (str(event["STATUS"]), int(event["SEQUENCE"])) == ("CONFIRMED", 1)
    assert str(event["SUMMARY"]) == "Strategy session with Ada Expert"


def test_expert_sets_up_a_service_and_hours_in_the_browser(live_server, browser_page):
    expert = make_expert("Bo Expert", handle="bo", timezone="Europe/London")
    email = expert.user.email
    page = browser_page()
    _log_in(page, live_server, email)
    page.goto(live_server + "/experts/settings/services/new")
    page.get_by_label("Title").fill("Portfolio review")
    page.get_by_label("Duration (minutes)").fill("30")
    page.get_by_label("Price").fill("75")
    page.get_by_label("Location").select_option("in_person")
    page.get_by_role("button", name="Create service").click()
    page.get_by_text("Give the address.").wait_for()  # 422 swapped in place
    page.get_by_label("Address or phone number").fill("1 Main Street")
    page.get_by_role("button", name="Create service").click()
    page.wait_for_url("**/experts/settings/services")
    page.get_by_role("link", name="Portfolio review").wait_for()
    page.get_by_role("button", name="Hide").click()
    page.locator("#service-list").get_by_text("hidden").wait_for()
    page.get_by_role("button", name="Show").click()
    page.locator("#service-list").get_by_text("visible").wait_for()

    page.goto(live_server + "/experts/settings/hours")
    page.get_by_label("Saturday").fill("10:00-12:00")
    page.get_by_label("Monday").fill("09:00-08:00")
    page.get_by_role("button", name="Save weekly hours").click()
    page.get_by_text("ends before it starts").wait_for()
    page.get_by_label("Monday").fill("08:00-12:00, 13:00-17:00")
    page.get_by_role("button", name="Save weekly hours").click()
    page.get_by_text("Your weekly hours were saved.").wait_for()
    assert page.get_by_label("Saturday").input_value() == "10:00-12:00"

    page.goto(live_server + "/expert/bo")
    page.get_by_role("link", name="Portfolio review").first.wait_for()
    assert page.locator("ul.next-times li").count() == 14
