"""Account tables: users, their server-side login sessions (browsers and API tokens) and one-time email tokens."""
from __future__ import annotations

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from expertbook.database import UTCDateTime, utcnow
from expertbook.extensions import db


class User(UserMixin, db.Model):
    """A person with an account. Everyone is a patient/customer; some are also experts or hospital staff."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_expert: Mapped[bool] = mapped_column(Boolean, default=False)
    # The hospital this user works for (their staff membership). The relationship, ``user.hospital``,
    # is declared by the clinic's Hospital.staff, so that accounts know nothing of clinics.
    hospital_id: Mapped[int | None] = mapped_column(ForeignKey("hospitals.id"), index=True)
    is_staff_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    # Site administrator (not a hospital role): sees the notifications outbox. Added by migration 0004.
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # When the owner followed the verification link (None: not yet). Accounts older than migration
    # 0010 count as verified from that migration on.
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    # The login session this object was loaded through; Flask-Login stores it instead of the user id,
    # so that ending that session on the server really ends it.
    session_token = None  # type: str | None

    def get_id(self) -> str | None:  # noqa: D401 - Flask-Login protocol
        """Flask-Login's identifier for the session cookie: the server-side session token."""
        return self.session_token

    @property
    def email_verified(self) -> bool:
        """Whether the owner has shown that the address is theirs."""
        return self.email_verified_at is not None

    @property
    def is_staff(self) -> bool:
        """Whether the user works for a hospital."""
        return self.hospital_id is not None

    @property
    def role_names(self) -> list[str]:
        """Human-readable roles, for the profile page."""
        roles = ["patient / customer"]
        if self.is_expert:
            roles.append("expert")
        if self.is_staff:
            roles.append("hospital staff admin" if self.is_staff_admin else "hospital staff")
        return roles


WEB = "web"
API = "api"


class LoginSession(db.Model):
    """A server-side record of one login: a browser (``web``) or an API bearer token (``api``).

    Deleting the row logs that browser out or kills that token. Only a hash of the secret is kept
    (a browser's cookie token; an API token's session id, signed into the token), so a copy of the
    database holds no usable login.
    """

    __tablename__ = "login_sessions"
    # The worker's tick deletes expired rows by this index.
    __table_args__ = (Index("ix_login_sessions_expires_at", "expires_at"),)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(8), default=WEB, server_default=WEB)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Refreshed at most every few minutes (see auth.service.LAST_SEEN_EVERY), not on every request.
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    user_agent: Mapped[str | None] = mapped_column(String(255))
    # Only the network part of the address (IPv4 /24, IPv6 /48): enough to recognise a place.
    ip_prefix: Mapped[str | None] = mapped_column(String(64))

    user: Mapped[User] = relationship(lazy="joined")


RESET = "reset"
VERIFY = "verify"


class AccountToken(db.Model):
    """A one-time token sent by email: a password reset or an email verification.

    Only its SHA-256 is stored. ``bound_to`` is a fingerprint of what the token was issued against
    (the password hash for a reset, the address for a verification): once that changes, the token is
    worthless. Using a token deletes it.
    """

    __tablename__ = "account_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(8))
    bound_to: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
