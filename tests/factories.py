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
