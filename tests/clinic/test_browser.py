"""In a real browser: staff create a slot, a patient books and sees a token, and another browser's count drops by itself."""
from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import expect

from expertbook.clinic import states
from tests.factories import PASSWORD, make_appointment, make_hospital, make_slot, make_staff, make_user

pytestmark = pytest.mark.browser


@pytest.fixture
def app_config():
    # Poll faster than the default 10 s so the test is quick; the behaviour is the same.
    return {"CLINIC_POLL_SECONDS": 2}


def _log_in(page, base: str, email: str) -> None:
    page.goto(base + "/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(base + "/")


def test_staff_create_patient_books_and_another_browser_sees_the_count_drop(live_server, browser_page):
    staff = make_staff(make_hospital("Apollo", "Chennai"), email="desk@apollo.example")
    make_user("Asha Verma", email="asha@example.com")
    day = (states.local_today(staff.hospital.timezone) + timedelta(days=1)).isoformat()

    desk = browser_page()
    _log_in(desk, live_server, "desk@apollo.example")
    desk.get_by_role("link", name="Slots").click()
    desk.get_by_role("button", name="New slots").click()
    desk.locator("#doctors-0-name").fill("Dr. Sharma")
    desk.locator("#doctors-0-specialization").fill("Cardiology")
    desk.get_by_role("button", name="Add another doctor").click()
    desk.locator("#doctors-1-name").fill("Dr. Rao")
    desk.locator("#doctors-1-specialization").fill("Dermatology")
    desk.get_by_label("Date", exact=True).fill(day)
    desk.get_by_label("Starts").fill("09:00")
    desk.get_by_label("Ends").fill("12:00")
    desk.get_by_label("Places (patients)").fill("3")
    desk.get_by_role("button", name="Create slots").click()
    desk.get_by_text("Created 2 slots.").wait_for()
    row = desk.locator("tr", has_text="Dr. Sharma")
    assert "0/3" in row.inner_text()

    watcher = browser_page()
    watcher.goto(f"{live_server}/clinic/search?date={day}&specialization=cardio")
    count = watcher.locator("[id^=result-][id$=-left]")
    assert count.inner_text() == "3 of 3 left"
    watcher.evaluate("window.notReloaded = true")

    patient = browser_page()
    _log_in(patient, live_server, "asha@example.com")
    patient.get_by_role("link", name="Find a doctor").first.click()
    patient.get_by_label("Date").fill(day)
    patient.get_by_label("Specialization").fill("Cardiology")
    patient.get_by_role("button", name="Search").click()
    expect(patient.locator("#slot-results tbody tr")).to_have_count(1)
    patient.get_by_role("button", name="Select").click()
    # htmx focuses the swapped-in form's first field once it settles: typing before that would land in it.
    expect(patient.get_by_label("Patient's name")).to_be_focused()
    patient.get_by_label("Patient's name").fill("Asha Verma")
    patient.get_by_label("Contact number").fill("98765")
    patient.get_by_role("button", name="Book appointment").click()
    patient.get_by_text("The contact number must be exactly 10 digits.").wait_for()
    patient.get_by_label("Contact number").fill("9876543210")
    patient.get_by_role("button", name="Book appointment").click()
    assert patient.locator("#token-number").inner_text() == "101"
    patient.get_by_text("2 of 3").first.wait_for()

    # The other browser sees the drop by polling, well within 10 seconds, without reloading.
    watcher.wait_for_function(
        "() => document.querySelector('[id^=result-][id$=-left]').textContent.trim() === '2 of 3 left'", timeout=10000
    )
    assert watcher.evaluate("window.notReloaded") is True

    # The desk's slot list catches up the same way.
    desk.wait_for_function(
        "() => [...document.querySelectorAll('tr')].some(r => r.textContent.includes('Dr. Sharma') && r.textContent.includes('1/3'))",
        timeout=10000,
    )


def test_desk_calls_the_next_token_and_the_waiting_room_screen_follows(live_server, browser_page):
    staff = make_staff(make_hospital("Apollo", "Chennai"), email="desk@apollo.example")
    patient = make_user("Asha Verma", email="asha@example.com")
    slot = make_slot(staff.hospital, capacity=5)
    mine = make_appointment(slot, patient, patient_name="Asha Verma")
    make_appointment(slot, make_user(), patient_name="Second Patient")

    screen = browser_page()
    screen.goto(f"{live_server}/clinic/slots/{slot.id}/now-serving")
    assert screen.locator("#current-token").inner_text() == "—"
    assert screen.locator("#next-token").inner_text() == "101"

    desk = browser_page()
    _log_in(desk, live_server, "desk@apollo.example")
    desk.goto(f"{live_server}/clinic/staff/slots/{slot.id}")
    desk.locator("#appointment-%d" % mine.id).get_by_role("button", name="Arrived").click()
    # Wait for the answer (the status cell, not the button's own "Arrived"): it replaces the table, Call next's
    # form included, so a click before it lands would go to a form about to be swapped out.
    expect(desk.locator("#appointment-%d td[data-label=Status]" % mine.id)).to_have_text("Arrived")
    desk.get_by_role("button", name="Call next").click()
    expect(desk.locator("#staff-now-serving")).to_have_text("101")
    desk.get_by_label("Places").fill("1")
    desk.get_by_role("button", name="Change capacity").click()
    desk.get_by_text("2 places are already booked, so the capacity cannot be less than 2.").wait_for()

    expect(screen.locator("#current-token")).to_have_text("101", timeout=10000)
    expect(screen.locator("#next-token")).to_have_text("102")
    assert "Asha Verma" not in screen.content()

    me = browser_page()
    _log_in(me, live_server, "asha@example.com")
    me.get_by_role("link", name="My appointments").click()
    expect(me.locator("#appointment-%d" % mine.id)).to_contain_text("Arrived")
