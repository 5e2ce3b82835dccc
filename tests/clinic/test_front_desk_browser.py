"""The front desk in a real browser, on a 360 px wide screen: a walk-in's token and slip, a staff
cancellation, the waiting list, a move and the doctors directory, with no sideways scrolling."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from expertbook.clinic import queue
from tests.clinic.test_browser import _log_in
from tests.factories import make_appointment, make_hospital, make_slot, make_staff, make_user

pytestmark = pytest.mark.browser

PHONE = {"width": 360, "height": 780}


@pytest.fixture
def app_config():
    return {"CLINIC_POLL_SECONDS": 2}


def _fits(page, *parts: str) -> None:
    """The front desk's parts of the page fit the screen: nothing of theirs needs sideways scrolling.
    (The older clinic tables are the phone layout's work, checked there.)"""
    for selector in parts:
        box = page.locator(selector).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"] + 0.5, (page.url, selector, box)
        wide = page.locator(selector).evaluate("e => [...e.querySelectorAll('*')].filter(c => c.scrollWidth > c.clientWidth + 1 && getComputedStyle(c).overflowX !== 'visible').length")
        assert wide == 0, (page.url, selector)


def test_the_desk_gives_a_walk_in_a_token_prints_a_slip_and_cancels_with_a_reason(live_server, browser_page):
    staff = make_staff(make_hospital("Apollo", "Chennai"), email="desk@apollo.example")
    slot = make_slot(staff.hospital, capacity=3)
    online = make_appointment(slot, make_user(), patient_name="Online Patient")

    desk = browser_page()
    desk.set_viewport_size(PHONE)
    _log_in(desk, live_server, "desk@apollo.example")
    desk.goto(f"{live_server}/clinic/staff/slots/{slot.id}")
    _fits(desk, "#walk-in", "#slot-controls", "#slot-waitlist")
    walk_in = desk.locator("#walk-in")
    walk_in.get_by_label("Patient's name").fill("Ravi Kumar")
    walk_in.get_by_label("Contact number").fill("12")
    walk_in.get_by_role("button", name="Give the next token").click()
    expect(walk_in.get_by_text("The contact number must be exactly 10 digits.")).to_be_visible()
    desk.locator("#walk-in").get_by_label("Contact number").fill("9123456780")
    desk.locator("#walk-in").get_by_role("button", name="Give the next token").click()
    expect(desk.locator("#walk-in-token")).to_have_text("102")
    # The list refreshes at once and marks the walk-in.
    expect(desk.locator("#slot-appointments tr", has_text="Ravi Kumar")).to_contain_text("walk-in")
    _fits(desk, "#walk-in", ".walk-in-token")
    slip_url = desk.get_by_role("button", name="Print slip").get_attribute("href")

    # A staff cancellation, with the reason the patient is told.
    row = desk.locator(f"#appointment-{online.id}")
    row.get_by_text("Cancel…").click()
    row.get_by_label("Reason").fill("Doctor called to surgery")
    row.get_by_role("button", name="Cancel token 101").click()
    expect(desk.locator(f"#appointment-{online.id}")).to_contain_text("by staff: Doctor called to surgery")

    slip = browser_page()
    slip.set_viewport_size(PHONE)
    _log_in(slip, live_server, "desk@apollo.example")
    slip.goto(live_server + slip_url.replace("print=1", ""))
    expect(slip.locator("#slip .token")).to_have_text("102")
    expect(slip.locator("#slip")).to_contain_text("Ravi Kumar")
    _fits(slip, "#slip")
    assert slip.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_a_patient_waits_gets_the_freed_place_and_moves_it(live_server, browser_page):
    staff = make_staff(make_hospital("Apollo", "Chennai"))
    slot = make_slot(staff.hospital, capacity=1)
    later = make_slot(doctor=slot.doctor, capacity=5, days_ahead=2)
    holder = make_user()
    held = make_appointment(slot, holder, patient_name="First Patient")
    make_user("Asha Verma", email="asha@example.com")

    me = browser_page()
    me.set_viewport_size(PHONE)
    _log_in(me, live_server, "asha@example.com")
    me.goto(f"{live_server}/clinic/slots/{slot.id}")
    _fits(me, "#waitlist-form")
    me.get_by_label("Patient's name").fill("Asha Verma")
    me.get_by_label("Contact number").fill("9876543210")
    me.get_by_role("button", name="Join the waiting list").click()
    expect(me.get_by_text("Asha Verma is number 1 on the waiting list.")).to_be_visible()
    expect(me.locator("#my-waitlist")).to_contain_text("next in line")
    _fits(me, "#my-waitlist")

    queue.cancel(held.id, holder.id)  # the place frees: it is mine at once
    me.reload()
    expect(me.locator("#my-waitlist")).to_have_count(0)
    mine = me.locator("tr", has_text="Asha Verma")
    expect(mine).to_contain_text("102")
    mine.get_by_role("link", name="Move").click()
    expect(me.locator(f"#move-to-{later.id}")).to_be_visible()
    _fits(me, "#move-options")
    assert me.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    me.locator(f"#move-to-{later.id}").get_by_role("button", name="Move here").click()
    expect(me.get_by_text("Moved. Your new token number is 101.")).to_be_visible()
    expect(me.locator("#token-number")).to_have_text("101")


def test_the_doctors_directory_feeds_the_slot_form(live_server, browser_page):
    make_staff(make_hospital("Apollo", "Chennai"), email="desk@apollo.example")
    desk = browser_page()
    desk.set_viewport_size(PHONE)
    _log_in(desk, live_server, "desk@apollo.example")
    desk.goto(f"{live_server}/clinic/staff/doctors")
    desk.get_by_label("Name").fill("Dr. Rao")
    desk.get_by_label("Specialization").fill("Dermatology")
    desk.get_by_label("Short bio (optional)").fill("Skin and hair.")
    desk.get_by_role("button", name="Add to the directory").click()
    expect(desk.locator("#doctors tbody tr")).to_have_count(1)
    expect(desk.locator("#doctors")).to_contain_text("Dr. Rao")
    _fits(desk, "#doctors")
    assert desk.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    desk.goto(f"{live_server}/clinic/staff/slots/new")
    expect(desk.locator("#doctors-0-doctor_id option", has_text="Dr. Rao (Dermatology)")).to_have_count(1)
    _fits(desk, "#doctor-rows")
