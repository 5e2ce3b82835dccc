"""Webhook deliveries through real ``flask --app wsgi worker`` subprocesses and a Redis of the test's own:
a worker killed (SIGKILL) in the middle of a delivery loses no event, and a receiver that answers 500
three times gets the event on the fourth try, once. Every wait is bounded."""
from __future__ import annotations

import time

import pytest
from sqlalchemy import select
from standardwebhooks import Webhook

from expertbook.extensions import db
from expertbook.webhooks import delivery, events, service
from expertbook.webhooks.models import WebhookAttempt, WebhookDelivery
from tests.notifications.test_faults import TICK, WORKER_ENV, Workers, wait_until, workers  # noqa: F401 - fixture
from tests.notifications.conftest import mail_config
from tests.notifications.conftest import smtp  # noqa: F401 - fixture
from tests.video.conftest import zoom  # noqa: F401 - fixture
from tests.webhooks.conftest import webhook_config
from tests.webhooks.test_delivery import cancel_one
from tests.factories import make_staff

pytestmark = pytest.mark.faults
HOOK_ENV = {
    "WEBHOOK_ALLOW_HTTP": "1",
    "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "1",
    "WEBHOOK_TIMEOUT_SECONDS": "5",
    "WEBHOOK_RETRY_BASE_SECONDS": "0.5",
    "WEBHOOK_RETRY_MAX_SECONDS": "1",
}


@pytest.fixture
def app_config(smtp, redis_server, zoom, encryption_key):  # noqa: F811
    # The web side as in production: Redis, jobs on the queue, the worker does the delivering.
    return zoom.config() | mail_config(smtp, REDIS_URL=redis_server.url, RUN_JOBS_INLINE=False) | {
        key: float(value) for key, value in WORKER_ENV.items()
    } | webhook_config(TOKEN_ENCRYPTION_KEYS=encryption_key, WEBHOOK_TIMEOUT_SECONDS=5.0)


def rows() -> list[WebhookDelivery]:
    db.session.rollback()
    return list(db.session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


def subscribe(receiver):
    staff = make_staff()
    subscription, secret = service.create(service.Owner(events.HOSPITAL, staff.hospital_id), receiver.url, ["appointment.cancelled"])
    return staff, subscription, secret


def test_a_worker_killed_mid_delivery_loses_no_event(app, receiver, workers):  # noqa: F811
    first = workers.start(**HOOK_ENV)
    receiver.then("hang:30")  # the first POST hangs: the worker is killed while it waits for the answer
    staff, _, secret = subscribe(receiver)
    cancel_one(staff)
    assert delivery.flush_dispatch()
    wait_until(lambda: len(receiver.requests) == 1, 30, "the worker's POST reaches the receiver")
    [row] = rows()
    assert row.status == "sending" and row.attempts == 1
    workers.kill(first)
    workers.start(**HOOK_ENV)
    live = time.monotonic()
    # Nobody renews the dead worker's claim: within MAIL_CLAIM_SECONDS it is due again, and the relay
    # (the new worker's tick) hands it to the new worker.
    wait_until(lambda: rows()[0].status == "delivered", 30, "the event is delivered by the new worker")
    assert time.monotonic() - live <= float(WORKER_ENV["MAIL_CLAIM_SECONDS"]) + TICK + 8
    time.sleep(2 * TICK)  # a duplicate would come with the next passes
    [row] = rows()
    first_try, second_try = receiver.requests
    # The same message both times (the receiver drops the duplicate by webhook-id), each signed.
    assert first_try.headers["webhook-id"] == second_try.headers["webhook-id"] == row.message_id
    assert first_try.body == second_try.body
    Webhook(secret).verify(second_try.body, second_try.headers)
    assert row.attempts == 2 and len(receiver.delivered()) == 1
    # The dead worker's attempt left no record; the new worker's did.
    assert [a.attempt for a in db.session.scalars(select(WebhookAttempt))] == [2]


def test_a_receiver_that_answers_500_three_times_gets_the_event_on_the_fourth_try_once(app, receiver, workers):  # noqa: F811
    workers.start(**HOOK_ENV)
    receiver.then(500, 500, 500)
    staff, _, secret = subscribe(receiver)
    cancel_one(staff)
    assert delivery.flush_dispatch()
    wait_until(lambda: rows()[0].status == "delivered", 40, "the event is delivered")
    time.sleep(2 * TICK)
    assert [r.answered for r in receiver.requests] == [500, 500, 500, 200]
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
    Webhook(secret).verify(receiver.requests[-1].body, receiver.requests[-1].headers)
    assert rows()[0].attempts == 4
