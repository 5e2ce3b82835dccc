"""The webhook outbox: events written with the change that caused them, delivered by the worker after commit.

How an event flows (the same path as an email's, on the same machinery: :mod:`expertbook.notifications.claims`):

1. A change commits an event: a signal receiver (:mod:`expertbook.webhooks.subscribers`) calls
   :func:`record` inside the change's transaction, which writes one :class:`WebhookDelivery` per
   subscription that wants it, with its whole payload; the clinic booking's single statement writes
   named rows instead (:func:`booked_insert`), composed by the worker. No subscription, no row.
2. After the commit the rows are dispatched (:func:`dispatch`): an RQ job per row on the ``default``
   queue, enqueued by this process's dispatcher thread; without Redis, delivered in-process.
3. :func:`deliver` (the job) claims the row only if it is due AND no earlier delivery of its
   subscription is unfinished, so one subscription's events go out one at a time, in order. It
   POSTs the signed body (:mod:`expertbook.webhooks.signing`) to the checked address
   (:mod:`expertbook.webhooks.addresses`) with a ``WEBHOOK_TIMEOUT_SECONDS`` timeout, records the
   attempt, and the outcome: ``delivered`` on a 2xx; else ``pending`` again with backoff, until
   ``give_up_at`` (``WEBHOOK_RETRY_HOURS`` after the event), then ``failed``, and the owner is
   emailed (once per incident). Then the subscription's next delivery is dispatched.
4. :func:`relay` (a relay hook: the worker's tick, ``flask relay``) dispatches every delivery that is
   due and first in line, or abandoned by a dead worker, unless its job is waiting in the queue.

A worker killed mid-delivery stops renewing its claim, so the row is due again within
``MAIL_CLAIM_SECONDS`` and the next attempt sends it again, with the same ``webhook-id``: at least
once, never lost.
"""
from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import ColumnElement, Insert, Integer, String, and_, exists, insert, literal, select, update
from sqlalchemy.orm import aliased

from expertbook.database import after_commit, transaction, utcnow
from expertbook.extensions import db
from expertbook.notifications.claims import ClaimedRows, backoff
from expertbook.notifications.dispatcher import Dispatcher
from expertbook.notifications.service import redis_connection, relay_due_at, uses_queue, waiting_jobs
from expertbook.webhooks import addresses, events, signing
from expertbook.webhooks.models import (
    DELIVERED,
    FAILED,
    PENDING,
    UNFINISHED,
    WebhookAttempt,
    WebhookDelivery,
    WebhookSubscription,
    WebhookSubscriptionEvent,
)

log = logging.getLogger(__name__)

ROWS = ClaimedRows(WebhookDelivery, "webhook delivery")
QUEUE = "default"  # served by ``flask worker`` beside the notifications queue, like the meeting jobs
JOB_PATH = "expertbook.webhooks.jobs.deliver"


def new_message_id() -> str:
    """A Standard Webhooks message id (``webhook-id``): unique per event and subscription."""
    return f"msg_{uuid.uuid4().hex}"


def _give_up_at(occurred_at: datetime) -> datetime:
    return occurred_at + timedelta(hours=float(current_app.config["WEBHOOK_RETRY_HOURS"]))


# ---------------------------------------------------------------------------- writing events (inside the change)


def subscribers(event_type: str, *, hospital_id: int | None = None, expert_user_id: int | None = None) -> list[int]:
    """The active subscriptions of a hospital or an expert that want ``event_type`` (one indexed query)."""
    owner = WebhookSubscription.hospital_id == hospital_id if hospital_id is not None else WebhookSubscription.expert_user_id == expert_user_id
    return list(db.session.scalars(
        select(WebhookSubscription.id)
        .join(WebhookSubscriptionEvent, WebhookSubscriptionEvent.subscription_id == WebhookSubscription.id)
        .where(owner, WebhookSubscription.active.is_(True), WebhookSubscriptionEvent.event_type == event_type)
        .order_by(WebhookSubscription.id)
    ))


