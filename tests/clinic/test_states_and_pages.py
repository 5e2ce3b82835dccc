"""Issue 14 on the server side: how an appointment reads in each state, cancel asks first, the 409 offer,
no-store on live pages, the "Almost full" share, zone abbreviations, the capacity message and the wall."""
from __future__ import annotations

import re
from datetime import UTC, datetime, time

import pytest
from sqlalchemy import select

from expertbook.clinic import booking, clock, queue, states
from expertbook.clinic.models import Appointment, Slot
from expertbook.database import utcnow
from expertbook.extensions import db
from tests.factories import login, make_appointment, make_doctor, make_hospital, make_slot, make_staff, make_user, make_users


def _h1(html: str) -> str:
    return re.search(r"<h1>(.*?)</h1>", html, re.S).group(1).strip()


# ---------------------------------------------------------------------------- "Almost full" is a share


@pytest.mark.parametrize(
    ("capacity", "booked", "label"),
    [
        (2, 0, "Available"),  # the case: nobody booked a 2-place session
        (2, 1, "Available"),
        (3, 2, "Available"),
        (5, 4, "Almost full"),
        (10, 7, "Available"),
        (10, 8, "Almost full"),
        (100, 79, "Available"),
        (100, 80, "Almost full"),
        (100, 99, "Almost full"),
        (100, 100, "Fully booked"),
    ],
)
def test_almost_full_means_four_in_five_places_taken(app, client, capacity, booked, label):
    slot = make_slot(capacity=capacity, booked=booked)
    now = utcnow()
    assert states.slot_badge(slot, now).label == label
    warn = label == "Almost full"
    assert (states.availability_class(slot, now) == "avail-warn") is warn
    # The polled fragment follows the same rule.
    fragment = client.get(f"/clinic/slots/{slot.id}/availability").get_data(as_text=True)
    assert ('class="avail-warn"' in fragment) is warn


# ---------------------------------------------------------------------------- appointment states


def test_each_state_says_so_first_and_only_a_live_one_looks_like_a_token(app, client):
    me = make_user()
    slot = make_slot(capacity=6)
    past_slot = make_slot(doctor=slot.doctor, days_ahead=-2)
    booked = make_appointment(slot, me)
    arrived = make_appointment(slot, me, status="arrived")
    cancelled = make_appointment(slot, me, status="cancelled")
    no_show = make_appointment(slot, me, status="no_show")
    past = make_appointment(past_slot, me)
    login(client, me)
    expected = {
        booked.id: ("Appointment confirmed", True),
        arrived.id: ("You have arrived", True),
        cancelled.id: ("Appointment cancelled", False),
        no_show.id: ("Missed appointment", False),
        past.id: ("Past appointment", False),
    }
    for appointment_id, (heading, live) in expected.items():
        page = client.get(f"/clinic/appointments/{appointment_id}")
        html = page.get_data(as_text=True)
        assert page.status_code == 200 and _h1(html) == heading
        assert f"<title>{heading}: token " in html
        assert ('class="token" id="token-number"' in html) is live
        assert ("data-print" in html) is live and ('class="slip-qr"' in html) is live
        assert ("data-poll" in html) is live  # only a live appointment keeps refreshing
        assert ('id="state-note"' in html) is not live
        assert ('id="tokens-ahead"' in html) is live
    assert "This appointment is cancelled." in client.get(f"/clinic/appointments/{cancelled.id}").get_data(as_text=True)
    assert "This session is over." in client.get(f"/clinic/appointments/{past.id}").get_data(as_text=True)
    assert "Cancel this appointment" in client.get(f"/clinic/appointments/{booked.id}").get_data(as_text=True)
    assert "Cancel this appointment" not in client.get(f"/clinic/appointments/{arrived.id}").get_data(as_text=True)


def test_appointment_state_rules(app):
    future, over = make_slot(), make_slot(days_ahead=-1)
    seen_states = {
        (status, slot is over): states.appointment_state(status, slot).key
        for status in ("booked", "arrived", "cancelled", "no_show")
        for slot in (future, over)
    }
    assert seen_states == {
        ("booked", False): "confirmed", ("booked", True): "past",
        ("arrived", False): "arrived", ("arrived", True): "past",
        ("cancelled", False): "cancelled", ("cancelled", True): "cancelled",
        ("no_show", False): "no_show", ("no_show", True): "no_show",
    }


def test_my_appointments_lists_cancelled_apart_from_upcoming(app, client):
    me = make_user()
    slot = make_slot(capacity=5)
    live = make_appointment(slot, me, patient_name="Still Coming")
    make_appointment(slot, me, patient_name="Called Off", status="cancelled")
    make_appointment(make_slot(doctor=slot.doctor, days_ahead=-3), me, patient_name="Long Ago")
    login(client, me)
    html = client.get("/clinic/my-appointments").get_data(as_text=True)
    upcoming, rest = html.split("<h2>Cancelled or missed</h2>")
    called_off, past = rest.split("<h2>Past</h2>")
    assert "Still Coming" in upcoming and "Called Off" not in upcoming
    assert "Called Off" in called_off and "Long Ago" in past
    # Only a live booked appointment offers cancel, through the question page.
    assert upcoming.count(f'href="/clinic/appointments/{live.id}/cancel"') == 1
    assert "/cancel" not in called_off and "/cancel" not in past


