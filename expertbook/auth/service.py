"""Account rules: registration, credentials, password reset, email verification, roles, and the
account's data (export and deletion).

Login sessions and API tokens are in :mod:`expertbook.auth.sessions`, one-time email tokens in
:mod:`expertbook.auth.tokens`, the emails in :mod:`expertbook.auth.emails`. ``auth`` imports no area:
areas plug their records into export and deletion with :func:`register_account_data_source`,
:func:`register_account_deletion_check` and :func:`register_account_deletion_hook`, and react to a
verified address through :data:`expertbook.auth.signals.email_verified`.
"""
from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from flask import current_app
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from expertbook.auth import emails, sessions, signals, tokens
from expertbook.auth.models import RESET, VERIFY, User
from expertbook.database import transaction, utcnow
from expertbook.errors import Conflict, NotFound, ServiceError, ValidationFailed
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


def account_fields(name: str, email: str, password: str) -> dict:
    """A new account's checked columns. Argon2 runs here, before any transaction: on SQLite a
    transaction holds the database's write lock, and a hash takes about a tenth of a second."""
    name = clean_person_name(name)
    email = normalise_email(email)
    check_password_strength(password)
    return {"name": name, "email": email, "password_hash": hash_password(password)}


def user_by_id(user_id: int) -> User | None:
    """The account with this id, read afresh."""
    return db.session.get(User, user_id, populate_existing=True)


def _user_by_email(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == email))


def register_account(
    name: str, email: str, password: str, *, setup: Callable[[User], None] | None = None, verified: bool = False
) -> User | None:
    """Create an account, or, if the address has one already, tell its owner by email. The caller answers
    both the same way ("check your email"), so registration never reveals which addresses have accounts.

    Every input is checked (ValidationFailed) before the address is looked up, so bad input is refused
    alike for new and taken addresses. ``setup(user)`` runs in the new account's transaction (the
    clinic's hospital registration makes the account its first staff admin there). A new account gets a verification email, unless
    ``verified`` (the demo's accounts). Returns the new account, or None when the address was taken.
    """
    fields = account_fields(name, email, password)
    try:
        with transaction():
            existing = _user_by_email(fields["email"])
            if existing is not None:
                emails.registration_attempt(existing)
                return None
            user = User(**fields)
            db.session.add(user)
            db.session.flush()
            if setup is not None:
                setup(user)
                db.session.flush()
            if verified:
                _mark_verified(user)
            else:
                _send_verification(user)
    except IntegrityError:
        # Another registration of the same address committed between our look and our insert.
        existing = _user_by_email(fields["email"])
        if existing is None:
            raise
        with transaction():
            emails.registration_attempt(existing)
        return None
    return user


def register_user(name: str, email: str, password: str, *, verified: bool = False) -> User | None:
    """Create a patient/customer account (see :func:`register_account`)."""
    return register_account(name, email, password, verified=verified)


def authenticate(email: str, password: str) -> User | None:
    """The user with these credentials, or None; unknown emails and wrong passwords look the same."""
    try:
        email = normalise_email(email)
    except ValidationFailed:
        email = ""
    user = _user_by_email(email) if email else None
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


def _checked_password(user_id: int, password: str, wrong: ValidationFailed) -> str:
    """The user's password hash, once ``password`` is verified against it (before any transaction:
    Argon2 would hold SQLite's write lock); raises ``wrong`` otherwise."""
    password_hash = db.session.scalar(select(User.password_hash).where(User.id == user_id))
    if password_hash is None:
        raise NotFound("User not found")
    if not _verify(password_hash, password or ""):
        raise wrong
    return password_hash


def _set_password(user_id: int, old_hash: str, new_hash: str) -> bool:
    """Replace the password, only if it is still ``old_hash`` (a concurrent change wins otherwise)."""
    return db.session.execute(
        update(User).where(User.id == user_id, User.password_hash == old_hash).values(password_hash=new_hash)
    ).rowcount == 1


def change_password(user_id: int, current: str, new: str) -> None:
    """Change a password; every login session and API token of the user ends (the caller opens a new
    session for the browser that made the change), and the owner gets a notice by email."""
    check_password_strength(new, field="new_password")
    wrong = ValidationFailed({"current_password": "That is not your current password."})
    # Argon2 (verify, then hash) runs before the transaction, which would hold SQLite's write lock.
    old_hash = _checked_password(user_id, current, wrong)
    new_hash = hash_password(new)
    with transaction():
        if not _set_password(user_id, old_hash, new_hash):
            raise wrong
        sessions.end_all(user_id)
        emails.password_changed(db.session.get(User, user_id), "changed")


