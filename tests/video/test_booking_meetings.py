"""Meetings of expert bookings, end to end: a real Zoom stand-in over HTTP, a real SMTP server on loopback,
jobs in-process (the default without Redis). The queue (RQ on real Redis) is in test_meeting_queue.py."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from icalendar import Calendar
from sqlalchemy import func, select, update

from expertbook.database import transaction, utcnow
from expertbook.experts import service as experts
from expertbook.experts.models import Booking
from expertbook.extensions import db
from expertbook.notifications.models import OutboxEmail
from expertbook.video import meetings
from expertbook.video.models import Meeting
from expertbook.devtools.zoom_standin import MEETING_CREATE, MEETING_DELETE, MEETING_GET, MEETING_PATCH, TOKEN_REFRESH
from tests.experts.helpers import book_kwargs, next_weekday_at
from tests.factories import connect_zoom, login, make_service, make_user
from tests.notifications.conftest import mail_config, smtp  # noqa: F401 - the SMTP server fixture
from tests.video.conftest import expire_stored_token

BASE = "http://testserver.example"


@pytest.fixture
def app_config(zoom, encryption_key, smtp):  # noqa: F811
    return zoom.config() | mail_config(smtp) | {
        "ZOOM_TIMEOUT": 2.0,
        "TOKEN_ENCRYPTION_KEYS": encryption_key,
        "JITSI_BASE_URL": "https://jitsi.test.example",
    }


@pytest.fixture
def profile(connected_expert):
    return experts.profile_of(connected_expert.id)


def book(svc, customer=None, hour: int = 10, **kwargs) -> Booking:
    customer = customer or make_user("Sinduja Vel")
    return experts.book(customer.id, svc.id, next_weekday_at(hour, tz=svc.expert.timezone), **book_kwargs(customer, **kwargs))


def meeting_of(booking_id: int) -> Meeting | None:
    db.session.rollback()
    return db.session.scalar(select(Meeting).where(Meeting.booking_id == booking_id))


def text_of(message) -> str:
    return message.get_body(("plain",)).get_content()


def html_of(message) -> str:
    return message.get_body(("html",)).get_content()


def ics_of(message) -> Calendar | None:
    for part in message.iter_attachments():
        if part.get_content_type() == "text/calendar":
            content = part.get_content()
            return Calendar.from_ical(content if isinstance(content, (str, bytes)) else part.get_payload(decode=True))
    return None


def to(messages, address: str) -> list:
    return [m for m in messages if address in m["To"]]


# ---------------------------------------------------------------------------- created on confirm and on accept


def test_a_confirmed_video_booking_gets_a_zoom_meeting_and_both_sides_their_links(profile, zoom, smtp):
    svc = make_service(profile, "Technology Consulting Session", record_meetings=True)
    customer = make_user("Sinduja Vel", "sinduja@example.com")
    booking = book(svc, customer)
    meeting = meeting_of(booking.id)
    assert meeting.status == "created" and meeting.provider == "zoom"
    assert meeting.external_id > 2**32 and meeting.join_url.startswith(f"{zoom.url}/j/{meeting.external_id}")
    at_zoom = zoom.standin.meetings[meeting.external_id]
    assert at_zoom["settings"]["waiting_room"] is True and at_zoom["settings"]["join_before_host"] is False
    assert at_zoom["settings"]["auto_recording"] == "cloud"  # the service records
    assert at_zoom["start_time"] == booking.start_at.strftime("%Y-%m-%dT%H:%M:%SZ") and at_zoom["duration"] == 60
    assert at_zoom["timezone"] == profile.timezone and at_zoom["topic"] == "Technology Consulting Session - Sinduja Vel"

    messages = smtp.wait_for(2)
    [to_customer] = to(messages, "sinduja@example.com")
    [to_expert] = to(messages, profile.user.email)
    body = text_of(to_customer)
    assert "Your appointment is confirmed" in body and meeting.join_url in body and str(meeting.external_id) in body
    assert meeting.join_url in html_of(to_customer)
    assert "/s/" not in body and "zak=" not in body
    start_link = f"{BASE}/video/meetings/{booking.id}/start"
    expert_body = text_of(to_expert)
    assert start_link in expert_body and start_link in html_of(to_expert)
    for part in (expert_body, html_of(to_expert)):
        assert "zak=" not in part and f"{zoom.url}/s/" not in part and meeting.join_url not in part  # never Zoom's start_url
    for message in (to_customer, to_expert):
        calendar = ics_of(message)
        assert calendar["METHOD"] == "REQUEST"
        event = calendar.walk("VEVENT")[0]
        assert str(event["UID"]) == f"{booking.ics_uid}@expertbook"
    assert zoom.standin.calls[MEETING_CREATE] == 1


def test_accepting_a_request_creates_the_meeting_and_the_emails_follow(client, profile, zoom, smtp, make_client):
    svc = make_service(profile, "Tax advice", requires_acceptance=True)
    customer = make_user("Ana Customer", "ana@example.com")
    booking = book(svc, customer, notes="About my <tax> return")
    assert meeting_of(booking.id) is None and zoom.standin.calls[MEETING_CREATE] == 0
    [pending] = smtp.wait_for(1)
    assert pending["To"].endswith(f"<{profile.user.email}>") and pending["Subject"] == "Booking request: Tax advice with Ana Customer"
    body = text_of(pending)
    links = set(re.findall(r"(?:Accept|Decline):\s+(\S+)", body))
    assert links == {f"{BASE}/experts/bookings/{booking.id}"}
    assert "About my <tax> return" in body and "About my &lt;tax&gt; return" in html_of(pending)
    # The link opens a page with POST buttons: following it (as a mail scanner would) changes nothing.
    page = client.get(f"/experts/bookings/{booking.id}")
    assert page.status_code == 200 and "Accept" in page.get_data(as_text=True)
    db.session.rollback()
    assert db.session.get(Booking, booking.id).status == "pending"

    experts.respond(profile.user_id, booking.id, True)
    meeting = meeting_of(booking.id)
    assert meeting.status == "created" and meeting.provider == "zoom"
    messages = smtp.wait_for(4)
    accepted = [m for m in messages if m["Subject"] == f"{profile.display_name} accepted your booking"]
    assert len(accepted) == 1 and "The meeting link follows" in text_of(accepted[0])
    [confirmation] = [m for m in to(messages, "ana@example.com") if m["Subject"].startswith("Your appointment is confirmed")]
    assert meeting.join_url in text_of(confirmation)
    [for_expert] = [m for m in to(messages, profile.user.email) if m["Subject"].startswith("New booking")]
    assert f"{BASE}/video/meetings/{booking.id}/start" in text_of(for_expert)


def test_without_zoom_the_meeting_is_a_jitsi_room(app, client, smtp, zoom):
    from tests.factories import make_expert

    profile = make_expert("Jo Jitsi")
    svc = make_service(profile)
    customer = make_user()
    booking = book(svc, customer)
    meeting = meeting_of(booking.id)
    assert meeting.provider == "jitsi" and meeting.external_id is None
    assert re.fullmatch(r"https://jitsi\.test\.example/ExpertBook-[A-Za-z0-9_-]{24}", meeting.join_url)
    assert zoom.standin.calls[MEETING_CREATE] == 0
    messages = smtp.wait_for(2)
    assert meeting.join_url in text_of(to(messages, customer.email)[0])
    assert f"{BASE}/video/meetings/{booking.id}/start" in text_of(to(messages, profile.user.email)[0])
    # The expert's start link leads to the same room.
    login(client, profile.user)
    start = client.get(f"/video/meetings/{booking.id}/start")
    assert start.status_code == 303 and start.headers["Location"] == meeting.join_url
    # Cancelling needs nothing at a provider.
    experts.cancel(customer.id, booking.id)
    assert meeting_of(booking.id).status == "deleted"


def test_the_service_chooses_jitsi_even_with_zoom_connected(profile, zoom):
    svc = make_service(profile, video_provider="jitsi")
    assert meeting_of(book(svc).id).provider == "jitsi"
    assert zoom.standin.calls[MEETING_CREATE] == 0


def test_an_accepted_in_person_request_tells_the_customer_once_with_the_place(profile, zoom, smtp):
    svc = make_service(profile, "Office visit", location_kind="in_person", location_detail="1 High Street, London",
                       requires_acceptance=True)
    customer = make_user(email="walkin@example.com")
    booking = book(svc, customer)
    experts.respond(profile.user_id, booking.id, True)
    messages = smtp.wait_for(3)
    assert len(messages) == 3  # the request to the expert, then one email to each side
    [accepted] = to(messages, "walkin@example.com")
    assert accepted["Subject"] == f"{profile.display_name} accepted your booking" and "1 High Street, London" in text_of(accepted)
    assert ics_of(accepted)["METHOD"] == "REQUEST"
    assert [m["Subject"] for m in to(messages, profile.user.email)] == [
        f"Booking request: Office visit with {customer.name}", f"New booking: Office visit with {customer.name}"]
    assert meeting_of(booking.id) is None


def test_in_person_bookings_get_no_meeting_and_their_emails_at_once(profile, zoom, smtp):
    svc = make_service(profile, "Office visit", location_kind="in_person", location_detail="1 High Street, London")
    customer = make_user(email="walkin@example.com")
    booking = book(svc, customer)
    assert meeting_of(booking.id) is None and zoom.standin.calls[MEETING_CREATE] == 0
    messages = smtp.wait_for(2)
    body = text_of(to(messages, "walkin@example.com")[0])
    assert "1 High Street, London" in body and "JOIN" not in body
    assert "START THE MEETING" not in text_of(to(messages, profile.user.email)[0])


# ---------------------------------------------------------------------------- cancel, decline, update


def test_cancelling_deletes_the_meeting_at_zoom_and_both_sides_get_a_calendar_cancel(profile, zoom, smtp):
    svc = make_service(profile, "Tax advice")
    customer = make_user("Ana Customer", "ana@example.com")
    booking = book(svc, customer)
    meeting = meeting_of(booking.id)
    smtp.wait_for(2)
    experts.cancel(customer.id, booking.id, "Something came up")
    assert meeting.external_id not in zoom.standin.meetings and zoom.standin.calls[MEETING_DELETE] == 1
    assert meeting_of(booking.id).status == "deleted"
    messages = smtp.wait_for(4)[2:]
    assert len(messages) == 2
    [for_expert] = to(messages, profile.user.email)
    [for_customer] = to(messages, "ana@example.com")
    assert "cancelled by the customer, Ana Customer" in text_of(for_expert) and "Something came up" in text_of(for_expert)
    assert "cancelled by you" in text_of(for_customer)
    db.session.rollback()
    sequence = db.session.get(Booking, booking.id).ics_sequence
    for message in messages:
        calendar = ics_of(message)
        event = calendar.walk("VEVENT")[0]
        assert calendar["METHOD"] == "CANCEL" and event["STATUS"] == "CANCELLED"
        assert str(event["UID"]) == f"{booking.ics_uid}@expertbook" and int(event["SEQUENCE"]) == sequence >= 1


def test_a_meeting_already_deleted_at_zoom_counts_as_deleted(profile, zoom):
    booking = book(make_service(profile))
    meeting = meeting_of(booking.id)
    del zoom.standin.meetings[meeting.external_id]  # someone deleted it in Zoom's own app
    experts.cancel(booking.customer_id, booking.id)
    assert meeting_of(booking.id).status == "deleted" and zoom.standin.calls[MEETING_DELETE] == 1


def test_declining_tells_the_customer(profile, zoom, smtp):
    svc = make_service(profile, "Tax advice", requires_acceptance=True)
    customer = make_user("Ana Customer", "ana@example.com")
    booking = book(svc, customer)
    experts.respond(profile.user_id, booking.id, False)
    messages = smtp.wait_for(2)
    [declined] = to(messages, "ana@example.com")
    assert declined["Subject"] == "Your booking request was declined"
    assert f"{BASE}/expert/{profile.handle}" in text_of(declined)
    assert meeting_of(booking.id) is None and zoom.standin.calls[MEETING_CREATE] == 0


def test_a_changed_booking_time_is_sent_to_zoom(profile, zoom):
    booking = book(make_service(profile))
    meeting = meeting_of(booking.id)
    later = booking.start_at + timedelta(days=1, hours=2)
    # There is no reschedule feature yet: move the booking the way one would, then let the job reconcile.
    with transaction():
        db.session.execute(update(Booking).where(Booking.id == booking.id).values(start_at=later, end_at=later + timedelta(minutes=90)))
        db.session.execute(update(Meeting).where(Meeting.id == meeting.id).values(next_attempt_at=utcnow()))
    assert meetings.sync(meeting.id) == "updated"
    at_zoom = zoom.standin.meetings[meeting.external_id]
    assert at_zoom["start_time"] == later.strftime("%Y-%m-%dT%H:%M:%SZ") and at_zoom["duration"] == 90
    assert zoom.standin.calls[MEETING_PATCH] == 1
    assert meeting_of(booking.id).scheduled_start == later
    with transaction():
        db.session.execute(update(Meeting).where(Meeting.id == meeting.id).values(next_attempt_at=utcnow()))
    assert meetings.sync(meeting.id) == "skipped"  # in line: nothing to send
    assert zoom.standin.calls[MEETING_PATCH] == 1


# ---------------------------------------------------------------------------- faults and retries


def test_a_server_error_is_retried_and_the_link_is_pending_meanwhile(client, profile, zoom, smtp):
    zoom.standin.fail(MEETING_CREATE, "500")
    customer = make_user("Ana Customer", "ana@example.com")
    booking = book(make_service(profile), customer)
    meeting = meeting_of(booking.id)
    assert meeting.status == "pending" and meeting.attempts == 1 and "500" in meeting.last_error
    assert meeting.next_attempt_at > utcnow() + timedelta(seconds=10)  # backoff: 15-30 s for the first retry
    assert smtp.messages == []  # the confirmations wait for the link
    login(client, customer)
    assert "Meeting link pending" in client.get(f"/experts/bookings/{booking.id}").get_data(as_text=True)
    api = _api_booking(client, customer, booking.id)
    assert api["meeting"]["status"] == "pending" and api["meeting"]["linkPending"] is True and api["requiresReAuth"] is False

    assert meetings.relay() == 0  # not due yet
    assert meetings.relay(now=meeting.next_attempt_at) == 1
    meeting = meeting_of(booking.id)
    assert meeting.status == "created" and meeting.attempts == 0 and meeting.last_error is None
    assert zoom.standin.calls[MEETING_CREATE] == 2 and len(zoom.standin.meetings) == 1
    assert len(smtp.wait_for(2)) == 2
    page = client.get(f"/experts/bookings/{booking.id}").get_data(as_text=True)
    assert "Join meeting" in page and "Meeting link pending" not in page


def test_a_rate_limit_is_retried_no_sooner_than_retry_after(profile, zoom):
    zoom.standin.fail(MEETING_CREATE, "429", retry_after=600)
    before = utcnow()
    booking = book(make_service(profile))
    meeting = meeting_of(booking.id)
    assert meeting.status == "pending" and meeting.next_attempt_at >= before + timedelta(seconds=600)
    assert meetings.relay(now=before + timedelta(seconds=599)) == 0
    assert meetings.relay(now=meeting.next_attempt_at) == 1
    assert meeting_of(booking.id).status == "created"


def test_retries_give_up_after_the_limit_and_say_so(client, profile, zoom):
    zoom.standin.fail(MEETING_CREATE, "500", times=None)
    customer = make_user()
    booking = book(make_service(profile), customer)
    for _ in range(meetings.MAX_ATTEMPTS):
        meeting = meeting_of(booking.id)
        meetings.relay(now=meeting.next_attempt_at)
    meeting = meeting_of(booking.id)
    assert meeting.status == "failed" and "gave up after" in meeting.last_error and meeting.next_attempt_at is None
    assert zoom.standin.calls[MEETING_CREATE] == meetings.MAX_ATTEMPTS + 1
    login(client, customer)
    assert "could not be created" in client.get(f"/experts/bookings/{booking.id}").get_data(as_text=True)


def test_two_runs_of_the_same_job_create_one_meeting(profile, zoom):
    zoom.standin.fail(MEETING_CREATE, "500")
    booking = book(make_service(profile))
    meeting = meeting_of(booking.id)
    due = meeting.next_attempt_at
    assert meetings.sync(meeting.id, now=due) == "created"
    assert meetings.sync(meeting.id, now=due) == "skipped"
    assert zoom.standin.calls[MEETING_CREATE] == 2 and len(zoom.standin.meetings) == 1


def test_cancelled_while_pending_leaves_nothing_at_zoom(profile, zoom):
    zoom.standin.fail(MEETING_CREATE, "500")
    booking = book(make_service(profile))
    experts.cancel(booking.customer_id, booking.id)
    meeting = meeting_of(booking.id)
    assert meeting.status == "deleted" and meeting.next_attempt_at is None
    assert meetings.relay(now=utcnow() + timedelta(hours=2)) == 0
    assert zoom.standin.calls[MEETING_CREATE] == 1 and zoom.standin.meetings == {}


# ---------------------------------------------------------------------------- the host's start route


def test_the_host_gets_a_fresh_start_url_at_each_click(client, profile, zoom):
    booking = book(make_service(profile))
    meeting = meeting_of(booking.id)
    first = client.get(f"/video/meetings/{booking.id}/start")
    second = client.get(f"/video/meetings/{booking.id}/start")
    for answer in (first, second):
        assert answer.status_code == 303 and answer.headers["Location"].startswith(f"{zoom.url}/s/{meeting.external_id}?zak=")
        assert answer.headers["Cache-Control"] == "no-store"
    assert first.headers["Location"] != second.headers["Location"]
    assert zoom.standin.calls[MEETING_GET] == 2
    assert "zak=" not in str(meeting_of(booking.id).__dict__)  # never stored


def test_the_start_route_is_the_experts_alone(app, client, profile, zoom, make_client):
    customer = make_user()
    booking = book(make_service(profile), customer)
    customer_client, stranger_client, anonymous = make_client(), make_client(), make_client()
    login(customer_client, customer)
    login(stranger_client, make_user())
    assert customer_client.get(f"/video/meetings/{booking.id}/start").status_code == 404
    assert stranger_client.get(f"/video/meetings/{booking.id}/start").status_code == 404
    assert client.get("/video/meetings/999999/start").status_code == 404
    assert "/login" in anonymous.get(f"/video/meetings/{booking.id}/start").headers["Location"]
    assert zoom.standin.calls[MEETING_GET] == 0


def test_each_side_sees_only_its_own_button(client, profile, zoom, make_client):
    customer = make_user()
    booking = book(make_service(profile), customer)
    meeting = meeting_of(booking.id)
    customer_client = make_client()
    login(customer_client, customer)
    as_customer = customer_client.get(f"/experts/bookings/{booking.id}").get_data(as_text=True)
    as_expert = client.get(f"/experts/bookings/{booking.id}").get_data(as_text=True)
    assert "Join meeting" in as_customer and meeting.join_url in as_customer.replace("&amp;", "&")
    assert "Start meeting (host)" not in as_customer and f"/video/meetings/{booking.id}/start" not in as_customer
    assert "Start meeting (host)" in as_expert and f"/video/meetings/{booking.id}/start" in as_expert
    assert "Join meeting" not in as_expert and meeting.join_url not in as_expert.replace("&amp;", "&")
    for page in ("/my-bookings",):
        assert "Join meeting" in customer_client.get(page).get_data(as_text=True)
    assert "Start meeting (host)" in client.get("/expert-dashboard").get_data(as_text=True)
    # The API gives the join link to the customer only.
    as_customer_json = _api_booking(customer_client, customer, booking.id)
    assert as_customer_json["meeting"] == {"provider": "zoom", "meetingId": str(meeting.external_id), "status": "created",
                                           "linkPending": False, "joinUrl": meeting.join_url, "password": meeting.password}
    as_expert_json = _api_booking(client, profile.user, booking.id)
    assert as_expert_json["meeting"]["startPath"] == f"/video/meetings/{booking.id}/start"
    assert "joinUrl" not in as_expert_json["meeting"]


def _api_booking(client, user, booking_id: int) -> dict:
    from tests.factories import PASSWORD

    token = client.post("/api/auth/login", json={"email": user.email, "password": PASSWORD}).get_json()["token"]
    bookings = client.get("/api/bookings", headers={"Authorization": f"Bearer {token}"}).get_json()["bookings"]
    return next(b for b in bookings if b["id"] == booking_id)


# ---------------------------------------------------------------------------- refused refresh: the reconnect flow


def test_a_refused_refresh_sends_one_email_tells_the_customer_and_resumes_after_reauthorization(client, profile, zoom, smtp, make_client):
    expire_stored_token(profile.user_id, zoom.standin)
    zoom.standin.revoke_all()  # Zoom refuses the refresh: invalid_grant
    svc = make_service(profile, "Technology Consulting Session")
    customers = [make_user(f"Customer {n}", f"customer{n}@example.com") for n in range(3)]
    bookings = [book(svc, customer, hour=10 + 2 * n) for n, customer in enumerate(customers)]
    assert zoom.standin.calls[TOKEN_REFRESH] == 1 and zoom.standin.calls[MEETING_CREATE] == 0
    for booking in bookings:
        meeting = meeting_of(booking.id)
        assert meeting.status == "reauth_needed" and meeting.next_attempt_at is None
    assert db.session.get(Booking, bookings[0].id).status == "confirmed"  # the booking is never lost

    [reauth] = smtp.wait_for(1)
    assert len(smtp.wait_for(2, timeout=0.5)) == 1  # one email, not one per booking
    assert reauth["To"].endswith(f"<{profile.user.email}>")
    assert reauth["Subject"] == "Action required: re-authorize your Zoom account - Technology Consulting Session"
    assert f"{BASE}/video/zoom/connect" in text_of(reauth) and "Customer 0" in text_of(reauth)
    assert db.session.scalar(select(func.count()).select_from(OutboxEmail).where(OutboxEmail.template == "video/zoom_reauth")) == 1
    assert meetings.relay(now=utcnow() + timedelta(days=1)) == 0  # nothing retries against a refused grant

    customer_client = make_client()
    login(customer_client, customers[1])
    page = " ".join(customer_client.get(f"/experts/bookings/{bookings[1].id}").get_data(as_text=True).split())
    assert "needs to be reconnected" in page and f"We have emailed {profile.display_name}" in page
    assert "Join meeting" not in page
    api = _api_booking(customer_client, customers[1], bookings[1].id)
    assert api["requiresReAuth"] is True and api["meeting"]["status"] == "reauth_needed" and api["meeting"]["joinUrl"] is None
    assert "Re-authorize Zoom" in client.get(f"/experts/bookings/{bookings[1].id}").get_data(as_text=True)

    # The expert follows the link and re-authorizes: every waiting meeting is created, both sides get their links.
    assert connect_zoom(client, zoom.url).status_code == 303
    assert zoom.standin.calls[MEETING_CREATE] == 3
    messages = smtp.wait_for(7)
    assert len(messages) == 7
    for customer, booking in zip(customers, bookings):
        meeting = meeting_of(booking.id)
        assert meeting.status == "created" and meeting.external_id in zoom.standin.meetings
        [confirmation] = to(messages, customer.email)
        assert meeting.join_url in text_of(confirmation)
    expert_mails = [m for m in to(messages, profile.user.email) if m["Subject"].startswith("New booking")]
    assert sorted(f"{BASE}/video/meetings/{b.id}/start" in text_of(m) for m in expert_mails for b in bookings).count(True) == 3
    assert _api_booking(customer_client, customers[1], bookings[1].id)["requiresReAuth"] is False


@pytest.mark.parametrize("removal", ["disconnect", "deauthorized by Zoom"])
def test_meetings_waiting_on_a_refused_grant_go_to_jitsi_once_zoom_is_removed(profile, zoom, smtp, removal):
    from expertbook.video import service as video

    expire_stored_token(profile.user_id, zoom.standin)
    zoom.standin.revoke_all()
    customer = make_user("Waiting Customer", "waiting@example.com")
    booking = book(make_service(profile), customer)
    assert meeting_of(booking.id).status == "reauth_needed"
    if removal == "disconnect":
        video.disconnect(profile.user_id)
    else:
        assert video.handle_deauthorization(zoom.standin.user["id"]) == 1
    # Nothing is left to re-authorize: the booking gets its link now, from Jitsi, and the customer hears of it.
    meeting = meeting_of(booking.id)
    assert meeting.status == "created" and meeting.provider == "jitsi" and meeting.join_url
    assert zoom.standin.calls[MEETING_CREATE] == 0
    assert any(meeting.join_url in text_of(m) for m in to(smtp.wait_for(3), customer.email))


def test_a_second_incident_after_reauthorizing_sends_a_second_email(client, profile, zoom, smtp):
    svc = make_service(profile)
    expire_stored_token(profile.user_id, zoom.standin)
    zoom.standin.revoke_all()
    book(svc, hour=10)
    assert connect_zoom(client, zoom.url).status_code == 303
    expire_stored_token(profile.user_id, zoom.standin)
    zoom.standin.revoke_all()
    book(svc, hour=12)
    db.session.rollback()
    keys = db.session.scalars(select(OutboxEmail.dedupe_key).where(OutboxEmail.template == "video/zoom_reauth")).all()
    assert len(keys) == 2 and len(set(keys)) == 2


# ---------------------------------------------------------------------------- reminders


def test_reminders_go_to_both_sides_once_with_their_links(profile, zoom, smtp):
    from expertbook.notifications import service as notifications

    customer = make_user("Ana Customer", "ana@example.com")
    booking = book(make_service(profile, "Tax advice"), customer)
    meeting = meeting_of(booking.id)
    smtp.wait_for(2)
    now = booking.start_at - timedelta(hours=3)
    assert notifications.send_due_reminders(now) == 2
    assert notifications.send_due_reminders(now + timedelta(minutes=30)) == 0
    reminders = [m for m in smtp.wait_for(4) if m["Subject"].startswith("Reminder:")]
    assert len(reminders) == 2
    [for_customer] = to(reminders, "ana@example.com")
    [for_expert] = to(reminders, profile.user.email)
    assert meeting.join_url in text_of(for_customer) and "/start" not in text_of(for_customer)
    assert f"{BASE}/video/meetings/{booking.id}/start" in text_of(for_expert) and meeting.join_url not in text_of(for_expert)
    # Too early, or cancelled: nothing.
    assert notifications.send_due_reminders(booking.start_at - timedelta(hours=30)) == 0


def test_start_while_the_link_is_pending_or_zoom_refuses_says_what_to_do(client, profile, zoom):
    zoom.standin.fail(MEETING_CREATE, "500")
    booking = book(make_service(profile))
    pending = client.get(f"/video/meetings/{booking.id}/start")
    assert pending.status_code == 303 and pending.headers["Location"] == f"/experts/bookings/{booking.id}"
    assert "meeting link pending" in client.get(pending.headers["Location"]).get_data(as_text=True)
    meetings.relay(now=meeting_of(booking.id).next_attempt_at)
    zoom.standin.fail(MEETING_GET, "500")
    assert client.get(f"/video/meetings/{booking.id}/start").status_code == 503
    zoom.standin.revoke_all()
    expire_stored_token(profile.user_id, zoom.standin)
    refused = client.get(f"/video/meetings/{booking.id}/start")
    assert refused.status_code == 303 and refused.headers["Location"] == "/video/settings"
    assert "re-authorize Zoom" in client.get("/video/settings").get_data(as_text=True)
    experts.cancel(profile.user_id, booking.id)
    cancelled = client.get(f"/video/meetings/{booking.id}/start")
    assert cancelled.status_code == 303 and "there is no meeting to start" in client.get(cancelled.headers["Location"]).get_data(as_text=True)


def test_a_cancellation_during_a_refused_grant_deletes_the_meeting_after_reauthorization(client, profile, zoom):
    booking = book(make_service(profile))
    meeting = meeting_of(booking.id)
    expire_stored_token(profile.user_id, zoom.standin)
    zoom.standin.revoke_all()
    experts.cancel(booking.customer_id, booking.id)
    waiting = meeting_of(booking.id)
    assert waiting.status == "created" and waiting.next_attempt_at is None and "re-authorize" in waiting.last_error
    assert meeting.external_id in zoom.standin.meetings
    assert connect_zoom(client, zoom.url).status_code == 303
    assert meeting_of(booking.id).status == "deleted" and meeting.external_id not in zoom.standin.meetings


def test_the_provider_and_recording_are_chosen_per_service_in_the_form_and_the_api(client, profile, zoom):
    created = client.post_form("/experts/settings/services/new", {
        "title": "Jitsi chat", "duration_min": 30, "currency": "USD", "location_kind": "video",
        "video_provider": "jitsi", "min_notice_min": 0, "horizon_days": 60})
    assert created.status_code in (200, 303)
    bad = client.post_form("/experts/settings/services/new", {
        "title": "Odd", "duration_min": 30, "currency": "USD", "location_kind": "video", "video_provider": "skype"})
    assert bad.status_code == 422
    from tests.factories import PASSWORD

    token = client.post("/api/auth/login", json={"email": profile.user.email, "password": PASSWORD}).get_json()["token"]
    answer = client.post("/api/event-types", json={"title": "Recorded", "duration": 30, "videoProvider": "zoom", "recordMeetings": True},
                         headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 201 and answer.get_json()["eventType"]["videoProvider"] == "zoom"
    db.session.rollback()
    from expertbook.experts.models import Service

    services = {s.title: s for s in db.session.scalars(select(Service))}
    assert services["Jitsi chat"].video_provider == "jitsi" and services["Jitsi chat"].record_meetings is False
    assert services["Recorded"].record_meetings is True
    booking = book(services["Recorded"])
    assert zoom.standin.meetings[meeting_of(booking.id).external_id]["settings"]["auto_recording"] == "cloud"
    assert meeting_of(book(services["Jitsi chat"], hour=14).id).provider == "jitsi"
