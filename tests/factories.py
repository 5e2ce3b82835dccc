"""Builders of test data. They write straight to the database, so tests set up state fast,
while the behaviour under test always goes through the services and views."""
from __future__ import annotations

import itertools
from functools import lru_cache

from flask import Flask

from expertbook.auth import service as accounts
from expertbook.auth import sessions
from expertbook.auth.models import User
from expertbook.clinic.models import Hospital
from expertbook.database import utcnow
from expertbook.extensions import db

PASSWORD = "correct horse battery"
_counter = itertools.count(1)


@lru_cache(maxsize=1)
def _password_hash() -> str:
    # Argon2 is deliberately slow; hash the shared test password once.
    return accounts.hash_password(PASSWORD)


def make_hospital(name: str = "City General Hospital", location: str = "Chennai", *, published: bool = True) -> Hospital:
    """A hospital; published (its slots shown to patients) unless said otherwise."""
    hospital = Hospital(name=name, location=location, published=published)
    db.session.add(hospital)
    db.session.commit()
    return hospital


def make_user(
    name: str | None = None,
    email: str | None = None,
    *,
    is_expert: bool = False,
    hospital: Hospital | None = None,
    staff_admin: bool = False,
    verified: bool = True,
) -> User:
    """An account; its email address is verified unless ``verified=False``."""
    n = next(_counter)
    user = User(
        name=name or f"Test User {n}",
        email=(email or f"user{n}@example.com").lower(),
        password_hash=_password_hash(),
        is_expert=is_expert,
        hospital_id=hospital.id if hospital else None,
        is_staff_admin=staff_admin,
        email_verified_at=utcnow() if verified else None,
    )
    db.session.add(user)
    db.session.commit()
    return user


def make_staff(hospital: Hospital | None = None, admin: bool = True, **kwargs) -> User:
    return make_user(hospital=hospital or make_hospital(), staff_admin=admin, **kwargs)


def login(client, user: User) -> str:
    """Log ``client`` in as ``user`` through a real server-side session; returns the session token."""
    token = sessions.start_session(user.id)
    with client.session_transaction() as session:
        session["_user_id"] = token
        session["_fresh"] = True
    return token


def api_token(user: User, hours: float = 1) -> str:
    """A bearer token for ``user``, with its login session, as ``POST /api/auth/login`` gives one."""
    from flask import current_app

    from expertbook.api import service as api

    expires_at = api.expiry(hours)
    session_id = sessions.start_api_session(user.id, expires_at)
    return api.issue_token(user.id, session_id, current_app.config["SECRET_KEY"], expires_at)


def bearer(user: User, hours: float = 1) -> dict:
    """The Authorization header of a fresh bearer token for ``user``."""
    return {"Authorization": f"Bearer {api_token(user, hours)}"}


def login_via_form(client, email: str, password: str = PASSWORD, next: str = ""):
    """Log in through the login form, as a person would."""
    return client.post_form("/login", {"email": email, "password": password, "next": next})


def session_cookie(client, app: Flask) -> str | None:
    cookie = client.get_cookie(app.config.get("SESSION_COOKIE_NAME", "session"))
    return cookie.value if cookie else None


# ---------------------------------------------------------------------------- video


def make_expert_user(**kwargs) -> User:
    """An expert (with a profile), as the user account the video code works with."""
    return make_expert(**kwargs).user


def connect_zoom(client, standin_url: str):
    """Run the whole Zoom OAuth flow for the logged-in ``client`` against a stand-in, as a browser would:
    our /video/zoom/connect → the stand-in's authorize (auto-approve) → our callback. Returns the callback answer."""
    import requests
    from urllib.parse import urlsplit

    start = client.get("/video/zoom/connect")
    assert start.status_code == 302, start.status_code
    authorize_url = start.headers["Location"]
    assert authorize_url.startswith(standin_url + "/oauth/authorize?")
    back = requests.get(authorize_url, allow_redirects=False, timeout=10)
    assert back.status_code == 302, back.text
    target = urlsplit(back.headers["Location"])
    return client.get(f"{target.path}?{target.query}")
