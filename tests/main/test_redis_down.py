"""Redis down must not break anything on the request path: logins (form and API), clinic and expert
bookings and their cancellations all succeed; the limiter counts in memory and says so once; /healthz
says degraded. With a real redis-server of the test's own, stopped and started again."""
from __future__ import annotations

import logging
import time

import pytest
from sqlalchemy import func, select

from expertbook.clinic.models import Appointment
from expertbook.experts.models import Booking
from expertbook.extensions import db, limiter
from tests import factories
from tests.experts.helpers import next_weekday_at
from tests.factories import PASSWORD, login_via_form, make_expert, make_service, make_slot, make_user

FALLING_BACK = "falling back to in-memory storage"


@pytest.fixture(autouse=True)
def _limiter_reset():
    yield
    # The limiter is one object for every app of the test run; leave it as the next test expects.
    limiter._storage_dead = False


@pytest.fixture
def app_config(redis_server) -> dict:
    """The app as in production with Redis: jobs queued in Redis, throttling counted in Redis."""
    return {"REDIS_URL": redis_server.url, "RATELIMIT_STORAGE_URI": redis_server.url, "RUN_JOBS_INLINE": False}


def bearer(app, user) -> dict:
    return factories.bearer(user)


def test_logins_bookings_and_cancellations_work_while_redis_is_down(app, client, make_client, redis_server, caplog):
    patient = make_user(email="patient@example.com")
    slot = make_slot()
    expert = make_expert(timezone="Europe/London")
    video = make_service(expert)  # a video service: confirming it queues a meeting job
    start = next_weekday_at(10)
    db.session.rollback()

    # With Redis up the limiter counts there, and health is ok.
    assert client.post("/api/auth/login", json={"email": patient.email, "password": PASSWORD}).status_code == 200
    assert client.get("/healthz").get_json() == {"status": "ok", "database": "ok", "redis": "ok", "rateLimits": "ok", "workers": "ok"}

    redis_server.stop()
    caplog.set_level(logging.INFO)

    # Logins: a wrong password is still refused (401, counted in memory), the right one works, by API and form.
    wrong = client.post("/api/auth/login", json={"email": patient.email, "password": "not the password"})
    assert wrong.status_code == 401
    api_login = client.post("/api/auth/login", json={"email": patient.email, "password": PASSWORD})
    assert api_login.status_code == 200, api_login.get_data(as_text=True)
    browser = make_client()
    form_login = login_via_form(browser, patient.email)
    assert form_login.status_code in (302, 303) and browser.get("/profile").status_code == 200

    # A clinic booking and its cancellation (its emails wait in the outbox for the relay).
    headers = {"Authorization": "Bearer " + api_login.get_json()["token"]}
    booked = client.post("/api/appointments", json={"slotId": slot.id, "patientName": "Asha", "contactNumber": "9876543210"}, headers=headers)
    assert booked.status_code == 201, booked.get_data(as_text=True)
    appointment_id = booked.get_json()["appointment"]["appointmentId"]
    cancelled = client.post(f"/api/appointments/{appointment_id}/cancel", headers=headers)
    assert cancelled.status_code == 200 and cancelled.get_json()["appointment"]["status"] == "cancelled"

    # An expert video booking (a meeting job and emails to queue) and its cancellation.
    made = client.post("/api/bookings", json={"serviceId": video.id, "start": start.isoformat()}, headers=headers)
    assert made.status_code == 201, made.get_data(as_text=True)
    booking_id = made.get_json()["booking"]["id"]
    undone = client.patch(f"/api/bookings/{booking_id}", json={"action": "cancel"}, headers=headers)
    assert undone.status_code == 200 and undone.get_json()["booking"]["status"] == "cancelled"

    # The clinic booking page, for a person with a browser session.
    page = browser.get(f"/clinic/slots/{slot.id}")
    assert page.status_code == 200

    health = client.get("/healthz")
    assert health.status_code == 200
    body = health.get_json()
    assert body["status"] == "degraded" and body["degraded"] == ["redis", "rateLimits"]
    assert body["rateLimits"] == "fallback: per-process memory"
    # The switch to memory is logged once, however many requests it served.
    assert sum(FALLING_BACK in record.getMessage() for record in caplog.records) == 1

    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Appointment)) == 1
    assert db.session.scalar(select(Booking.status).where(Booking.id == booking_id)) == "cancelled"

    # Redis comes back (empty): the limiter notices at its next check and counts there again. A worker
    # comes back too (its heartbeat): the emails waiting meanwhile are due, and /healthz wants one alive.
    redis_server.start()
    from redis import Redis

    from expertbook import observability

    observability.beat(Redis.from_url(redis_server.url))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and client.get("/healthz").get_json()["status"] != "ok":
        client.post("/api/auth/login", json={"email": patient.email, "password": PASSWORD})
        time.sleep(0.25)
    assert client.get("/healthz").get_json() == {"status": "ok", "database": "ok", "redis": "ok", "rateLimits": "ok", "workers": "ok"}


def test_the_login_throttle_still_holds_per_process_while_redis_is_down(app, client, redis_server):
    """Falling back to memory keeps the limit (in this process), rather than dropping it."""
    app.config["LOGIN_LIMIT_PER_ACCOUNT"] = "3 per minute"
    user = make_user(email="target@example.com")
    db.session.rollback()
    redis_server.stop()
    answers = [client.post("/api/auth/login", json={"email": user.email, "password": "wrong password!"}).status_code for _ in range(4)]
    assert answers == [401, 401, 401, 429]
