"""The front desk's emails, delivered through a real SMTP server on loopback (aiosmtpd): walk-in tokens,
cancellations by the hospital with their reason and links, moves with an updated calendar event, and
the waiting list's promotion and cancellation."""
from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from icalendar import Calendar
from sqlalchemy import func, select

from expertbook.clinic import appointments, booking, moves, queue, sessions, waitlist
from expertbook.extensions import db
from expertbook.notifications import service as notifications
from expertbook.notifications.models import OutboxEmail
from tests.factories import make_appointment, make_slot, make_user
from tests.notifications.conftest import mail_config, smtp  # noqa: F401 (the SMTP server fixture)


@pytest.fixture
def app_config(smtp):  # noqa: F811
    return mail_config(smtp)


def _text(message) -> str:
    return message.get_body(("plain",)).get_content()


def _event(message):
    part = next(p for p in message.walk() if p.get_content_type() == "text/calendar")
    event = next(iter(Calendar.from_ical(part.get_payload(decode=True)).walk("VEVENT")))
    return part.get_param("method"), str(event["UID"]), int(event["SEQUENCE"]), event


def _by_subject(messages, start: str):
    found = [m for m in messages if m["Subject"].startswith(start)]
    assert len(found) == 1, [m["Subject"] for m in messages]
    return found[0]


def test_a_walk_in_with_an_address_gets_the_token_and_one_without_gets_nothing(app, smtp):
    slot = make_slot()
    booking.walk_in(slot.id, slot.hospital_id, "Phone Only", "9123456780")
    booked = booking.walk_in(slot.id, slot.hospital_id, "Ravi Kumar", "9876543210", email="ravi@example.com")
    [message] = smtp.wait_for(1)
    assert message["To"] == "Ravi Kumar <ravi@example.com>"
    assert message["Subject"] == f"Your token 102 - Dr. Sharma, {slot.date:%d %b %Y}"
    text = _text(message)
    assert "Token number: 102" in text and "The front desk booked your place." in text and "City General Hospital" in text
    method, uid, sequence, event = _event(message)
    assert (method, sequence) == ("REQUEST", 0) and uid.startswith(f"clinic-appointment-{booked.appointment_id}@")
    assert event.decoded("DTSTART") == slot.starts_at
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(OutboxEmail)) == 1


def test_a_staff_cancellation_tells_the_reason_and_links_to_book_again(app, smtp):
    slot = make_slot()
    patient = make_user(name="Priya Raman", email="priya@example.com")
    made = booking.book(slot.id, patient.id, "Karthik", "9876543210")
    queue.staff_cancel(made.appointment_id, slot.hospital_id, "Dr. Sharma is in surgery")
    confirmation, cancellation = smtp.wait_for(2)
    assert cancellation["To"] == "Priya Raman <priya@example.com>"
    assert cancellation["Subject"].startswith("Cancelled by the hospital: token 101 - Dr. Sharma")
    text = _text(cancellation)
    assert "Reason: Dr. Sharma is in surgery" in text
    assert "Book another session: http://testserver.example/clinic/search?specialization=Cardiology" in text
    assert "Reason: Dr. Sharma is in surgery" in cancellation.get_body(("html",)).get_content()
    _, booked_uid, _, _ = _event(confirmation)
    method, uid, sequence, _ = _event(cancellation)
    assert (method, uid, sequence) == ("CANCEL", booked_uid, 1)


