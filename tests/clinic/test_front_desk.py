"""Front-desk rules: walk-ins, staff cancellations, cancelling a session, moves, waiting lists, the doctors directory."""
from __future__ import annotations

from datetime import time, timedelta

import pytest
from sqlalchemy import func, select

from expertbook.clinic import appointments, booking, doctors, moves, queue, sessions, states, waitlist
from expertbook.clinic.models import Appointment, Doctor, Slot, WaitlistEntry
from expertbook.errors import Conflict, NotFound, ValidationFailed
from expertbook.extensions import db
from tests.factories import make_appointment, make_doctor, make_hospital, make_slot, make_staff, make_user, make_users


def _counts(slot_id: int) -> tuple[int, int, int]:
    """(places taken, tokens issued, appointments holding a place) as committed."""
    db.session.rollback()
    slot = db.session.get(Slot, slot_id, populate_existing=True)
    holding = db.session.scalar(
        select(func.count()).select_from(Appointment).where(Appointment.slot_id == slot_id, Appointment.status != Appointment.CANCELLED)
    )
    return slot.booked_count, slot.tokens_issued, holding


def _appointment(appointment_id: int) -> Appointment:
    db.session.rollback()
    return db.session.get(Appointment, appointment_id, populate_existing=True)


def _full(capacity: int = 2, **kwargs) -> tuple[Slot, list]:
    slot = make_slot(capacity=capacity, **kwargs)
    holders = make_users(capacity)
    return slot, [make_appointment(slot, u) for u in holders]


# ---------------------------------------------------------------------------- walk-ins


def test_walk_ins_and_online_bookings_share_the_places_and_one_token_sequence(app):
    slot = make_slot(capacity=3)
    online = booking.book(slot.id, make_user().id, "Asha", "9876543210")
    walk_in = booking.walk_in(slot.id, slot.hospital_id, "Ravi Kumar", "98765 43210")
    assert (online.token_number, walk_in.token_number) == (101, 102)
    assert walk_in.remaining == 1 and walk_in.slot.doctor.name == "Dr. Sharma"
    row = _appointment(walk_in.appointment_id)
    assert row.walk_in and row.user_id is None and row.contact_number == "9876543210" and row.email is None
    assert booking.book(slot.id, make_user().id, "Mina", "9876543210").token_number == 103
    with pytest.raises(Conflict, match="This slot is fully booked"):
        booking.walk_in(slot.id, slot.hospital_id, "Late", "9876543210")
    assert _counts(slot.id) == (3, 3, 3)
    listed = appointments.slot_appointments(slot.id)
    assert [(a.token_number, a.walk_in) for a in listed] == [(101, False), (102, True), (103, False)]


def test_walk_in_refusals_write_nothing(app):
    slot = make_slot()
    other = make_staff(make_hospital("Other", "Pune"))
    with pytest.raises(NotFound):
        booking.walk_in(slot.id, other.hospital_id, "Ravi", "9876543210")
    with pytest.raises(ValidationFailed) as caught:
        booking.walk_in(slot.id, slot.hospital_id, "", "123", email="not an address")
    assert set(caught.value.errors) == {"patient_name", "contact_number", "email"}
    with pytest.raises(ValidationFailed) as caught:
        booking.walk_in(slot.id, slot.hospital_id, "Ravi", "9876543210", email="two@a.example, b@c.example")
    assert set(caught.value.errors) == {"email"}
    sessions.close_slot(slot.id, slot.hospital_id)
    with pytest.raises(Conflict, match="Slot availability changed"):
        booking.walk_in(slot.id, slot.hospital_id, "Ravi", "9876543210")
    assert _counts(slot.id) == (0, 0, 0)


def test_a_walk_in_may_leave_an_email_address(app):
    slot = make_slot()
    booked = booking.walk_in(slot.id, slot.hospital_id, "Ravi", "9876543210", email=" Ravi@Example.com ")
    assert _appointment(booked.appointment_id).email == "Ravi@example.com"


# ---------------------------------------------------------------------------- staff cancel


