"""In a real browser at phone width (360 px): a guest books without an account, lands on the private
manage page, moves the booking and cancels it; a customer turns on the calendar feed."""
import re

import pytest

from tests.experts.test_browser import _log_in
from tests.factories import make_expert, make_service, make_user

pytestmark = pytest.mark.browser

PHONE = {"width": 360, "height": 740}


def _fits(page) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{page.url} scrolls sideways by {overflow}px at 360 px"


def _pick_first_time(page):
    if page.locator("a.day-open").count() == 0:
        page.get_by_label("Next month").click()
    page.locator("a.day-open").first.click()
    page.locator("a.time-slot").first.wait_for()
    page.locator("a.time-slot").first.click()


def test_a_guest_books_moves_and_cancels_through_the_private_link(live_server, browser_page):
    expert = make_expert("Ada Expert", handle="ada", timezone="Europe/London")
    make_service(expert, "Strategy session", slug="strategy", min_notice_min=0)
    page = browser_page()
    page.set_viewport_size(PHONE)
    page.goto(live_server + "/expert/ada/strategy?tz=Europe/London")
    _pick_first_time(page)
    page.get_by_label("Your name").fill("Gita Guest")
    page.get_by_label("Email").fill("gita@example.com")
    page.get_by_label("Phone").fill("+44 20 7946 0001")
    _fits(page)
    page.get_by_role("button", name="Confirm booking").click()
    page.wait_for_url(re.compile(r"/experts/manage/[^/]+$"))
    manage_url = page.url
    page.locator("#manage-detail [data-status=confirmed]").wait_for()
    _fits(page)

    page.get_by_role("button", name="Reschedule").click()
    page.wait_for_url(re.compile(r"/reschedule"))
    _pick_first_time(page)  # the old time is taken by the booking itself: the first offered is another
    page.get_by_label("Reason (optional)").fill("Earlier suits me")
    _fits(page)
    page.get_by_role("button", name="Move the booking here").click()
    page.wait_for_url(manage_url)
    page.get_by_text("Earlier suits me").wait_for()

    page.get_by_text("Cancel…").click()
    page.locator("#manage-detail").get_by_label("Reason (optional)").fill("Plans changed")
    page.get_by_role("button", name="Cancel booking").click()
    page.locator("#manage-detail [data-status=cancelled]").wait_for()
    page.goto(manage_url)  # the old link shows the current state
    page.locator("[data-status=cancelled]").wait_for()
    assert page.get_by_role("button", name="Reschedule").count() == 0


def test_the_calendar_feed_page_at_phone_width(live_server, browser_page):
    customer = make_user("Cara Customer")
    page = browser_page()
    page.set_viewport_size(PHONE)
    _log_in(page, live_server, customer.email)
    page.goto(live_server + "/my-bookings")
    page.get_by_role("link", name="subscribe to your bookings").click()
    page.get_by_role("button", name="Turn on my calendar feed").click()
    address = page.locator("#feed-url")
    address.wait_for()
    url = address.input_value()
    assert re.fullmatch(r"https?://[^/]+/experts/feed/[A-Za-z0-9_-]{43}\.ics", url), url
    assert page.get_by_role("button", name="Subscribe in your calendar app").get_attribute("href").startswith("webcal://")
    _fits(page)
    page.get_by_role("button", name="Get a new address").click()
    page.wait_for_function("url => document.querySelector('#feed-url').value !== url", arg=url)
    page.get_by_role("button", name="Turn the feed off").click()
    page.get_by_role("button", name="Turn on my calendar feed").wait_for()
