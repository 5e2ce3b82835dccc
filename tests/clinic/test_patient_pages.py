"""Patients in the browser: search, book with a token, confirmation, my appointments, and the error table."""
from __future__ import annotations

import re
from datetime import time

import pytest
from sqlalchemy import func, select

from expertbook.clinic import booking, queue, sessions
from expertbook.clinic.models import Appointment, Slot
from expertbook.extensions import db
from tests.factories import make_appointment, make_doctor, make_hospital, make_slot, make_user, make_users, login


def _written(slot_id: int) -> tuple[int, int]:
    db.session.rollback()
    return (
        db.session.scalar(select(func.count()).select_from(Appointment)),
        db.session.scalar(select(Slot.booked_count).where(Slot.id == slot_id)),
    )


def _booking_key(client, slot_id: int) -> str:
    page = client.get(f"/clinic/slots/{slot_id}").get_data(as_text=True)
    return re.search(r'name="booking_key" type="hidden" value="([^"]+)"', page).group(1)


def _book(client, slot_id: int, htmx: bool = False, **fields):
    data = {"patient_name": "Asha Verma", "contact_number": "9876543210", "booking_key": _booking_key(client, slot_id)}
    data.update(fields)
    return client.post_form(f"/clinic/slots/{slot_id}/book", data, htmx=htmx)


def test_search_filters_by_date_location_and_specialization_and_hides_unbookable(app, client):
    chennai, delhi = make_hospital("Apollo", "Chennai"), make_hospital("AIIMS", "New Delhi")
    cardio = make_doctor(chennai, "Dr. Sharma", "Cardiology")
    derma = make_doctor(chennai, "Dr. Rao", "Dermatology")
    open_slot = make_slot(chennai, cardio, capacity=10, booked=4)
    make_slot(chennai, derma)
    make_slot(delhi, make_doctor(delhi, "Dr. Gupta", "Cardiology"))
    make_slot(chennai, cardio, start=time(13), end=time(14), booked=10)  # full
    make_slot(chennai, cardio, start=time(15), end=time(16), closed=True)
    make_slot(chennai, cardio, days_ahead=-1)  # past
    page = client.get(f"/clinic/search?date={open_slot.date}&location=chen&specialization=CARDIO")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert html.count('<tr id="result-') == 1 and f'id="result-{open_slot.id}"' in html
    assert "6 of 10 left" in html and "Apollo" in html and "Dr. Sharma" in html
    everything = client.get("/clinic/search").get_data(as_text=True)
    assert everything.count('<tr id="result-') == 3
    fragment = client.get("/clinic/search?location=delhi", headers={"HX-Request": "true"})
    assert fragment.get_data(as_text=True).lstrip().startswith('<div id="slot-results"')
    assert 'every 10s' in fragment.get_data(as_text=True)
    assert "HX-Request" in fragment.headers["Vary"]


def test_booking_shows_the_token_and_details(app, client):
    slot = make_slot(make_hospital("Apollo", "Chennai"), capacity=10)
    login(client, make_user())
    response = _book(client, slot.id)
    assert response.status_code == 303
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert 'id="token-number">101<' in page
    assert "Asha Verma" in page and "Apollo" in page and "9 of 10" in page
    assert 'id="tokens-ahead">0' in page


def test_htmx_booking_goes_to_the_confirmations_own_page(app, client):
    # Issue 14: the confirmation has its own URL and title (the patient reloads, bookmarks, screenshots it).
    slot = make_slot()
    login(client, make_user())
    response = _book(client, slot.id, htmx=True)
    assert response.status_code == 204
    db.session.rollback()
    appointment_id = db.session.scalar(select(Appointment.id))
    assert response.headers["HX-Redirect"] == f"/clinic/appointments/{appointment_id}"
    page = client.get(response.headers["HX-Redirect"])
    html = page.get_data(as_text=True)
    assert page.headers["Cache-Control"] == "no-store"
    assert re.search(r"<title>Appointment confirmed: token 101, Dr. Sharma, \w{3} \d{1,2} \w{3}, 09:00 · ExpertBook</title>", html)
    assert "<h1>Appointment confirmed</h1>" in html and 'id="token-number">101<' in html
    assert "Booked. Your token number is 101." in html
    assert "Asha Verma" in html and "Dr. Sharma" in html and "City General Hospital" in html
    assert 'id="places-remaining">9 of 10' in html and 'id="tokens-ahead">0' in html


