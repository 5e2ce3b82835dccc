"""Account tables: users and their server-side login sessions."""
from __future__ import annotations

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import Boolean, ForeignKey, Integer, String, false
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

    # The login session this object was loaded through; Flask-Login stores it instead of the user id,
    # so that ending that session on the server really ends it.
    session_token = None  # type: str | None

    def get_id(self) -> str | None:  # noqa: D401 - Flask-Login protocol
        """Flask-Login's identifier for the session cookie: the server-side session token."""
        return self.session_token

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


class LoginSession(db.Model):
    """A server-side record of one logged-in browser; deleting it logs that browser out."""

    __tablename__ = "login_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())

    user: Mapped[User] = relationship(lazy="joined")
