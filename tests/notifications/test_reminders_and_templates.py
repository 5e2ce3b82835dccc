"""Reminders (sent once, however often or concurrently the pass runs) and every email template."""
from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from expertbook.database import utcnow
from expertbook.extensions import db
from expertbook.notifications import service
from expertbook.notifications.mailer import Email, build_message
from expertbook.notifications.models import OutboxEmail
from expertbook.ics import event_ics
from tests.notifications.conftest import mail_config


@pytest.fixture
def app_config(smtp):
    return mail_config(smtp)


def rows() -> list[OutboxEmail]:
    db.session.rollback()
    return list(db.session.scalars(select(OutboxEmail).order_by(OutboxEmail.id)))


@pytest.fixture
def bookings():
    """A fake booking area: a list of (id, starts_at) and a registered reminder source over it."""
    items: list[tuple[int, object]] = []
    calls: list[tuple] = []

    def source(now, until):
        calls.append((now, until))
        for booking_id, starts_at in items:
            if now <= starts_at < until:
                yield service.Reminder(
                    kind="expert-booking",
                    id=booking_id,
                    to_email=f"customer{booking_id}@example.com",
                    to_name=f"Customer {booking_id}",
                    subject=f"Reminder: booking {booking_id}",
                    context={"what": "Consulting with Siva", "when": starts_at.isoformat(), "booking_url": "http://testserver.example/b",
                             "join_url": "https://zoom.example/j/1"},
                )

    service.register_reminder_source(source)
    yield items, calls
    service.unregister_reminder_source(source)


def test_reminders_within_the_window_are_sent_once(app, smtp, bookings):
    items, calls = bookings
    now = utcnow()
    items += [(1, now + timedelta(hours=2)), (2, now + timedelta(hours=23)), (3, now + timedelta(hours=30))]
    assert service.send_due_reminders(now) == 2
    assert calls[-1] == (now, now + timedelta(hours=24))  # REMINDER_HOURS defaults to 24
    assert service.send_due_reminders(now + timedelta(minutes=5)) == 0
    assert sorted(row.dedupe_key for row in rows()) == ["reminder:expert-booking:1", "reminder:expert-booking:2"]
    assert all(row.status == "sent" and row.template == "reminder" for row in rows())
    assert len(smtp.wait_for(2)) == 2
    # Later, booking 3 enters the window and gets its own (single) reminder.
    assert service.send_due_reminders(now + timedelta(hours=7)) == 1
    assert len(rows()) == 3 and len(smtp.wait_for(3)) == 3


def test_a_later_pass_skips_queued_reminders_without_rechecking_each(app, smtp, bookings, monkeypatch):
    items, _ = bookings
    now = utcnow()
    items += [(1, now + timedelta(hours=2)), (2, now + timedelta(hours=3))]
    assert service.send_due_reminders(now) == 2
    queued = []
    real = service.queue_email
    monkeypatch.setattr(service, "queue_email", lambda *args, **kwargs: queued.append(args) or real(*args, **kwargs))
    items.append((3, now + timedelta(hours=4)))
    assert service.send_due_reminders(now + timedelta(minutes=1)) == 1
    assert [args[1] for args in queued] == ["customer3@example.com"]  # only the new one was even looked at


def test_reminder_hours_is_configurable(app, smtp, bookings):
    items, _ = bookings
    app.config["REMINDER_HOURS"] = 1
    now = utcnow()
    items += [(1, now + timedelta(minutes=30)), (2, now + timedelta(hours=2))]
    assert service.send_due_reminders(now) == 1


