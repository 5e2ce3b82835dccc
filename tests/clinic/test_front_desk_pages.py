"""The front desk in the browser's HTTP: walk-ins with a slip, staff and session cancellations, moving,
the waiting list in My appointments, and the doctors directory the slot form picks from."""
from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import func, select

from expertbook.clinic import booking, doctors, links, queue, sessions, states, waitlist
from expertbook.clinic.models import Appointment, Doctor, Slot, WaitlistEntry
from expertbook.extensions import db
from tests.factories import login, make_appointment, make_hospital, make_slot, make_staff, make_user, make_users


def _fresh(model, key):
    db.session.rollback()
    return db.session.get(model, key, populate_existing=True)


# ---------------------------------------------------------------------------- staff


def test_walk_in_shows_the_token_large_with_print_slip_and_marks_the_list(app, client):
    staff = make_staff()
    slot = make_slot(staff.hospital, capacity=2)
    make_appointment(slot, make_user(), patient_name="Online Patient")
    login(client, staff)
    page = client.get(f"/clinic/staff/slots/{slot.id}").get_data(as_text=True)
    assert 'id="walk-in"' in page and "Give the next token" in page
    made = client.post_form(f"/clinic/staff/slots/{slot.id}/walk-in", {"patient_name": "Desk Patient", "contact_number": "9123456780"}, htmx=True)
    html = made.get_data(as_text=True)
    assert made.status_code == 200 and html.lstrip().startswith('<article id="walk-in"')
    assert 'id="walk-in-token">102<' in html and "Print slip" in html and made.headers["HX-Trigger"] == "clinicRefresh"
    appointment_id = int(re.search(r"/clinic/staff/appointments/(\d+)/slip", html).group(1))
    slip = client.get(f"/clinic/staff/appointments/{appointment_id}/slip?print=1").get_data(as_text=True)
    assert 'class="token">102<' in slip and "Desk Patient" in slip and "data-autoprint" in slip and "Dr. Sharma" in slip
    listed = client.get(f"/clinic/staff/slots/{slot.id}/appointments", headers={"HX-Request": "true"}).get_data(as_text=True)
    rows = dict(re.findall(r'<tr id="appointment-\d+"[^>]*>\s*<td[^>]*><strong>(\d+)</strong>.*?</td>\s*<td[^>]*>(.*?)</td>', listed, re.S))
    assert "walk-in" in rows["102"] and "walk-in" not in rows["101"]
    # Errors like a booking's: 422 per field, 409 when full; a plain form post goes to the slip.
    invalid = client.post_form(f"/clinic/staff/slots/{slot.id}/walk-in", {"patient_name": "", "contact_number": "12"}, htmx=True)
    assert invalid.status_code == 422 and "The contact number must be exactly 10 digits." in invalid.get_data(as_text=True)
    full = client.post_form(f"/clinic/staff/slots/{slot.id}/walk-in", {"patient_name": "Late", "contact_number": "9123456780"}, htmx=True)
    assert full.status_code == 409 and "This slot is fully booked" in full.get_data(as_text=True)
    assert _fresh(Slot, slot.id).booked_count == 2


def test_walk_in_without_htmx_goes_to_the_slip_and_others_get_404(app, client):
    staff = make_staff()
    slot = make_slot(staff.hospital)
    login(client, staff)
    response = client.post_form(f"/clinic/staff/slots/{slot.id}/walk-in", {"patient_name": "Desk", "contact_number": "9123456780"})
    assert response.status_code == 303 and "/slip" in response.headers["Location"]
    assert "Walk-in token 101 for Desk." in client.get(response.headers["Location"]).get_data(as_text=True)
    slip_url = response.headers["Location"]
    db.session.rollback()
    other = make_staff(make_hospital("Other", "Pune"))
    login(client, other)
    assert client.get(slip_url).status_code == 404
    assert client.post_form(f"/clinic/staff/slots/{slot.id}/walk-in", {"patient_name": "X", "contact_number": "9123456780"}).status_code == 404
    login(client, make_user())
    assert client.get(slip_url).status_code == 404