def record(event_type: str, data, *, hospital_id: int | None = None, expert_user_id: int | None = None,
           ref_id: int | None = None, subscription_ids: list[int] | None = None) -> list[int]:
    """Write ``event_type`` for every subscription of the owner that wants it, in the caller's transaction.

    ``data()`` builds the event's object; it is called only when someone wants the event, so a
    change nobody subscribed to pays one small query. ``subscription_ids`` names the subscriptions
    outright (a test event). The rows are written in a savepoint: a failure here is logged and never
    costs the change. Returns the new deliveries' ids; they are dispatched after the commit.
    """
    try:
        with transaction() as session:
            targets = subscription_ids if subscription_ids is not None else subscribers(
                event_type, hospital_id=hospital_id, expert_user_id=expert_user_id)
            if not targets:
                return []
            now = utcnow()
            payload = events.envelope(event_type, now, data())
            with session.begin_nested():
                rows = [
                    WebhookDelivery(subscription_id=target, event_type=event_type, ref_id=ref_id, payload=payload,
                                    message_id=new_message_id(), status=PENDING, attempts=0, next_attempt_at=now,
                                    give_up_at=_give_up_at(now), occurred_at=now)
                    for target in targets
                ]
                session.add_all(rows)
                session.flush()
            ids = [row.id for row in rows]
            after_commit(lambda: dispatch(ids))
            return ids
    except Exception:  # a bug: loud in the log, but never a reason to lose the booking
        log.exception("webhook event %s (ref %s) not recorded", event_type, ref_id)
        return []


_subscriptions = WebhookSubscription.__table__
_wanted = WebhookSubscriptionEvent.__table__
_deliveries = WebhookDelivery.__table__


def booked_insert(appointment_id: ColumnElement[int], hospital_id: ColumnElement[int], now: ColumnElement[datetime]) -> Insert:
    """The ``appointment.booked`` rows of a new appointment, as one ``INSERT ... SELECT ... RETURNING id``.

    For the clinic booking, which is one statement on PostgreSQL: made a CTE of it, the event is
    written in that same statement, and only for the hospital's subscriptions that want it (an
    indexed lookup that finds nothing, for a hospital without one). The rows are named (no payload,
    no give-up time yet): the worker composes them at their first attempt (see :func:`_compose`).
    ``now`` is the statement's time (a bind parameter in the app's clock).
    """
    return insert(_deliveries).from_select(
        ["subscription_id", "event_type", "ref_id", "status", "attempts", "next_attempt_at", "occurred_at"],
        select(
            _subscriptions.c.id,
            literal("appointment.booked", String),
            appointment_id,
            literal(PENDING, String),
            literal(0, Integer),
            now,
            now,
        )
        .select_from(_subscriptions.join(_wanted, _wanted.c.subscription_id == _subscriptions.c.id))
        .where(
            _subscriptions.c.hospital_id == hospital_id,
            _subscriptions.c.active.is_(True),
            _wanted.c.event_type == "appointment.booked",
        ),
    ).returning(_deliveries.c.id)


# ---------------------------------------------------------------------------- dispatch (after commit)


def job_id(delivery_id: int, attempts: int) -> str:
    """Deterministic per (delivery, attempt): dispatching the same attempt twice finds its job waiting."""
    return f"webhook-{delivery_id}-{attempts}"


def _queue():
    from rq import Queue

    return Queue(QUEUE, connection=redis_connection())


def _job_timeout() -> int:
    # The POST is bounded by the timeout (connect, then read); the rest is a few quick queries.
    return int(2 * float(current_app.config["WEBHOOK_TIMEOUT_SECONDS"])) + 60


def enqueue(rows: list[tuple[int, int]], waiting: set[str] | None = None) -> int:
    """Put each (delivery id, attempts) on the queue unless its job is waiting there already; raises redis errors."""
    queue = _queue()
    if waiting is None:
        waiting = waiting_jobs(queue, [job_id(*row) for row in rows])
    put = 0
    for delivery_id, attempts in rows:
        jid = job_id(delivery_id, attempts)
        if jid in waiting:
            continue
        queue.enqueue(JOB_PATH, delivery_id, job_id=jid, job_timeout=_job_timeout(), result_ttl=24 * 3600,
                      failure_ttl=7 * 24 * 3600, description=f"deliver webhook {delivery_id}")
        put += 1
    return put


def _dispatcher() -> Dispatcher:
    app = current_app._get_current_object()
    found = app.extensions.get("webhooks_dispatcher")
    if found is None:
        found = app.extensions.setdefault("webhooks_dispatcher", Dispatcher(app, lambda ids: enqueue([(i, 0) for i in ids], set())))
    return found


def flush_dispatch(timeout: float = 10.0) -> bool:
    """Enqueue what this process's dispatcher still holds and wait for it (tests, and before exit)."""
    return _dispatcher().flush(timeout)


