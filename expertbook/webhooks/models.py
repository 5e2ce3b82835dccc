"""Webhook tables: subscriptions (an endpoint of a hospital or an expert), the events each wants, the
deliveries (an outbox: one row per event and subscription) and every attempt of each delivery."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text, text, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from expertbook.database import UTCDateTime, utcnow
from expertbook.extensions import db

PENDING = "pending"
SENDING = "sending"
DELIVERED = "delivered"
FAILED = "failed"
STATUSES = (PENDING, SENDING, DELIVERED, FAILED)
UNFINISHED = (PENDING, SENDING)


class WebhookSubscription(db.Model):
    """An endpoint that wants some events of one hospital (set up by its staff admins) or one expert.

    ``secret`` is the signing secret (``whsec_...``), encrypted with ``TOKEN_ENCRYPTION_KEYS``:
    signing needs the secret itself, so it cannot be hashed; its owner sees it once, when it is made.
    ``failing_since`` marks an incident (a delivery failed for good), so its owner is emailed once
    per incident, not once per event; the next delivery that succeeds ends it.
    """

    __tablename__ = "webhook_subscriptions"
    __table_args__ = (
        CheckConstraint("(hospital_id IS NULL) <> (expert_user_id IS NULL)", name="one_owner"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hospital_id: Mapped[int | None] = mapped_column(ForeignKey("hospitals.id", ondelete="CASCADE"), index=True)
    expert_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(String(200), default="", server_default="")
    secret: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    events: Mapped[list[WebhookSubscriptionEvent]] = relationship(
        cascade="all, delete-orphan", order_by="WebhookSubscriptionEvent.event_type", lazy="selectin")

    @property
    def event_types(self) -> list[str]:
        return [event.event_type for event in self.events]


class WebhookSubscriptionEvent(db.Model):
    """One event type a subscription wants. A table of its own, not a list in a column, so that the
    clinic booking's one statement can find a hospital's subscribers to an event with an indexed join."""

    __tablename__ = "webhook_subscription_events"

    subscription_id: Mapped[int] = mapped_column(ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(40), primary_key=True)


class WebhookDelivery(db.Model):
    """One event for one subscription: the outbox row the worker delivers (at least once, in order).

    Written in the transaction of the change that caused it. A row written by a receiver carries its
    whole ``payload`` (the exact body, signed as is); one written by the clinic booking's single
    statement only names its event (``event_type`` and ``ref_id``), and the worker composes and
    stores the payload at its first attempt, so every attempt sends the same bytes. ``message_id`` is
    the Standard Webhooks ``webhook-id``: the same for every attempt and for a resend, so a receiver
    can drop duplicates. Deliveries of one subscription go out one at a time, in ``id`` order; a row
    is retried with backoff until ``give_up_at`` (``WEBHOOK_RETRY_HOURS`` after the event).
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'sending', 'delivered', 'failed')", name="status"),
        # The delivery log (newest first) and "is an earlier one still unfinished?".
        Index("ix_webhook_deliveries_subscription_id_id", "subscription_id", "id"),
        # The relay's due rows: only the unfinished ones are indexed, however long the history grows.
        Index("ix_webhook_deliveries_unfinished", "next_attempt_at",
              postgresql_where=text("status IN ('pending', 'sending')"), sqlite_where=text("status IN ('pending', 'sending')")),
        Index("uq_webhook_deliveries_message_id", "message_id", unique=True,
              postgresql_where=text("message_id IS NOT NULL"), sqlite_where=text("message_id IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(String(40))
    # The appointment, booking, session or waiting-list entry the event is about (its type says which).
    ref_id: Mapped[int | None] = mapped_column(Integer)
    payload: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(10), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # None for a named row until its first attempt: then occurred_at + WEBHOOK_RETRY_HOURS.
    give_up_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    subscription: Mapped[WebhookSubscription] = relationship()


class WebhookAttempt(db.Model):
    """One attempt to deliver: when, how long it took, and what came back (or why nothing did)."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("ix_webhook_attempts_delivery_id", "delivery_id", "attempt"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    # The HTTP status, or None when no answer came (refused address, timeout, connection error).
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(500))
    # The first characters of the answer's body, to help the owner see what their endpoint said.
    response_excerpt: Mapped[str | None] = mapped_column(String(500))