def test_concurrent_reminder_passes_send_each_reminder_once(app, smtp, bookings):
    items, _ = bookings
    now = utcnow()
    items += [(n, now + timedelta(hours=1)) for n in range(1, 6)]
    app.config["MAIL_SERVER"] = None  # only the outbox rows matter here
    results: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def run_pass():
        with app.app_context():
            barrier.wait()
            try:
                results.append(service.send_due_reminders(now))
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

    threads = [threading.Thread(target=run_pass) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert sum(results) == 5
    assert sorted(row.dedupe_key for row in rows()) == [f"reminder:expert-booking:{n}" for n in range(1, 6)]


# ---------------------------------------------------------------------------- templates

LINK = "http://testserver.example/link?a=1&b=2"
EVIL = "<img src=x onerror=alert(1)>"
TEMPLATES = {
    "notice": {"heading": "Hi", "message": EVIL, "action_url": LINK},
    "video/zoom_reauth": {"expert_name": "Sivakumar Ganeshm", "customer_name": EVIL, "service_title": "Technology Consulting Session",
                    "attempted_when": "Sat 31 Jan 2026, 10:00-11:00 IST", "reason": "has expired", "reauthorize_url": LINK,
                    "settings_url": "http://testserver.example/settings"},
    "clinic/token_confirmed": {"patient_name": EVIL, "token_number": 7, "doctor_name": "Rao", "specialization": "Cardiology",
                               "hospital_name": "City General", "location": "Chennai", "session_date": "Mon 2 Feb 2026",
                               "session_time": "09:00-12:00", "booking_url": LINK, "cancel_url": LINK},
    "experts/booking_customer": {"customer_name": "Sinduja Vel", "expert_name": EVIL, "service_title": "Consulting",
                                "when": "Sat 31 Jan 2026, 10:00-11:00", "duration_minutes": 60, "join_url": "https://zoom.example/j/123",
                                "meeting_id": "123 456 789", "booking_url": LINK},
    "experts/booking_expert": {"expert_name": "Sivakumar", "customer_name": EVIL, "customer_email": "sinduja@example.com",
                              "service_title": "Consulting", "when": "Sat 31 Jan 2026, 10:00-11:00", "duration_minutes": 60,
                              "start_meeting_url": "http://testserver.example/expert/bookings/5/start", "booking_url": LINK},
    "experts/request_pending": {"expert_name": "Sivakumar", "customer_name": "Sinduja", "customer_email": "s@example.com",
                        "service_title": "Consulting", "when": "Sat 31 Jan", "duration_minutes": 60, "note": EVIL,
                        "accept_url": LINK + "&accept", "decline_url": LINK + "&decline", "respond_by": "Fri 30 Jan"},
    "experts/request_accepted": {"customer_name": "Sinduja", "expert_name": EVIL, "service_title": "Consulting", "when": "Sat 31 Jan",
                         "duration_minutes": 60, "join_url": "https://zoom.example/j/123", "booking_url": LINK},
    "experts/request_declined": {"customer_name": "Sinduja", "expert_name": "Siva", "service_title": "Consulting", "when": "Sat 31 Jan",
                         "reason": EVIL, "browse_url": LINK},
    "booking_cancelled": {"what": EVIL, "when": "Sat 31 Jan", "cancelled_by": "the customer", "reason": "ill", "rebook_url": LINK},
    "reminder": {"what": EVIL, "when": "Sat 31 Jan", "where": "Room 4", "token_number": 7, "join_url": "https://zoom.example/j/1",
                 "booking_url": LINK},
}


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_every_template_renders_both_parts_and_escapes_user_content(app, template):
    message = build_message(Email(to_email="x@example.com", to_name="Rec <Ipient>", subject="s", template=template,
                                  context=TEMPLATES[template], message_id="<t@testserver.example>"))
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert EVIL in text
    assert EVIL not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "http://testserver.example/link?a=1&amp;b=2" in html
    assert "http://testserver.example" in text  # the layout's footer
    for part in (text, html):
        assert "{{" not in part and "{%" not in part


def test_the_reauthorization_email_has_what_seed_001_asks_for(app):
    message = build_message(Email(to_email="siva@example.com", to_name="Sivakumar", subject="s", template="video/zoom_reauth",
                                  context={**TEMPLATES["video/zoom_reauth"], "customer_name": "Sinduja Vel"},
                                  message_id="<t@testserver.example>"))
    text = message.get_body(("plain",)).get_content()
    assert "Sinduja Vel tried to book" in text and "Technology Consulting Session" in text  # what happened, who, which service
    assert "has expired" in text and "WHY THIS MATTERS" in text  # why
    assert "1. Open the link" in text and "4. You are sent back" in text  # steps
    assert LINK in text  # the direct re-authorize link
    html = message.get_body(("html",)).get_content()
    assert 'href="http://testserver.example/link?a=1&amp;b=2"' in html and "Re-authorize Zoom account" in html


def test_the_expert_gets_our_start_link_never_a_zoom_start_url(app):
    message = build_message(Email(to_email="siva@example.com", to_name="Siva", subject="s", template="experts/booking_expert",
                                  context=TEMPLATES["experts/booking_expert"], message_id="<t@testserver.example>"))
    html = message.get_body(("html",)).get_content()
    assert 'href="http://testserver.example/expert/bookings/5/start"' in html and "Start meeting" in html
    assert "zoom" not in html.lower()


@pytest.mark.parametrize(
    ("ics", "method"),
    [
        (event_ics("u@x", datetime(2026, 1, 5, 9, tzinfo=UTC), datetime(2026, 1, 5, 10, tzinfo=UTC), "S", method="CANCEL"), "CANCEL"),
        (event_ics("u@x", datetime(2026, 1, 5, 9, tzinfo=UTC), datetime(2026, 1, 5, 10, tzinfo=UTC), "S"), "REQUEST"),
        ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n", "PUBLISH"),
    ],
)
def test_the_attachments_method_is_the_calendars(ics, method):
    from expertbook.notifications.service import _ics_method

    assert _ics_method(ics) == method


def test_text_that_is_no_calendar_is_refused_before_anything_is_written():
    from expertbook.notifications.service import _ics_method

    with pytest.raises(ValueError, match="not a calendar"):
        _ics_method("METHOD:REQUEST")
