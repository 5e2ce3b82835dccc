"""CalDAV against a real Radicale server: busy times block the booking page and the API, recurring events
block every week, bookings are written, moved and removed, and a server that is down never blocks booking."""
from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from expertbook.calendars import service as calendars
from expertbook.calendars import writes
from expertbook.calendars.models import EVENT_DELETED, EVENT_WRITTEN, BusyInterval
from expertbook.errors import Conflict
from expertbook.experts import service as experts
from expertbook.extensions import db
from expertbook.notifications.models import OutboxEmail
from tests.calendars.helpers import choose, connect_caldav, connection, events_of
from tests.experts.helpers import book_kwargs, next_weekday_at
from tests.factories import bearer, login, make_expert, make_service, make_user

LONDON = ZoneInfo("Europe/London")


def _times(svc, day) -> set[str]:
    return {start.astimezone(LONDON).strftime("%H:%M") for start in experts.times_on(svc, day, "Europe/London")}


def _expert_with_calendar(client, radicale, *names):
    profile = make_expert("Ada Expert", handle="ada", timezone="Europe/London")
    svc = make_service(profile, "Consultation", slug="consult")
    for name in names:
        radicale.calendar(name)
    login(client, profile.user)
    return profile, svc


def test_a_busy_event_removes_its_times_from_the_booking_page_and_the_api(client, make_client, radicale):
    profile, svc = _expert_with_calendar(client, radicale, "Work")
    start = next_weekday_at(10)  # a Wednesday, 10:00 London
    radicale.add_event("Work", "dentist-1", start, start + timedelta(minutes=90))  # 10:00-11:30
    answer = connect_caldav(client, radicale)
    assert answer.status_code == 303, answer.get_data(as_text=True)
    day = start.astimezone(LONDON).date()
    # Connecting read the busy times (a job, run in-process here): 10:00 and 11:00 are gone, 09:00 and 12:00 stay.
    assert {"09:00", "12:00"} <= _times(svc, day) and not {"10:00", "11:00"} & _times(svc, day)
    page = make_client().get(f"/expert/ada/consult?tz=Europe/London&day={day.isoformat()}").get_data(as_text=True)
    assert f'data-start="{(start - timedelta(hours=1)).isoformat()}"' in page
    assert f'data-start="{start.isoformat()}"' not in page
    customer = make_user("Cara Customer")
    api = make_client().get(f"/api/experts/{profile.id}/availability?date={day.isoformat()}&serviceId={svc.id}", headers=bearer(customer))
    assert api.status_code == 200
    local_times = [slot["localTime"] for slot in api.get_json()["slots"]]
    assert "09:00" in local_times and "10:00" not in local_times and "11:00" not in local_times
    # Booking the busy time is refused, also by the API.
    with pytest.raises(Conflict):
        experts.book(customer.id, svc.id, start, **book_kwargs(customer))
    refused = make_client().post("/api/bookings", json={"serviceId": svc.id, "start": start.isoformat()}, headers=bearer(customer))
    assert refused.status_code == 409
    # The calendar page shows the connection working, with its calendar checked.
    page = client.get("/calendars/").get_data(as_text=True)
    assert 'data-state="connected"' in page and "Work" in page


def test_a_recurring_weekly_event_blocks_every_week_and_free_or_cancelled_events_block_nothing(client, radicale):
    profile, svc = _expert_with_calendar(client, radicale, "Work")
    first = next_weekday_at(14)  # Wednesday 14:00 London
    radicale.add_event("Work", "weekly-1", first, first + timedelta(hours=1), rrule="FREQ=WEEKLY;COUNT=6")
    radicale.add_event("Work", "free-1", next_weekday_at(9), next_weekday_at(10), transp="TRANSPARENT")
    radicale.add_event("Work", "cancelled-1", next_weekday_at(11), next_weekday_at(12), status="CANCELLED")
    thursday = (first + timedelta(days=1)).astimezone(LONDON).date()
    radicale.add_event("Work", "all-day-1", f"DTSTART;VALUE=DATE:{thursday:%Y%m%d}", f"DTEND;VALUE=DATE:{thursday + timedelta(days=1):%Y%m%d}")
    assert connect_caldav(client, radicale).status_code == 303
    for week in range(6):
        day = (first + timedelta(weeks=week)).astimezone(LONDON).date()
        times = _times(svc, day)
        assert "14:00" not in times and {"13:00", "15:00"} <= times, (week, sorted(times))
    # After its six weeks, the series is over.
    assert "14:00" in _times(svc, (first + timedelta(weeks=6)).astimezone(LONDON).date())
    # "Free" and cancelled events leave their times bookable; an all-day event blocks its whole day.
    assert {"09:00", "11:00"} <= _times(svc, first.astimezone(LONDON).date())
    assert _times(svc, thursday) == set()


