"""Clinic tables: hospitals, their doctors, doctors' sessions (slots) and token-numbered appointments."""
from __future__ import annotations

from datetime import date, datetime, time
from typing import TYPE_CHECKING

from flask import current_app, has_app_context
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Time,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, backref, mapped_column, relationship

from expertbook.database import UTCDateTime, utcnow
from expertbook.extensions import db

if TYPE_CHECKING:
    from expertbook.auth.models import User

DEFAULT_TIMEZONE = "Asia/Kolkata"


def _default_timezone() -> str:
    if has_app_context():
        return current_app.config.get("CLINIC_TIMEZONE") or DEFAULT_TIMEZONE
    return DEFAULT_TIMEZONE


class Hospital(db.Model):
    """A hospital or clinic that publishes doctor slots; its staff are users with ``hospital_id`` set."""

    __tablename__ = "hospitals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(160))
    location: Mapped[str] = mapped_column(String(160), index=True)
    # Slot times are the hospital's wall-clock times; this zone says when "now" is for them.
    timezone: Mapped[str] = mapped_column(String(64), default=_default_timezone, server_default=DEFAULT_TIMEZONE)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    # Also gives every User its ``user.hospital`` (loaded with the user: pages show it in the header).
    staff: Mapped[list[User]] = relationship(backref=backref("hospital", lazy="joined"))


class Doctor(db.Model):
    """A doctor who holds sessions at one hospital."""

    __tablename__ = "doctors"
    __table_args__ = (UniqueConstraint("hospital_id", "name", "specialization"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hospital_id: Mapped[int] = mapped_column(ForeignKey("hospitals.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    specialization: Mapped[str] = mapped_column(String(120), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    hospital: Mapped[Hospital] = relationship()


class Slot(db.Model):
    """One doctor's session on one date: ``capacity`` places, each booking gets the next token number.

    ``booked_count`` is the places taken now (cancelling frees one); ``tokens_issued`` only ever grows,
    so a token number is never given out twice. Both change only through conditional UPDATEs.
    """

    __tablename__ = "slots"
    __table_args__ = (
        UniqueConstraint("doctor_id", "date", "start_time"),
        CheckConstraint("booked_count >= 0 AND booked_count <= capacity", name="booked_within_capacity"),
        CheckConstraint("tokens_issued >= booked_count", name="tokens_cover_bookings"),
        CheckConstraint("end_time > start_time", name="ends_after_start"),
        # Patient search: by date (then time), open slots only; location and specialization come by join.
        Index("ix_slots_date_open", "date", "closed", "start_time"),
        # Search without a date walks this in time order and stops at the page size (see search_slots).
        Index("ix_slots_starts_at", "starts_at"),
        # Staff list: one hospital's slots by date.
        Index("ix_slots_hospital_date", "hospital_id", "date", "start_time"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hospital_id: Mapped[int] = mapped_column(ForeignKey("hospitals.id", ondelete="CASCADE"))
    doctor_id: Mapped[int] = mapped_column(ForeignKey("doctors.id", ondelete="CASCADE"))
    date: Mapped[date] = mapped_column(Date)
    start_time: Mapped[time] = mapped_column(Time)
    end_time: Mapped[time] = mapped_column(Time)
    # The same moments in UTC, computed in the hospital's zone when the slot is made, so "past"
    # is one indexed comparison with now.
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    capacity: Mapped[int] = mapped_column(Integer, default=10)
    booked_count: Mapped[int] = mapped_column(Integer, default=0)
    tokens_issued: Mapped[int] = mapped_column(Integer, default=0)
    closed: Mapped[bool] = mapped_column(Boolean, default=False)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    now_serving: Mapped[int | None] = mapped_column(Integer)
    # Bumped by every change; the availability fragment's ETag.
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    hospital: Mapped[Hospital] = relationship()
    doctor: Mapped[Doctor] = relationship()

    @property
    def places_left(self) -> int:
        return max(self.capacity - self.booked_count, 0)

    def is_past(self, now: datetime | None = None) -> bool:
        return self.ends_at <= (now or utcnow())


class Appointment(db.Model):
    """A patient's place in a slot, with its token number."""

    __tablename__ = "appointments"
    __table_args__ = (
        UniqueConstraint("slot_id", "token_number"),
        # A retried POST carries the same key and so can never make a second booking.
        UniqueConstraint("user_id", "idempotency_key"),
        Index("ix_appointments_user_booked", "user_id", "booked_at"),
    )

    BOOKED = "booked"
    ARRIVED = "arrived"
    NO_SHOW = "no_show"
    CANCELLED = "cancelled"
    STATUSES = (BOOKED, ARRIVED, NO_SHOW, CANCELLED)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slot_id: Mapped[int] = mapped_column(ForeignKey("slots.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    patient_name: Mapped[str] = mapped_column(String(120))
    contact_number: Mapped[str] = mapped_column(String(10))
    token_number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=BOOKED)
    booked_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    idempotency_key: Mapped[str | None] = mapped_column(String(64))

    slot: Mapped[Slot] = relationship()
    user: Mapped[User] = relationship()