def test_staff_cancel_one_appointment_with_a_reason(app, client):
    staff = make_staff()
    slot = make_slot(staff.hospital)
    appointment = make_appointment(slot, make_user(), patient_name="Asha")
    login(client, staff)
    missing = client.post_form(f"/clinic/staff/appointments/{appointment.id}/cancel", {"reason": ""}, htmx=True)
    assert missing.status_code == 422 and "Please give a reason" in missing.get_data(as_text=True)
    done = client.post_form(f"/clinic/staff/appointments/{appointment.id}/cancel", {"reason": "Doctor called to surgery"}, htmx=True)
    html = done.get_data(as_text=True)
    assert done.status_code == 200 and html.lstrip().startswith('<article id="slot-appointments"')
    assert "by staff: Doctor called to surgery" in html
    again = client.post_form(f"/clinic/staff/appointments/{appointment.id}/cancel", {"reason": "again"}, htmx=True)
    assert again.status_code == 409 and "already cancelled" in again.get_data(as_text=True)
    row = _fresh(Appointment, appointment.id)
    assert (row.status, row.cancel_reason) == ("cancelled", "Doctor called to surgery")


def test_cancel_session_page_says_who_was_told_and_whom_to_phone(app, client):
    staff = make_staff()
    slot = make_slot(staff.hospital, capacity=3)
    make_appointment(slot, make_user(), patient_name="Online")
    booking.walk_in(slot.id, staff.hospital_id, "Phone Only", "9123456780")
    login(client, staff)
    page = client.get(f"/clinic/staff/slots/{slot.id}").get_data(as_text=True)
    assert "Cancel the whole session" in page
    refused = client.post_form(f"/clinic/staff/slots/{slot.id}/cancel", {"reason": " "}, htmx=True)
    assert refused.status_code == 422 and not _fresh(Slot, slot.id).cancelled
    done = client.post_form(f"/clinic/staff/slots/{slot.id}/cancel", {"reason": "Dr. Sharma is unwell"}, htmx=True)
    html = done.get_data(as_text=True)
    assert done.status_code == 200 and html.lstrip().startswith('<article id="slot-controls"')
    assert "2 appointment(s) cancelled, 1 patient(s) emailed" in html and "Please phone: token 102 Phone Only, 9123456780" in html
    assert "Dr. Sharma is unwell" in html and "Reopen" not in html and "Cancel the whole session" not in html
    assert client.post_form(f"/clinic/staff/slots/{slot.id}/cancel", {"reason": "again"}, htmx=True).status_code == 409
    # The session has left search, and its page tells patients.
    db.session.rollback()
    login(client, make_user())
    assert f"/clinic/slots/{slot.id}" not in client.get("/clinic/search").get_data(as_text=True)
    assert "This session was cancelled: Dr. Sharma is unwell" in client.get(f"/clinic/slots/{slot.id}").get_data(as_text=True)


# ---------------------------------------------------------------------------- patients: waiting list and moves


def test_a_full_session_offers_the_waiting_list_and_my_appointments_shows_the_place(app, client):
    slot = make_slot(capacity=1)
    holder = make_appointment(slot, make_user())
    me = make_user()
    login(client, me)
    page = client.get(f"/clinic/slots/{slot.id}").get_data(as_text=True)
    assert "Join the waiting list" in page and 'id="booking-form"' not in page
    invalid = client.post_form(f"/clinic/slots/{slot.id}/waitlist", {"patient_name": "", "contact_number": "9876543210"}, htmx=True)
    assert invalid.status_code == 422 and "Please enter the patient&#39;s name." in invalid.get_data(as_text=True)
    joined = client.post_form(f"/clinic/slots/{slot.id}/waitlist", {"patient_name": "Asha", "contact_number": "9876543210"})
    assert joined.status_code == 303
    mine = client.get(joined.headers["Location"]).get_data(as_text=True)
    assert "Asha is number 1 on the waiting list" in mine and 'id="my-waitlist"' in mine
    twice = client.post_form(f"/clinic/slots/{slot.id}/waitlist", {"patient_name": "Asha", "contact_number": "9876543210"}, htmx=True)
    assert twice.status_code == 409 and "already on the waiting list" in twice.get_data(as_text=True)
    db.session.rollback()
    entry = db.session.scalar(select(WaitlistEntry.id))
    db.session.rollback()
    # Someone cancels: the place is mine at once, and My appointments shows the token instead of the list.
    queue.cancel(holder.id, holder.user_id)
    mine = client.get("/clinic/my-appointments").get_data(as_text=True)
    assert 'id="my-waitlist"' not in mine and "<strong>102</strong>" in mine
    left = client.post_form(f"/clinic/waitlist/{entry}/leave")
    assert left.status_code == 303 and "A place already freed up for you: token 102" in client.get("/clinic/my-appointments").get_data(as_text=True)


