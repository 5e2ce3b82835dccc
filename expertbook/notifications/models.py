"""The outbox: one row per email, written in the same transaction as the change that causes it."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from expertbook.database import UTCDateTime, utcnow
from expertbook.extensions import db

PENDING = "pending"
SENDING = "sending"
SENT = "sent"
FAILED = "failed"
STATUSES = (PENDING, SENDING, SENT, FAILED)


class OutboxEmail(db.Model):
    """An email to send. The row is the source of truth; RQ jobs only point at it.

    A row is either written whole by ``queue_email`` or, on hot paths, only named: ``kind`` and
    ``ref_id`` (say ``clinic-token`` and an appointment id), with recipient, subject, template,
    context and Message-ID left empty until the worker composes them when it first sends the row
    (see ``queue_composed``). Composed once, the parts are stored, so every resend is the same message.

    ``pending`` rows are due at ``next_attempt_at``; a worker moves a row to ``sending`` with a
    compare-and-swap and holds it until ``claimed_until``; ``sent`` and ``failed`` are final
    (an admin may put a failed row back to pending). ``dedupe_key`` is unique, so emails that
    must go out once (a reminder, one re-authorization per incident) are guaranteed by the database.
    """

    __tablename__ = "outbox_emails"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'sending', 'sent', 'failed')", name="status"),
        CheckConstraint("ref_id IS NOT NULL OR (template IS NOT NULL AND message_id IS NOT NULL)", name="written_or_named"),
        Index("ix_outbox_emails_status_next_attempt_at", "status", "next_attempt_at"),
        # Partial: most rows have no dedupe key, and a named row no Message-ID until it is composed, so
        # neither index spends a write on them.
        *(
            Index(f"uq_outbox_emails_{column}", column, unique=True,
                  postgresql_where=text(f"{column} IS NOT NULL"), sqlite_where=text(f"{column} IS NOT NULL"))
            for column in ("message_id", "dedupe_key")
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(60))
    to_email: Mapped[str | None] = mapped_column(String(254))
    to_name: Mapped[str | None] = mapped_column(String(120))
    subject: Mapped[str | None] = mapped_column(String(255))
    template: Mapped[str | None] = mapped_column(String(80))
    context: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # What a named row is about (its kind says what that is); None for rows written whole.
    ref_id: Mapped[int | None] = mapped_column(Integer)
    ics_text: Mapped[str | None] = mapped_column(Text)
    ics_method: Mapped[str | None] = mapped_column(String(20))
    # Stable across resends, so a receiver can drop the duplicate a crash after SMTP's "250" may cause.
    message_id: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(10), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    dedupe_key: Mapped[str | None] = mapped_column(String(200))

    def __repr__(self) -> str:
        return f"<OutboxEmail {self.id} {self.kind} to {self.to_email} {self.status}>"
