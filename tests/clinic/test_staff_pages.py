"""Staff in the browser: the slot form, the slot list, one slot's page, and tenant isolation."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from expertbook.clinic import sessions, states
from expertbook.clinic.models import Appointment, Doctor, Slot
from expertbook.extensions import db
from tests.factories import login, make_appointment, make_doctor, make_hospital, make_slot, make_staff, make_user, make_users


def _slot_count() -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(Slot))


def test_slot_form_is_prefilled_and_creates_slots_for_several_doctors(app, client):
    staff = make_staff(make_hospital("Apollo", "Chennai"))
    login(client, staff)
    page = client.get("/clinic/staff/slots/new").get_data(as_text=True)
    assert 'value="Apollo" readonly' in page and 'value="Chennai" readonly' in page
    assert 'name="capacity" required type="number" value="10"' in page
    day = states.local_today(staff.hospital.timezone) + timedelta(days=2)
    response = client.post_form(
        "/clinic/staff/slots/new",
        {
            "doctors-0-name": "Dr. Sharma", "doctors-0-specialization": "Cardiology",
            "doctors-3-name": "Dr. Rao", "doctors-3-specialization": "Dermatology",
            "date": day.isoformat(), "start_time": "09:00", "end_time": "12:00", "capacity": "10",
        },
    )
    assert response.status_code == 303
    assert "Created 2 slots." in client.get(response.headers["Location"]).get_data(as_text=True)
    db.session.rollback()
    assert sorted(db.session.scalars(select(Doctor.name))) == ["Dr. Rao", "Dr. Sharma"]


def test_slot_form_repeat_over_weekdays_says_how_many(app, client):
    staff = make_staff()
    login(client, staff)
    start = states.local_today(staff.hospital.timezone) + timedelta(days=1)
    until = start + timedelta(days=13)
    expected = sum(1 for i in range(14) if (start + timedelta(days=i)).weekday() in (0, 3))
    response = client.post_form(
        "/clinic/staff/slots/new",
        {
            "doctors-0-name": "Dr. Iyer", "doctors-0-specialization": "ENT",
            "date": start.isoformat(), "start_time": "17:00", "end_time": "19:00", "capacity": "8",
            "repeat_until": until.isoformat(), "weekdays": ["0", "3"],
        },
    )
    assert response.status_code == 303
    assert f"Created {expected} slots." in client.get("/clinic/staff/slots").get_data(as_text=True)
    assert _slot_count() == expected


def test_slot_form_errors_are_422_per_field_and_write_nothing(app, client):
    staff = make_staff()
    login(client, staff)
    yesterday = states.local_today(staff.hospital.timezone) - timedelta(days=1)
    response = client.post_form(
        "/clinic/staff/slots/new",
        {"doctors-0-name": "", "doctors-0-specialization": "ENT", "date": yesterday.isoformat(), "start_time": "12:00", "end_time": "09:00", "capacity": "0"},
        htmx=True,
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    for message in ("Please enter the doctor&#39;s name.", "Choose today or a later date.", "The session must end after it starts.", "Choose between 1 and 500 places."):
        assert message in html
    assert html.lstrip().startswith('<form id="slot-form"')
    assert _slot_count() == 0


def test_too_many_doctors_are_refused_with_a_message_not_dropped(app, client):
    login(client, make_staff())
    soon = (states.local_today("Asia/Kolkata") + timedelta(days=2)).isoformat()
    rows = {}
    for n in range(sessions.MAX_DOCTORS_PER_FORM + 1):
        rows |= {f"doctors-{n}-name": f"Dr. {n}", f"doctors-{n}-specialization": "ENT"}
    response = client.post_form(
        "/clinic/staff/slots/new", {**rows, "date": soon, "start_time": "09:00", "end_time": "12:00", "capacity": "10"}, htmx=True
    )
    assert response.status_code == 422
    assert f"Add at most {sessions.MAX_DOCTORS_PER_FORM} doctors at a time." in response.get_data(as_text=True)
    assert _slot_count() == 0


def test_doctor_row_fragment_takes_the_next_index(app, client):
    login(client, make_staff())
    response = client.get("/clinic/staff/slots/doctor-row?doctors-0-name=A&doctors-0-specialization=B&doctors-1-name=&doctors-1-specialization=", headers={"HX-Request": "true"})
    html = response.get_data(as_text=True)
    assert html.lstrip().startswith('<fieldset id="doctor-row-2"') and 'name="doctors-2-name"' in html


def test_slot_list_shows_counts_badges_and_filters(app, client):
    staff = make_staff()
    sharma = make_doctor(staff.hospital, "Dr. Sharma", "Cardiology")
    rao = make_doctor(staff.hospital, "Dr. Rao", "Dermatology")
    first = make_slot(staff.hospital, sharma, capacity=10, booked=9)
    make_slot(staff.hospital, rao, capacity=10, booked=10, days_ahead=2)
    make_slot(staff.hospital, rao, closed=True, days_ahead=3)
    login(client, staff)
    html = client.get("/clinic/staff/slots").get_data(as_text=True)
    for text in ("9/10", "10/10", "Almost full", "Fully booked", "Closed", "every 10s"):
        assert text in html
    by_doctor = client.get(f"/clinic/staff/slots?doctor={sharma.id}", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert by_doctor.lstrip().startswith('<div id="staff-slots"') and "Dr. Rao" not in by_doctor
    by_date = client.get(f"/clinic/staff/slots?date={first.date}").get_data(as_text=True)
    assert by_date.count('<tr id="staff-slot-') == 1


def test_staff_slot_page_capacity_close_status_and_call_next(app, client):
    staff = make_staff()
    slot = make_slot(staff.hospital, capacity=5)
    a, b, c = (make_appointment(slot, u, patient_name=f"Patient {i}") for i, u in enumerate(make_users(3)))
    login(client, staff)
    html = client.get(f"/clinic/staff/slots/{slot.id}").get_data(as_text=True)
    assert "Patient 0" in html and "9876543210" in html and "3/5 booked" in html
    too_low = client.post_form(f"/clinic/staff/slots/{slot.id}/capacity", {"capacity": "2"}, htmx=True)
    assert too_low.status_code == 422
    assert "3 places are already booked, so the capacity cannot be less than 3." in too_low.get_data(as_text=True)
    assert client.post_form(f"/clinic/staff/slots/{slot.id}/capacity", {"capacity": "4"}, htmx=True).status_code == 200
    marked = client.post_form(f"/clinic/staff/appointments/{b.id}/status", {"status": "no_show"}, htmx=True)
    assert marked.status_code == 200 and "No-show" in marked.get_data(as_text=True)
    called = client.post_form(f"/clinic/staff/slots/{slot.id}/call-next", htmx=True)
    assert 'id="staff-now-serving">101<' in called.get_data(as_text=True)
    called = client.post_form(f"/clinic/staff/slots/{slot.id}/call-next", htmx=True)
    assert 'id="staff-now-serving">103<' in called.get_data(as_text=True)
    none_left = client.post_form(f"/clinic/staff/slots/{slot.id}/call-next", htmx=True)
    assert none_left.status_code == 409 and "No more patients are waiting" in none_left.get_data(as_text=True)
    closed = client.post_form(f"/clinic/staff/slots/{slot.id}/close", htmx=True)
    assert closed.status_code == 200 and "Reopen for bookings" in closed.get_data(as_text=True)
    db.session.rollback()
    fresh = db.session.get(Slot, slot.id)
    assert (fresh.capacity, fresh.closed, fresh.now_serving) == (4, True, 103)
    assert db.session.get(Appointment, b.id).status == "no_show"
    live = client.get(f"/clinic/staff/slots/{slot.id}/appointments", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert live.lstrip().startswith('<article id="slot-appointments"')


def test_staff_cannot_see_or_change_another_hospitals_slots(app, client):
    mine = make_staff(email="mine@h.example")
    other = make_hospital("Other Hospital", "Delhi")
    theirs = make_slot(other, capacity=5)
    appointment = make_appointment(theirs, make_user(), patient_name="Their Patient")
    login(client, mine)
    for url in (f"/clinic/staff/slots/{theirs.id}", f"/clinic/staff/slots/{theirs.id}/appointments"):
        assert client.get(url).status_code == 404, url
    for url, data in (
        (f"/clinic/staff/slots/{theirs.id}/capacity", {"capacity": "9"}),
        (f"/clinic/staff/slots/{theirs.id}/close", {}),
        (f"/clinic/staff/slots/{theirs.id}/reopen", {}),
        (f"/clinic/staff/slots/{theirs.id}/call-next", {}),
        (f"/clinic/staff/appointments/{appointment.id}/status", {"status": "arrived"}),
    ):
        assert client.post_form(url, data).status_code == 404, url
    assert "Their Patient" not in client.get("/clinic/staff/slots").get_data(as_text=True)
    db.session.rollback()
    fresh = db.session.get(Slot, theirs.id)
    assert (fresh.capacity, fresh.closed, fresh.now_serving) == (5, False, None)
    assert db.session.get(Appointment, appointment.id).status == "booked"


def test_staff_pages_are_404_for_patients(app, client):
    slot = make_slot()
    login(client, make_user())
    for url in ("/clinic/staff/slots", "/clinic/staff/slots/new", f"/clinic/staff/slots/{slot.id}"):
        assert client.get(url).status_code == 404
