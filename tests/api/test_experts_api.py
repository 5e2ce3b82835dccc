"""The experts JSON API (seed 002): become an expert, event types, availability, bookings,
accept/decline/cancel, idempotency, conflicts and access."""
from tests.experts.helpers import next_weekday_at
from tests.factories import bearer, make_expert, make_service, make_user


def auth(app, user) -> dict:
    return bearer(user)


def test_register_become_expert_and_create_event_types(client):
    registered = client.post("/api/auth/register", json={"name": "Sam Expert", "email": "sam@example.com", "password": "long enough pw"})
    assert registered.status_code == 202  # registration never hands out a token: the client logs in
    logged_in = client.post("/api/auth/login", json={"email": "sam@example.com", "password": "long enough pw"})
    headers = {"Authorization": "Bearer " + logged_in.get_json()["token"]}
    assert logged_in.get_json()["user"]["isExpert"] is False
    response = client.post("/api/auth/become-expert", headers=headers)
    body = response.get_json()
    assert response.status_code == 201, body
    assert body["user"]["isExpert"] is True
    assert (body["expert"]["displayName"], body["expert"]["handle"], body["expert"]["timezone"]) == ("Sam Expert", "sam-expert", "UTC")
    assert client.post("/api/auth/become-expert", headers=headers).status_code == 409
    created = client.post("/api/event-types", headers=headers, json={"title": "Code review", "duration": 30, "price": 50, "currency": "usd", "requiresAcceptance": True})
    assert created.status_code == 201, created.get_json()
    event = created.get_json()["eventType"]
    assert (event["slug"], event["duration"], event["price"], event["currency"], event["requiresAcceptance"]) == ("code-review", 30, 50.0, "USD", True)
    bad = client.post("/api/event-types", headers=headers, json={"title": "X", "duration": 1})
    assert bad.status_code == 422 and "duration" in bad.get_json()["fields"]
    missing = client.post("/api/event-types", headers=headers, json={})
    assert missing.status_code == 422 and set(missing.get_json()["fields"]) == {"title", "duration"}
    listed = client.get("/api/event-types", headers=headers).get_json()["eventTypes"]
    assert [e["title"] for e in listed] == ["Code review"]
    public = client.get(f"/api/event-types?expertId={body['expert']['id']}", headers=headers).get_json()["eventTypes"]
    assert [e["id"] for e in public] == [event["id"]]


def test_non_experts_cannot_create_event_types(app, client):
    headers = auth(app, make_user())
    assert client.post("/api/event-types", headers=headers, json={"title": "X", "duration": 30}).status_code == 404
    assert client.get("/api/event-types", headers=headers).status_code == 404
    assert client.get("/api/event-types").status_code == 401


def test_availability_booking_and_conflict(app, client):
    profile = make_expert(timezone="Europe/London")
    svc = make_service(profile)
    customer, other = make_user(), make_user()
    start = next_weekday_at(10)
    url = f"/api/experts/{profile.id}/availability?date={start.date().isoformat()}&serviceId={svc.id}"
    slots = client.get(url, headers=auth(app, customer)).get_json()["slots"]
    assert len(slots) == 9 and start.isoformat() in [s["start"] for s in slots]
    tokyo = client.get(url + "&tz=Asia/Tokyo", headers=auth(app, customer)).get_json()
    assert tokyo["timezone"] == "Asia/Tokyo" and tokyo["expertTimezone"] == "Europe/London"
    padded = client.get(url + "&tz=%20Asia/Tokyo%20", headers=auth(app, customer))
    assert padded.status_code == 200 and padded.get_json()["slots"] == tokyo["slots"]
    headers = {**auth(app, customer), "Idempotency-Key": "abc"}
    made = client.post("/api/bookings", headers=headers, json={"serviceId": svc.id, "start": start.isoformat().replace("+00:00", "Z"), "notes": "hi"})
    assert made.status_code == 201, made.get_json()
    booking = made.get_json()["booking"]
    assert (booking["status"], booking["start"], booking["customerEmail"]) == ("confirmed", start.isoformat(), customer.email)
    again = client.post("/api/bookings", headers=headers, json={"serviceId": svc.id, "start": start.isoformat()})
    assert again.status_code == 200 and again.get_json()["booking"]["id"] == booking["id"]
    taken = client.post("/api/bookings", headers=auth(app, other), json={"serviceId": svc.id, "start": start.isoformat()})
    assert taken.status_code == 409 and taken.get_json()["error"].startswith("That time was just taken")
    slots = client.get(url, headers=auth(app, customer)).get_json()["slots"]
    assert start.isoformat() not in [s["start"] for s in slots]
    naive = client.post("/api/bookings", headers=auth(app, other), json={"serviceId": svc.id, "start": "2030-01-01T10:00:00"})
    assert naive.status_code == 422
    assert client.get(f"/api/experts/{profile.id}/availability?date=nope", headers=auth(app, customer)).status_code == 422
    assert client.get("/api/experts/999/availability?date=2030-01-01", headers=auth(app, customer)).status_code == 404


def test_accept_decline_cancel_and_access(app, client):
    profile = make_expert()
    svc = make_service(profile, requires_acceptance=True)
    customer, stranger = make_user(), make_user()
    ids = []
    for hour in (10, 12, 14):
        response = client.post("/api/bookings", headers=auth(app, customer), json={"serviceId": svc.id, "start": next_weekday_at(hour).isoformat()})
        assert response.get_json()["booking"]["status"] == "pending"
        ids.append(response.get_json()["booking"]["id"])
    expert_headers = auth(app, profile.user)
    assert client.patch(f"/api/bookings/{ids[0]}", headers=auth(app, customer), json={"action": "accept"}).status_code == 404
    assert client.patch(f"/api/bookings/{ids[0]}", headers=auth(app, stranger), json={"action": "cancel"}).status_code == 404
    accepted = client.patch(f"/api/bookings/{ids[0]}", headers=expert_headers, json={"action": "accept"})
    assert accepted.status_code == 200 and accepted.get_json()["booking"]["status"] == "confirmed"
    assert client.patch(f"/api/bookings/{ids[0]}", headers=expert_headers, json={"action": "accept"}).status_code == 409
    assert client.patch(f"/api/bookings/{ids[1]}", headers=expert_headers, json={"action": "decline"}).get_json()["booking"]["status"] == "declined"
    cancelled = client.patch(f"/api/bookings/{ids[2]}", headers=auth(app, customer), json={"action": "cancel", "reason": "Travel"})
    assert cancelled.get_json()["booking"]["cancelReason"] == "Travel"
    assert client.patch(f"/api/bookings/{ids[2]}", headers=auth(app, customer), json={"action": "explode"}).status_code == 422
    mine = client.get("/api/bookings", headers=auth(app, customer)).get_json()["bookings"]
    assert [(b["id"], b["status"], b["role"]) for b in mine] == [(ids[0], "confirmed", "customer"), (ids[1], "declined", "customer"), (ids[2], "cancelled", "customer")]
    theirs = client.get("/api/bookings", headers=expert_headers).get_json()["bookings"]
    assert {b["role"] for b in theirs} == {"expert"} and len(theirs) == 3
    assert client.get("/api/bookings", headers=auth(app, stranger)).get_json()["bookings"] == []
