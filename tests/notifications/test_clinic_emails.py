"""Clinic emails through the outbox: the token confirmation, the cancellation and the reminder."""
from __future__ import annotations

from datetime import timedelta

import pytest
from icalendar import Calendar
from sqlalchemy import func, select

from expertbook.clinic import booking, clock, queue, sessions
from expertbook.clinic.models import Appointment
from expertbook.errors import Conflict
from expertbook.extensions import db
from expertbook.notifications import service
from expertbook.notifications.models import OutboxEmail
from tests.factories import login, make_hospital, make_slot, make_user
from tests.notifications.conftest import mail_config


@pytest.fixture
def app_config(smtp):
    return mail_config(smtp)


def _calendar(message):
    part = next(p for p in message.walk() if p.get_content_type() == "text/calendar")
    return part, Calendar.from_ical(part.get_payload(decode=True))


def test_booking_emails_the_token_with_a_calendar_file(app, client, smtp):
    slot = make_slot()
    patient = make_user(name="Priya Raman", email="priya@example.com")
    login(client, patient)
    page = client.get(f"/clinic/slots/{slot.id}").get_data(as_text=True)
    assert page  # the booking form is there
    made = booking.book(slot.id, patient.id, "Karthik Raman", "9876543210")
    [message] = smtp.wait_for(1)
    assert message["To"] == "Priya Raman <priya@example.com>"
    assert "Your token 101" in message["Subject"]
    text = message.get_body(("plain",)).get_content()
    assert "Token number: 101" in text and "Karthik Raman" in text
    assert "Dr. Sharma" in text and "City General Hospital" in text
    assert f"/clinic/appointments/{made.appointment.id}" in text
    part, calendar = _calendar(message)
    assert part.get_param("method") == "REQUEST"
    event = next(iter(calendar.walk("VEVENT")))
    assert str(event["UID"]).startswith(f"clinic-appointment-{made.appointment.id}@")
    assert event.decoded("DTSTART") == slot.starts_at


def test_clinic_emails_and_calendar_files_give_the_hospitals_local_time_and_zone(app, smtp):
    """Issue 14: an email is read wherever the patient is, so its times name the hospital's zone, and the
    .ics carries the hospital's TZID with its VTIMEZONE (a calendar shows the hospital's hours, not UTC's)."""
    hospital = make_hospital("St Thomas'", "London")
    hospital.timezone = "Europe/London"
    db.session.commit()
    slot = make_slot(hospital)
    abbreviation = clock.zone_abbreviation("Europe/London", slot.starts_at)
    assert abbreviation in ("GMT", "BST")
    patient = make_user(email="zone@example.com")
    made = booking.book(slot.id, patient.id, "Zoe", "9876543210")
    booking.walk_in(slot.id, hospital.id, "Walker", "9123456780", email="walker@example.com")
    queue.cancel(made.appointment.id, patient.id)
    messages = smtp.wait_for(3)
    for message in messages:
        text = message.get_body(("plain",)).get_content()
        assert f"09:00-12:00 {abbreviation}" in text, (message["Subject"], text)
        html = message.get_body(("html",)).get_content()
        assert f"09:00-12:00 {abbreviation}" in html, message["Subject"]
        part, calendar = _calendar(message)
        event = next(iter(calendar.walk("VEVENT")))
        assert event["DTSTART"].params["TZID"] == "Europe/London" and event["DTEND"].params["TZID"] == "Europe/London"
        assert event.decoded("DTSTART") == slot.starts_at and event.decoded("DTEND") == slot.ends_at
        assert event.decoded("DTSTART").strftime("%H:%M") == "09:00"
        assert [str(tz["TZID"]) for tz in calendar.walk("VTIMEZONE")] == ["Europe/London"]