# ---------------------------------------------------------------------------- password reset


class InvalidToken(ServiceError):
    """A one-time token that is wrong, expired, already used or no longer bound (400; one message for all)."""

    status = 400

    def __init__(self) -> None:
        super().__init__(tokens.INVALID)


def request_password_reset(email: str) -> None:
    """Email a reset link to the account of ``email``, if there is one; otherwise do nothing.

    The caller answers the same either way (and pads the time, see :func:`steady`). A new link
    replaces any earlier one. Raises ValidationFailed only for an address that is not one.
    """
    email = normalise_email(email)
    with transaction():
        user = _user_by_email(email)
        if user is None:
            return
        lifetime = timedelta(minutes=current_app.config["PASSWORD_RESET_MINUTES"])
        emails.password_reset(user, tokens.issue(user, RESET, lifetime))


def token_is_valid(secret: str | None, purpose: str) -> bool:
    """Whether ``secret`` is a live token of ``purpose`` (``RESET`` or ``VERIFY``): its page shows the form only then."""
    found = tokens.holder(secret, purpose) is not None
    db.session.rollback()
    return found


def reset_password(secret: str | None, new_password: str, field: str = "password") -> int:
    """Set a new password with a reset token; returns the account's id.

    The token is used up, every login session and API token of the account ends, the owner gets a
    notice, and (the link reached the mailbox) the address counts as verified. Raises ValidationFailed
    for a password that is too short or long (nothing changes, the token stays usable) and
    :class:`InvalidToken` for a token that is wrong, expired, used, or older than the current password.
    """
    check_password_strength(new_password, field=field)
    found = tokens.holder(secret, RESET)
    if found is None:
        raise InvalidToken()
    user_id, old_hash = found[1].id, found[1].password_hash
    new_hash = hash_password(new_password)  # before the transaction (SQLite's write lock)
    with transaction():
        found = tokens.holder(secret, RESET, lock=True)
        if found is None or found[1].id != user_id:
            raise InvalidToken()
        db.session.delete(found[0])
        if not _set_password(user_id, old_hash, new_hash):
            raise InvalidToken()  # the password changed since the token was checked
        user = db.session.get(User, user_id, populate_existing=True)
        if user.email_verified_at is None:
            _mark_verified(user)
        sessions.end_all(user_id)
        emails.password_changed(user, "reset")
    return user_id


# ---------------------------------------------------------------------------- email verification


def _publishes(user: User) -> bool:
    return bool(user.is_expert or user.is_staff_admin)


def _send_verification(user: User) -> None:
    lifetime = timedelta(days=current_app.config["EMAIL_VERIFICATION_DAYS"])
    emails.verify_email(user, tokens.issue(user, VERIFY, lifetime), publishes=_publishes(user))


def _mark_verified(user: User) -> None:
    user.email_verified_at = utcnow()
    db.session.flush()
    signals.email_verified.send(current_app._get_current_object(), user_id=user.id)


def resend_verification(user_id: int) -> bool:
    """Send a fresh verification link (the earlier one stops working); False if already verified."""
    with transaction():
        user = db.session.get(User, user_id, populate_existing=True)
        if user is None:
            raise NotFound("User not found")
        if user.email_verified_at is not None:
            return False
        _send_verification(user)
    return True


def verify_email(secret: str | None) -> int:
    """Mark the address of the token's account verified and use the token up; returns the account's id.

    Raises :class:`InvalidToken` for a token that is wrong, expired, used or issued for another address.
    """
    with transaction():
        found = tokens.holder(secret, VERIFY, lock=True)
        if found is None:
            raise InvalidToken()
        token, user = found
        db.session.delete(token)
        if user.email_verified_at is None:
            _mark_verified(user)
    return user.id


def purge_expired() -> int:
    """Delete expired login sessions, API tokens' sessions and one-time tokens (a relay hook: the worker's tick)."""
    with transaction():
        return sessions.purge_expired() + tokens.purge_expired()


# ---------------------------------------------------------------------------- answering alike


@contextmanager
def steady(seconds: float) -> Iterator[None]:
    """Make the enclosed work take at least ``seconds``, so an answer's time does not tell whether an
    account exists (the work differs: a token and an email, or nothing)."""
    started = time.monotonic()
    try:
        yield
    finally:
        remaining = seconds - (time.monotonic() - started)
        if remaining > 0:
            time.sleep(remaining)


