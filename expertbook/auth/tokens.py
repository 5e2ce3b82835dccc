"""One-time tokens sent by email (password reset, email verification) and the sealing of their links.

A token is 32 random bytes (URL-safe base64). The database keeps only its SHA-256 (``account_tokens``),
so a copy of the database cannot reset anyone's password. The email that carries the link is an
outbox row, and the outbox stores its context: there the link is *sealed* (Fernet, with a key derived
from ``SECRET_KEY``) and only the email template unseals it, when the worker renders the message.

Both keyed values (a token's binding and a sealed link) are made with the current ``SECRET_KEY`` and
checked or opened with it or any of ``SECRET_KEY_FALLBACKS`` (:mod:`expertbook.keys`): a reset link
emailed, or an email queued, before a key rotation still works after it.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import delete, select

from expertbook import keys
from expertbook.auth.models import AccountToken, User
from expertbook.database import utcnow
from expertbook.extensions import db

# What every token page and endpoint says for a token that is wrong, expired or already used: one
# message, so none of them tells which.
INVALID = "This link has expired or was already used"


def digest(secret: str) -> str:
    """The SHA-256 (hex) under which a secret is stored and looked up."""
    return hashlib.sha256(secret.encode()).hexdigest()


def fingerprint(value: str, key: str | None = None) -> str:
    """What a token is bound to: a keyed hash of the password hash (reset) or the address (verification).

    Keyed with ``SECRET_KEY`` (or ``key``), so the column gives nothing away about the value itself.
    """
    secret = (key if key is not None else keys.current()).encode()
    return hmac.new(secret, b"account-token-binding:" + value.encode(), hashlib.sha256).hexdigest()


def _still_bound(bound_to: str, value: str) -> bool:
    """Whether ``bound_to`` is ``value``'s fingerprint under the current key or a fallback."""
    return any(hmac.compare_digest(bound_to, fingerprint(value, key)) for key in keys.accepted())


def bound_value(user: User, purpose: str) -> str:
    """The value of ``user`` a token of ``purpose`` is bound to."""
    from expertbook.auth.models import RESET

    return user.password_hash if purpose == RESET else user.email


def issue(user: User, purpose: str, lifetime: timedelta, now: datetime | None = None) -> str:
    """Write a new token of ``purpose`` for ``user`` inside the caller's transaction; returns the secret.

    Earlier tokens of the same purpose go: only the newest link of each kind works.
    """
    now = now or utcnow()
    secret = secrets.token_urlsafe(32)
    session = db.session
    session.execute(delete(AccountToken).where(AccountToken.user_id == user.id, AccountToken.purpose == purpose))
    session.add(
        AccountToken(
            token_hash=digest(secret),
            user_id=user.id,
            purpose=purpose,
            bound_to=fingerprint(bound_value(user, purpose)),
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    return secret


def well_formed(secret: str | None) -> bool:
    """Whether ``secret`` could be one of our tokens (cheap check before any query)."""
    return bool(secret) and 20 <= len(secret) <= 100 and all(ch.isalnum() or ch in "-_" for ch in secret)


def holder(secret: str | None, purpose: str, *, lock: bool = False) -> tuple[AccountToken, User] | None:
    """The live token row and its user, or None if the token is wrong, expired, used or no longer bound.

    With ``lock`` the token row is locked for the caller's transaction, so two uses cannot both succeed.
    """
    if not well_formed(secret):
        return None
    query = select(AccountToken, User).join(User, User.id == AccountToken.user_id).where(
        AccountToken.token_hash == digest(secret), AccountToken.purpose == purpose
    )
    if lock:
        query = query.with_for_update(of=AccountToken)
    row = db.session.execute(query).one_or_none()
    if row is None:
        return None
    token, user = row
    if token.expires_at <= utcnow():
        return None
    if not _still_bound(token.bound_to, bound_value(user, purpose)):
        return None
    return token, user


def purge_expired(now: datetime | None = None) -> int:
    """Delete expired tokens (run by the worker's tick); returns how many went."""
    return db.session.execute(delete(AccountToken).where(AccountToken.expires_at <= (now or utcnow()))).rowcount or 0


# ---------------------------------------------------------------------------- sealed links


@lru_cache(maxsize=8)
def _fernet(secret_keys: tuple[str, ...]) -> MultiFernet:
    # A key of its own for this purpose, derived from each SECRET_KEY: the first seals, any opens.
    return MultiFernet([
        Fernet(base64.urlsafe_b64encode(hashlib.sha256(b"expertbook-email-link:" + key.encode()).digest()))
        for key in secret_keys
    ])


def seal(text: str) -> str:
    """``text`` encrypted (with the current key) for an outbox row's context."""
    return _fernet(keys.accepted()).encrypt(text.encode()).decode()


def unseal(sealed: str | None) -> str:
    """The text :func:`seal` sealed (the ``unseal`` filter of the email templates), with the current
    key or a fallback.

    Raises ValueError if no accepted key opens it (it was sealed with a key that is no longer in
    SECRET_KEY_FALLBACKS): the email fails visibly on the Notifications page rather than going out
    without its link.
    """
    try:
        return _fernet(keys.accepted()).decrypt((sealed or "").encode()).decode()
    except InvalidToken:
        raise ValueError("this link was sealed with a SECRET_KEY that is no longer accepted") from None