# ---------------------------------------------------------------------------- notifications


def make_admin(**kwargs) -> User:
    """A site administrator (sees /notifications)."""
    user = make_user(**kwargs)
    user.is_admin = True
    db.session.commit()
    return user


def queue_notice(to_email: str = "someone@example.com", to_name: str = "Some One", *, dedupe_key: str | None = None,
                 message: str = "Your appointment is confirmed.", ics: str | None = None, subject: str = "A notice") -> int | None:
    """Queue a generic notice through the real service, in its own transaction; returns the outbox id."""
    from expertbook.database import transaction
    from expertbook.notifications.service import queue_email

    with transaction():
        return queue_email(
            "notice", to_email, to_name, "notice",
            {"heading": "Hello", "message": message, "action_url": "http://testserver.example/x", "action_label": "Open"},
            subject=subject, ics=ics, dedupe_key=dedupe_key,
        )
# ---------------------------------------------------------------------------- experts


def make_expert(
    name: str | None = None,
    *,
    handle: str | None = None,
    timezone: str = "Europe/London",
    hours: dict | None = None,
    **user_kwargs,
):
    """An expert (user + profile) with weekly hours (default Mon-Fri 08:00-17:00)."""
    from datetime import time

    from expertbook.experts.models import ExpertProfile, WeeklyHours

    user = make_user(name, is_expert=True, **user_kwargs)
    profile = ExpertProfile(
        user_id=user.id,
        display_name=user.name,
        headline="Test expert",
        bio="",
        handle=handle or f"expert-{user.id}",
        timezone=timezone,
    )
    db.session.add(profile)
    db.session.flush()
    week = hours if hours is not None else {d: [(time(8), time(17))] for d in range(5)}
    for weekday, ranges in week.items():
        for start, end in ranges:
            db.session.add(WeeklyHours(expert_id=profile.id, weekday=weekday, start_time=start, end_time=end))
    db.session.commit()
    return profile


def make_service(expert, title: str = "Consultation", **fields):
    """A bookable service of ``expert`` (a profile); 60 minutes, no notice, no buffers unless given."""
    from expertbook.experts.models import Service

    values = dict(
        title=title,
        slug=fields.pop("slug", None) or f"{title.lower().replace(' ', '-')}-{next(_counter)}",
        description="",
        duration_min=60,
        price_cents=10000,
        currency="USD",
        location_kind="video",
        location_detail="",
        requires_acceptance=False,
        buffer_before_min=0,
        buffer_after_min=0,
        min_notice_min=0,
        horizon_days=365,
        hidden=False,
    )
    values.update(fields)
    service = Service(expert_id=expert.id, **values)
    db.session.add(service)
    db.session.commit()
    return service
# ---------------------------------------------------------------------------- clinic

from datetime import UTC, date, datetime, time, timedelta  # noqa: E402

from expertbook.clinic.models import Appointment, Doctor, Slot  # noqa: E402


def make_doctor(hospital: Hospital, name: str = "Dr. Sharma", specialization: str = "Cardiology") -> Doctor:
    doctor = Doctor(hospital_id=hospital.id, name=name, specialization=specialization)
    db.session.add(doctor)
    db.session.commit()
    return doctor


def make_slot(
    hospital: Hospital | None = None,
    doctor: Doctor | None = None,
    *,
    day: date | None = None,
    start: time = time(9, 0),
    end: time = time(12, 0),
    capacity: int = 10,
    booked: int = 0,
    closed: bool = False,
    days_ahead: int = 1,
) -> Slot:
    """A slot in the hospital's zone (``days_ahead`` from today unless ``day`` is given); ``booked`` only sets counters."""
    from zoneinfo import ZoneInfo

    hospital = hospital or (doctor.hospital if doctor else make_hospital())
    doctor = doctor or make_doctor(hospital)
    tz = ZoneInfo(hospital.timezone or "Asia/Kolkata")
    day = day or (utcnow().astimezone(tz).date() + timedelta(days=days_ahead))
    slot = Slot(
        hospital_id=hospital.id,
        doctor_id=doctor.id,
        date=day,
        start_time=start,
        end_time=end,
        starts_at=datetime.combine(day, start, tzinfo=tz).astimezone(UTC),
        ends_at=datetime.combine(day, end, tzinfo=tz).astimezone(UTC),
        capacity=capacity,
        booked_count=booked,
        tokens_issued=booked,
        closed=closed,
        version=1,
    )
    db.session.add(slot)
    db.session.commit()
    return slot


