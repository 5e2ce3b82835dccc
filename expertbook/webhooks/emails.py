"""The webhooks' one email (``templates/email/webhooks/delivery_failed``): a delivery failed for good.

Written inside the transaction that records the failure, to every owner of the subscription: the
hospital's staff admins, or the expert. Once per incident (see ``WebhookSubscription.failing_since``).
"""
from __future__ import annotations

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select

from expertbook.auth.models import User
from expertbook.extensions import db
from expertbook.notifications.service import never_costs_the_change, queue_email
from expertbook.web import external_url
from expertbook.webhooks.models import WebhookDelivery, WebhookSubscription


def owners(subscription: WebhookSubscription) -> list[User]:
    """Who answers for a subscription: the hospital's staff admins, or the expert."""
    if subscription.hospital_id is not None:
        return list(db.session.scalars(
            select(User).where(User.hospital_id == subscription.hospital_id, User.is_staff_admin.is_(True)).order_by(User.id)
        ))
    user = db.session.get(User, subscription.expert_user_id)
    return [user] if user is not None else []


def delivery_failed(subscription_id: int, delivery_id: int) -> None:
    """Email the subscription's owners that a delivery failed for good (inside the recording transaction)."""
    subscription = db.session.get(WebhookSubscription, subscription_id)
    delivery = db.session.get(WebhookDelivery, delivery_id)
    if subscription is None or delivery is None:
        return
    context = {
        "url": subscription.url,
        "event_type": delivery.event_type,
        "attempts": delivery.attempts,
        "hours": f"{float(current_app.config['WEBHOOK_RETRY_HOURS']):g}",
        "last_error": delivery.last_error or "",
        "log_url": external_url("webhooks.subscription", subscription_id=subscription_id),
    }
    for user in owners(subscription):
        with never_costs_the_change(f"the webhook failure email of delivery {delivery_id}"):
            queue_email(
                "webhook-failed", user.email, user.name, "webhooks/delivery_failed", context,
                subject=_("A webhook could not be delivered to %(url)s", url=subscription.url[:150]),
                dedupe_key=f"webhook-failed:{delivery_id}:{user.id}",
            )
