"""Calendar tables: an expert's calendar connections (CalDAV, Google), their calendars, the busy times
read from them, and one row per booking event to write into the chosen calendar.

Secrets (a CalDAV app password, Google's tokens) are a Fernet token in ``secrets`` (see
:mod:`expertbook.crypto`); in plain text is only what queries and the calendar page need.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from expertbook.database import UTCDateTime, utcnow
from expertbook.extensions import db

CALDAV = "caldav"
GOOGLE = "google"
KINDS = (CALDAV, GOOGLE)

# Connection states. ``connected``: the last read worked. ``unreachable``: the server did not answer (or
# answered 5xx); ``refused``: it refused the user name and password; ``reconnect_needed``: Google refused
# to refresh our grant (the expert must re-authorize). Any state but ``connected`` is "broken": the expert
# sees it on the calendar page and gets one email when it starts; bookings go on regardless.
CONNECTED = "connected"
UNREACHABLE = "unreachable"
REFUSED = "refused"
RECONNECT_NEEDED = "reconnect_needed"
STATUSES = (CONNECTED, UNREACHABLE, REFUSED, RECONNECT_NEEDED)


class CalendarConnection(db.Model):
    """One expert's account at one calendar server (at most one CalDAV and one Google per expert).

    ``secrets`` holds, encrypted: for CalDAV the server URL, user name and app password; for Google the
    access and refresh tokens, their expiry and the Google account's email. ``next_refresh_at`` is when
    the busy times are due to be read again (the relay hook dispatches the job then); ``claimed_until``
    lets one worker at a time read this server. ``failing_since`` names the current breakage (its email
    is sent once per value).
    """

    __tablename__ = "calendar_connections"
    __table_args__ = (
        UniqueConstraint("user_id", "kind"),
        CheckConstraint("kind IN ('caldav', 'google')", name="kind"),
        CheckConstraint("status IN ('connected', 'unreachable', 'refused', 'reconnect_needed')", name="status"),
        Index("ix_calendar_connections_next_refresh_at", "next_refresh_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(20), default=CONNECTED)
    secrets: Mapped[str] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_ok_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    next_refresh_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    connected_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    calendars: Mapped[list[RemoteCalendar]] = relationship(
        back_populates="connection", order_by="RemoteCalendar.name", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def broken(self) -> bool:
        return self.status != CONNECTED


class RemoteCalendar(db.Model):
    """One calendar of a connection: whether its busy times block bookings, and whether bookings are written
    into it (at most one calendar per expert is; the service keeps it so)."""

    __tablename__ = "calendar_calendars"
    __table_args__ = (UniqueConstraint("connection_id", "remote_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("calendar_connections.id", ondelete="CASCADE"))
    remote_id: Mapped[str] = mapped_column(String(1000))  # the CalDAV collection's URL, or Google's calendar id
    name: Mapped[str] = mapped_column(String(255))
    check_conflicts: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    write_bookings: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    busy_fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    connection: Mapped[CalendarConnection] = relationship(back_populates="calendars")


class BusyInterval(db.Model):
    """A busy time read from a checked calendar (recurrences expanded, UTC). Replaced whole by each read."""

    __tablename__ = "calendar_busy"
    __table_args__ = (Index("ix_calendar_busy_expert_end", "expert_id", "end_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    calendar_id: Mapped[int] = mapped_column(ForeignKey("calendar_calendars.id", ondelete="CASCADE"), index=True)
    expert_id: Mapped[int] = mapped_column(ForeignKey("expert_profiles.id", ondelete="CASCADE"))
    start_at: Mapped[datetime] = mapped_column(UTCDateTime())
    end_at: Mapped[datetime] = mapped_column(UTCDateTime())


# Event states. ``pending``: to be written (a job is queued, or retrying at ``next_attempt_at``);
# ``written``: the calendar has the booking as ``content_hash`` says; ``waiting``: the connection is broken
# in a way only the expert can mend (password refused, Google grant gone): resumed when it is mended;
# ``deleted``: removed after a cancellation; ``failed``: the server refused the event for good.
EVENT_PENDING = "pending"
EVENT_WRITTEN = "written"
EVENT_WAITING = "waiting"
EVENT_DELETED = "deleted"
EVENT_FAILED = "failed"


class CalendarEvent(db.Model):
    """The event of one booking in one calendar: written with the booking change that asks for it (so it is
    never lost), brought in line with the booking by a job (the event's UID is the booking's, so a repeated
    write replaces, never duplicates)."""

    __tablename__ = "calendar_events"
    __table_args__ = (
        UniqueConstraint("booking_id", "calendar_id"),
        CheckConstraint("status IN ('pending', 'written', 'waiting', 'deleted', 'failed')", name="status"),
        Index("ix_calendar_events_next_attempt_at", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"))
    calendar_id: Mapped[int] = mapped_column(ForeignKey("calendar_calendars.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=EVENT_PENDING)
    content_hash: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=utcnow)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