def test_a_booking_is_written_with_its_join_link_moved_and_removed(client, make_client, radicale):
    profile, svc = _expert_with_calendar(client, radicale, "Work", "Bookings")
    assert connect_caldav(client, radicale).status_code == 303
    chosen = choose(client, connection().id, ["Work"], "Bookings")
    assert chosen.status_code == 200 and "Saved." in chosen.get_data(as_text=True)
    customer = make_user("Cara Customer")
    start = next_weekday_at(10)
    booking = experts.book(customer.id, svc.id, start, **book_kwargs(customer, notes="About the move"))
    [stored] = radicale.events("Bookings")
    text = stored.data
    assert f"UID:{booking.ics_uid}@expertbook" in text
    assert "https://jitsi.test.example/ExpertBook-" in text  # the meeting's join link (Jitsi here)
    assert f"/experts/bookings/{booking.id}" in text  # the expert's manage link
    assert "ATTENDEE" not in text and "ORGANIZER" not in text  # no invitation goes out from the expert's server
    assert stored.icalendar_component["DTSTART"].dt.astimezone(LONDON).hour == 10
    assert radicale.events("Work") == []  # only the chosen calendar receives bookings
    [row] = events_of(booking.id)
    assert row.status == EVENT_WRITTEN
    # The booking's own time is busy in ExpertBook; it is not read back as an external busy time.
    assert db.session.scalar(select(BusyInterval)) is None

    moved = experts.reschedule(profile.user_id, booking.id, start + timedelta(hours=3))
    [stored] = radicale.events("Bookings")
    assert stored.icalendar_component["DTSTART"].dt.astimezone(LONDON).hour == 13
    assert int(stored.icalendar_component["SEQUENCE"]) == moved.ics_sequence
    assert f"UID:{booking.ics_uid}@expertbook" in stored.data  # the same event, moved, not a second one

    experts.cancel(customer.id, booking.id, "Plans changed")
    assert radicale.events("Bookings") == []
    assert [row.status for row in events_of(booking.id)] == [EVENT_DELETED]


def test_writing_the_same_booking_again_never_duplicates_its_event(client, radicale):
    profile, svc = _expert_with_calendar(client, radicale, "Bookings")
    assert connect_caldav(client, radicale).status_code == 303
    choose(client, connection().id, [], "Bookings")
    customer = make_user("Cara Customer")
    booking = experts.book(customer.id, svc.id, next_weekday_at(10), **book_kwargs(customer))
    # As when a write's answer was lost: the row is made due again and the job writes once more.
    from expertbook.database import transaction

    with transaction():
        writes.booking_changed(booking.id)
    assert len(radicale.events("Bookings")) == 1


def test_with_radicale_stopped_booking_works_and_the_page_shows_the_error(client, make_client, radicale, app):
    profile, svc = _expert_with_calendar(client, radicale, "Work", "Bookings")
    busy_start = next_weekday_at(15)
    radicale.add_event("Work", "meeting-1", busy_start, busy_start + timedelta(hours=1))
    assert connect_caldav(client, radicale).status_code == 303
    choose(client, connection().id, ["Work"], "Bookings")
    radicale.stop()

    customer = make_user("Cara Customer")
    start = next_weekday_at(10)
    booking = experts.book(customer.id, svc.id, start, **book_kwargs(customer))
    assert booking.status == "confirmed"
    # The busy times read before the outage still count.
    assert "15:00" not in _times(svc, busy_start.astimezone(LONDON).date())
    # The write failed and waits for a retry; the connection shows its state and last error.
    [row] = events_of(booking.id)
    assert row.status == "pending" and row.attempts == 1 and row.next_attempt_at is not None
    page = client.get("/calendars/").get_data(as_text=True)
    assert 'data-state="unreachable"' in page and "Last error:" in page
    assert "could not be reached" in connection().last_error
    # A second failure (a busy-times read) sends no second email.
    assert calendars.refresh(connection().id) == "failed"
    db.session.rollback()
    broken = db.session.scalars(select(OutboxEmail).where(OutboxEmail.kind == "calendar-broken")).all()
    assert len(broken) == 1 and broken[0].to_email == profile.user.email

    radicale.start()
    assert calendars.check_now(profile.user_id, connection().id) == "read"
    assert connection().status == "connected"
    # The connection works again: the waiting booking is written (the relay would do it within a tick).
    assert len(radicale.events("Bookings")) == 1
    assert [row.status for row in events_of(booking.id)] == [EVENT_WRITTEN]


