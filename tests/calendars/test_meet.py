"""Google Meet as a video provider, through the Google stand-in: the booking's calendar event carries a Meet
conference, whose link becomes the booking's join link in the emails, the .ics and the booking pages; moves and
cancellations follow; Google's delays and refusals are retried or wait for re-authorization, with one email."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from expertbook.calendars import google as google_client
from expertbook.database import utcnow
from expertbook.experts import service as experts
from expertbook.extensions import db
from expertbook.notifications.models import OutboxEmail
from expertbook.video import meetings
from expertbook.video.models import MEETING_CREATED, MEETING_REAUTH, Meeting
from tests.calendars.conftest import base_config
from tests.calendars.helpers import calendar_id, connect_google, connection, expire_google_token
from tests.experts.helpers import book_kwargs, next_weekday_at
from tests.factories import login, make_expert, make_service, make_user

WORK = "work@group.calendar.google.com"


@pytest.fixture
def app_config(google):
    return base_config() | google.config()


def _meet_expert(client, google, write: str | None = "Work"):
    profile = make_expert("Ada Expert", handle="ada", timezone="Europe/London")
    svc = make_service(profile, "Consultation", slug="consult", video_provider="meet")
    login(client, profile.user)
    assert connect_google(client, google.url).status_code == 303
    data = {"check": [], "write": str(calendar_id(write)) if write else ""}
    assert client.post_form(f"/calendars/{connection('google').id}/choices", data, htmx=True).status_code == 200
    return profile, svc


def _meeting(booking_id: int) -> Meeting:
    db.session.rollback()
    return db.session.scalar(select(Meeting).where(Meeting.booking_id == booking_id))


def _emails(kind: str) -> list[OutboxEmail]:
    db.session.rollback()
    return list(db.session.scalars(select(OutboxEmail).where(OutboxEmail.kind == kind)))


def test_a_meet_booking_gets_its_join_link_from_the_events_conference_data(client, make_client, google):
    profile, svc = _meet_expert(client, google)
    customer = make_user("Cara Customer")
    start = next_weekday_at(10)
    booking = experts.book(customer.id, svc.id, start, **book_kwargs(customer))
    meeting = _meeting(booking.id)
    assert meeting.provider == "meet" and meeting.status == MEETING_CREATED and meeting.external_ref == WORK
    # One event in the calendar: the booking's, with the conference the link came from.
    [event] = google.standin.live_events(WORK)
    assert event["id"] == google_client.event_id(booking.ics_uid)
    conference_link = event["conferenceData"]["entryPoints"][0]["uri"]
    assert conference_link.startswith("https://meet.google.com/") and meeting.join_url == conference_link
    assert conference_link in event["description"]  # the calendar write-out added the link to the same event
    # The link is the booking's join link everywhere: both confirmation emails, the .ics, the booking page.
    [to_customer] = _emails("expert-booking-customer")
    assert to_customer.context["join_url"] == conference_link and conference_link in to_customer.ics_text
    assert _emails("expert-booking-expert")
    viewer = make_client()
    login(viewer, customer)
    assert conference_link in viewer.get(f"/experts/bookings/{booking.id}").get_data(as_text=True)
    assert conference_link in viewer.get(f"/experts/bookings/{booking.id}/booking.ics").get_data(as_text=True)
    guest = experts.book(None, svc.id, start + timedelta(hours=2), name="Gita Guest", email="gita@example.com", customer_timezone="Europe/London")
    guest_link = _meeting(guest.id).join_url
    assert guest_link != conference_link
    assert guest_link in make_client().get(f"/experts/manage/{experts.manage_token(guest)}").get_data(as_text=True)

    # A move changes the event's time and keeps its Meet link; a cancellation deletes the event.
    experts.reschedule(profile.user_id, booking.id, start + timedelta(hours=4))
    moved = next(e for e in google.standin.live_events(WORK) if e["id"] == event["id"])
    assert moved["start"]["dateTime"] == (start + timedelta(hours=4)).isoformat()
    assert moved["conferenceData"]["entryPoints"][0]["uri"] == conference_link and _meeting(booking.id).join_url == conference_link
    experts.cancel(customer.id, booking.id)
    assert all(e["id"] != event["id"] for e in google.standin.live_events(WORK))


def test_meet_without_a_write_calendar_uses_the_primary_one(client, google):
    profile, svc = _meet_expert(client, google, write=None)
    customer = make_user("Cara Customer")
    booking = experts.book(customer.id, svc.id, next_weekday_at(10), **book_kwargs(customer))
    meeting = _meeting(booking.id)
    assert meeting.external_ref == "primary" and meeting.join_url.startswith("https://meet.google.com/")
    [event] = google.standin.live_events(google.standin.email)
    assert event["conferenceData"]["entryPoints"][0]["uri"] == meeting.join_url


def test_a_conference_google_is_still_making_is_retried(client, google):
    profile, svc = _meet_expert(client, google)
    google.standin.meet_pending = 1
    customer = make_user("Cara Customer")
    booking = experts.book(customer.id, svc.id, next_weekday_at(10), **book_kwargs(customer))
    meeting = _meeting(booking.id)
    assert meeting.status == "pending" and meeting.join_url is None and meeting.next_attempt_at is not None
    assert _emails("expert-booking-customer") == []  # the confirmation waits for the link
    assert meetings.sync(meeting.id, now=utcnow() + timedelta(hours=2)) == "created"
    meeting = _meeting(booking.id)
    [event] = google.standin.live_events(WORK)
    assert meeting.join_url == event["conferenceData"]["entryPoints"][0]["uri"]
    assert len(google.standin.live_events(WORK)) == 1  # asked twice, one event, one conference
    [to_customer] = _emails("expert-booking-customer")
    assert to_customer.context["join_url"] == meeting.join_url


def test_a_refused_google_grant_parks_meet_meetings_with_one_email_until_reauthorized(client, google):
    profile, svc = _meet_expert(client, google)
    google.standin.revoke_all()
    expire_google_token(profile.user_id)
    customers = [make_user(f"Customer {n}") for n in range(2)]
    bookings = [experts.book(c.id, svc.id, next_weekday_at(10 + n), **book_kwargs(c)) for n, c in enumerate(customers)]
    assert all(b.status == "confirmed" for b in bookings)
    assert all(_meeting(b.id).status == MEETING_REAUTH for b in bookings)
    broken = _emails("calendar-broken")
    assert len(broken) == 1 and broken[0].context["status"] == "reconnect_needed"
    assert _emails("zoom-reauth") == []  # the one email is Google's, not a Zoom one per booking
    # Re-authorizing makes the waiting meetings, and both sides get their links.
    assert connect_google(client, google.url).status_code == 303
    links = [_meeting(b.id).join_url for b in bookings]
    assert all(link and link.startswith("https://meet.google.com/") for link in links)
    assert len(_emails("expert-booking-customer")) == 2
    assert len(_emails("calendar-broken")) == 1
