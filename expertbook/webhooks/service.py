"""Webhook rules: who may have subscriptions, making and changing them, the delivery log, resending, testing.

A subscription belongs to a hospital (any of its staff admins manages it) or to an expert. Services
take the owner as an :class:`Owner` the view built from the logged-in user; another owner's
subscription is NotFound, as if it did not exist.
"""
from __future__ import annotations

from dataclasses import dataclass
from flask_babel import gettext as _
from flask_babel import ngettext
from sqlalchemy import func, select, update

from expertbook.config import ConfigError
from expertbook.database import after_commit, transaction, utcnow
from expertbook.errors import Conflict, NotFound, ValidationFailed
from expertbook.extensions import db
from expertbook.web import refused_character
from expertbook.webhooks import addresses, delivery, events, signing
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

MAX_SUBSCRIPTIONS = 10  # per hospital or expert: each event is written once per subscription that wants it
MAX_DESCRIPTION = 200
PAGE_SIZE = 20


@dataclass(frozen=True)
class Owner:
    """Whose subscriptions: a hospital's (``hospital_id``) or an expert's (``user_id``)."""

    kind: str  # events.HOSPITAL or events.EXPERT
    id: int

    def owns(self, subscription: WebhookSubscription) -> bool:
        if self.kind == events.HOSPITAL:
            return subscription.hospital_id == self.id
        return subscription.expert_user_id == self.id

    def clause(self):
        if self.kind == events.HOSPITAL:
            return WebhookSubscription.hospital_id == self.id
        return WebhookSubscription.expert_user_id == self.id


def owners_of(user) -> list[Owner]:
    """The owners a user acts for: their hospital if they are one of its staff admins, themselves if an expert."""
    found = []
    if user.is_staff_admin and user.hospital_id is not None:
        found.append(Owner(events.HOSPITAL, user.hospital_id))
    if user.is_expert:
        found.append(Owner(events.EXPERT, user.id))
    return found


def subscriptions_of(owner: Owner) -> list[WebhookSubscription]:
    """The owner's subscriptions, oldest first (at most MAX_SUBSCRIPTIONS; their events come in one more query)."""
    return list(db.session.scalars(select(WebhookSubscription).where(owner.clause()).order_by(WebhookSubscription.id)))


def subscription_for(owners: list[Owner], subscription_id: int) -> WebhookSubscription:
    """A subscription one of ``owners`` owns; NotFound for anyone else's."""
    subscription = db.session.get(WebhookSubscription, subscription_id)
    if subscription is None or not any(owner.owns(subscription) for owner in owners):
        raise NotFound(_("There is no such webhook."))
    return subscription


def owner_of(subscription: WebhookSubscription) -> Owner:
    """The owner a subscription belongs to."""
    if subscription.hospital_id is not None:
        return Owner(events.HOSPITAL, subscription.hospital_id)
    return Owner(events.EXPERT, subscription.expert_user_id)


def _clean(owner: Owner, url: str | None, event_types: list[str] | None, description: str | None) -> tuple[str, list[str], str]:
    errors: dict[str, str] = {}
    url = (url or "").strip()
    try:
        addresses.check(url)
    except addresses.RefusedAddress as refused:
        errors["url"] = str(refused)
    allowed = {event.name for event in events.events_for(owner.kind)}
    chosen = sorted(set(event_types or []))
    if not chosen:
        errors["events"] = _("Choose at least one event.")
    elif any(name not in allowed for name in chosen):
        errors["events"] = _("Choose among the events listed.")
    description = " ".join((description or "").split())
    if len(description) > MAX_DESCRIPTION:
        errors["description"] = _("Keep it under %(count)s characters.", count=MAX_DESCRIPTION)
    elif refused_character(description):
        errors["description"] = _("Contains characters that are not allowed.")
    if errors:
        raise ValidationFailed(errors)
    return url, chosen, description


def _sealed(secret: str) -> str:
    try:
        return signing.seal(secret)
    except ConfigError as error:  # production without TOKEN_ENCRYPTION_KEYS: say so, store nothing
        raise Conflict(_("Webhooks are not available on this server yet: its administrator must set an encryption key.")) from error


def create(owner: Owner, url: str | None, event_types: list[str] | None, description: str | None = "",
           created_by: int | None = None) -> tuple[WebhookSubscription, str]:
    """Make a subscription; returns it and its signing secret, which is shown this once and never again.

    The URL is checked now (https, and every address its name resolves to is public) and again before
    every delivery. ValidationFailed names the field (``url``, ``events``, ``description``); Conflict
    when the owner already has MAX_SUBSCRIPTIONS.
    """
    url, chosen, description = _clean(owner, url, event_types, description)
    secret = signing.new_secret()
    with transaction() as session:
        count = session.scalar(select(func.count()).select_from(WebhookSubscription).where(owner.clause()))
        if count >= MAX_SUBSCRIPTIONS:
            raise Conflict(ngettext("You can have at most %(num)d webhook.", "You can have at most %(num)d webhooks.", MAX_SUBSCRIPTIONS))
        now = utcnow()
        subscription = WebhookSubscription(
            hospital_id=owner.id if owner.kind == events.HOSPITAL else None,
            expert_user_id=owner.id if owner.kind == events.EXPERT else None,
            url=url, description=description, secret=_sealed(secret), active=True,
            created_by_id=created_by, created_at=now, updated_at=now,
            events=[WebhookSubscriptionEvent(event_type=name) for name in chosen],
        )
        session.add(subscription)
        session.flush()
    return subscription, secret


