"""Issue 14 for experts in a real browser at 360 x 740 and 1280 x 800: the booking page (calendar, searchable
zone picker with aliases, form) and My bookings with a cancelled booking, each checked for overflow, console
errors, CSP violations and axe-core (tests/browser.py)."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from expertbook.experts import service
from tests.browser import VIEWPORTS, audit, log_in
from tests.experts.helpers import book_kwargs, next_weekday_at
from tests.factories import make_expert, make_service, make_user

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
def test_booking_page_zone_picker_and_my_bookings(live_server, browser_page, viewport):
    expert = make_expert("Ada Expert", handle="ada", timezone="Europe/London")
    svc = make_service(expert, "Strategy session", slug="strategy")
    customer = make_user("Cara Customer", email="cara@example.com")
    dropped = service.book(customer.id, svc.id, next_weekday_at(14), **book_kwargs(customer))
    service.cancel(customer.id, dropped.id, "Clash")
    # A browser that still reports the old name of India's zone.
    page = browser_page(viewport=VIEWPORTS[viewport], timezone_id="Asia/Calcutta")
    log_in(page, live_server, "cara@example.com")
    page.goto(live_server + "/expert/ada/strategy")
    # The page switches once to the browser's zone, under its canonical, readable name.
    picker = page.get_by_label("Times are shown in")
    expect(picker).to_have_value("India (Kolkata)")
    expect(picker).to_have_attribute("data-zone", "Asia/Kolkata")
    expect(page).to_have_url(re.compile(r"tz=Asia(/|%2F)Calcutta"))
    audit(page, "expert booking page")

    # Searching the zones by a city's name; the times follow.
    picker.fill("London")
    picker.press("Enter")
    expect(page.get_by_label("Times are shown in")).to_have_value("United Kingdom (London)")
    page.locator("a.day-open").first.click()
    page.locator("a.time-slot").first.click()
    expect(page.locator("#booking-form-box h2")).to_contain_text("(United Kingdom (London))")
    expect(page.get_by_label("Your name")).to_have_value("Cara Customer")
    audit(page, "expert booking form")

    page.goto(live_server + "/my-bookings")
    called_off = page.locator("#called-off")
    expect(called_off.get_by_role("heading")).to_have_text("Cancelled or declined")
    expect(called_off.locator(f"#booking-{dropped.id}")).to_contain_text("Cancelled")
    expect(called_off.get_by_role("button", name="Remove from calendar")).to_be_visible()
    expect(called_off.get_by_role("button", name="Add to calendar")).to_have_count(0)
    audit(page, "my bookings")
