"""Google Calendar through its stand-in (real HTTP on loopback): OAuth with PKCE, free/busy blocking times,
bookings written, moved and removed, a Google that is down, and a refused refresh leading to ONE email."""
from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from expertbook.calendars import google as google_client
from expertbook.calendars import service as calendars
from expertbook.calendars.models import EVENT_WRITTEN, BusyInterval
from expertbook.experts import service as experts
from expertbook.extensions import db
from expertbook.notifications.models import OutboxEmail
from tests.calendars.conftest import base_config
from tests.calendars.helpers import calendar_id, connect_google, connection, events_of, expire_google_token
from tests.experts.helpers import book_kwargs, next_weekday_at
from tests.factories import bearer, login, make_expert, make_service, make_user

LONDON = ZoneInfo("Europe/London")
WORK = "work@group.calendar.google.com"


@pytest.fixture
def app_config(google):
    return base_config() | google.config()


def _times(svc, day) -> set[str]:
    return {start.astimezone(LONDON).strftime("%H:%M") for start in experts.times_on(svc, day, "Europe/London")}


def _connected(client, google, write: str | None = "Work"):
    profile = make_expert("Ada Expert", handle="ada", timezone="Europe/London")
    svc = make_service(profile, "Consultation", slug="consult")
    login(client, profile.user)
    answer = connect_google(client, google.url)
    assert answer.status_code == 303, answer.get_data(as_text=True)
    if write:
        found = connection("google")
        chosen = client.post_form(f"/calendars/{found.id}/choices",
                                  {"check": [calendar_id("Work"), calendar_id(google.standin.email)], "write": str(calendar_id(write))}, htmx=True)
        assert chosen.status_code == 200
    return profile, svc


def _reauth_emails() -> list[OutboxEmail]:
    db.session.rollback()
    found = db.session.scalars(select(OutboxEmail).where(OutboxEmail.kind == "calendar-broken")).all()
    db.session.rollback()
    return found


def test_connecting_google_lists_its_calendars_and_keeps_the_tokens_encrypted(client, google):
    profile, svc = _connected(client, google, write=None)
    found = connection("google")
    assert found.status == "connected"
    assert google.standin.email not in found.secrets and "ya29." not in found.secrets  # encrypted at rest
    page = client.get("/calendars/").get_data(as_text=True)
    assert google.standin.email in page and "Work" in page and 'data-state="connected"' in page
    assert google.standin.calls["token:authorization_code"] == 1


def test_a_busy_time_in_google_removes_those_times_from_the_page_and_the_api(client, make_client, google):
    profile, svc = _connected(client, google)
    start = next_weekday_at(10)
    google.standin.add_busy(WORK, start, start + timedelta(hours=1))
    google.standin.add_busy(google.standin.email, start + timedelta(hours=2), start + timedelta(hours=3), transparency="transparent")
    assert calendars.check_now(profile.user_id, connection("google").id) == "read"
    day = start.astimezone(LONDON).date()
    times = _times(svc, day)
    assert "10:00" not in times and {"09:00", "11:00", "12:00"} <= times  # the "free" event blocks nothing
    customer = make_user("Cara Customer")
    api = make_client().get(f"/api/experts/{profile.id}/availability?date={day.isoformat()}&serviceId={svc.id}", headers=bearer(customer))
    assert "10:00" not in [slot["localTime"] for slot in api.get_json()["slots"]]
    page = make_client().get(f"/expert/ada/consult?tz=Europe/London&day={day.isoformat()}").get_data(as_text=True)
    assert f'data-start="{start.isoformat()}"' not in page and f'data-start="{(start + timedelta(hours=1)).isoformat()}"' in page


def test_a_booking_is_written_into_google_moved_and_removed(client, google):
    profile, svc = _connected(client, google)
    customer = make_user("Cara Customer")
    start = next_weekday_at(10)
    booking = experts.book(customer.id, svc.id, start, **book_kwargs(customer))
    [event] = google.standin.live_events(WORK)
    assert event["id"] == google_client.event_id(booking.ics_uid)
    assert "https://jitsi.test.example/ExpertBook-" in event["description"]  # the join link
    assert f"/experts/bookings/{booking.id}" in event["description"]  # the manage link
    assert "attendees" not in event
    assert event["start"]["dateTime"] == start.isoformat() and event["start"]["timeZone"] == "Europe/London"
    assert [row.status for row in events_of(booking.id)] == [EVENT_WRITTEN]
    experts.reschedule(profile.user_id, booking.id, start + timedelta(hours=2))
    [event] = google.standin.live_events(WORK)
    assert event["start"]["dateTime"] == (start + timedelta(hours=2)).isoformat()
    experts.cancel(customer.id, booking.id)
    assert google.standin.live_events(WORK) == []