def test_staff_cancel_needs_a_reason_frees_the_place_and_never_reuses_the_token(app):
    slot = make_slot(capacity=2)
    patient = make_user()
    first = make_appointment(slot, patient)
    with pytest.raises(ValidationFailed) as caught:
        queue.staff_cancel(first.id, slot.hospital_id, "   ")
    assert set(caught.value.errors) == {"reason"}
    cancelled = queue.staff_cancel(first.id, slot.hospital_id, "Doctor called away to surgery")
    assert cancelled.status == "cancelled" and cancelled.cancelled_by == "staff" and cancelled.cancel_reason == "Doctor called away to surgery"
    assert _counts(slot.id) == (0, 1, 0)
    assert booking.book(slot.id, make_user().id, "Next", "9876543210").token_number == 102
    with pytest.raises(Conflict, match="already cancelled"):
        queue.staff_cancel(first.id, slot.hospital_id, "again")
    other = make_staff(make_hospital("Other", "Pune"))
    second = booking.walk_in(slot.id, slot.hospital_id, "Walk In", "9876543210")
    with pytest.raises(NotFound):
        queue.staff_cancel(second.appointment_id, other.hospital_id, "not yours")
    assert _counts(slot.id) == (2, 3, 2)


def test_staff_cannot_cancel_in_a_session_that_is_over(app):
    slot = make_slot(days_ahead=-1)
    appointment = make_appointment(slot, make_user())
    with pytest.raises(Conflict, match="over"):
        queue.staff_cancel(appointment.id, slot.hospital_id, "late")


# ---------------------------------------------------------------------------- cancelling a session


def test_cancelling_a_session_cancels_its_appointments_and_waiting_list_and_hides_it(app):
    slot = make_slot(capacity=5)
    holders = [make_appointment(slot, u) for u in make_users(4)]
    queue.set_appointment_status(holders[1].id, slot.hospital_id, "arrived")
    queue.set_appointment_status(holders[2].id, slot.hospital_id, "no_show")
    queue.staff_cancel(holders[3].id, slot.hospital_id, "moved abroad")
    booking.walk_in(slot.id, slot.hospital_id, "Desk Email", "9876543210", email="desk@example.com")
    booking.walk_in(slot.id, slot.hospital_id, "Desk Phone", "9123456780")
    waiting = waitlist.join_waitlist(slot.id, make_user().id, "Waits", "9876543210")
    assert [s.id for s in sessions.search_slots()] == []  # full

    with pytest.raises(ValidationFailed):
        sessions.cancel_session(slot.id, slot.hospital_id, "")
    other = make_staff(make_hospital("Other", "Pune"))
    with pytest.raises(NotFound):
        sessions.cancel_session(slot.id, other.hospital_id, "not yours")

    result = sessions.cancel_session(slot.id, slot.hospital_id, "Dr. Sharma is unwell")
    # Booked and arrived are cancelled (2 online + 2 walk-ins); the no-show and the earlier cancellation stay as they were.
    assert (result.cancelled, result.notified, result.waitlist_notified) == (4, 3, 1)
    assert result.to_phone == [(106, "Desk Phone", "9123456780")]
    db.session.rollback()
    statuses = {a.token_number: (a.status, a.cancelled_by) for a in db.session.scalars(select(Appointment).where(Appointment.slot_id == slot.id))}
    assert statuses == {
        101: ("cancelled", "session"), 102: ("cancelled", "session"), 103: ("no_show", None),
        104: ("cancelled", "staff"), 105: ("cancelled", "session"), 106: ("cancelled", "session"),
    }
    assert _counts(slot.id) == (1, 6, 1)
    row = db.session.get(Slot, slot.id, populate_existing=True)
    assert row.closed and row.cancelled_at is not None and row.cancel_reason == "Dr. Sharma is unwell"
    assert states.slot_badge(row).label == "Cancelled"
    assert db.session.get(WaitlistEntry, waiting.entry_id).status == "cancelled"

    with pytest.raises(Conflict, match="already cancelled"):
        sessions.cancel_session(slot.id, slot.hospital_id, "again")
    with pytest.raises(Conflict, match="cannot be reopened"):
        sessions.reopen_slot(slot.id, slot.hospital_id)
    sessions.change_capacity(slot.id, slot.hospital_id, 10)
    for attempt in (
        lambda: booking.book(slot.id, make_user().id, "Late", "9876543210"),
        lambda: booking.walk_in(slot.id, slot.hospital_id, "Late", "9876543210"),
        lambda: waitlist.join_waitlist(slot.id, make_user().id, "Late", "9876543210"),
    ):
        with pytest.raises(Conflict, match="This session was cancelled"):
            attempt()
    assert sessions.search_slots() == []
    assert _counts(slot.id) == (1, 6, 1)


