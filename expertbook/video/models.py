"""Video tables: an expert's Zoom connection (secrets encrypted at rest) and the meeting of each video booking."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from expertbook.database import UTCDateTime, utcnow
from expertbook.extensions import db

CONNECTED = "connected"
RECONNECT_NEEDED = "reconnect_needed"
DEAUTHORIZED = "deauthorized"


class ZoomConnection(db.Model):
    """One expert's Zoom grant.

    ``secrets`` is a Fernet token holding the access token, refresh token, expiry, Zoom user id,
    email, account id and active flag (see :mod:`expertbook.crypto`). In plain text is only
    what queries need: whose it is, its status, a keyed hash of the Zoom user id and timestamps.
    """

    __tablename__ = "video_zoom_connections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    status: Mapped[str] = mapped_column(String(20), default=CONNECTED)
    secrets: Mapped[str | None] = mapped_column(Text)
    zoom_user_index: Mapped[str | None] = mapped_column(String(64), index=True)
    connected_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


# Meeting states. ``pending``: to be created (a job is queued or retrying at ``next_attempt_at``);
# ``created``: join link known; ``reauth_needed``: waits for the expert to re-authorize Zoom;
# ``failed``: gave up (the reason is in ``last_error``); ``deleted``: removed after a cancellation.
MEETING_PENDING = "pending"
MEETING_CREATED = "created"
MEETING_REAUTH = "reauth_needed"
MEETING_FAILED = "failed"
MEETING_DELETED = "deleted"
MEETING_STATUSES = (MEETING_PENDING, MEETING_CREATED, MEETING_REAUTH, MEETING_FAILED, MEETING_DELETED)


class Meeting(db.Model):
    """The video meeting of one booking; the row is written with the booking change that asks for it.

    Zoom's host start URL is never stored: it carries host rights and expires, so the host's
    "Start meeting" fetches a fresh one at click time. ``scheduled_start``/``scheduled_minutes``
    record the time the meeting at the provider has, so a changed booking time is noticed and sent.
    ``next_attempt_at`` is when the meeting job is due (None: nothing to do); ``claimed_until``
    lets one worker at a time talk to the provider for this meeting; ``create_marker`` names the
    Zoom meetings a create may have made unseen.
    """

    __tablename__ = "meetings"
    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'created', 'reauth_needed', 'failed', 'deleted')", name="status"
        ),
        Index("ix_meetings_next_attempt_at", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"), unique=True)
    provider: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(16), default=MEETING_PENDING)
    external_id: Mapped[int | None] = mapped_column(BigInteger)
    # Where a provider without numeric ids keeps the meeting: for Google Meet, the Google calendar holding the
    # booking's event (the event's id is derived from the booking's UID).
    external_ref: Mapped[str | None] = mapped_column(String(1000))
    join_url: Mapped[str | None] = mapped_column(String(1000))
    password: Mapped[str | None] = mapped_column(String(100))
    scheduled_start: Mapped[datetime | None] = mapped_column(UTCDateTime())
    scheduled_minutes: Mapped[int | None] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=utcnow)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Set, and committed, before a Zoom create is sent; it goes into the meeting's agenda. While it is
    # set, a create may have made a meeting we never heard of (the answer timed out, the worker died):
    # the next create adopts the meeting carrying it, and the deletion removes every one carrying it.
    create_marker: Mapped[str | None] = mapped_column(String(80))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