def test_htmx_double_submit_answers_the_same_confirmation(app, client):
    slot = make_slot()
    login(client, make_user())
    key = _booking_key(client, slot.id)
    data = {"patient_name": "Asha", "contact_number": "9876543210", "booking_key": key}
    first = client.post_form(f"/clinic/slots/{slot.id}/book", data, htmx=True)
    second = client.post_form(f"/clinic/slots/{slot.id}/book", data, htmx=True)
    assert first.headers["HX-Redirect"] == second.headers["HX-Redirect"]
    assert 'id="token-number">101<' in client.get(second.headers["HX-Redirect"]).get_data(as_text=True)
    assert _written(slot.id) == (1, 1)


def test_double_submit_of_one_form_books_once(app, client):
    slot = make_slot()
    login(client, make_user())
    key = _booking_key(client, slot.id)
    data = {"patient_name": "Asha", "contact_number": "9876543210", "booking_key": key}
    first = client.post_form(f"/clinic/slots/{slot.id}/book", data)
    second = client.post_form(f"/clinic/slots/{slot.id}/book", data)
    assert first.headers["Location"] == second.headers["Location"]
    assert _written(slot.id) == (1, 1)


# ---------------------------------------------------------------------------- error table (browser)


def test_not_logged_in_goes_to_the_login_page_and_writes_nothing(app, client):
    slot = make_slot()
    response = client.post_form(f"/clinic/slots/{slot.id}/book", {"patient_name": "A", "contact_number": "9876543210"})
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    htmx = client.post_form(f"/clinic/slots/{slot.id}/book", {"patient_name": "A", "contact_number": "9876543210"}, htmx=True)
    assert htmx.status_code == 401 and "/login" in htmx.headers["HX-Redirect"]
    assert "Log in to book" in client.get(f"/clinic/slots/{slot.id}").get_data(as_text=True)
    assert _written(slot.id) == (0, 0)


def test_full_slot_is_409_with_the_message_and_writes_nothing(app, client):
    slot = make_slot(capacity=3)
    login(client, make_user())
    key = _booking_key(client, slot.id)
    db.session.execute(Slot.__table__.update().where(Slot.id == slot.id).values(booked_count=3, tokens_issued=3))
    db.session.commit()
    response = client.post_form(f"/clinic/slots/{slot.id}/book", {"patient_name": "A", "contact_number": "9876543210", "booking_key": key}, htmx=True)
    assert response.status_code == 409
    assert "This slot is fully booked" in response.get_data(as_text=True)
    assert _written(slot.id) == (0, 3)


def test_unknown_slot_is_404_slot_not_found(app, client):
    login(client, make_user())
    response = client.post_form("/clinic/slots/999999/book", {"patient_name": "A", "contact_number": "9876543210"})
    assert response.status_code == 404 and "Slot not found" in response.get_data(as_text=True)
    assert client.get("/clinic/slots/999999").status_code == 404
    assert db.session.scalar(select(func.count()).select_from(Appointment)) == 0


def test_closed_since_loading_is_409_availability_changed(app, client):
    slot = make_slot()
    login(client, make_user())
    key = _booking_key(client, slot.id)
    sessions.close_slot(slot.id, slot.hospital_id)
    response = client.post_form(f"/clinic/slots/{slot.id}/book", {"patient_name": "A", "contact_number": "9876543210", "booking_key": key})
    assert response.status_code == 409
    assert "Slot availability changed, please refresh" in response.get_data(as_text=True)
    assert _written(slot.id) == (0, 0)


