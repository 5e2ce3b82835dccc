"""Booking rules: tokens from 101, never overbooked, never reused; errors write nothing."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import time, timedelta

import pytest
from sqlalchemy import func, select

from expertbook.clinic import booking, hospitals, queue, sessions, signals, states
from expertbook.clinic.models import Appointment, Slot
from expertbook.database import utcnow
from expertbook.errors import Conflict, NotFound, ValidationFailed
from expertbook.extensions import db
from tests.factories import make_appointment, make_slot, make_staff, make_user, make_users


def _counts(slot_id: int) -> tuple[int, int, int]:
    db.session.rollback()  # end this thread's read snapshot: the writes happened elsewhere
    slot = db.session.get(Slot, slot_id)
    rows = db.session.scalar(select(func.count()).select_from(Appointment).where(Appointment.slot_id == slot_id))
    return slot.booked_count, slot.tokens_issued, rows


def test_tokens_start_at_101_and_remaining_counts_down(app):
    slot = make_slot(capacity=3)
    users = make_users(3)
    results = [booking.book(slot.id, u.id, "Asha", "9876543210") for u in users]
    assert [r.appointment.token_number for r in results] == [101, 102, 103]
    assert [r.remaining for r in results] == [2, 1, 0]
    with pytest.raises(Conflict, match="This slot is fully booked"):
        booking.book(slot.id, make_user().id, "Late", "9876543210")
    assert _counts(slot.id) == (3, 3, 3)


def test_200_patients_racing_in_process_get_exactly_the_capacity(app):
    slot_id = make_slot(capacity=10).id
    user_ids = [u.id for u in make_users(200)]

    def attempt(user_id: int):
        with app.app_context():
            try:
                return booking.book(slot_id, user_id, "Racer", "9876543210").appointment.token_number
            except Conflict as error:
                return error.message
            finally:
                db.session.remove()

    with ThreadPoolExecutor(max_workers=24) as pool:
        outcomes = list(pool.map(attempt, user_ids))
    tokens = sorted(o for o in outcomes if isinstance(o, int))
    refusals = [o for o in outcomes if not isinstance(o, int)]
    assert tokens == list(range(101, 111))
    assert len(refusals) == 190 and set(refusals) == {"This slot is fully booked"}
    assert _counts(slot_id) == (10, 10, 10)


def test_same_idempotency_key_books_once(app):
    slot = make_slot(capacity=5)
    user = make_user()
    first = booking.book(slot.id, user.id, "Asha", "9876543210", idempotency_key="key-abcdefgh")
    again = booking.book(slot.id, user.id, "Asha", "9876543210", idempotency_key="key-abcdefgh")
    assert again.appointment.id == first.appointment.id and again.replayed
    assert _counts(slot.id) == (1, 1, 1)


def test_a_retry_after_its_booking_took_the_last_place_gets_that_booking_not_409(app):
    slot = make_slot(capacity=1)
    user = make_user()
    first = booking.book(slot.id, user.id, "Asha", "9876543210", idempotency_key="key-lastplace")
    # The answer was lost; the client retries. The slot is full now, by this very booking.
    again = booking.book(slot.id, user.id, "Asha", "9876543210", idempotency_key="key-lastplace")
    assert again.replayed and again.appointment.id == first.appointment.id
    assert _counts(slot.id) == (1, 1, 1)
    # Someone else, or the same patient with a new key, is refused.
    with pytest.raises(Conflict):
        booking.book(slot.id, user.id, "Asha", "9876543210", idempotency_key="key-another1")


def test_racing_retries_with_one_key_book_once(app):
    slot_id = make_slot(capacity=5).id
    user_id = make_user().id

    def attempt(_):
        with app.app_context():
            try:
                return booking.book(slot_id, user_id, "Asha", "9876543210", idempotency_key="double-click-1").appointment.id
            finally:
                db.session.remove()

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = set(pool.map(attempt, range(8)))
    assert len(ids) == 1
    assert _counts(slot_id) == (1, 1, 1)


@pytest.mark.parametrize(
    ("setup", "error", "message"),
    [
        (dict(capacity=2, booked=2), Conflict, "This slot is fully booked"),
        (dict(closed=True), Conflict, "Slot availability changed, please refresh"),
        (dict(days_ahead=-1), Conflict, "Slot availability changed, please refresh"),
    ],
)
def test_refusals_write_nothing(app, setup, error, message):
    slot = make_slot(**setup)
    before = _counts(slot.id)
    with pytest.raises(error, match=message):
        booking.book(slot.id, make_user().id, "Asha", "9876543210")
    assert _counts(slot.id) == before


def test_unknown_slot_is_not_found(app):
    with pytest.raises(NotFound, match="Slot not found"):
        booking.book(987654, make_user().id, "Asha", "9876543210")
    assert db.session.scalar(select(func.count()).select_from(Appointment)) == 0


@pytest.mark.parametrize(
    ("name", "contact", "fields"),
    [
        ("", "", {"patient_name", "contact_number"}),
        ("Asha", "12345", {"contact_number"}),
        ("Asha", "98765432101", {"contact_number"}),
        ("Asha", "98765abcde", {"contact_number"}),
        ("   ", "9876543210", {"patient_name"}),
    ],
)
def test_invalid_fields_name_each_field_and_write_nothing(app, name, contact, fields):
    slot = make_slot()
    with pytest.raises(ValidationFailed) as caught:
        booking.book(slot.id, make_user().id, name, contact)
    assert set(caught.value.errors) == fields
    assert _counts(slot.id) == (0, 0, 0)


def test_cancel_frees_the_place_but_never_reuses_the_token(app):
    slot = make_slot(capacity=2)
    a, b, c = make_users(3)
    first = booking.book(slot.id, a.id, "A", "9876543210").appointment
    booking.book(slot.id, b.id, "B", "9876543210")
    queue.cancel(first.id, a.id)
    assert _counts(slot.id)[:2] == (1, 2)
    third = booking.book(slot.id, c.id, "C", "9876543210")
    assert third.appointment.token_number == 103
    assert db.session.get(Appointment, first.id).status == "cancelled"
    # Cancelling twice changes nothing more.
    queue.cancel(first.id, a.id)
    assert _counts(slot.id)[:2] == (2, 3)


def test_patients_cannot_cancel_someone_elses_appointment(app):
    slot = make_slot()
    owner, other = make_users(2)
    appointment = make_appointment(slot, owner)
    with pytest.raises(NotFound):
        queue.cancel(appointment.id, other.id)
    assert _counts(slot.id)[0] == 1


def test_signals_are_sent_after_commit_with_the_appointment_id(app):
    slot = make_slot()
    user = make_user()
    seen = []

    def booked(sender, appointment_id):
        # Inside the booking's transaction: the row is there, and not yet visible to anyone else.
        seen.append(("booked", appointment_id, db.session.get(Appointment, appointment_id) is not None))

    def cancelled(sender, appointment_id):
        seen.append(("cancelled", appointment_id, True))

    signals.appointment_booked.connect(booked)
    signals.appointment_cancelled.connect(cancelled)
    try:
        result = booking.book(slot.id, user.id, "A", "9876543210")
        with pytest.raises(Conflict):
            booking.book(make_slot(closed=True, doctor=slot.doctor, start=time(14), end=time(15)).id, user.id, "A", "9876543210")
        queue.cancel(result.appointment.id, user.id)
    finally:
        signals.appointment_booked.disconnect(booked)
        signals.appointment_cancelled.disconnect(cancelled)
    assert seen == [("booked", result.appointment.id, True), ("cancelled", result.appointment.id, True)]


def test_a_receivers_writes_commit_or_roll_back_with_the_booking(app):
    """Receivers run inside the booking transaction, so what they write shares its fate."""
    slot = make_slot(capacity=1)
    user = make_user()

    def fail(sender, appointment_id):
        raise RuntimeError("receiver failed")

    signals.appointment_booked.connect(fail)
    try:
        with pytest.raises(RuntimeError):
            booking.book(slot.id, user.id, "A", "9876543210")
    finally:
        signals.appointment_booked.disconnect(fail)
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Appointment)) == 0
    assert db.session.get(Slot, slot.id).booked_count == 0


def test_capacity_cannot_go_below_booked_and_other_hospitals_get_404(app):
    slot = make_slot(capacity=5, booked=3)
    with pytest.raises(ValidationFailed) as caught:
        sessions.change_capacity(slot.id, slot.hospital_id, 2)
    assert "3 places are already booked" in caught.value.errors["capacity"][0]
    assert sessions.change_capacity(slot.id, slot.hospital_id, 3).capacity == 3
    other = make_staff(email="other@h.example")
    with pytest.raises(NotFound):
        sessions.change_capacity(slot.id, other.hospital_id, 8)
    with pytest.raises(NotFound):
        sessions.close_slot(slot.id, other.hospital_id)
    db.session.expire_all()
    assert db.session.get(Slot, slot.id).capacity == 3 and not db.session.get(Slot, slot.id).closed


def test_call_next_skips_cancelled_and_no_show(app):
    slot = make_slot()
    users = make_users(4)
    appts = [make_appointment(slot, u) for u in users]
    queue.set_appointment_status(appts[1].id, slot.hospital_id, "no_show")
    queue.cancel(appts[2].id, users[2].id)
    assert queue.call_next(slot.id, slot.hospital_id).now_serving == 101
    assert queue.call_next(slot.id, slot.hospital_id).now_serving == 104
    with pytest.raises(Conflict):
        queue.call_next(slot.id, slot.hospital_id)


def test_tokens_ahead_counts_waiting_tokens_before_mine(app):
    slot = make_slot()
    users = make_users(4)
    appts = [make_appointment(slot, u) for u in users]
    db.session.refresh(slot)
    assert queue.tokens_ahead(appts[3], slot) == 3
    queue.call_next(slot.id, slot.hospital_id)
    db.session.expire_all()
    slot = db.session.get(Slot, slot.id)
    assert queue.tokens_ahead(db.session.get(Appointment, appts[3].id), slot) == 2


def test_create_slots_repeats_over_weekdays_and_skips_duplicates(app):
    staff = make_staff()
    tz_today = states.local_today(staff.hospital.timezone)
    start = tz_today + timedelta(days=1)
    until = start + timedelta(days=13)
    created = sessions.create_slots(
        staff.id, [("Dr. Rao", "Dermatology"), ("Dr. Iyer", "Cardiology")], start, time(9), time(11), 10, until, [0, 2, 4]
    )
    expected_days = [start + timedelta(days=i) for i in range(14) if (start + timedelta(days=i)).weekday() in (0, 2, 4)]
    assert len(created.slots) == 2 * len(expected_days) and created.skipped == 0
    again = sessions.create_slots(staff.id, [("Dr. Rao", "Dermatology")], start, time(9), time(11), 10, until, [0, 2, 4])
    assert again.slots == [] and again.skipped == len(expected_days)


def test_create_slots_validates_each_field(app):
    staff = make_staff()
    yesterday = states.local_today(staff.hospital.timezone) - timedelta(days=1)
    with pytest.raises(ValidationFailed) as caught:
        sessions.create_slots(staff.id, [("", "Cardiology")], yesterday, time(11), time(9), 0)
    assert set(caught.value.errors) == {"doctors-0-name", "date", "end_time", "capacity"}
    assert db.session.scalar(select(func.count()).select_from(Slot)) == 0


def test_badges(app):
    now = utcnow()
    assert states.slot_badge(make_slot(capacity=10, booked=3), now).label == "Available"
    three_left = make_slot(capacity=10, booked=7, start=time(11), end=time(12))
    assert states.slot_badge(three_left, now).label == "Available" and states.availability_class(three_left, now) == "avail-ok"
    two_left = make_slot(capacity=10, booked=8, start=time(13), end=time(14))
    assert states.slot_badge(two_left, now).label == "Almost full" and states.availability_class(two_left, now) == "avail-warn"
    full = make_slot(capacity=10, booked=10, start=time(15), end=time(16))
    assert states.slot_badge(full, now).label == "Fully booked" and states.availability_class(full, now) == "avail-full"
    assert states.slot_badge(make_slot(closed=True, start=time(17), end=time(18)), now).label == "Closed"
    assert states.slot_badge(make_slot(days_ahead=-1), now).label == "Past"


def test_slot_times_are_the_hospitals_wall_clock(app):
    from datetime import date

    assert states.to_utc(date(2026, 1, 5), time(9), "Asia/Kolkata").isoformat() == "2026-01-05T03:30:00+00:00"
    assert states.to_utc(date(2026, 7, 6), time(9), "Europe/London").isoformat() == "2026-07-06T08:00:00+00:00"
    admin = hospitals.register_hospital("Lotus", "Pune", "Meera", "meera@lotus.example", "a long password 1")
    assert admin.hospital.timezone == app.config["CLINIC_TIMEZONE"] == "Asia/Kolkata"
