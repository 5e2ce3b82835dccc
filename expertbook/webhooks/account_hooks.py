"""What webhooks do when an account is exported or deleted.

An expert's webhooks are theirs: "Download my data" lists them (never the secret), and they go with the
account (their rows cascade with the user's, their logs with them). A hospital's webhooks belong to the
hospital and stay when the staff admin who made one leaves (``created_by_id`` becomes null).
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from expertbook.extensions import db
from expertbook.webhooks.models import WebhookSubscription


def export(user_id: int) -> dict[str, Any]:
    """The expert's webhooks, for "Download my data": where each sends and what (no secret, no log)."""
    rows = db.session.scalars(select(WebhookSubscription).where(WebhookSubscription.expert_user_id == user_id).order_by(WebhookSubscription.id))
    hooks = [
        {"url": row.url, "description": row.description, "events": row.event_types, "active": row.active,
         "createdAt": row.created_at.isoformat()}
        for row in rows
    ]
    return {"webhooks": hooks} if hooks else {}


def connect() -> None:
    """Register the export (idempotent)."""
    from expertbook.auth.service import register_account_data_source

    register_account_data_source(export)