# ---------------------------------------------------------------------------- cancel asks first


def test_cancel_asks_first_then_shows_the_cancelled_page(app, client):
    me, other = make_users(2)
    hospital = make_hospital("Apollo", "Chennai")
    slot = make_slot(hospital, make_doctor(hospital, "Dr. Rao", "Cardiology"), capacity=5)
    mine = make_appointment(slot, me)
    theirs = make_appointment(slot, other)
    login(client, me)
    question = client.get(f"/clinic/appointments/{mine.id}/cancel")
    html = question.get_data(as_text=True)
    assert question.status_code == 200 and question.headers["Cache-Control"] == "no-store"
    day = f"{slot.date:%a} {slot.date.day} {slot.date:%b}"
    assert f"Cancel token <strong>101</strong> with Dr. Rao on {day}, 09:00" in html
    assert "Your token will not be given again" in html and "Yes, cancel token 101" in html
    assert f'action="/clinic/appointments/{mine.id}/cancel"' in html
    db.session.rollback()
    assert db.session.get(Appointment, mine.id).status == "booked"  # asking changes nothing
    assert client.get(f"/clinic/appointments/{theirs.id}/cancel").status_code == 404

    done = client.post_form(f"/clinic/appointments/{mine.id}/cancel")
    assert done.status_code == 303 and done.headers["Location"] == f"/clinic/appointments/{mine.id}"
    page = client.get(done.headers["Location"]).get_data(as_text=True)
    assert _h1(page) == "Appointment cancelled" and "Token 101 is cancelled" in page
    again = client.get(f"/clinic/appointments/{mine.id}/cancel").get_data(as_text=True)
    assert "This appointment cannot be cancelled" in again and "Yes, cancel" not in again


# ---------------------------------------------------------------------------- the 409 offer


def test_a_session_that_just_filled_offers_the_doctors_other_sessions_and_that_days_colleagues(app, client):
    hospital = make_hospital("Apollo", "Chennai")
    rao = make_doctor(hospital, "Dr. Rao", "Cardiology")
    slot = make_slot(hospital, rao, capacity=1, days_ahead=2)
    later = make_slot(hospital, rao, days_ahead=4)
    full_later = make_slot(hospital, rao, capacity=1, booked=1, days_ahead=5)
    colleague = make_slot(hospital, make_doctor(hospital, "Dr. Iyer", "Cardiology"), days_ahead=2, start=time(14), end=time(15))
    other_day = make_slot(hospital, make_doctor(hospital, "Dr. Nair", "Cardiology"), days_ahead=3)
    other_field = make_slot(hospital, make_doctor(hospital, "Dr. Das", "Dermatology"), days_ahead=2)
    login(client, make_user())
    page = client.get(f"/clinic/slots/{slot.id}").get_data(as_text=True)
    key = re.search(r'name="booking_key" type="hidden" value="([^"]+)"', page).group(1)
    booking.book(slot.id, make_user().id, "Someone Else", "9123456789")
    response = client.post_form(f"/clinic/slots/{slot.id}/book", {"patient_name": "A", "contact_number": "9876543210", "booking_key": key}, htmx=True)
    html = response.get_data(as_text=True)
    assert response.status_code == 409
    assert 'id="session-filled">This session just filled.<' in html and "This slot is fully booked" in html
    assert 'id="booking-form"' not in html and "Book appointment" not in html
    offered = {int(n) for n in re.findall(r'hx-get="/clinic/slots/(\d+)"', html)}
    assert offered == {later.id, colleague.id}
    assert not offered & {full_later.id, other_day.id, other_field.id}


# ---------------------------------------------------------------------------- no-store, zone, focus


def test_pages_with_live_booking_state_are_never_cached(app, client):
    staff = make_staff()
    slot = make_slot(staff.hospital)
    patient = make_user()
    mine = make_appointment(slot, patient)
    for url in ("/clinic/search", f"/clinic/slots/{slot.id}", f"/clinic/slots/{slot.id}/now-serving"):
        assert client.get(url).headers["Cache-Control"] == "no-store", url
    login(client, patient)
    for url in (f"/clinic/appointments/{mine.id}", "/clinic/my-appointments", f"/clinic/appointments/{mine.id}/cancel"):
        assert client.get(url).headers["Cache-Control"] == "no-store", url
    login(client, staff)
    for url in ("/clinic/staff/slots", f"/clinic/staff/slots/{slot.id}"):
        assert client.get(url).headers["Cache-Control"] == "no-store", url
    # The polled counter keeps its cheap conditional answer.
    assert client.get(f"/clinic/slots/{slot.id}/availability").headers["Cache-Control"] == "no-cache"