@pytest.mark.parametrize(
    ("fields", "messages"),
    [
        ({"patient_name": "", "contact_number": ""}, ["Please enter the patient&#39;s name.", "Please enter a contact number."]),
        ({"contact_number": "98765"}, ["The contact number must be exactly 10 digits."]),
        ({"contact_number": "98765432109"}, ["The contact number must be exactly 10 digits."]),
        ({"patient_name": "", "contact_number": "123"}, ["Please enter the patient&#39;s name.", "The contact number must be exactly 10 digits."]),
    ],
)
def test_invalid_fields_are_422_with_each_message_and_write_nothing(app, client, fields, messages):
    slot = make_slot()
    login(client, make_user())
    response = _book(client, slot.id, **fields)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    for message in messages:
        assert message in html
    assert _written(slot.id) == (0, 0)


# ---------------------------------------------------------------------------- my appointments


def test_my_appointments_upcoming_past_and_cancel(app, client):
    me, other = make_users(2)
    upcoming_slot = make_slot(capacity=5)
    past_slot = make_slot(doctor=upcoming_slot.doctor, days_ahead=-2)
    mine = make_appointment(upcoming_slot, me)
    make_appointment(past_slot, me, patient_name="Old Visit")
    theirs = make_appointment(upcoming_slot, other, patient_name="Someone Else")
    login(client, me)
    html = client.get("/clinic/my-appointments").get_data(as_text=True)
    upcoming, past = html.split("<h2>Past</h2>")
    assert "Ravi Patel" in upcoming and "Old Visit" in past and "Someone Else" not in html
    assert client.get(f"/clinic/appointments/{theirs.id}").status_code == 404
    assert client.post_form(f"/clinic/appointments/{theirs.id}/cancel").status_code == 404
    response = client.post_form(f"/clinic/appointments/{mine.id}/cancel")
    assert response.status_code == 303
    assert _written(upcoming_slot.id) == (3, 1)
    assert "Cancelled" in client.get("/clinic/my-appointments").get_data(as_text=True)


def test_pages_need_login(app, client):
    assert client.get("/clinic/my-appointments").status_code == 302
    assert client.get("/clinic/appointments/1").status_code == 302


# ---------------------------------------------------------------------------- live fragments


def test_availability_fragment_is_the_contract_cheap_and_conditional(app, client):
    slot = make_slot(capacity=10, booked=8)
    response = client.get(f"/clinic/slots/{slot.id}/availability")
    assert response.status_code == 200
    assert response.get_data(as_text=True) == f'<span id="slot-{slot.id}-availability" class="avail-warn">2 of 10 left</span>'
    assert "Set-Cookie" not in response.headers
    again = client.get(f"/clinic/slots/{slot.id}/availability", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304
    booking.book(slot.id, make_user().id, "A", "9876543210")
    booked = client.get(f"/clinic/slots/{slot.id}/availability", headers={"If-None-Match": response.headers["ETag"]})
    assert booked.status_code == 200 and 'class="avail-warn">1 of 10 left' in booked.get_data(as_text=True)
    sessions.close_slot(slot.id, slot.hospital_id)
    closed = client.get(f"/clinic/slots/{slot.id}/availability", headers={"If-None-Match": booked.headers["ETag"]})
    assert closed.status_code == 200 and 'class="avail-full">0 of 10 left' in closed.get_data(as_text=True)
    assert client.get("/clinic/slots/424242/availability").status_code == 404


def test_now_serving_shows_tokens_but_no_names(app, client):
    slot = make_slot()
    for user in make_users(3):
        make_appointment(slot, user, patient_name="Very Private Name")
    queue.call_next(slot.id, slot.hospital_id)
    html = client.get(f"/clinic/slots/{slot.id}/now-serving").get_data(as_text=True)
    assert 'id="current-token">101<' in html and 'id="next-token">102<' in html
    assert "Very Private Name" not in html and "9876543210" not in html