def make_appointment(slot: Slot, user: User, *, patient_name: str = "Ravi Patel", contact: str = "9876543210", status: str = "booked") -> Appointment:
    """An appointment written straight to the database, taking the slot's next token."""
    slot.tokens_issued += 1
    if status != "cancelled":
        slot.booked_count += 1
    appointment = Appointment(
        slot_id=slot.id, user_id=user.id, patient_name=patient_name, contact_number=contact,
        token_number=100 + slot.tokens_issued, status=status,
    )
    db.session.add(appointment)
    db.session.commit()
    return appointment


def make_users(count: int) -> list[User]:
    """Many users in one commit (for the race tests)."""
    users = []
    for _ in range(count):
        n = next(_counter)
        users.append(User(name=f"Patient {n}", email=f"patient{n}@example.com", password_hash=_password_hash(), is_expert=False, is_staff_admin=False, email_verified_at=utcnow()))
    db.session.add_all(users)
    db.session.commit()
    return users


def make_move_race(movers: int = 20, places: int = 3):
    """The setting of the "moves into a nearly full session" race: a target session with ``places``
    places, and ``movers`` patients each holding an appointment with the same doctor in one of two
    other sessions. Returns (target, the movers' appointments, {appointment id: (slot id, token)})."""
    target = make_slot(capacity=places, start=time(15), end=time(17))
    sources = [make_slot(doctor=target.doctor, capacity=movers, days_ahead=d) for d in (2, 3)]
    old = [make_appointment(sources[i % 2], u) for i, u in enumerate(make_users(movers))]
    return target, old, {a.id: (a.slot_id, a.token_number) for a in old}


# ---------------------------------------------------------------------------- webhooks


def make_webhook(staff_or_expert_user: User, url: str = "https://93.184.215.14/hooks/expertbook", *, history: bool = True):
    """A subscription of the user's hospital (a staff admin) or of the expert, with a delivery log written
    straight to the database (one event delivered on its second try, one failed for good, one waiting)."""
    from datetime import timedelta as _timedelta

    from expertbook.webhooks import events, service
    from expertbook.webhooks.models import WebhookAttempt, WebhookDelivery

    user = staff_or_expert_user
    owner = service.Owner(events.HOSPITAL, user.hospital_id) if user.hospital_id else service.Owner(events.EXPERT, user.id)
    names = [event.name for event in events.events_for(owner.kind)][:3]
    subscription, _ = service.create(owner, url, names, "Hospital information system" if user.hospital_id else "My CRM")
    if history:
        now = utcnow()
        for n, (status, codes) in enumerate((("delivered", [503, 200]), ("failed", [500, 500, 500]), ("pending", [502]))):
            row = WebhookDelivery(subscription_id=subscription.id, event_type=names[n % len(names)], ref_id=n + 1,
                                  payload='{"type":"x","timestamp":"2026-01-01T00:00:00Z","data":{}}', message_id=f"msg_test{n}{subscription.id}",
                                  status=status, attempts=len(codes), next_attempt_at=now + _timedelta(minutes=5),
                                  give_up_at=now + _timedelta(hours=24), occurred_at=now - _timedelta(minutes=10 * n),
                                  last_status=codes[-1], delivered_at=now if status == "delivered" else None)
            db.session.add(row)
            db.session.flush()
            for attempt, code in enumerate(codes, 1):
                db.session.add(WebhookAttempt(delivery_id=row.id, attempt=attempt, started_at=now, duration_ms=40 * attempt,
                                              status_code=code, error=None if code < 300 else f"HTTP {code}",
                                              response_excerpt="ok" if code < 300 else "Service unavailable: the HMIS is restarting"))
        db.session.commit()
    return subscription
