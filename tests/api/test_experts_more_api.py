"""The experts API's reschedule, one booking, guest booking and calendar feed endpoints (issue 16)."""
import pytest

from expertbook.experts import service
from expertbook.extensions import db
from tests.api.test_experts_api import auth
from tests.experts.helpers import book_kwargs, next_weekday_at
from tests.factories import make_expert, make_service, make_user


@pytest.fixture
def setup(app):
    profile = make_expert(timezone="Europe/London")
    return profile, make_service(profile, requires_acceptance=True)


def test_one_booking_for_its_customer_and_its_expert_and_404_for_anyone_else(app, client, setup):
    profile, svc = setup
    customer, stranger = make_user(), make_user()
    booking = service.book(customer.id, svc.id, next_weekday_at(10), **book_kwargs(customer))
    mine = client.get(f"/api/bookings/{booking.id}", headers=auth(app, customer))
    assert mine.status_code == 200 and mine.get_json()["booking"]["role"] == "customer"
    theirs = client.get(f"/api/bookings/{booking.id}", headers=auth(app, profile.user))
    assert theirs.status_code == 200 and theirs.get_json()["booking"]["role"] == "expert"
    for headers in (auth(app, stranger),):
        assert client.get(f"/api/bookings/{booking.id}", headers=headers).status_code == 404
    assert client.get(f"/api/bookings/{booking.id + 99}", headers=auth(app, customer)).status_code == 404
    assert client.get(f"/api/bookings/{booking.id}").status_code == 401


def test_reschedule_through_the_api(app, client, setup):
    profile, svc = setup
    customer, other = make_user(), make_user()
    booking = service.book(customer.id, svc.id, next_weekday_at(10), **book_kwargs(customer))
    service.respond(profile.user_id, booking.id, accept=True)
    url = f"/api/bookings/{booking.id}"
    moved = client.patch(url, headers=auth(app, customer), json={"action": "reschedule", "start": next_weekday_at(14).isoformat().replace("+00:00", "Z"), "reason": "Clash"})
    body = moved.get_json()
    assert moved.status_code == 200, body
    assert body["booking"]["start"] == next_weekday_at(14).isoformat() and body["booking"]["status"] == "pending"
    assert body["booking"]["rescheduledFrom"] == next_weekday_at(10).isoformat() and body["booking"]["rescheduleReason"] == "Clash"
    assert body["booking"]["icsSequence"] == 2
    # The time was just taken: 409 with the message people see.
    service.book(other.id, svc.id, next_weekday_at(15), **book_kwargs(other))
    taken = client.patch(url, headers=auth(app, profile.user), json={"action": "reschedule", "start": next_weekday_at(15).isoformat()})
    assert taken.status_code == 409 and taken.get_json()["error"] == service.TAKEN
    assert client.patch(url, headers=auth(app, customer), json={"action": "reschedule"}).status_code == 422
    bad = client.patch(url, headers=auth(app, customer), json={"action": "reschedule", "start": "tomorrow"})
    assert bad.status_code == 422 and "start" in bad.get_json()["fields"]
    assert client.patch(url, headers=auth(app, make_user()), json={"action": "reschedule", "start": next_weekday_at(16).isoformat()}).status_code == 404
    assert client.patch(url, headers=auth(app, customer), json={"action": "move"}).status_code == 422