# ---------------------------------------------------------------------------- the account's data


AccountDataSource = Callable[[int], Mapping[str, Any]]
DeletionCheck = Callable[[int], "str | None"]
DeletionHook = Callable[[int], None]
_data_sources: list[AccountDataSource] = []
_deletion_checks: list[DeletionCheck] = []
_deletion_hooks: list[DeletionHook] = []


def register_account_data_source(source: AccountDataSource) -> AccountDataSource:
    """Add ``source(user_id) -> {section: data}`` to "Download my data" (an area's records of the account).

    Areas register at app creation (``auth`` knows no area); data must be JSON-serialisable.
    """
    if source not in _data_sources:
        _data_sources.append(source)
    return source


def register_account_deletion_check(check: DeletionCheck) -> DeletionCheck:
    """Add ``check(user_id)``: a message saying what the user must do before the account can go, or None.

    Checks run when the page is shown and again inside the deletion's transaction (which has locked
    the user's row), so they may lock what they count.
    """
    if check not in _deletion_checks:
        _deletion_checks.append(check)
    return check


def register_account_deletion_hook(hook: DeletionHook) -> DeletionHook:
    """Add ``hook(user_id)``, run inside the deletion's transaction before the account's row goes: it
    cancels what is still to come, anonymises what others must keep and deletes the rest of its area's rows."""
    if hook not in _deletion_hooks:
        _deletion_hooks.append(hook)
    return hook


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def account_data(user_id: int) -> dict[str, Any]:
    """Everything held about the account, as JSON-ready data: the account, its sessions, the emails sent
    to its address, and each area's sections (appointments, bookings, services, ...)."""
    from expertbook.notifications.service import emails_to

    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound("User not found")
    data: dict[str, Any] = {
        "exportedAt": utcnow().isoformat(),
        "account": {
            "id": user.id,
            "name": user.name,
            "email": user.email,
            "emailVerified": user.email_verified,
            "emailVerifiedAt": _iso(user.email_verified_at),
            "createdAt": _iso(user.created_at),
            "roles": user.role_names,
            "siteAdmin": user.is_admin,
        },
        "sessions": [
            {
                "kind": row.kind,
                "device": sessions.device_label(row.user_agent),
                "userAgent": row.user_agent,
                "ipPrefix": row.ip_prefix,
                "firstSeen": _iso(row.created_at),
                "lastSeen": _iso(row.last_seen_at),
                "expiresAt": _iso(row.expires_at),
            }
            for row in sessions.sessions_of(user_id)
        ],
        "emails": emails_to(user.email),
    }
    for source in list(_data_sources):
        data.update(source(user_id))
    return data


def deletion_blockers(user_id: int) -> list[str]:
    """What the user must do before the account can be deleted (empty: nothing)."""
    return [message for check in list(_deletion_checks) if (message := check(user_id))]


def delete_account(user_id: int, password: str) -> None:
    """Delete the account after checking its password.

    Inside one transaction: every area's hook cancels the account's future appointments and bookings
    (the other side is told, as for any cancellation), anonymises what hospitals and experts keep,
    and deletes its other rows; then the emails sent to the address and the account itself go, and
    with it (ON DELETE CASCADE) every login session, API token and one-time token. Raises
    ValidationFailed for a wrong password and Conflict with what to do first when a check refuses.
    """
    wrong = ValidationFailed({"password": "That is not your password."})
    password_hash = _checked_password(user_id, password, wrong)
    from expertbook.notifications.service import forget_address

    with transaction():
        user = db.session.scalar(select(User).where(User.id == user_id).with_for_update(of=User).execution_options(populate_existing=True))
        if user is None:
            raise NotFound("User not found")
        if user.password_hash != password_hash:
            raise wrong  # changed meanwhile: the password just checked is no longer the account's
        blockers = deletion_blockers(user_id)
        if blockers:
            raise Conflict(" ".join(blockers))
        for hook in list(_deletion_hooks):
            hook(user_id)
        forget_address(user.email)
        db.session.execute(delete(User).where(User.id == user_id))
    db.session.expunge_all()


def make_admin(email: str) -> None:
    """Make an existing account a site administrator (it sees the notifications outbox)."""
    with transaction() as session:
        user = session.scalar(select(User).where(User.email == (email or "").strip().lower()))
        if user is None:
            raise NotFound(f"No account has the email {email!r}.")
        user.is_admin = True
