"""Builders of test data. They write straight to the database, so tests set up state fast,
while the behaviour under test always goes through the services and views."""
from __future__ import annotations

import itertools
from functools import lru_cache

from flask import Flask

from expertbook.auth import service as accounts
from expertbook.auth.models import User
from expertbook.clinic.models import Hospital
from expertbook.extensions import db

PASSWORD = "correct horse battery"
_counter = itertools.count(1)


@lru_cache(maxsize=1)
def _password_hash() -> str:
    # Argon2 is deliberately slow; hash the shared test password once.
    return accounts.hash_password(PASSWORD)


def make_hospital(name: str = "City General Hospital", location: str = "Chennai") -> Hospital:
    hospital = Hospital(name=name, location=location)
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
) -> User:
    n = next(_counter)
    user = User(
        name=name or f"Test User {n}",
        email=(email or f"user{n}@example.com").lower(),
        password_hash=_password_hash(),
        is_expert=is_expert,
        hospital_id=hospital.id if hospital else None,
        is_staff_admin=staff_admin,
    )
    db.session.add(user)
    db.session.commit()
    return user


def make_staff(hospital: Hospital | None = None, admin: bool = True, **kwargs) -> User:
    return make_user(hospital=hospital or make_hospital(), staff_admin=admin, **kwargs)


def login(client, user: User) -> str:
    """Log ``client`` in as ``user`` through a real server-side session; returns the session token."""
    token = accounts.start_session(user.id)
    with client.session_transaction() as session:
        session["_user_id"] = token
        session["_fresh"] = True
    return token


def login_via_form(client, email: str, password: str = PASSWORD, next: str = ""):
    """Log in through the login form, as a person would."""
    return client.post_form("/login", {"email": email, "password": password, "next": next})


def session_cookie(client, app: Flask) -> str | None:
    cookie = client.get_cookie(app.config.get("SESSION_COOKIE_NAME", "session"))
    return cookie.value if cookie else None


# ---------------------------------------------------------------------------- clinic

from datetime import UTC, date, datetime, time, timedelta  # noqa: E402

from expertbook.clinic.models import Appointment, Doctor, Slot  # noqa: E402
from expertbook.database import utcnow  # noqa: E402


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
        users.append(User(name=f"Patient {n}", email=f"patient{n}@example.com", password_hash=_password_hash(), is_expert=False, is_staff_admin=False))
    db.session.add_all(users)
    db.session.commit()
    return users