# ---------------------------------------------------------------------------- moves


def _two_sessions(capacity: int = 5, **kwargs):
    first = make_slot(capacity=capacity)
    second = make_slot(doctor=first.doctor, capacity=capacity, start=time(14), end=time(16), **kwargs)
    return first, second


def test_moving_takes_a_new_token_there_and_releases_the_old_place_in_one_go(app):
    first, second = _two_sessions()
    patient = make_user()
    make_appointment(second, make_user())  # token 101 there is someone else's
    old = make_appointment(first, patient, patient_name="Karthik")
    moved = moves.move_appointment(old.id, second.id, patient.id)
    assert (moved.token_number, moved.slot_id, moved.released) == (102, second.id, True)
    before = _appointment(old.id)
    assert (before.status, before.cancelled_by, before.moved_to_id) == ("cancelled", "moved", moved.appointment_id)
    after = _appointment(moved.appointment_id)
    assert (after.patient_name, after.user_id, after.moved_from_id, after.status) == ("Karthik", patient.id, old.id, "booked")
    # One calendar event across the move: the same UID (the first appointment's id), a higher SEQUENCE.
    assert (after.calendar_id, after.calendar_sequence) == (old.id, 1)
    assert _counts(first.id) == (0, 1, 0) and _counts(second.id) == (2, 2, 2)
    # The old token is not given out again; moving twice moves the new appointment, not the old one.
    assert booking.book(first.id, make_user().id, "New", "9876543210").token_number == 102
    with pytest.raises(Conflict, match="already been moved"):
        moves.move_appointment(old.id, second.id, patient.id)
    back = moves.move_appointment(moved.appointment_id, first.id, patient.id)
    assert back.token_number == 103 and _appointment(back.appointment_id).calendar_sequence == 2
    assert _appointment(back.appointment_id).calendar_id == old.id


def test_a_move_into_a_full_session_changes_nothing(app):
    first, second = _two_sessions(capacity=1)
    make_appointment(second, make_user())
    patient = make_user()
    old = make_appointment(first, patient)
    with pytest.raises(Conflict, match="This slot is fully booked"):
        moves.move_appointment(old.id, second.id, patient.id)
    assert _appointment(old.id).status == "booked" and _appointment(old.id).moved_to_id is None
    assert _counts(first.id) == (1, 1, 1) and _counts(second.id) == (1, 1, 1)
    assert db.session.scalar(select(func.count()).select_from(Appointment)) == 2