def update_subscription(owners: list[Owner], subscription_id: int, url: str | None, event_types: list[str] | None,
                        description: str | None, active: bool) -> WebhookSubscription:
    """Change a subscription's URL, events, description, or pause/resume it (the secret stays).

    Resuming makes the deliveries that waited due now.
    """
    with transaction() as session:
        subscription = subscription_for(owners, subscription_id)
        url, chosen, description = _clean(owner_of(subscription), url, event_types, description)
        was_active = subscription.active
        subscription.url, subscription.description, subscription.active = url, description, bool(active)
        subscription.updated_at = utcnow()
        current = {event.event_type: event for event in subscription.events}
        for name in set(current) - set(chosen):
            subscription.events.remove(current[name])
        for name in sorted(set(chosen) - set(current)):
            subscription.events.append(WebhookSubscriptionEvent(event_type=name))
        if active and not was_active:
            session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.subscription_id == subscription_id, WebhookDelivery.status == PENDING)
                .values(next_attempt_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            after_commit(lambda: delivery.relay())
    return subscription


def delete(owners: list[Owner], subscription_id: int) -> None:
    """Delete a subscription, its log and whatever it still had to deliver."""
    with transaction() as session:
        session.delete(subscription_for(owners, subscription_id))


def rotate_secret(owners: list[Owner], subscription_id: int) -> str:
    """Give a subscription a new signing secret at once; returns it (shown once). Every attempt from
    now on is signed with it, retries of older events included."""
    secret = signing.new_secret()
    with transaction():
        subscription = subscription_for(owners, subscription_id)
        subscription.secret = _sealed(secret)
        subscription.updated_at = utcnow()
    return secret


@dataclass(frozen=True)
class LogPage:
    """One page of a subscription's deliveries, newest first, each with its attempts (oldest first)."""

    deliveries: list[WebhookDelivery]
    attempts: dict[int, list[WebhookAttempt]]
    page: int
    has_next: bool


def delivery_log(subscription_id: int, page: int = 1, status: str | None = None) -> LogPage:
    """The deliveries of a subscription, a page at a time (two queries, whatever the page holds)."""
    query = select(WebhookDelivery).where(WebhookDelivery.subscription_id == subscription_id)
    if status in (PENDING, DELIVERED, FAILED):
        query = query.where(WebhookDelivery.status.in_(UNFINISHED) if status == PENDING else WebhookDelivery.status == status)
    rows = list(db.session.scalars(query.order_by(WebhookDelivery.id.desc()).offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)))
    has_next = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    attempts: dict[int, list[WebhookAttempt]] = {row.id: [] for row in rows}
    if rows:
        for attempt in db.session.scalars(
            select(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(list(attempts))).order_by(WebhookAttempt.delivery_id, WebhookAttempt.attempt)
        ):
            attempts[attempt.delivery_id].append(attempt)
    return LogPage(rows, attempts, page, has_next)


def resend(owners: list[Owner], subscription_id: int, delivery_id: int) -> WebhookDelivery:
    """Send a delivered or failed event again, with the same ``webhook-id`` (receivers may drop it as a
    duplicate) and a fresh retry window. It goes out at once, ahead of deliveries still waiting."""
    now = utcnow()
    with transaction() as session:
        subscription_for(owners, subscription_id)
        row = session.scalar(
            select(WebhookDelivery).where(WebhookDelivery.id == delivery_id, WebhookDelivery.subscription_id == subscription_id)
        )
        if row is None:
            raise NotFound(_("There is no such delivery."))
        done = session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id, WebhookDelivery.status.in_((DELIVERED, FAILED)))
            .values(status=PENDING, next_attempt_at=now, give_up_at=delivery._give_up_at(now), claimed_until=None)
            .execution_options(synchronize_session=False)
        ).rowcount
        if not done:
            raise Conflict(_("This event is waiting to be delivered already."))
        after_commit(lambda: delivery.dispatch([delivery_id]))
    db.session.refresh(row)
    return row


def send_test(owners: list[Owner], subscription_id: int) -> int:
    """Queue a ``webhook.test`` event for one subscription (whatever events it wants); returns the delivery's id.

    It takes its turn behind the subscription's other deliveries, like any event.
    """
    with transaction():
        subscription = subscription_for(owners, subscription_id)
        if not subscription.active:
            raise Conflict(_("This webhook is paused. Resume it to send a test event."))
        ids = delivery.record(events.TEST_EVENT, lambda: events.test_data(subscription_id), subscription_ids=[subscription_id])
    if not ids:
        raise Conflict(_("The test event could not be queued. Please try again."))
    return ids[0]


def waiting(subscription_ids: list[int]) -> dict[int, int]:
    """How many deliveries each subscription still has to make (one query, over unfinished rows only)."""
    found = {sid: 0 for sid in subscription_ids}
    if subscription_ids:
        for sid, count in db.session.execute(
            select(WebhookDelivery.subscription_id, func.count())
            .where(WebhookDelivery.subscription_id.in_(subscription_ids), WebhookDelivery.status.in_(UNFINISHED))
            .group_by(WebhookDelivery.subscription_id)
        ):
            found[sid] = count
    return found


def rotate_keys() -> int:
    """Re-encrypt every stored signing secret with the first of TOKEN_ENCRYPTION_KEYS (after a new key was
    put first), so the old key can be removed. Returns how many were re-encrypted."""
    done = 0
    last = 0
    while True:
        with transaction() as session:
            batch = list(session.scalars(
                select(WebhookSubscription).where(WebhookSubscription.id > last).order_by(WebhookSubscription.id).limit(200)
            ))
            for subscription in batch:
                subscription.secret = signing.rotate(subscription.secret)
        if not batch:
            return done
        done += len(batch)
        last = batch[-1].id
