"""Account rules: registration, credentials, server-side sessions and roles."""
from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from flask import current_app
from sqlalchemy import delete, select, update

from expertbook.auth.models import LoginSession, User
from expertbook.database import transaction, utcnow
from expertbook.errors import Conflict, NotFound, ValidationFailed
from expertbook.extensions import db

# Argon2id with argon2-cffi's defaults (RFC 9106 low-memory: t=3, m=64 MiB, p=4), above OWASP's floor.
hasher = PasswordHasher()
# Verified against when the email is unknown, so both failures cost the same time.
_DUMMY_HASH = hasher.hash(secrets.token_urlsafe(16))

MIN_PASSWORD = 10
MAX_PASSWORD = 128
MAX_EMAIL = 254  # the longest address SMTP carries (and the column holds)


def normalise_email(email: str) -> str:
    """Validate an address and return its canonical, lower-case form; raise ValidationFailed if invalid."""
    email = (email or "").strip()
    if any(ch in email for ch in "\r\n,;"):
        raise ValidationFailed({"email": "Enter a single email address."})
    try:
        result = validate_email(email, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValidationFailed({"email": str(exc)}) from None
    return result.normalized.lower()


def clean_name(name: str, field: str = "name") -> str:
    """A display name, stripped, 1-120 characters, with no control characters."""
    name = " ".join((name or "").split())
    if not name:
        raise ValidationFailed({field: "Please enter a name."})
    if len(name) > 120:
        raise ValidationFailed({field: "Keep it under 120 characters."})
    if any(ord(ch) < 0x20 for ch in name):
        raise ValidationFailed({field: "The name contains characters that are not allowed."})
    return name


def clean_person_name(name: str, field: str = "name") -> str:
    """A person's name: :func:`clean_name`'s rules, and those of an email's To: header, where our
    emails put it (no "<", ">" or "@": someone typing their address as their name). Every way in
    (registration form, API, expert booking) refuses what the outbox would later refuse to send."""
    from expertbook.notifications.service import name_problem

    name = clean_name(name, field)
    problem = name_problem(name)
    if problem:
        raise ValidationFailed({field: problem})
    return name


def check_password_strength(password: str, field: str = "password") -> None:
    """Refuse passwords that are too short or too long."""
    if len(password or "") < MIN_PASSWORD:
        raise ValidationFailed({field: f"Use at least {MIN_PASSWORD} characters."})
    if len(password) > MAX_PASSWORD:
        raise ValidationFailed({field: f"Use at most {MAX_PASSWORD} characters."})


def hash_password(password: str) -> str:
    """Hash a password with Argon2id."""
    return hasher.hash(password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _account_fields(name: str, email: str, password: str) -> dict:
    """A new account's checked columns. Argon2 runs here, before any transaction: on SQLite a
    transaction holds the database's write lock, and a hash takes about a tenth of a second."""
    name = clean_person_name(name)
    email = normalise_email(email)
    check_password_strength(password)
    return {"name": name, "email": email, "password_hash": hash_password(password)}


def _new_user(fields: dict) -> User:
    if db.session.scalar(select(User.id).where(User.email == fields["email"])) is not None:
        raise ValidationFailed({"email": "An account with this email already exists. Log in instead."})
    user = User(**fields)
    db.session.add(user)
    return user


def register_user(name: str, email: str, password: str) -> User:
    """Create a patient/customer account."""
    fields = _account_fields(name, email, password)
    with transaction():
        user = _new_user(fields)
    return user


def authenticate(email: str, password: str) -> User | None:
    """The user with these credentials, or None; unknown emails and wrong passwords look the same."""
    try:
        email = normalise_email(email)
    except ValidationFailed:
        email = ""
    user = db.session.scalar(select(User).where(User.email == email)) if email else None
    if user is None:
        _verify(_DUMMY_HASH, password or "")
        return None
    if not _verify(user.password_hash, password or ""):
        return None
    if hasher.check_needs_rehash(user.password_hash):
        rehashed = hash_password(password)  # outside the transaction, like every hash
        with transaction():
            fresh = db.session.get(User, user.id)
            fresh.password_hash = rehashed
    return user


def _token_hash(token: str) -> str:
    # Only a hash is stored, so a copy of the database holds no usable session.
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(user_id: int) -> str:
    """Open a server-side login session for ``user_id`` and return its secret token."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    with transaction():
        # As long as the session cookie (SESSION_DAYS), so one setting decides how long a login lasts.
        expires_at = now + current_app.permanent_session_lifetime
        db.session.add(LoginSession(token_hash=_token_hash(token), user_id=user_id, created_at=now, expires_at=expires_at))
    return token


def user_for_session(token: str | None) -> User | None:
    """The user of a live login session, or None if it ended or expired."""
    if not token:
        return None
    login = db.session.scalar(select(LoginSession).where(LoginSession.token_hash == _token_hash(token)))
    if login is None or login.expires_at <= utcnow():
        return None
    user = login.user
    user.session_token = token
    return user


def end_session(token: str | None) -> None:
    """End one login session; a copy of its cookie is worthless afterwards."""
    if not token:
        return
    with transaction():
        db.session.execute(delete(LoginSession).where(LoginSession.token_hash == _token_hash(token)))


def change_password(user_id: int, current: str, new: str) -> str:
    """Change a password, end every session of the user, and return a fresh session token."""
    check_password_strength(new, field="new_password")
    wrong = ValidationFailed({"current_password": "That is not your current password."})
    # Argon2 (verify, then hash) runs before the transaction, which would hold SQLite's write lock.
    old_hash = db.session.scalar(select(User.password_hash).where(User.id == user_id))
    if old_hash is None:
        raise NotFound("User not found")
    if not _verify(old_hash, current or ""):
        raise wrong
    new_hash = hash_password(new)
    with transaction():
        # Only if the password is still the one just verified (a concurrent change wins otherwise).
        changed = db.session.execute(
            update(User).where(User.id == user_id, User.password_hash == old_hash).values(password_hash=new_hash)
        ).rowcount
        if changed != 1:
            raise wrong
        db.session.execute(delete(LoginSession).where(LoginSession.user_id == user_id))
    return start_session(user_id)


def become_expert(user_id: int, display_name: str, headline: str, bio: str, handle: str, timezone: str) -> User:
    """Give a user the expert role together with a public expert profile and default weekly hours."""
    from expertbook.experts import service as experts

    with transaction():
        experts.create_profile(user_id, display_name, headline, bio, handle, timezone)
        user = db.session.get(User, user_id)
    return user


def register_hospital(hospital_name: str, location: str, name: str, email: str, password: str) -> User:
    """Register a hospital together with its first staff admin; returns the admin."""
    from expertbook.clinic.models import Hospital

    hospital_name = clean_name(hospital_name, "hospital_name")
    location = clean_name(location, "location")
    fields = _account_fields(name, email, password)
    with transaction():
        hospital = Hospital(name=hospital_name, location=location)
        db.session.add(hospital)
        user = _new_user(fields)
        user.hospital = hospital
        user.is_staff_admin = True
    return user


def add_staff(admin_id: int, email: str, make_admin: bool = False) -> User:
    """Let a staff admin add an existing account, by email, to the admin's hospital."""
    email = normalise_email(email)
    with transaction():
        admin = db.session.get(User, admin_id)
        if admin is None or not admin.is_staff_admin or admin.hospital_id is None:
            raise NotFound("Not found")
        user = db.session.scalar(select(User).where(User.email == email).with_for_update(of=User))
        if user is None:
            raise ValidationFailed({"email": "No account uses this email yet. Ask them to register first, then add them."})
        if user.hospital_id == admin.hospital_id:
            raise Conflict(f"{user.name} is already on your staff.")
        if user.hospital_id is not None:
            raise Conflict("This person already works for another hospital.")
        user.hospital_id = admin.hospital_id
        user.is_staff_admin = make_admin
    return user


def staff_of(hospital_id: int) -> list[User]:
    """The staff of one hospital, admins first."""
    return list(
        db.session.scalars(
            select(User).where(User.hospital_id == hospital_id).order_by(User.is_staff_admin.desc(), User.name)
        )
    )