def test_zone_abbreviation_at_the_sessions_own_moment(app):
    assert clock.zone_abbreviation("Asia/Kolkata", datetime(2026, 1, 5, 3, 30, tzinfo=UTC)) == "IST"
    assert clock.zone_abbreviation("Europe/London", datetime(2026, 1, 5, 9, tzinfo=UTC)) == "GMT"
    assert clock.zone_abbreviation("Europe/London", datetime(2026, 7, 6, 8, tzinfo=UTC)) == "BST"
    # Zones without a lettered abbreviation give their offset.
    assert clock.zone_abbreviation("Asia/Dubai", datetime(2026, 1, 5, tzinfo=UTC)) == "UTC+04"
    assert clock.zone_abbreviation("Asia/Kathmandu", datetime(2026, 1, 5, tzinfo=UTC)) == "UTC+05:45"
    assert clock.utc_offset_minutes("Asia/Kolkata", datetime(2026, 1, 5, tzinfo=UTC)) == 330


def test_clinic_times_carry_the_hospitals_zone_for_the_browser_to_compare(app, client):
    slot = make_slot(make_hospital("Apollo", "Chennai"))
    html = client.get(f"/clinic/search?date={slot.date}").get_data(as_text=True)
    note = re.search(r'<abbr class="zone-note" title="Asia/Kolkata time, where the hospital is" data-utc-offset="330" data-at="([^"]+)">IST</abbr>', html)
    assert note and datetime.fromisoformat(note.group(1)) == slot.starts_at


def test_a_selected_slots_form_takes_the_focus_and_errors_focus_their_field(app, client):
    slot = make_slot()
    login(client, make_user())
    panel = client.get(f"/clinic/slots/{slot.id}", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert re.search(r'<input autocomplete="name" autofocus id="patient_name"', panel)
    page = client.get(f"/clinic/slots/{slot.id}").get_data(as_text=True)
    assert "autofocus" not in page  # a page load keeps the browser's own focus order
    key = re.search(r'name="booking_key" type="hidden" value="([^"]+)"', page).group(1)
    bad = client.post_form(f"/clinic/slots/{slot.id}/book", {"patient_name": "Asha", "contact_number": "123", "booking_key": key}, htmx=True)
    assert bad.status_code == 422 and re.search(r'<input[^>]*autofocus[^>]*id="contact_number"', bad.get_data(as_text=True))


# ---------------------------------------------------------------------------- staff: capacity message


def test_capacity_change_says_so_and_refreshes_the_booked_header(app, client):
    staff = make_staff()
    slot = make_slot(staff.hospital, capacity=3)
    make_appointment(slot, make_user())
    login(client, staff)
    response = client.post_form(f"/clinic/staff/slots/{slot.id}/capacity", {"capacity": "6"}, htmx=True)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and response.headers["HX-Trigger"] == "slotChanged"
    assert 'id="slot-notice">Capacity changed to 6 places (1 booked).<' in html
    page = client.get(f"/clinic/staff/slots/{slot.id}").get_data(as_text=True)
    assert "slotChanged from:body" in page and f'id="slot-{slot.id}-count">1/6 booked<' in page
    plain = client.post_form(f"/clinic/staff/slots/{slot.id}/capacity", {"capacity": "1"})
    assert plain.status_code == 303
    assert "Capacity changed to 1 place (1 booked)." in client.get(plain.headers["Location"]).get_data(as_text=True)


# ---------------------------------------------------------------------------- the wall


def test_wall_display_has_no_site_navigation_and_shows_the_next_tokens(app, client):
    slot = make_slot(make_hospital("Apollo", "Chennai"), capacity=8)
    for user in make_users(5):
        make_appointment(slot, user, patient_name="Very Private Name")
    make_appointment(slot, make_user(), status="cancelled")
    queue.call_next(slot.id, slot.hospital_id)
    login(client, make_staff(slot.hospital))
    html = client.get(f"/clinic/slots/{slot.id}/now-serving").get_data(as_text=True)
    assert "<nav" not in html and "Log out" not in html and "site-header" not in html
    assert re.search(r"<h1>Now serving <span class=\"wall-doctor\">Dr. Sharma</span></h1>", html)
    assert 'id="current-token">101<' in html
    assert re.findall(r"<li(?: id=\"next-token\")?>(\d+)</li>", html) == ["102", "103", "104"]
    assert "Last updated <time" in html and 'id="connection-lost" role="alert" hidden' in html
    assert 'data-theme="light"' in html and "Very Private Name" not in html
    dark = client.get(f"/clinic/slots/{slot.id}/now-serving?theme=dark").get_data(as_text=True)
    assert 'data-theme="dark" class="wall wall-dark"' in dark
    # The poll answers the one fragment that replaces itself; a hung request is given up (3 intervals, at least 10 s).
    fragment = client.get(f"/clinic/slots/{slot.id}/now-serving", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert fragment.lstrip().startswith('<section id="now-serving"') and fragment.count('id="now-serving"') == 1
    assert 'hx-trigger="every 10s"' in fragment and "hx-request='{\"timeout\": 30000}'" in fragment
    assert db.session.scalar(select(Slot.now_serving).where(Slot.id == slot.id)) == 101
