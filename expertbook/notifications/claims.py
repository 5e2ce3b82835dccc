"""Rows the worker delivers, whatever they hold: the claim, its lease, the fenced outcome and the backoff.

The outbox's emails (:mod:`expertbook.notifications.service`) and any area's own outbox table (the
webhooks' deliveries) share this machinery. A table qualifies when its model has the columns
``id``, ``status`` (with a pending and a sending value), ``attempts``, ``next_attempt_at`` and
``claimed_until``. Then, for one row:

1. :meth:`ClaimedRows.claim` moves it from due (pending and ``next_attempt_at`` passed, or sending
   with a lapsed claim: its worker died) to sending, adds one to ``attempts`` and sets
   ``claimed_until``, in one compare-and-swap UPDATE; the new ``attempts`` is this attempt's number.
2. :meth:`ClaimedRows.hold` keeps the claim while the work is in flight: a short lease
   (``MAIL_CLAIM_SECONDS``) that this process's :class:`~expertbook.notifications.lease.Leases`
   thread renews, so a killed worker's row is free again within seconds.
3. :meth:`ClaimedRows.finish` records the outcome only while the claim is still this attempt's
   (``status`` sending and ``attempts`` unchanged: the fence), so an attempt whose lease lapsed and
   was taken over never overwrites its successor's.

:func:`backoff` is the delay before the next attempt. This module knows no area and no table.
"""
from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import Flask, current_app
from sqlalchemy import ColumnElement, and_, or_, update

from expertbook.database import transaction, utcnow
from expertbook.notifications.lease import Leases

log = logging.getLogger(__name__)


def leases(app: Flask) -> Leases:
    """The application's claim leases in this process (see :mod:`expertbook.notifications.lease`)."""
    found = app.extensions.get("notifications_leases")
    if found is None:
        interval = float(app.config["MAIL_CLAIM_SECONDS"]) / 3
        found = app.extensions.setdefault("notifications_leases", Leases(app, interval))
    return found


def claim_seconds() -> float:
    """How long a claim lasts unless renewed (``MAIL_CLAIM_SECONDS``, for every kind of row)."""
    return float(current_app.config["MAIL_CLAIM_SECONDS"])


def backoff(attempt: int, base: float, maximum: float) -> timedelta:
    """The wait after failed attempt number ``attempt`` (1, 2, ...): ``base`` doubled each time, at most
    ``maximum``, plus up to 10% jitter so a burst of rows that failed together does not retry in lockstep."""
    delay = min(base * 2 ** max(attempt - 1, 0), maximum)
    return timedelta(seconds=delay * random.uniform(1.0, 1.1))


@dataclass(frozen=True)
class ClaimedRows:
    """The claim machinery over one table (``model``); ``name`` is what its log lines call a row."""

    model: Any
    name: str
    pending: str = "pending"
    sending: str = "sending"

    def abandoned(self, now: datetime) -> ColumnElement[bool]:
        """Rows a worker claimed and stopped renewing (it died): due again."""
        return and_(self.model.status == self.sending, self.model.claimed_until < now)

    def due(self, now: datetime) -> ColumnElement[bool]:
        """Rows ready for an attempt now: pending and due, or abandoned."""
        return or_(and_(self.model.status == self.pending, self.model.next_attempt_at <= now), self.abandoned(now))

    def claim(self, row_id: int, *conditions: ColumnElement[bool], now: datetime | None = None) -> int | None:
        """Claim the row for one attempt if it is due and meets ``conditions``; its attempt number, or None.

        Its own transaction: the claim is committed before the caller starts the work.
        """
        now = now or utcnow()
        model = self.model
        with transaction() as session:
            return session.execute(
                update(model)
                .where(model.id == row_id, self.due(now), *conditions)
                .values(status=self.sending, attempts=model.attempts + 1,
                        claimed_until=now + timedelta(seconds=claim_seconds()))
                .returning(model.attempts)
                .execution_options(synchronize_session=False)
            ).scalar_one_or_none()

    def _ours(self, row_id: int, attempt: int) -> ColumnElement[bool]:
        model = self.model
        return and_(model.id == row_id, model.status == self.sending, model.attempts == attempt)

    def store(self, row_id: int, attempt: int, **values: Any) -> bool:
        """Write ``values`` to the row, keeping the claim, only if it is still ``attempt``'s; True if written."""
        with transaction() as session:
            return session.execute(
                update(self.model).where(self._ours(row_id, attempt)).values(**values)
                .execution_options(synchronize_session=False)
            ).rowcount == 1

    def renew(self, row_id: int, attempt: int) -> bool:
        """Extend ``attempt``'s claim by ``MAIL_CLAIM_SECONDS`` from now; False if it is no longer ours."""
        return self.store(row_id, attempt, claimed_until=utcnow() + timedelta(seconds=claim_seconds()))

    def hold(self, row_id: int, attempt: int) -> Callable[[], None]:
        """Keep renewing ``attempt``'s claim from this process until the returned function is called."""
        return leases(current_app._get_current_object()).hold(lambda: self.renew(row_id, attempt))

    def finish(self, row_id: int, attempt: int, **values: Any) -> bool:
        """Record an outcome and release the claim, only if it is still ``attempt``'s (the fence)."""
        done = self.store(row_id, attempt, claimed_until=None, **values)
        if not done:
            log.warning("%s %s: attempt %s lost its claim before recording its outcome", self.name, row_id, attempt)
        return done