def test_google_down_never_blocks_booking(client, google):
    profile, svc = _connected(client, google)
    google.standin.fail("events:insert", "500", times=None)
    customer = make_user("Cara Customer")
    booking = experts.book(customer.id, svc.id, next_weekday_at(10), **book_kwargs(customer))
    assert booking.status == "confirmed"
    [row] = events_of(booking.id)
    assert row.status == "pending" and row.attempts == 1
    assert connection("google").status == "unreachable"
    google.standin.clear_faults()
    assert calendars.check_now(profile.user_id, connection("google").id) == "read"
    assert len(google.standin.live_events(WORK)) == 1


def test_a_refused_refresh_sends_one_reauthorization_email_and_reauthorizing_resumes(client, google):
    profile, svc = _connected(client, google)
    google.standin.revoke_all()  # the expert removed ExpertBook from their Google Account
    google.standin.expire_access_tokens()
    expire_google_token(profile.user_id)
    customers = [make_user(f"Customer {n}") for n in range(3)]
    bookings = [experts.book(c.id, svc.id, next_weekday_at(9 + n), **book_kwargs(c)) for n, c in enumerate(customers)]
    assert all(b.status == "confirmed" for b in bookings)  # booking goes on
    assert calendars.refresh(connection("google").id) in ("failed", "skipped")
    assert connection("google").status == "reconnect_needed"
    emails = _reauth_emails()
    assert len(emails) == 1, [e.subject for e in emails]
    assert emails[0].context["reauthorize_url"].endswith("/calendars/google/connect")
    assert "re-authorize" in emails[0].subject.lower()
    assert all(row.status == "waiting" for b in bookings for row in events_of(b.id))
    page = client.get("/calendars/").get_data(as_text=True)
    assert 'data-state="reconnect_needed"' in page
    # Re-authorizing: the connection works, the waiting bookings are written, and no further email is sent.
    assert connect_google(client, google.url).status_code == 303
    assert connection("google").status == "connected"
    assert len(google.standin.live_events(WORK)) == 3
    assert len(_reauth_emails()) == 1


def test_bookings_google_holds_are_not_read_back_as_busy_times(client, google):
    profile, svc = _connected(client, google)  # Work is checked and receives the bookings
    customer = make_user("Cara Customer")
    start = next_weekday_at(10)
    google.standin.add_busy(WORK, start + timedelta(hours=1), start + timedelta(hours=2))  # right after it
    booking = experts.book(customer.id, svc.id, start, **book_kwargs(customer))
    assert len(google.standin.live_events(WORK)) == 2
    assert calendars.check_now(profile.user_id, connection("google").id) == "read"
    db.session.rollback()
    stored = [(row.start_at, row.end_at) for row in db.session.scalars(select(BusyInterval))]
    assert stored == [(start + timedelta(hours=1), start + timedelta(hours=2))]  # not the booking's own hour
    db.session.rollback()
    experts.cancel(customer.id, booking.id)
    assert calendars.check_now(profile.user_id, connection("google").id) == "read"
    times = _times(svc, start.astimezone(LONDON).date())
    assert "10:00" in times and "11:00" not in times  # free again; the other event still blocks


def test_two_workers_refreshing_at_once_spend_one_refresh(app, client, google):
    from tests.experts.helpers import race

    profile, svc = _connected(client, google, write=None)
    user_id = profile.user_id
    expire_google_token(user_id)
    google.standin.expire_access_tokens()
    before = google.standin.calls["token:refresh_token"]
    tokens = []
    outcomes = race(app, [lambda: tokens.append(google_client.access_token(user_id)) for _ in range(3)])
    assert outcomes == ["ok"] * 3
    assert google.standin.calls["token:refresh_token"] == before + 1  # the lock: one refresh, the others use its token
    assert len(set(tokens)) == 1


def test_a_callback_without_our_state_stores_nothing(client, google):
    profile = make_expert("Ada Expert", handle="ada", timezone="Europe/London")
    login(client, profile.user)
    client.get("/calendars/google/connect")
    answer = client.get("/calendars/google/callback?code=4/forged&state=not-ours")
    assert answer.status_code == 400
    assert connection("google") is None
    declined = client.get("/calendars/google/callback?error=access_denied")
    assert declined.status_code == 303 and connection("google") is None


def test_disconnecting_google_revokes_the_grant_and_forgets_it(client, google):
    profile, svc = _connected(client, google)
    assert len(google.standin.live_refresh_tokens) == 1
    found = connection("google")
    answer = client.post_form(f"/calendars/{found.id}/disconnect")
    assert answer.status_code == 303
    assert connection("google") is None
    assert google.standin.live_refresh_tokens == []  # revoked at Google
    assert google.standin.calls["revoke"] == 1