def dispatch(delivery_ids: list[int]) -> None:
    """Start delivering rows just committed. Never raises: the change is committed and stays.

    With a queue the ids go to the dispatcher thread (the request does not pay for the enqueue);
    without one each is delivered here and now. Redis down: the rows wait for the relay.
    """
    if uses_queue():
        try:
            dispatcher = _dispatcher()
            for delivery_id in delivery_ids:
                dispatcher.add(delivery_id)
        except Exception as exc:
            log.warning("could not hand webhook deliveries %s to the dispatcher (%s); the relay will", delivery_ids, exc)
        return
    for delivery_id in delivery_ids:
        try:
            deliver(delivery_id)
        except Exception:
            log.exception("in-process delivery of webhook %s failed; it stays in the outbox", delivery_id)


def _dispatch_next(subscription_id: int) -> None:
    """The subscription's next delivery, if one is due, goes now rather than at the relay's next tick."""
    now = utcnow()
    row = db.session.execute(
        select(WebhookDelivery.id, WebhookDelivery.attempts, WebhookDelivery.next_attempt_at)
        .where(WebhookDelivery.subscription_id == subscription_id, WebhookDelivery.status.in_(UNFINISHED))
        .order_by(WebhookDelivery.id)
        .limit(1)
    ).first()
    db.session.rollback()
    if row is None:
        return
    if row.next_attempt_at > now:
        relay_due_at(row.next_attempt_at)
        return
    if uses_queue():
        try:
            enqueue([(row.id, row.attempts)])
        except Exception as exc:
            log.warning("could not enqueue webhook delivery %s (%s); the relay will", row.id, exc)
        return
    deliver(row.id)


# ---------------------------------------------------------------------------- the job


def _first_in_line() -> ColumnElement[bool]:
    """No earlier delivery of the same subscription is unfinished (the order guarantee), and the
    subscription is active (a paused one keeps its deliveries waiting)."""
    earlier = aliased(WebhookDelivery, name="earlier")
    return and_(
        ~exists().where(
            earlier.subscription_id == WebhookDelivery.subscription_id,
            earlier.id < WebhookDelivery.id,
            earlier.status.in_(UNFINISHED),
        ),
        exists().where(WebhookSubscription.id == WebhookDelivery.subscription_id, WebhookSubscription.active.is_(True)),
    )


class NothingToSend(LookupError):
    """What a named delivery is about no longer exists (the row fails for good)."""


def _compose(event_type: str, ref_id: int | None, occurred_at: datetime) -> str:
    """The payload of a named row (written by the clinic booking's one statement)."""
    if event_type == "appointment.booked" and ref_id is not None:
        appointment = events.load_appointment(ref_id)
        if appointment is not None:
            return events.envelope(event_type, occurred_at, events.appointment_data(appointment, as_booked=True))
    raise NothingToSend(f"{event_type} {ref_id} no longer exists")


def deliver(delivery_id: int) -> str:
    """Deliver one row if it is due, first in line and unclaimed: the body of the RQ job. Idempotent.

    Returns ``"delivered"``, ``"retry"``, ``"failed"`` or ``"skipped"``.
    """
    attempt = ROWS.claim(delivery_id, _first_in_line())
    if attempt is None:
        return "skipped"
    release = ROWS.hold(delivery_id, attempt)
    try:
        return _deliver_claimed(delivery_id, attempt)
    finally:
        release()


def _deliver_claimed(delivery_id: int, attempt: int) -> str:
    row = db.session.get(WebhookDelivery, delivery_id, populate_existing=True)
    subscription = row.subscription
    subscription_id, url, sealed = subscription.id, subscription.url, subscription.secret
    payload, message_id = row.payload, row.message_id
    event_type, ref_id, occurred_at = row.event_type, row.ref_id, row.occurred_at
    give_up_at = row.give_up_at or _give_up_at(occurred_at)
    db.session.rollback()  # end the read: nothing is held while the receiver answers

    if payload is None:
        try:
            payload = _compose(event_type, ref_id, occurred_at)
        except NothingToSend as exc:
            db.session.rollback()
            return _record(subscription_id, delivery_id, attempt, utcnow(), 0, None, f"nothing to send: {exc}",
                           give_up_at=give_up_at, final=True)
        finally:
            db.session.rollback()
        message_id = new_message_id()
        if not ROWS.store(delivery_id, attempt, payload=payload, message_id=message_id, give_up_at=give_up_at):
            return "skipped"

    started = utcnow()
    clock = time.monotonic()
    status, excerpt, error = None, None, None
    try:
        body = payload.encode("utf-8")
        answer = addresses.post(url, body, signing.headers(signing.unseal(sealed), message_id, started, body),
                                float(current_app.config["WEBHOOK_TIMEOUT_SECONDS"]))
        status, excerpt = answer.status, answer.excerpt
    except (addresses.RefusedAddress, addresses.NoAnswer) as exc:
        error = str(exc)
    except Exception as exc:  # a bug, or something unexpected: retried like any failure, loudly
        log.exception("webhook delivery %s: unexpected error", delivery_id)
        error = f"{exc.__class__.__name__}: {exc}"
    duration_ms = int((time.monotonic() - clock) * 1000)
    if status is not None and not 200 <= status < 300:
        error = f"HTTP {status}"
    return _record(subscription_id, delivery_id, attempt, started, duration_ms, status, error, excerpt=excerpt,
                   give_up_at=give_up_at)