def test_where_an_appointment_may_move(app):
    hospital = make_hospital()
    sharma = make_doctor(hospital, "Dr. Sharma", "Cardiology")
    mehta = make_doctor(hospital, "Dr. Mehta", "Cardiology")
    rao = make_doctor(hospital, "Dr. Rao", "Dermatology")
    elsewhere = make_doctor(make_hospital("Other", "Chennai"), "Dr. Sharma", "Cardiology")
    here = make_slot(doctor=sharma)
    same_doctor = make_slot(doctor=sharma, days_ahead=2)
    same_kind = make_slot(doctor=mehta)
    other_kind = make_slot(doctor=rao)
    other_hospital = make_slot(doctor=elsewhere)
    make_slot(doctor=mehta, days_ahead=3, closed=True)
    make_slot(doctor=sharma, days_ahead=-1)
    patient = make_user()
    appointment = make_appointment(here, patient)
    db.session.expire_all()
    options = moves.move_options(appointments.own_appointment(appointment.id, patient.id))
    assert sorted(s.id for s in options) == sorted([same_doctor.id, same_kind.id])
    for target, message in ((other_kind.id, "same specialization"), (other_hospital.id, "same specialization"), (here.id, "already have")):
        with pytest.raises(ValidationFailed) as caught:
            moves.move_appointment(appointment.id, target, patient.id)
        assert message in caught.value.errors["slot_id"][0]
    with pytest.raises(NotFound):
        moves.move_appointment(appointment.id, 999_999, patient.id)
    with pytest.raises(NotFound):
        moves.move_appointment(appointment.id, same_kind.id, make_user().id)
    assert moves.move_appointment(appointment.id, same_kind.id, patient.id).token_number == 101


def test_past_or_ended_appointments_do_not_move(app):
    past = make_slot(days_ahead=-1)
    later = make_slot(doctor=past.doctor, days_ahead=2)
    patient = make_user()
    gone = make_appointment(past, patient)
    with pytest.raises(Conflict, match="can no longer be moved"):
        moves.move_appointment(gone.id, later.id, patient.id)
    mine = make_appointment(later, patient)
    queue.cancel(mine.id, patient.id)
    with pytest.raises(Conflict, match="can no longer be moved"):
        moves.move_appointment(mine.id, make_slot(doctor=past.doctor, days_ahead=3).id, patient.id)


def test_an_appointment_of_a_cancelled_session_can_be_replaced_once(app):
    first, second = _two_sessions()
    patient = make_user()
    old = make_appointment(first, patient)
    sessions.cancel_session(first.id, first.hospital_id, "Doctor unwell")
    moved = moves.move_appointment(old.id, second.id)  # by the email's signed link: no account check
    assert moved.released is False and moved.token_number == 101
    assert _appointment(old.id).moved_to_id == moved.appointment_id and _appointment(old.id).cancelled_by == "session"
    # A fresh calendar event: the old one was cancelled with the session.
    assert _appointment(moved.appointment_id).calendar_id is None
    assert _counts(first.id) == (0, 1, 0) and _counts(second.id) == (1, 1, 1)
    with pytest.raises(Conflict, match="already been moved"):
        moves.move_appointment(old.id, second.id)
    # The no-login path (user_id None) moves only a place the hospital took away, never a live appointment.
    live = make_appointment(second, make_user())
    third = make_slot(doctor=first.doctor, capacity=5, start=time(17), end=time(18))
    with pytest.raises(NotFound):
        moves.move_appointment(live.id, third.id)
    assert _appointment(live.id).status == Appointment.BOOKED and _counts(third.id)[0] == 0


def test_a_walk_in_moves_with_its_email(app):
    first, second = _two_sessions()
    walk_in = booking.walk_in(first.id, first.hospital_id, "Desk", "9876543210", email="desk@example.com")
    sessions.cancel_session(first.id, first.hospital_id, "Doctor unwell")
    moved = moves.move_appointment(walk_in.appointment_id, second.id)
    row = _appointment(moved.appointment_id)
    assert (row.walk_in, row.email, row.user_id) == (True, "desk@example.com", None)


# ---------------------------------------------------------------------------- the waiting list