def test_cancelling_emails_a_cancel_calendar_for_the_same_event(app, smtp):
    slot = make_slot()
    patient = make_user(email="c@example.com")
    made = booking.book(slot.id, patient.id, "C", "9876543210")
    queue.cancel(made.appointment.id, patient.id)
    first, second = smtp.wait_for(2)
    assert second["Subject"].startswith("Cancelled: token 101")
    _, invite = _calendar(first)
    part, cancel = _calendar(second)
    assert part.get_param("method") == "CANCEL"
    uid = lambda cal: str(next(iter(cal.walk("VEVENT")))["UID"])  # noqa: E731
    assert uid(invite) == uid(cancel)
    assert str(cancel["METHOD"]) == "CANCEL"


def test_a_refused_booking_writes_no_email(app, smtp):
    slot = make_slot(capacity=1, booked=1)
    with pytest.raises(Conflict):
        booking.book(slot.id, make_user().id, "A", "9876543210")
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(OutboxEmail)) == 0
    assert smtp.messages == []


def test_an_email_problem_never_costs_the_booking(app, smtp, monkeypatch, backend):
    from expertbook.clinic import booking as clinic_booking
    from expertbook.notifications import service as notifications

    def broken(*args, **kwargs):
        raise RuntimeError("outbox on fire")

    # SQLite writes the email's row in a statement of its own, which may fail; PostgreSQL writes it in the
    # booking's statement. Either way the dispatch after the commit may fail too.
    monkeypatch.setattr(clinic_booking, "queue_composed", broken)
    monkeypatch.setattr(notifications, "send", broken)
    slot = make_slot()
    made = booking.book(slot.id, make_user().id, "A", "9876543210")
    db.session.rollback()
    assert db.session.get(Appointment, made.appointment.id) is not None
    rows = db.session.scalars(select(OutboxEmail)).all()
    if backend == "sqlite":
        assert rows == []
    else:  # written with the booking, and still pending for the relay
        assert [(row.kind, row.ref_id, row.status) for row in rows] == [("clinic-token", made.appointment.id, "pending")]
    assert smtp.messages == []


def test_clinic_reminder_is_sent_once(app, smtp):
    slot = make_slot(days_ahead=2)
    patient = make_user(email="r@example.com")
    booking.book(slot.id, patient.id, "R", "9876543210")
    smtp.wait_for(1)
    too_early = slot.starts_at - timedelta(hours=app.config["REMINDER_HOURS"] + 1)
    assert service.send_due_reminders(too_early) == 0
    an_hour_before = slot.starts_at - timedelta(hours=1)
    assert service.send_due_reminders(an_hour_before) == 1
    assert service.send_due_reminders(an_hour_before) == 0
    messages = smtp.wait_for(2)
    assert len(messages) == 2
    assert messages[1]["Subject"].startswith("Reminder: token 101")
    assert "Token number" in messages[1].get_body(("plain",)).get_content() or "101" in messages[1].get_body(("plain",)).get_content()


def test_patients_booked_in_a_closed_session_still_get_their_reminder(app, smtp):
    # Closing a session only stops new bookings: the patients already booked still come, and a
    # cancelled appointment (in the same session) gets no reminder.
    slot = make_slot(days_ahead=2)
    kept = make_user(email="kept@example.com")
    gone = make_user(email="gone@example.com")
    booking.book(slot.id, kept.id, "Kept", "9876543210")
    cancelled = booking.book(slot.id, gone.id, "Gone", "9876543211")
    queue.cancel(cancelled.appointment.id, gone.id)
    sessions.close_slot(slot.id, slot.hospital_id)
    db.session.rollback()
    assert db.session.get(type(slot), slot.id).closed
    smtp.wait_for(3)  # two confirmations and a cancellation
    assert service.send_due_reminders(slot.starts_at - timedelta(hours=1)) == 1
    reminders = [m for m in smtp.wait_for(4) if m["Subject"].startswith("Reminder:")]
    assert [m["To"].addresses[0].addr_spec for m in reminders] == ["kept@example.com"]