def test_leaving_the_waiting_list_from_my_appointments(app, client):
    slot = make_slot(capacity=1)
    make_appointment(slot, make_user())
    me, other = make_users(2)
    entry = waitlist.join_waitlist(slot.id, me.id, "Asha", "9876543210").entry_id
    login(client, other)
    assert client.post_form(f"/clinic/waitlist/{entry}/leave").status_code == 404
    login(client, me)
    assert client.post_form(f"/clinic/waitlist/{entry}/leave").status_code == 303
    assert "You have left the waiting list." in client.get("/clinic/my-appointments").get_data(as_text=True)
    assert _fresh(WaitlistEntry, entry).status == "left"


def test_moving_from_my_appointments(app, client):
    first = make_slot()
    second = make_slot(doctor=first.doctor, days_ahead=2)
    me = make_user()
    mine = make_appointment(first, me)
    login(client, me)
    assert f"/clinic/appointments/{mine.id}/move" in client.get("/clinic/my-appointments").get_data(as_text=True)
    page = client.get(f"/clinic/appointments/{mine.id}/move").get_data(as_text=True)
    assert f'id="move-to-{second.id}"' in page and f'id="move-to-{first.id}"' not in page
    moved = client.post_form(f"/clinic/appointments/{mine.id}/move", {"slot_id": str(second.id)})
    assert moved.status_code == 303
    confirmation = client.get(moved.headers["Location"]).get_data(as_text=True)
    assert "Moved. Your new token number is 101." in confirmation and 'id="token-number">101<' in confirmation
    again = client.post_form(f"/clinic/appointments/{mine.id}/move", {"slot_id": str(second.id)}, htmx=True)
    assert again.status_code == 409 and "already been moved" in again.get_data(as_text=True)
    db.session.rollback()
    assert client.get(f"/clinic/appointments/{make_appointment(first, make_user()).id}/move").status_code == 404


def test_a_move_into_a_full_session_is_409_and_keeps_the_appointment(app, client):
    first = make_slot()
    second = make_slot(doctor=first.doctor, days_ahead=2, capacity=1)
    me = make_user()
    mine = make_appointment(first, me)
    login(client, me)
    page = client.get(f"/clinic/appointments/{mine.id}/move").get_data(as_text=True)
    assert f'id="move-to-{second.id}"' in page
    db.session.rollback()
    make_appointment(db.session.get(Slot, second.id), make_user())  # it fills up meanwhile
    refused = client.post_form(f"/clinic/appointments/{mine.id}/move", {"slot_id": str(second.id)}, htmx=True)
    assert refused.status_code == 409 and "This slot is fully booked" in refused.get_data(as_text=True)
    assert _fresh(Appointment, mine.id).status == "booked"


def test_the_move_link_of_a_cancelled_session_works_without_logging_in(app, client):
    first = make_slot()
    second = make_slot(doctor=first.doctor, days_ahead=2)
    walk_in = booking.walk_in(first.id, first.hospital_id, "Desk Patient", "9123456780", email="desk@example.com")
    sessions.cancel_session(first.id, first.hospital_id, "Doctor unwell")
    token = links.move_token(walk_in.appointment_id)
    page = client.get(f"/clinic/move/{token}").get_data(as_text=True)
    assert "The hospital cancelled <strong>token 101</strong>" in page and "Doctor unwell" in page and f'id="move-to-{second.id}"' in page
    moved = client.post_form(f"/clinic/move/{token}", {"slot_id": str(second.id)})
    assert moved.status_code == 303 and moved.headers["Location"].endswith(f"/clinic/move/{token}")
    done = client.get(moved.headers["Location"]).get_data(as_text=True)
    assert 'id="token-number">101<' in done and "Desk Patient" in done and "It replaces token 101" in done
    assert client.get("/clinic/move/not-a-real-token").status_code == 404
    assert client.get(f"/clinic/move/{token[:-2]}xx").status_code == 404
    db.session.rollback()
    assert db.session.scalar(select(func.count()).where(Appointment.slot_id == second.id)) == 1


