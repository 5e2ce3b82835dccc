"""The RQ side of webhooks: the job that delivers one event to one subscription."""
from __future__ import annotations

from expertbook.jobs import app_context


def deliver(delivery_id: int) -> str:
    """RQ job: deliver one webhook delivery (idempotent; see :func:`expertbook.webhooks.delivery.deliver`)."""
    from expertbook.webhooks import delivery

    with app_context():  # our worker's, or a fresh app's under a plain ``rq worker``
        return delivery.deliver(delivery_id)
