"""Clinic tables: hospitals, their doctors, doctors' sessions (slots), token-numbered appointments
and the waiting lists of full sessions."""
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
    false,
    text,
    true,
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
    # Its slots are shown to the public only once a staff admin has verified their email address.
    published: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    # Also gives every User its ``user.hospital`` (loaded with the user: pages show it in the header).
    staff: Mapped[list[User]] = relationship(backref=backref("hospital", lazy="joined"))


class Doctor(db.Model):
    """A doctor in one hospital's directory. Sessions point at the row, so every page and search
    reads the name and specialization from here: renaming a doctor is one edit."""

    __tablename__ = "doctors"
    __table_args__ = (UniqueConstraint("hospital_id", "name", "specialization"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hospital_id: Mapped[int] = mapped_column(ForeignKey("hospitals.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    specialization: Mapped[str] = mapped_column(String(120), index=True)
    bio: Mapped[str] = mapped_column(String(500), default="", server_default="")
    # An inactive doctor keeps their sessions but is not offered for new ones.
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
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
    # A cancelled session (the doctor is unavailable) is also closed; unlike closing, it is final.
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancel_reason: Mapped[str | None] = mapped_column(String(300))
    now_serving: Mapped[int | None] = mapped_column(Integer)
    # Bumped by every change; the availability fragment's ETag.
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    hospital: Mapped[Hospital] = relationship()
    doctor: Mapped[Doctor] = relationship()

    @property
    def places_left(self) -> int:
        return max(self.capacity - self.booked_count, 0)

    @property
    def cancelled(self) -> bool:
        return self.cancelled_at is not None

    def is_past(self, now: datetime | None = None) -> bool:
        return self.ends_at <= (now or utcnow())


class Appointment(db.Model):
    """A patient's place in a slot, with its token number.

    An online booking belongs to the account that made it; a walk-in (given at the front desk) has
    no account and may carry an email address of its own. New columns have server defaults only,
    so the booking's prebuilt INSERT (see ``clinic.booking``) stays exactly as it was.
    """

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
    # Who ended an appointment (``cancelled_by``).
    BY_PATIENT = "patient"
    BY_STAFF = "staff"
    BY_SESSION = "session"  # the whole session was cancelled
    BY_MOVE = "moved"  # the patient moved to another session (``moved_to_id``)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slot_id: Mapped[int] = mapped_column(ForeignKey("slots.id", ondelete="CASCADE"))
    # None once the patient deleted their account: the hospital keeps the anonymised record.
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    patient_name: Mapped[str] = mapped_column(String(120))
    contact_number: Mapped[str] = mapped_column(String(10))
    token_number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=BOOKED)
    booked_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    idempotency_key: Mapped[str | None] = mapped_column(String(64))
    walk_in: Mapped[bool] = mapped_column(Boolean, server_default=false())
    # A walk-in's own address (optional); an online booking's emails go to its account.
    email: Mapped[str | None] = mapped_column(String(254))
    cancelled_by: Mapped[str | None] = mapped_column(String(16))
    cancel_reason: Mapped[str | None] = mapped_column(String(300))
    # A move links the two appointments both ways. Plain integers, no foreign keys: a key would
    # make deleting a slot's appointments check every row for references, and an index on them
    # would cost every booking one more write.
    moved_from_id: Mapped[int | None] = mapped_column(Integer)
    moved_to_id: Mapped[int | None] = mapped_column(Integer)
    # The calendar event this appointment is: a move updates the old event (same UID, higher SEQUENCE).
    calendar_id: Mapped[int | None] = mapped_column(Integer)
    calendar_sequence: Mapped[int] = mapped_column(Integer, server_default=text("0"))

    slot: Mapped[Slot] = relationship()
    user: Mapped[User | None] = relationship()

    @property
    def calendar_uid_id(self) -> int:
        """The id the calendar event's UID is built from (the first appointment of a chain of moves)."""
        return self.calendar_id or self.id


class WaitlistEntry(db.Model):
    """A patient waiting for a place in a full session; the first waiting (lowest id) is promoted first."""

    __tablename__ = "waitlist_entries"
    __table_args__ = (
        # The promotion's "first person waiting": one index range, in order.
        Index("ix_waitlist_entries_slot_status_id", "slot_id", "status", "id"),
        Index("ix_waitlist_entries_user_status", "user_id", "status"),
        # The same patient waits once per session (a double click, two tabs).
        Index(
            "uq_waitlist_entries_waiting_patient",
            "slot_id",
            "user_id",
            "patient_name",
            unique=True,
            sqlite_where=text("status = 'waiting'"),
            postgresql_where=text("status = 'waiting'"),
        ),
    )

    WAITING = "waiting"
    PROMOTED = "promoted"
    LEFT = "left"
    CANCELLED = "cancelled"  # the session was cancelled
    STATUSES = (WAITING, PROMOTED, LEFT, CANCELLED)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slot_id: Mapped[int] = mapped_column(ForeignKey("slots.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    patient_name: Mapped[str] = mapped_column(String(120))
    contact_number: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(16), default=WAITING)
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id", ondelete="SET NULL"))

    slot: Mapped[Slot] = relationship()
    user: Mapped[User | None] = relationship()