def test_a_refused_password_shows_on_the_page_and_a_new_one_mends_it(client, radicale):
    profile, svc = _expert_with_calendar(client, radicale, "Work")
    refused = connect_caldav(client, radicale, password="wrong-password")
    assert refused.status_code == 422 and "refused this user name and password" in refused.get_data(as_text=True)
    assert connection() is None
    assert connect_caldav(client, radicale).status_code == 303
    (radicale.directory / "users").write_text("expert:a-new-password\n")  # the expert revoked the app password
    answer = client.post_form(f"/calendars/{connection().id}/check", htmx=True)
    assert answer.status_code == 200 and 'data-state="refused"' in answer.get_data(as_text=True)
    assert connection().status == "refused"


def test_the_calendar_page_is_the_experts_own(client, make_client, radicale):
    profile, svc = _expert_with_calendar(client, radicale, "Work")
    assert connect_caldav(client, radicale).status_code == 303
    other = make_expert("Other Expert", handle="other")
    intruder = make_client()
    login(intruder, other.user)
    connection_id = connection().id
    assert intruder.post_form(f"/calendars/{connection_id}/choices", {"check": [], "write": ""}).status_code == 404
    assert intruder.post_form(f"/calendars/{connection_id}/disconnect").status_code == 404
    customer = make_client()
    login(customer, make_user("Not An Expert"))
    assert customer.get("/calendars/").status_code == 404
    assert "app-password" not in client.get("/calendars/").get_data(as_text=True)  # the password is never shown


def test_a_caldav_url_inside_our_network_or_without_https_is_refused(client, radicale, app):
    profile, svc = _expert_with_calendar(client, radicale, "Work")
    app.config["CALDAV_ALLOW_PRIVATE_ADDRESSES"] = False
    answer = connect_caldav(client, radicale)
    assert answer.status_code == 422 and "https address" in answer.get_data(as_text=True)
    app.config["CALDAV_ALLOW_PRIVATE_ADDRESSES"] = True
    app.config["CALDAV_ALLOW_HTTP"] = False
    assert connect_caldav(client, radicale).status_code == 422
    assert connection() is None


def test_disconnecting_frees_the_busy_times(client, radicale):
    profile, svc = _expert_with_calendar(client, radicale, "Work")
    start = next_weekday_at(10)
    radicale.add_event("Work", "busy-1", start, start + timedelta(hours=1))
    assert connect_caldav(client, radicale).status_code == 303
    day = start.astimezone(LONDON).date()
    assert "10:00" not in _times(svc, day)
    choose(client, connection().id, [], None)  # unchecked: its busy times stop counting at once
    assert "10:00" in _times(svc, day)
    choose(client, connection().id, ["Work"], None)
    assert "10:00" not in _times(svc, day)
    assert client.post_form(f"/calendars/{connection().id}/disconnect").status_code == 303
    assert connection() is None and "10:00" in _times(svc, day)


def test_bookings_written_into_a_checked_calendar_are_not_read_back_as_busy_times(client, radicale):
    profile, svc = _expert_with_calendar(client, radicale, "Work")
    assert connect_caldav(client, radicale).status_code == 303
    choose(client, connection().id, ["Work"], "Work")  # the same calendar: checked, and receiving bookings
    customer = make_user("Cara Customer")
    start = next_weekday_at(10)
    booking = experts.book(customer.id, svc.id, start, **book_kwargs(customer))
    assert len(radicale.events("Work")) == 1
    assert calendars.check_now(profile.user_id, connection().id) == "read"
    db.session.rollback()
    assert db.session.scalar(select(BusyInterval)) is None
    # Moving it offers its old time at once (its event is not a busy time of the expert's).
    experts.reschedule(customer.id, booking.id, start + timedelta(hours=2))
    assert calendars.check_now(profile.user_id, connection().id) == "read"
    assert "10:00" in _times(svc, start.astimezone(LONDON).date())
