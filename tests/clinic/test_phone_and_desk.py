"""Issue 14 in a real browser, at 360 x 740 (a phone) and 1280 x 800: the patient's journey from search to the
cancelled page, the staff slot list and slot page, and the waiting-room wall. Every page checked is no wider
than the window, raises no console error or CSP violation, and axe-core finds nothing serious or critical
(tests/browser.py)."""
from __future__ import annotations

import re
import threading
from datetime import time

import pytest
import segno
from playwright.sync_api import expect
from werkzeug.serving import make_server

from expertbook.clinic import booking, queue
from tests.browser import DESKTOP, PHONE, VIEWPORTS, audit, log_in
from tests.conftest import free_port
from tests.factories import PASSWORD, make_appointment, make_doctor, make_hospital, make_slot, make_staff, make_user

pytestmark = pytest.mark.browser

# The phone runs in another zone than the hospital's (Asia/Kolkata), so clinic times name their zone there;
# the desktop runs in the hospital's own zone, where they need not.
CONTEXT = {
    "phone": {"viewport": VIEWPORTS["phone"], "timezone_id": "Europe/London", "is_mobile": True, "has_touch": True},
    "desktop": {"viewport": VIEWPORTS["desktop"], "timezone_id": "Asia/Kolkata"},
}


def _nav(page, name: str) -> None:
    """Follow a link of the site navigation, opening the phone's menu first when there is one."""
    toggle = page.locator(".menu-toggle")
    if toggle.is_visible():
        toggle.click()
        expect(toggle).to_have_attribute("aria-expanded", "true")
    page.get_by_role("navigation", name="Main").get_by_role("link", name=name).click()


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
def test_search_book_confirmation_my_appointments_cancel_with_the_question(live_server, browser_page, viewport):
    hospital = make_hospital("Apollo", "Chennai")
    slot = make_slot(hospital, make_doctor(hospital, "Dr. Rao", "Cardiology"), capacity=4, days_ahead=2)
    make_slot(hospital, make_doctor(hospital, "Dr. Iyer", "Cardiology"), days_ahead=2, start=time(14), end=time(16))
    make_user("Asha Verma", email="asha@example.com")
    page = browser_page(**CONTEXT[viewport])
    log_in(page, live_server, "asha@example.com")
    # htmx 2 reads its configuration from <meta name="htmx-config">: settling must not copy "style" (CSP).
    assert page.evaluate("htmx.config.attributesToSettle") == ["class", "width", "height"]
    audit(page, "home, logged in")

    _nav(page, "Find a doctor")
    page.get_by_label("Date").fill(slot.date.isoformat())
    page.get_by_label("Specialization").fill("Cardiology")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#slot-results tbody tr")).to_have_count(2)
    audit(page, "search results")

    # The booking form is where the patient looks: scrolled into view, its first field focused.
    page.locator(f"#result-{slot.id}").get_by_role("button", name="Select").click()
    name = page.get_by_label("Patient's name")
    expect(name).to_be_focused()
    box = name.bounding_box()
    assert 0 <= box["y"] and box["y"] + box["height"] <= CONTEXT[viewport]["viewport"]["height"]
    audit(page, "booking form")
    name.fill("Asha Verma")
    page.get_by_label("Contact number").fill("98765")
    page.get_by_role("button", name="Book appointment").click()
    expect(page.get_by_text("The contact number must be exactly 10 digits.")).to_be_visible()
    expect(page.get_by_label("Contact number")).to_be_focused()
    page.get_by_label("Contact number").fill("9876543210")
    page.get_by_role("button", name="Book appointment").click()

    # The confirmation has its own URL and title.
    page.wait_for_url(re.compile(r"/clinic/appointments/\d+$"))
    confirmation = page.url
    expect(page).to_have_title(re.compile(r"^Appointment confirmed: token 101, Dr\. Rao, \w{3} \d{1,2} \w{3}, 09:00 · ExpertBook$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Appointment confirmed")
    expect(page.locator(".token#token-number")).to_have_text("101")
    zone = page.locator("#slot-panel .zone-note")
    if viewport == "phone":
        expect(zone).to_be_visible()
        expect(zone).to_have_text("IST")
    else:
        expect(zone).to_be_hidden()
    expect(page.locator(".slip-qr svg")).to_have_count(1)
    audit(page, "confirmation")
    page.reload()
    expect(page.get_by_role("heading", level=1)).to_have_text("Appointment confirmed")

    _nav(page, "My appointments")
    row = page.locator("#my-appointments tbody tr").first
    expect(row).to_contain_text("101")
    expect(row).to_contain_text("Booked")
    audit(page, "my appointments")

    # Cancel asks first, and "no" keeps the appointment.
    row.get_by_role("button", name="Cancel token 101").click()
    expect(page.locator("#cancel-question")).to_contain_text(re.compile(r"Cancel token 101 with Dr\. Rao on \w{3} \d{1,2} \w{3}, 09:00"))
    expect(page.get_by_text("Your token will not be given again")).to_be_visible()
    audit(page, "cancel question")
    page.get_by_role("button", name="No, keep my appointment").click()
    page.wait_for_url(confirmation)
    expect(page.get_by_role("heading", level=1)).to_have_text("Appointment confirmed")
    page.get_by_role("button", name="Cancel this appointment").click()
    page.get_by_role("button", name="Yes, cancel token 101").click()

    # The cancelled page says so first, plainly, and shows no live token.
    page.wait_for_url(confirmation)
    expect(page.get_by_role("heading", level=1)).to_have_text("Appointment cancelled")
    expect(page.locator("#state-note")).to_have_text(re.compile(r"^This appointment is cancelled\. Token 101 is no longer valid"))
    expect(page.locator(".token")).to_have_count(0)
    expect(page.get_by_role("button", name="Print token slip")).to_have_count(0)
    expect(page.locator(".slip-qr")).to_have_count(0)
    audit(page, "cancelled appointment")
    page.goto(live_server + "/clinic/my-appointments")
    cancelled = page.locator("section", has=page.get_by_role("heading", name="Cancelled or missed"))
    expect(cancelled.locator("tbody tr")).to_contain_text("Cancelled")
    expect(page.get_by_role("button", name=re.compile("^Cancel token"))).to_have_count(0)


def test_back_after_taking_the_last_place_asks_the_server_again(live_server, browser_page):
    hospital = make_hospital("Apollo", "Chennai")
    last = make_slot(hospital, make_doctor(hospital, "Dr. Rao", "Cardiology"), capacity=1, days_ahead=2)
    make_slot(hospital, make_doctor(hospital, "Dr. Iyer", "Cardiology"), days_ahead=2, start=time(14), end=time(16))
    make_user("Asha Verma", email="asha@example.com")
    page = browser_page(viewport=DESKTOP)
    log_in(page, live_server, "asha@example.com")
    page.goto(f"{live_server}/clinic/search?date={last.date}")
    expect(page.locator(f"#result-{last.id}")).to_contain_text("1 of 1 left")
    page.locator(f"#result-{last.id}").get_by_role("button", name="Select").click()
    expect(page.get_by_label("Patient's name")).to_be_focused()  # focused once htmx settles: type after that
    page.get_by_label("Patient's name").fill("Asha Verma")
    page.get_by_label("Contact number").fill("9876543210")
    page.get_by_role("button", name="Book appointment").click()
    page.wait_for_url(re.compile(r"/clinic/appointments/\d+$"))
    page.go_back()
    # No stale copy with a live form: the page is fetched again, and the full session is no longer offered.
    expect(page.locator("#slot-results tbody tr")).to_have_count(1)
    expect(page.locator(f"#result-{last.id}")).to_have_count(0)
    expect(page.locator("#booking-form")).to_have_count(0)


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
def test_the_session_fills_while_the_form_is_open(live_server, browser_page, viewport):
    hospital = make_hospital("Apollo", "Chennai")
    rao = make_doctor(hospital, "Dr. Rao", "Cardiology")
    slot = make_slot(hospital, rao, capacity=2, days_ahead=2)
    later = make_slot(hospital, rao, capacity=5, days_ahead=3)
    same_day = make_slot(hospital, make_doctor(hospital, "Dr. Iyer", "Cardiology"), days_ahead=2, start=time(14), end=time(16))
    make_user("Asha Verma", email="asha@example.com")
    page = browser_page(**CONTEXT[viewport])
    log_in(page, live_server, "asha@example.com")
    page.goto(f"{live_server}/clinic/slots/{slot.id}")
    page.get_by_label("Patient's name").fill("Asha Verma")
    page.get_by_label("Contact number").fill("9876543210")
    for user in (make_user(), make_user()):
        booking.book(slot.id, user.id, "Someone Else", "9123456789")
    page.get_by_role("button", name="Book appointment").click()
    expect(page.locator("#session-filled")).to_have_text("This session just filled.")
    expect(page.locator("#booking-form")).to_have_count(0)
    expect(page.get_by_role("button", name="Book appointment")).to_have_count(0)
    expect(page.get_by_role("heading", name="Dr. Rao's other sessions")).to_be_visible()
    expect(page.locator(f"a[href='/clinic/slots/{later.id}']")).to_be_visible()
    expect(page.locator(f"a[href='/clinic/slots/{same_day.id}']")).to_contain_text("Dr. Iyer")
    audit(page, "session just filled")
    page.locator(f"a[href='/clinic/slots/{later.id}']").click()
    expect(page.get_by_label("Patient's name")).to_be_visible()


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
def test_staff_slot_list_and_slot_page(live_server, browser_page, viewport):
    staff = make_staff(make_hospital("Apollo", "Chennai"), email="desk@apollo.example")
    slot = make_slot(staff.hospital, make_doctor(staff.hospital, "Dr. Rao", "Cardiology"), capacity=3)
    small = make_slot(staff.hospital, make_doctor(staff.hospital, "Dr. Iyer", "Dermatology"), capacity=2)
    first = make_appointment(slot, make_user(), patient_name="Asha Verma")
    make_appointment(slot, make_user(), patient_name="Ravi Patel")
    page = browser_page(**CONTEXT[viewport])
    log_in(page, live_server, "desk@apollo.example")
    _nav(page, "Slots")
    expect(page.locator(f"#staff-slot-{slot.id}-count")).to_have_text("2/3")
    # A 2-place session with nobody booked is not "almost full".
    expect(page.locator(f"#staff-slot-{small.id}")).to_contain_text("Available")
    audit(page, "staff slot list")

    page.locator(f"#staff-slot-{slot.id}").get_by_role("link").click()
    page.wait_for_url(f"{live_server}/clinic/staff/slots/{slot.id}")
    expect(page.locator(f"#slot-{slot.id}-count")).to_have_text("2/3 booked")
    audit(page, "staff slot page")

    # The header follows a capacity change at once (the page polls only every 10 s), with a message.
    page.get_by_label("Places").fill("5")
    page.get_by_role("button", name="Change capacity").click()
    expect(page.locator("#slot-notice")).to_have_text("Capacity changed to 5 places (2 booked).")
    expect(page.locator(f"#slot-{slot.id}-count")).to_have_text("2/5 booked", timeout=3000)
    page.locator(f"#appointment-{first.id}").get_by_role("button", name="Arrived").click()
    expect(page.locator(f"#appointment-{first.id} td[data-label=Status]")).to_have_text("Arrived")
    page.get_by_role("button", name="Call next").click()
    expect(page.locator("#staff-now-serving")).to_have_text("101")
    expect(page.get_by_text("Now serving token 101.")).to_be_visible()
    audit(page, "staff slot page after the desk's actions")


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
def test_now_serving_wall_display(live_server, browser_page, viewport):
    hospital = make_hospital("Apollo", "Chennai")
    slot = make_slot(hospital, make_doctor(hospital, "Dr. Rao", "Cardiology"), capacity=6)
    for n in range(5):
        make_appointment(slot, make_user(), patient_name=f"Private Name {n}")
    queue.call_next(slot.id, slot.hospital_id)
    page = browser_page(**CONTEXT[viewport])
    for theme in ("", "?theme=dark"):
        page.goto(f"{live_server}/clinic/slots/{slot.id}/now-serving{theme}")
        # A wall screen: no site navigation, no account, an h1, the doctor and session, no names.
        expect(page.get_by_role("navigation")).to_have_count(0)
        expect(page.get_by_role("button")).to_have_count(0)
        expect(page.get_by_role("heading", level=1)).to_contain_text("Now serving")
        expect(page.get_by_role("heading", level=1)).to_contain_text("Dr. Rao")
        expect(page.locator(".wall-session")).to_contain_text("Cardiology · Apollo")
        expect(page.locator("#current-token")).to_have_text("101")
        expect(page.locator("#next-tokens li")).to_have_text(["102", "103", "104"])
        expect(page.locator("#last-updated")).to_contain_text(re.compile(r"Last updated \d\d:\d\d:\d\d"))
        expect(page.locator("#connection-lost")).to_be_hidden()
        assert "Private Name" not in page.content()
        # Readable from across the room: the token is at least 6rem tall on any screen, and the whole wall,
        # "last updated" included, fits the screen without scrolling.
        assert page.evaluate("parseFloat(getComputedStyle(document.getElementById('current-token')).fontSize)") >= 96
        last = page.locator("#last-updated").bounding_box()
        assert last["y"] + last["height"] <= CONTEXT[viewport]["viewport"]["height"]
        audit(page, f"now serving{theme}")
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(0, 0, 0)"


def test_printable_token_slip(live_server, browser_page, app):
    hospital = make_hospital("Apollo", "Chennai")
    slot = make_slot(hospital, make_doctor(hospital, "Dr. Rao", "Cardiology"))
    patient = make_user("Asha Verma", email="asha@example.com")
    mine = make_appointment(slot, patient, patient_name="Asha Verma")
    # In the hospital's own zone the screen leaves the zone out; the printed slip always names it.
    page = browser_page(viewport=DESKTOP, timezone_id="Asia/Kolkata")
    log_in(page, live_server, "asha@example.com")
    page.goto(f"{live_server}/clinic/appointments/{mine.id}")
    expect(page.locator(".zone-note").first).to_be_hidden()
    # The QR code is the confirmation's own address (BASE_URL), drawn on the server as inline SVG.
    expected = segno.make(f"{app.config['BASE_URL']}/clinic/appointments/{mine.id}", error="m")
    drawn = page.locator(".slip-qr svg path.qrline").get_attribute("d")
    assert drawn == re.search(r'class="qrline"[^>]* d="([^"]+)"', expected.svg_inline(border=2)).group(1)
    assert page.locator(".slip-qr svg [style]").count() == 0
    page.evaluate("window.print = () => { window.printed = true; }")
    page.get_by_role("button", name="Print token slip").click()
    assert page.evaluate("window.printed") is True

    page.emulate_media(media="print")
    for hidden in (".site-header", ".site-footer", ".slip-actions", "#places-remaining"):
        expect(page.locator(hidden).first).to_be_hidden()
    for shown in ("#token-number", ".slip-qr svg", ".zone-note"):
        expect(page.locator(shown).first).to_be_visible()
    pdf = page.pdf(prefer_css_page_size=True, print_background=True)
    pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf))
    assert pages == 1, f"the slip printed on {pages} pages"
    # A6 is 105 x 148 mm: 297.6 x 419.5 points.
    box = re.search(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", pdf)
    assert box and abs(float(box.group(1)) - 297.6) < 2 and abs(float(box.group(2)) - 419.5) < 2


def test_the_desks_walk_in_slip_is_the_same_printed_slip(live_server, browser_page, app):
    """The front desk's slip (a walk-in's) is the patient's slip design: one A6 page with the token, patient,
    doctor, hospital and time with its zone, and a QR code; a walk-in has no account, so the QR code is the
    session's "now serving" screen."""
    hospital = make_hospital("Apollo", "Chennai")
    staff = make_staff(hospital, email="desk@apollo.example")
    slot = make_slot(hospital, make_doctor(hospital, "Dr. Rao", "Cardiology"))
    booked = booking.walk_in(slot.id, hospital.id, "Ravi Kumar", "9123456780")
    page = browser_page(viewport=PHONE, timezone_id="Asia/Kolkata")
    log_in(page, live_server, staff.email)
    page.goto(f"{live_server}/clinic/staff/appointments/{booked.appointment_id}/slip")
    audit(page, "the desk's slip")
    expect(page.locator("#slip #token-number")).to_have_text("101")
    expected = segno.make(f"{app.config['BASE_URL']}/clinic/slots/{slot.id}/now-serving", error="m")
    drawn = page.locator(".slip-qr svg path.qrline").get_attribute("d")
    assert drawn == re.search(r'class="qrline"[^>]* d="([^"]+)"', expected.svg_inline(border=2)).group(1)
    page.evaluate("window.print = () => { window.printed = true; }")
    page.get_by_role("button", name="Print slip").click()
    assert page.evaluate("window.printed") is True

    page.emulate_media(media="print")
    for hidden in (".site-header", ".site-footer", ".slip-actions"):
        expect(page.locator(hidden).first).to_be_hidden()
    for shown in ("#token-number", ".slip-qr svg", ".zone-note"):
        expect(page.locator(shown).first).to_be_visible()
    expect(page.locator("#slip")).to_contain_text("Ravi Kumar")
    pdf = page.pdf(prefer_css_page_size=True, print_background=True)
    pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf))
    assert pages == 1, f"the slip printed on {pages} pages"
    box = re.search(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", pdf)
    assert box and abs(float(box.group(1)) - 297.6) < 2 and abs(float(box.group(2)) - 419.5) < 2


def test_expired_session_says_so_and_comes_back_to_the_same_page(live_server, browser_page):
    hospital = make_hospital("Apollo", "Chennai")
    slot = make_slot(hospital, make_doctor(hospital, "Dr. Rao", "Cardiology"))
    make_user("Asha Verma", email="asha@example.com")
    # The one request that meets the ended session answers 401 (with HX-Redirect), which Chromium logs.
    page = browser_page(also_expected=r"status of 401", viewport=DESKTOP)
    log_in(page, live_server, "asha@example.com")
    search = f"{live_server}/clinic/search?date={slot.date}"
    page.goto(search)
    page.locator(f"#result-{slot.id}").get_by_role("button", name="Select").click()
    expect(page.get_by_label("Patient's name")).to_be_focused()  # focused once htmx settles: type after that
    page.get_by_label("Patient's name").fill("Asha Verma")
    page.get_by_label("Contact number").fill("9876543210")
    page.context.clear_cookies()  # the session ends while the form is open
    page.get_by_role("button", name="Book appointment").click()
    page.wait_for_url(re.compile(r"/login\?next="))
    expect(page.get_by_text("Your session has expired: log in again.")).to_be_visible()
    expect(page.get_by_role("link", name="Log in")).to_be_visible()  # the navigation no longer says logged in
    page.get_by_label("Email").fill("asha@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(search)
    expect(page.locator(f"#result-{slot.id}")).to_be_visible()


# ---------------------------------------------------------------------------- the wall over time


@pytest.fixture
def app_config(request):
    # The wall tests poll every second, so a few minutes of the screen's life take a few seconds.
    return {"CLINIC_POLL_SECONDS": 1} if "wall_over_time" in request.node.name else {}


class RestartableServer:
    """The app on a fixed loopback port that can be stopped and started again, like a redeploy."""

    def __init__(self, app):
        self.app, self.port, self.server, self.thread = app, free_port(), None, None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.server = make_server("127.0.0.1", self.port, self.app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def test_wall_over_time_keeps_one_fragment_and_reconnects_after_a_restart(app, browser_page):
    hospital = make_hospital("Apollo", "Chennai")
    slot = make_slot(hospital, make_doctor(hospital, "Dr. Rao", "Cardiology"), capacity=6)
    for n in range(4):
        make_appointment(slot, make_user(), patient_name=f"Patient {n}")
    server = RestartableServer(app)
    server.start()
    # While the server is down, the polls fail (Chromium logs each refused request).
    page = browser_page(also_expected=r"ERR_CONNECTION_REFUSED|Failed to load resource|htmx:sendError|htmx:afterRequest", viewport=DESKTOP)
    try:
        page.goto(f"{server.url}/clinic/slots/{slot.id}/now-serving")
        stamps = set()
        for _ in range(4):  # bounded: four polls, one second apart
            page.wait_for_function("s => document.querySelector('#last-updated time').textContent !== s", arg=page.locator("#last-updated time").text_content(), timeout=5000)
            stamps.add(page.locator("#last-updated time").text_content())
        assert len(stamps) >= 3
        cdp = page.context.new_cdp_session(page)
        cdp.send("HeapProfiler.collectGarbage")
        nodes = page.evaluate("document.getElementsByTagName('*').length")

        server.stop()
        expect(page.locator("#connection-lost")).to_be_visible(timeout=6000)
        expect(page.locator("#now-serving")).to_have_class(re.compile(r"\bstale\b"))
        queue.call_next(slot.id, slot.hospital_id)
        server.start()
        expect(page.locator("#current-token")).to_have_text("101", timeout=6000)
        expect(page.locator("#connection-lost")).to_be_hidden()
        expect(page.locator("#now-serving")).not_to_have_class(re.compile(r"\bstale\b"))

        # The heap's baseline is taken after the outage: the failed polls' console errors, which the DevTools
        # session keeps, are as many as the restart took seconds, and are not what the wall itself holds.
        cdp.send("HeapProfiler.collectGarbage")
        heap = cdp.send("Runtime.getHeapUsage")["usedSize"]
        for _ in range(15):  # fifteen more polls
            page.wait_for_function("s => document.querySelector('#last-updated time').textContent !== s", arg=page.locator("#last-updated time").text_content(), timeout=5000)
        cdp.send("HeapProfiler.collectGarbage")
        # The DOM does not grow (one fragment replaced in place), nor does the script heap beyond noise.
        assert page.evaluate("document.getElementsByTagName('*').length") == nodes
        assert page.locator("[data-wall]").count() == 1
        grown = cdp.send("Runtime.getHeapUsage")["usedSize"] - heap
        assert grown < 512 * 1024, f"the wall's heap grew by {grown} bytes over 15 polls"
    finally:
        if server.thread and server.thread.is_alive():
            server.stop()