def test_cancelling_a_session_emails_everyone_with_an_address_and_the_waiting_list(app, client, smtp):
    slot = make_slot(capacity=3)
    later = make_slot(doctor=slot.doctor, days_ahead=2)
    online = make_appointment(slot, make_user(name="Online Patient", email="online@example.com"))
    booking.walk_in(slot.id, slot.hospital_id, "Desk Email", "9876543210", email="desk@example.com")
    booking.walk_in(slot.id, slot.hospital_id, "Desk Phone", "9123456780")
    waitlist.join_waitlist(slot.id, make_user(name="Waiting Person", email="wait@example.com").id, "Waiting Person", "9876543210")
    smtp.wait_for(1)  # the walk-in's token
    result = sessions.cancel_session(slot.id, slot.hospital_id, "Dr. Sharma is unwell")
    assert (result.cancelled, result.notified, result.waitlist_notified) == (3, 2, 1)
    messages = smtp.wait_for(4)[1:]
    assert sorted(m["To"] for m in messages) == ["Desk Email <desk@example.com>", "Online Patient <online@example.com>", "Waiting Person <wait@example.com>"]
    to_online = next(m for m in messages if "online@" in m["To"])
    assert to_online["Subject"].startswith("Session cancelled: token 101 - Dr. Sharma")
    text = _text(to_online)
    assert "Reason: Dr. Sharma is unwell" in text
    assert _event(to_online)[:1] == ("CANCEL",)
    # The one-click link opens the choices without logging in, and moves from there.
    link = re.search(r"Move to another session: (\S+)", text).group(1)
    path = urlsplit(link).path
    page = client.get(path).get_data(as_text=True)
    assert f'id="move-to-{later.id}"' in page
    moved = client.post_form(path, {"slot_id": str(later.id)})
    assert moved.status_code == 303
    db.session.rollback()
    assert appointments.own_appointment(online.id, online.user_id).moved_to_id is not None
    to_waiting = next(m for m in messages if "wait@" in m["To"])
    assert "Reason: Dr. Sharma is unwell" in _text(to_waiting) and "/clinic/search?specialization=Cardiology" in _text(to_waiting)
    assert "Move to another session" not in _text(to_waiting)


def test_a_move_updates_the_calendar_event_and_a_later_cancel_removes_that_same_event(app, smtp):
    first = make_slot()
    second = make_slot(doctor=first.doctor, days_ahead=2)
    patient = make_user(name="Priya", email="priya@example.com")
    made = booking.book(first.id, patient.id, "Karthik", "9876543210")
    moved = moves.move_appointment(made.appointment_id, second.id, patient.id)
    queue.cancel(moved.appointment_id, patient.id)
    confirmation, move, cancel = smtp.wait_for(3)
    assert move["Subject"] == f"Moved: your new token 101 - Dr. Sharma, {second.date:%d %b %Y}"
    text = _text(move)
    assert "Your appointment has moved to this session. It replaces token 101 on" in text and f"/clinic/appointments/{moved.appointment_id}" in text
    _, uid, _, _ = _event(confirmation)
    method, moved_uid, sequence, event = _event(move)
    assert (method, moved_uid, sequence) == ("REQUEST", uid, 1) and event.decoded("DTSTART") == second.starts_at
    method, cancelled_uid, sequence, _ = _event(cancel)
    assert (method, cancelled_uid, sequence) == ("CANCEL", uid, 2)


def test_the_first_person_waiting_is_emailed_their_token(app, smtp):
    slot = make_slot(capacity=1)
    holder = make_user(email="holder@example.com")
    held = booking.book(slot.id, holder.id, "Holder", "9876543210")
    waiting = make_user(name="Meena", email="meena@example.com")
    waitlist.join_waitlist(slot.id, waiting.id, "Meena's father", "9876543210")
    queue.cancel(held.appointment_id, holder.id)
    messages = smtp.wait_for(3)
    promoted = _by_subject(messages, "A place freed up: your token 102")
    assert promoted["To"] == "Meena <meena@example.com>"
    text = _text(promoted)
    assert "Token number: 102" in text and "Meena's father" in text
    assert _event(promoted)[0] == "REQUEST"


def test_reminders_go_to_a_walk_ins_address_and_skip_one_without(app, smtp):
    slot = make_slot(days_ahead=2)
    booking.walk_in(slot.id, slot.hospital_id, "Phone Only", "9123456780")
    booking.walk_in(slot.id, slot.hospital_id, "Desk Email", "9876543210", email="desk@example.com")
    smtp.wait_for(1)
    assert notifications.send_due_reminders(slot.starts_at - timedelta(hours=1)) == 1
    reminder = smtp.wait_for(2)[1]
    assert reminder["To"] == "Desk Email <desk@example.com>" and reminder["Subject"].startswith("Reminder: token 102")