# ---------------------------------------------------------------------------- the doctors directory


def test_the_doctors_directory_and_the_slot_form_that_picks_from_it(app, client):
    staff = make_staff()
    login(client, staff)
    assert "No doctors yet" in client.get("/clinic/staff/doctors").get_data(as_text=True)
    added = client.post_form("/clinic/staff/doctors", {"name": "Dr. Rao", "specialization": "Dermatology", "bio": "Skin and hair."}, htmx=True)
    assert added.status_code == 200 and added.get_data(as_text=True).lstrip().startswith('<div id="doctors"')
    assert "Dr. Rao" in added.get_data(as_text=True) and "Skin and hair." in added.get_data(as_text=True)
    duplicate = client.post_form("/clinic/staff/doctors", {"name": "Dr. Rao", "specialization": "Dermatology"}, htmx=True)
    assert duplicate.status_code == 422 and "already in the directory" in duplicate.get_data(as_text=True)
    rao = db.session.scalar(select(Doctor).where(Doctor.name == "Dr. Rao"))
    db.session.rollback()
    # The slot form picks from the directory (and can still add a new doctor inline).
    form = client.get("/clinic/staff/slots/new").get_data(as_text=True)
    assert f'<option value="{rao.id}">Dr. Rao (Dermatology)</option>' in form and "Or add a new doctor" in form
    day = (states.local_today(staff.hospital.timezone) + timedelta(days=3)).isoformat()
    created = client.post_form(
        "/clinic/staff/slots/new",
        {"doctors-0-doctor_id": str(rao.id), "doctors-1-name": "Dr. Iyer", "doctors-1-specialization": "ENT",
         "date": day, "start_time": "09:00", "end_time": "11:00", "capacity": "5"},
    )
    assert created.status_code == 303
    db.session.rollback()
    assert sorted(db.session.scalars(select(Doctor.name))) == ["Dr. Iyer", "Dr. Rao"]
    slot = db.session.scalar(select(Slot).where(Slot.doctor_id == rao.id))
    # One edit renames the doctor on every page.
    renamed = client.post_form(f"/clinic/staff/doctors/{rao.id}", {"name": "Dr. R. Rao", "specialization": "Dermatology", "bio": "", "active": "y"})
    assert renamed.status_code == 303
    assert "Dr. R. Rao" in client.get("/clinic/staff/slots").get_data(as_text=True)
    db.session.rollback()
    login(client, make_user())
    assert "Dr. R. Rao" in client.get("/clinic/search?specialization=derma").get_data(as_text=True)
    assert "Dr. R. Rao" in client.get(f"/clinic/slots/{slot.id}").get_data(as_text=True)
    # Deactivated: not offered for new sessions.
    login(client, staff)
    client.post_form(f"/clinic/staff/doctors/{rao.id}", {"name": "Dr. R. Rao", "specialization": "Dermatology", "bio": ""})
    assert f'<option value="{rao.id}">' not in client.get("/clinic/staff/slots/new").get_data(as_text=True)
    assert "Inactive" in client.get("/clinic/staff/doctors").get_data(as_text=True)


def test_the_directory_is_per_hospital_and_hidden_from_patients(app, client):
    staff = make_staff()
    doctor = doctors.add_doctor(staff.hospital_id, "Dr. Rao", "Dermatology")
    other = make_staff(make_hospital("Other", "Pune"))
    login(client, other)
    assert "Dr. Rao" not in client.get("/clinic/staff/doctors").get_data(as_text=True)
    assert client.get(f"/clinic/staff/doctors/{doctor.id}").status_code == 404
    assert client.post_form(f"/clinic/staff/doctors/{doctor.id}", {"name": "Mine", "specialization": "X", "active": "y"}).status_code == 404
    login(client, make_user())
    assert client.get("/clinic/staff/doctors").status_code == 404
    assert _fresh(Doctor, doctor.id).name == "Dr. Rao"