def test_a_guest_books_without_a_token_and_gets_the_manage_link(app, client, setup):
    _, svc = setup
    data = {"serviceId": svc.id, "start": next_weekday_at(10).isoformat(), "name": "Gita Guest", "email": "gita@example.com",
            "phone": "+1 212 555 0100", "notes": "Hi", "timezone": "America/New_York"}
    created = client.post("/api/bookings", json=data, headers={"Idempotency-Key": "g-1"})
    body = created.get_json()
    assert created.status_code == 201, body
    assert body["booking"]["isGuest"] is True and body["booking"]["customerEmail"] == "gita@example.com"
    assert body["booking"]["status"] == "pending" and body["booking"]["customerPhone"] == "+1 212 555 0100"
    assert body["manageUrl"].startswith("http://testserver.example/experts/manage/")
    again = client.post("/api/bookings", json=data, headers={"Idempotency-Key": "g-1"})
    assert again.status_code == 200 and again.get_json()["booking"]["id"] == body["booking"]["id"]
    assert "manageUrl" not in again.get_json()  # emailed, and in the first answer: a repeat never hands it out
    # Someone who knows the guest's address and guesses the key, but not the booking, gets no booking of theirs.
    guess = client.post("/api/bookings", json={**data, "start": next_weekday_at(13).isoformat()}, headers={"Idempotency-Key": "g-1"})
    assert guess.status_code == 201 and guess.get_json()["booking"]["id"] != body["booking"]["id"]
    path = body["manageUrl"].removeprefix("http://testserver.example")
    page = client.get(path)
    assert page.status_code == 200 and "Gita Guest" in page.get_data(as_text=True)
    missing = client.post("/api/bookings", json={"serviceId": svc.id, "start": next_weekday_at(11).isoformat()})
    assert missing.status_code == 422 and set(missing.get_json()["fields"]) == {"name", "email"}
    taken = client.post("/api/bookings", json={**data, "email": "other@example.com"})
    assert taken.status_code == 409
    # A token that does not verify is refused, never taken for a guest booking.
    assert client.post("/api/bookings", json=data, headers={"Authorization": "Bearer nonsense"}).status_code == 401


def test_guest_bookings_through_the_api_are_throttled_per_email_and_per_address(app, client, setup):
    _, svc = setup
    customer = make_user()
    service_id = svc.id
    db.session.rollback()  # the emails these bookings queue are written by other connections meanwhile
    app.config["GUEST_BOOKING_LIMIT_PER_EMAIL"] = "2 per hour"
    app.config["GUEST_BOOKING_LIMIT_PER_IP"] = "4 per hour"

    def attempt(hour, email, ip):
        data = {"serviceId": service_id, "start": next_weekday_at(hour).isoformat(), "name": "Spam", "email": email}
        return client.post("/api/bookings", json=data, environ_base={"REMOTE_ADDR": ip}).status_code

    assert attempt(8, "spam@example.com", "10.9.0.1") == 201
    assert attempt(9, "SPAM@example.com", "10.9.0.2") == 201
    assert attempt(10, "spam@example.com", "10.9.0.3") == 429  # the third for one address, from anywhere
    assert attempt(10, "spam2@example.com", "10.9.0.4") == 201
    assert attempt(11, "spam3@example.com", "10.9.0.4") == 201
    assert attempt(12, "spam4@example.com", "10.9.0.4") == 201
    assert attempt(13, "spam5@example.com", "10.9.0.4") == 201
    assert attempt(14, "spam6@example.com", "10.9.0.4") == 429  # the fifth from one client address
    # Accounts are not throttled by the guest limits.
    response = client.post("/api/bookings", headers=auth(app, customer), environ_base={"REMOTE_ADDR": "10.9.0.4"},
                           json={"serviceId": service_id, "start": next_weekday_at(15).isoformat()})
    assert response.status_code == 201


def test_the_calendar_feed_address_through_the_api(app, client, setup):
    profile, _ = setup
    headers = auth(app, profile.user)
    assert client.get("/api/calendar-feed", headers=headers).get_json() == {"url": None, "webcalUrl": None}
    on = client.post("/api/calendar-feed/reset", headers=headers).get_json()
    assert on["url"].startswith("http://testserver.example/experts/feed/") and on["url"].endswith(".ics")
    assert on["webcalUrl"] == "webcal://" + on["url"].removeprefix("http://")
    assert client.get("/api/calendar-feed", headers=headers).get_json() == on
    assert client.get(on["url"].removeprefix("http://testserver.example")).status_code == 200
    new = client.post("/api/calendar-feed/reset", headers=headers).get_json()
    assert new["url"] != on["url"]
    assert client.get(on["url"].removeprefix("http://testserver.example")).status_code == 404
    assert client.delete("/api/calendar-feed", headers=headers).status_code == 204
    assert client.get(new["url"].removeprefix("http://testserver.example")).status_code == 404
    assert client.get("/api/calendar-feed").status_code == 401
