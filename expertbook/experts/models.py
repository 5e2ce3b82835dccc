"""Expert tables: profiles, services, weekly hours, date overrides and bookings.

Every instant is stored in UTC (``UTCDateTime``); weekly hours and overrides are wall-clock times
in the expert's own time zone, turned into instants by :mod:`expertbook.experts.availability`.
"""
from __future__ import annotations

from datetime import date, datetime, time

from sqlalchemy import Boolean, false, CheckConstraint, Date, ForeignKey, Index, Integer, String, Text, Time, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from expertbook.auth.models import User
from expertbook.database import UTCDateTime, utcnow
from expertbook.extensions import db

LOCATION_KINDS = {"video": "Video meeting", "in_person": "In person", "phone": "Phone call"}
# Which video provider a video service's meetings use; "auto" is Zoom when the expert connected it, else Jitsi;
# "meet" is Google Meet when the expert connected Google Calendar (/calendars), else Jitsi.
VIDEO_PROVIDERS = {"auto": "Zoom if connected, else Jitsi", "zoom": "Zoom", "jitsi": "Jitsi Meet",
                   "meet": "Google Meet (connect Google Calendar first)"}
STATUSES = ("pending", "confirmed", "declined", "cancelled")
# Bookings in these states hold their time; declined and cancelled ones free it.
ACTIVE_STATUSES = ("pending", "confirmed")


class ExpertProfile(db.Model):
    """The public face of an expert; its row is also the lock that serialises bookings of that expert."""

    __tablename__ = "expert_profiles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    display_name: Mapped[str] = mapped_column(String(120))
    headline: Mapped[str] = mapped_column(String(160), default="")
    bio: Mapped[str] = mapped_column(Text, default="")
    handle: Mapped[str] = mapped_column(String(40), unique=True)
    timezone: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    user: Mapped[User] = relationship(lazy="joined")
    services: Mapped[list[Service]] = relationship(back_populates="expert", order_by="Service.id")


class Service(db.Model):
    """Something an expert sells: a length of time with its price, place and booking rules."""

    __tablename__ = "services"
    __table_args__ = (
        UniqueConstraint("expert_id", "slug"),
        CheckConstraint("duration_min > 0", name="duration_positive"),
        CheckConstraint("price_cents >= 0", name="price_not_negative"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    expert_id: Mapped[int] = mapped_column(ForeignKey("expert_profiles.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(120))
    slug: Mapped[str] = mapped_column(String(60))
    description: Mapped[str] = mapped_column(Text, default="")
    duration_min: Mapped[int] = mapped_column(Integer)
    price_cents: Mapped[int] = mapped_column(Integer, default=0)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    location_kind: Mapped[str] = mapped_column(String(16), default="video")
    location_detail: Mapped[str] = mapped_column(String(255), default="")
    requires_acceptance: Mapped[bool] = mapped_column(Boolean, default=False)
    buffer_before_min: Mapped[int] = mapped_column(Integer, default=0)
    buffer_after_min: Mapped[int] = mapped_column(Integer, default=0)
    min_notice_min: Mapped[int] = mapped_column(Integer, default=60)
    horizon_days: Mapped[int] = mapped_column(Integer, default=60)
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    video_provider: Mapped[str] = mapped_column(String(10), default="auto", server_default="auto")
    record_meetings: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    expert: Mapped[ExpertProfile] = relationship(back_populates="services", lazy="joined")

    @property
    def bookable(self) -> bool:
        """Whether customers can book it now."""
        return not self.hidden and self.deleted_at is None

    @property
    def location_label(self) -> str:
        return LOCATION_KINDS.get(self.location_kind, self.location_kind)

    @property
    def price_label(self) -> str:
        if not self.price_cents:
            return "Free"
        return f"{self.price_cents / 100:,.2f} {self.currency}"


class WeeklyHours(db.Model):
    """One range of working hours on a weekday (0 = Monday), wall-clock in the expert's zone."""

    __tablename__ = "weekly_hours"
    __table_args__ = (
        CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday_range"),
        CheckConstraint("start_time < end_time", name="start_before_end"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    expert_id: Mapped[int] = mapped_column(ForeignKey("expert_profiles.id", ondelete="CASCADE"), index=True)
    weekday: Mapped[int] = mapped_column(Integer)
    start_time: Mapped[time] = mapped_column(Time)
    end_time: Mapped[time] = mapped_column(Time)


class DateOverride(db.Model):
    """Hours that replace the weekly hours on one date; a row without times means a day off."""

    __tablename__ = "date_overrides"
    __table_args__ = (Index("ix_date_overrides_expert_day", "expert_id", "day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    expert_id: Mapped[int] = mapped_column(ForeignKey("expert_profiles.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date)
    start_time: Mapped[time | None] = mapped_column(Time)
    end_time: Mapped[time | None] = mapped_column(Time)


class Booking(db.Model):
    """A customer's booking of one service at one time."""

    __tablename__ = "bookings"
    __table_args__ = (
        UniqueConstraint("customer_id", "idempotency_key"),
        Index("ix_bookings_expert_blocked", "expert_id", "blocked_start", "blocked_end"),
        Index("ix_bookings_customer_email", "customer_email"),  # guest bookings are claimed by address
        CheckConstraint("start_at < end_at", name="start_before_end"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    expert_id: Mapped[int] = mapped_column(ForeignKey("expert_profiles.id", ondelete="CASCADE"))
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"), index=True)
    # None for a booking made without an account (``is_guest``) until an account claims it, and once
    # the customer deleted their account (the expert keeps the anonymised record).
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    customer_name: Mapped[str] = mapped_column(String(120))
    customer_email: Mapped[str] = mapped_column(String(254))
    customer_phone: Mapped[str] = mapped_column(String(40), default="")
    notes: Mapped[str] = mapped_column(Text, default="")
    start_at: Mapped[datetime] = mapped_column(UTCDateTime())
    end_at: Mapped[datetime] = mapped_column(UTCDateTime())
    blocked_start: Mapped[datetime] = mapped_column(UTCDateTime())
    blocked_end: Mapped[datetime] = mapped_column(UTCDateTime())
    customer_timezone: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), index=True)
    cancel_reason: Mapped[str] = mapped_column(Text, default="")
    cancelled_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    ics_uid: Mapped[str] = mapped_column(String(64), unique=True)
    ics_sequence: Mapped[int] = mapped_column(Integer, default=0)
    idempotency_key: Mapped[str | None] = mapped_column(String(80))
    # Made without an account and not yet claimed by one (experts.service.claim_guest_bookings).
    is_guest: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The start before the last reschedule, and why it moved (shown on the booking page and in the emails).
    rescheduled_from: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reschedule_reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    @property
    def duration_minutes(self) -> int:
        """How long the appointment lasts, in minutes."""
        return int((self.end_at - self.start_at).total_seconds() // 60)

    # Not a column: True on the booking service.book() returned for a repeated Idempotency-Key.
    replayed = False
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    expert: Mapped[ExpertProfile] = relationship(lazy="joined")
    service: Mapped[Service] = relationship(lazy="joined")

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES


class CalendarFeed(db.Model):
    """A user's private calendar subscription: whoever knows the token reads their bookings as iCalendar.

    One per user; resetting replaces the token (old subscriptions stop updating), deleting the row turns
    the feed off. The token is looked up by equality, like a password-reset link's, and never logged.
    """

    __tablename__ = "calendar_feeds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