def _record(subscription_id: int, delivery_id: int, attempt: int, started: datetime, duration_ms: int,
            status: int | None, error: str | None, *, give_up_at: datetime, excerpt: str | None = None,
            final: bool = False) -> str:
    """Record the attempt and the delivery's outcome in one transaction, if the claim is still ours."""
    from expertbook.webhooks import emails

    now = utcnow()
    if error is None:
        outcome, values = DELIVERED, dict(status=DELIVERED, delivered_at=now, last_status=status, last_error=None)
    else:
        config = current_app.config
        due = now + backoff(attempt, float(config["WEBHOOK_RETRY_BASE_SECONDS"]), float(config["WEBHOOK_RETRY_MAX_SECONDS"]))
        if final or due > give_up_at:
            outcome, values = FAILED, dict(status=FAILED, last_status=status, last_error=error[:2000])
        else:
            outcome, values = "retry", dict(status=PENDING, next_attempt_at=due, last_status=status, last_error=error[:2000])
    with transaction() as session:
        if not ROWS.finish(delivery_id, attempt, **values):
            return "skipped"
        session.add(WebhookAttempt(delivery_id=delivery_id, attempt=attempt, started_at=started, duration_ms=duration_ms,
                                   status_code=status, error=error[:500] if error else None,
                                   response_excerpt=excerpt[:500] if excerpt else None))
        if outcome == DELIVERED:
            session.execute(
                update(WebhookSubscription).where(WebhookSubscription.id == subscription_id, WebhookSubscription.failing_since.is_not(None))
                .values(failing_since=None).execution_options(synchronize_session=False)
            )
        elif outcome == FAILED:
            # The first failure of an incident marks the subscription and emails its owner; later ones
            # (the rest of a backlog behind a dead endpoint) only add to the log.
            started_incident = session.execute(
                update(WebhookSubscription).where(WebhookSubscription.id == subscription_id, WebhookSubscription.failing_since.is_(None))
                .values(failing_since=now).execution_options(synchronize_session=False)
            ).rowcount
            if started_incident:
                emails.delivery_failed(subscription_id, delivery_id)
        if outcome == "retry":
            due_at = values["next_attempt_at"]
            after_commit(lambda: relay_due_at(due_at))
        else:
            after_commit(lambda: _dispatch_next(subscription_id))
    if outcome == "retry":
        log.info("webhook delivery %s: attempt %s failed (%s); retrying at %s", delivery_id, attempt, error, values["next_attempt_at"].isoformat())
    elif outcome == FAILED:
        log.warning("webhook delivery %s failed for good after %s attempts: %s", delivery_id, attempt, error)
    else:
        log.info("webhook delivery %s delivered (attempt %s, HTTP %s)", delivery_id, attempt, status)
    return outcome


# ---------------------------------------------------------------------------- relay


def relay(now: datetime | None = None, limit: int = 500) -> int:
    """Dispatch every delivery that is due (or abandoned) and first in line, unless its job waits in the
    queue already. A relay hook of the worker's periodic pass; returns how many were due."""
    now = now or utcnow()
    rows = [tuple(row) for row in db.session.execute(
        select(WebhookDelivery.id, WebhookDelivery.attempts)
        .where(WebhookDelivery.status.in_(UNFINISHED), ROWS.due(now), _first_in_line())
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(limit)
    )]
    db.session.rollback()
    if not rows:
        return 0
    if uses_queue():
        enqueue(rows)
    else:
        for delivery_id, _ in rows:
            try:
                deliver(delivery_id)
            except Exception:
                log.exception("webhook delivery %s: the relay's attempt failed", delivery_id)
    log.info("relay dispatched %s webhook deliveries", len(rows))
    return len(rows)