def test_only_a_full_open_session_has_a_waiting_list(app):
    slot = make_slot(capacity=1)
    patient = make_user()
    with pytest.raises(Conflict, match="free places"):
        waitlist.join_waitlist(slot.id, patient.id, "Asha", "9876543210")
    make_appointment(slot, make_user())
    with pytest.raises(ValidationFailed) as caught:
        waitlist.join_waitlist(slot.id, patient.id, "", "12")
    assert set(caught.value.errors) == {"patient_name", "contact_number"}
    with pytest.raises(NotFound):
        waitlist.join_waitlist(999_999, patient.id, "Asha", "9876543210")
    hidden = make_slot(make_hospital("Not yet published", published=False), capacity=1)
    make_appointment(hidden, make_user())
    with pytest.raises(NotFound):  # an unpublished hospital's session is nobody's to wait for
        waitlist.join_waitlist(hidden.id, patient.id, "Asha", "9876543210")
    first = waitlist.join_waitlist(slot.id, patient.id, "Asha", "9876543210")
    assert first.position == 1
    with pytest.raises(Conflict, match="already on the waiting list"):
        waitlist.join_waitlist(slot.id, patient.id, "Asha", "9876543210")
    assert waitlist.join_waitlist(slot.id, patient.id, "Asha's son", "9876543210").position == 2
    assert waitlist.join_waitlist(slot.id, make_user().id, "Other", "9876543210").position == 3
    sessions.close_slot(slot.id, slot.hospital_id)
    with pytest.raises(Conflict, match="Slot availability changed"):
        waitlist.join_waitlist(slot.id, make_user().id, "Late", "9876543210")


def test_a_cancellation_gives_the_place_to_the_first_waiting_at_once(app):
    slot, holders = _full(capacity=2)
    waiters = make_users(3)
    entries = [waitlist.join_waitlist(slot.id, u.id, f"Waiter {i}", "9876543210") for i, u in enumerate(waiters)]
    assert [e.position for e in entries] == [1, 2, 3]
    queue.cancel(holders[0].id, holders[0].user_id)
    db.session.rollback()
    promoted = db.session.get(WaitlistEntry, entries[0].entry_id)
    assert promoted.status == "promoted" and promoted.appointment_id is not None
    given = db.session.get(Appointment, promoted.appointment_id)
    assert (given.token_number, given.user_id, given.patient_name, given.status) == (103, waiters[0].id, "Waiter 0", "booked")
    assert _counts(slot.id) == (2, 3, 2)
    # Nobody else can take the place meanwhile: the session is still full.
    with pytest.raises(Conflict, match="fully booked"):
        booking.book(slot.id, make_user().id, "Sneaky", "9876543210")
    assert [(e.patient_name, pos) for e, pos in waitlist.my_waitlist(waiters[1].id)] == [("Waiter 1", 1)]
    # A staff cancellation and a move away free places too.
    queue.staff_cancel(holders[1].id, slot.hospital_id, "duplicate booking")
    elsewhere = make_slot(doctor=slot.doctor, days_ahead=2)
    moves.move_appointment(given.id, elsewhere.id, waiters[0].id)
    db.session.rollback()
    assert [db.session.get(WaitlistEntry, e.entry_id).status for e in entries] == ["promoted"] * 3
    tokens = [db.session.get(Appointment, db.session.get(WaitlistEntry, e.entry_id).appointment_id).token_number for e in entries]
    assert tokens == [103, 104, 105]
    assert _counts(slot.id) == (2, 5, 2)


def test_more_places_and_reopening_promote_in_order_and_closing_waits(app):
    slot, _ = _full(capacity=1)
    waiters = make_users(4)
    entries = [waitlist.join_waitlist(slot.id, u.id, "W", "9876543210").entry_id for u in waiters]
    sessions.change_capacity(slot.id, slot.hospital_id, 3)
    db.session.rollback()
    assert [db.session.get(WaitlistEntry, e).status for e in entries] == ["promoted", "promoted", "waiting", "waiting"]
    assert _counts(slot.id) == (3, 3, 3)
    # A closed session gives nobody a place; reopening it does.
    sessions.close_slot(slot.id, slot.hospital_id)
    sessions.change_capacity(slot.id, slot.hospital_id, 4)
    db.session.rollback()
    assert db.session.get(WaitlistEntry, entries[2]).status == "waiting"
    sessions.reopen_slot(slot.id, slot.hospital_id)
    db.session.rollback()
    assert [db.session.get(WaitlistEntry, e).status for e in entries] == ["promoted", "promoted", "promoted", "waiting"]
    assert _counts(slot.id) == (4, 4, 4)


def test_leaving_the_waiting_list(app):
    slot, holders = _full(capacity=1)
    first, second = make_users(2)
    a = waitlist.join_waitlist(slot.id, first.id, "A", "9876543210")
    b = waitlist.join_waitlist(slot.id, second.id, "B", "9876543210")
    with pytest.raises(NotFound):
        waitlist.leave_waitlist(a.entry_id, second.id)
    assert waitlist.leave_waitlist(a.entry_id, first.id).status == "left"
    assert waitlist.leave_waitlist(a.entry_id, first.id).status == "left"  # twice is harmless
    assert [pos for _, pos in waitlist.my_waitlist(second.id)] == [1]
    # The person who left is skipped; the next one gets the place.
    queue.cancel(holders[0].id, holders[0].user_id)
    with pytest.raises(Conflict, match="token 102"):
        waitlist.leave_waitlist(b.entry_id, second.id)
    assert waitlist.my_waitlist(first.id) == [] and waitlist.my_waitlist(second.id) == []


# ---------------------------------------------------------------------------- the doctors directory


def test_the_directory_adds_renames_and_deactivates_doctors(app):
    staff = make_staff()
    hospital_id = staff.hospital_id
    sharma = doctors.add_doctor(hospital_id, "Dr. Sharma", "Cardiology", "Twenty years of  heart care.")
    assert sharma.bio == "Twenty years of heart care." and sharma.active
    with pytest.raises(ValidationFailed) as caught:
        doctors.add_doctor(hospital_id, "Dr. Sharma", "Cardiology")
    assert "already in the directory" in caught.value.errors["name"][0]
    with pytest.raises(ValidationFailed) as caught:
        doctors.add_doctor(hospital_id, "", "", "x" * 501)
    assert set(caught.value.errors) == {"name", "specialization", "bio"}
    slot = make_slot(doctor=db.session.get(Doctor, sharma.id))
    # One edit renames the doctor everywhere: search, pages and the API all read the directory.
    doctors.update_doctor(sharma.id, hospital_id, "Dr. A. Sharma", "Cardiology", "", True)
    db.session.expire_all()
    assert [s.doctor.name for s in sessions.search_slots(specialization="cardio")] == ["Dr. A. Sharma"]
    assert sessions.slot_with_details(slot.id).doctor.name == "Dr. A. Sharma"
    other = make_staff(make_hospital("Other", "Pune"))
    with pytest.raises(NotFound):
        doctors.update_doctor(sharma.id, other.hospital_id, "Mine", "Now", "", True)
    doctors.update_doctor(sharma.id, hospital_id, "Dr. A. Sharma", "Cardiology", "", False)
    assert doctors.doctors_of(hospital_id, active_only=True) == []
    assert [d.name for d in doctors.doctors_of(hospital_id)] == ["Dr. A. Sharma"]


def test_slots_are_created_for_directory_doctors_by_id_and_never_for_inactive_ones(app):
    staff = make_staff()
    day = states.local_today(staff.hospital.timezone) + timedelta(days=30)
    rao = doctors.add_doctor(staff.hospital_id, "Dr. Rao", "Dermatology")
    created = sessions.create_slots(staff.id, [rao.id, ("Dr. Rao", "Dermatology")], day, time(9), time(11), 5)
    assert [s.doctor_id for s in created.slots] == [rao.id]  # listed twice, one session
    foreign = make_doctor(make_hospital("Other", "Pune"), "Dr. X", "ENT")
    with pytest.raises(ValidationFailed) as caught:
        sessions.create_slots(staff.id, [foreign.id], day, time(12), time(13), 5)
    assert set(caught.value.errors) == {"doctors-0-doctor_id"}
    doctors.update_doctor(rao.id, staff.hospital_id, "Dr. Rao", "Dermatology", "", False)
    with pytest.raises(ValidationFailed) as caught:
        sessions.create_slots(staff.id, [("Dr. Rao", "Dermatology")], day, time(12), time(13), 5)
    assert "inactive" in caught.value.errors["doctors-0-name"][0]
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Slot)) == 1
