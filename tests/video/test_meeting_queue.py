"""Meeting jobs through RQ: real Redis (database 6, this area's own), the worker class ``flask worker`` runs,
a real Zoom stand-in and a real SMTP server on loopback."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from redis import Redis
from rq import Queue
from rq.registry import ScheduledJobRegistry
from sqlalchemy import select

from expertbook.database import utcnow
from expertbook.experts import service as experts
from expertbook.extensions import db
from expertbook.notifications import service as notifications
from expertbook.notifications.jobs import AppWorker
from expertbook.video import meetings
from expertbook.video.models import Meeting
from expertbook.devtools.zoom_standin import MEETING_CREATE
from tests.conftest import redis_database
from tests.experts.helpers import book_kwargs, next_weekday_at
from tests.factories import make_service, make_user
from tests.notifications.conftest import TEST_QUEUE, closed_port_url, mail_config, smtp  # noqa: F401

pytestmark = pytest.mark.redis


@pytest.fixture
def redis_db6():
    """Redis database 6 (the meetings tests' own), emptied before and after the test."""
    yield from redis_database(6)


@pytest.fixture
def app_config(zoom, encryption_key, smtp, redis_db6):  # noqa: F811
    return zoom.config() | mail_config(smtp, REDIS_URL=redis_db6, RUN_JOBS_INLINE=False) | {
        "ZOOM_TIMEOUT": 2.0, "TOKEN_ENCRYPTION_KEYS": encryption_key,
    }


@pytest.fixture
def profile(connected_expert):
    return experts.profile_of(connected_expert.id)


def run_worker(app) -> None:
    """A burst of the worker ``flask worker`` runs, on the meetings' and the notifications' queues.

    A meeting job's emails are enqueued by the dispatcher's thread a moment later, as a running worker
    would find them: a second burst after the dispatcher has finished sends them.
    """
    connection = Redis.from_url(app.config["REDIS_URL"])
    queues = [Queue(name, connection=connection) for name in (meetings.QUEUE, TEST_QUEUE)]
    for _ in range(2):
        AppWorker(queues, connection=connection, app=app).work(burst=True, with_scheduler=False, logging_level="WARNING")
        assert notifications.flush_dispatch()


def meeting_of(booking_id: int) -> Meeting:
    db.session.rollback()
    return db.session.scalar(select(Meeting).where(Meeting.booking_id == booking_id))


def book(profile):
    customer = make_user("Ana Customer", "ana@example.com")
    svc = make_service(profile)
    return experts.book(customer.id, svc.id, next_weekday_at(10), **book_kwargs(customer))


def test_the_meeting_is_created_by_the_worker_after_commit(app, profile, zoom, smtp, redis_db6):
    booking = book(profile)
    meeting = meeting_of(booking.id)
    queue = Queue(meetings.QUEUE, connection=Redis.from_url(redis_db6))
    assert queue.job_ids == [meetings.job_id(meeting.id, meeting.next_attempt_at)]
    assert meeting.status == "pending" and zoom.standin.calls[MEETING_CREATE] == 0  # nothing in the request itself
    assert meetings.relay() == 1 and len(queue.job_ids) == 1  # the relay finds the job waiting: no second one
    run_worker(app)
    meeting = meeting_of(booking.id)
    assert meeting.status == "created" and zoom.standin.calls[MEETING_CREATE] == 1
    messages = smtp.wait_for(2)
    assert any(meeting.join_url in m.get_body(("plain",)).get_content() for m in messages if "ana@example.com" in m["To"])


def test_a_rate_limit_schedules_the_retry_no_sooner_than_retry_after(app, profile, zoom, smtp, redis_db6):
    zoom.standin.fail(MEETING_CREATE, "429", retry_after=120)
    booking = book(profile)
    before = utcnow()
    run_worker(app)
    meeting = meeting_of(booking.id)
    assert meeting.status == "pending" and meeting.attempts == 1 and "429" in meeting.last_error
    assert meeting.next_attempt_at >= before + timedelta(seconds=120)
    registry = ScheduledJobRegistry(meetings.QUEUE, connection=Redis.from_url(redis_db6))
    [job_id] = registry.get_job_ids()
    assert job_id == meetings.job_id(meeting.id, meeting.next_attempt_at)
    scheduled = registry.get_scheduled_time(job_id).replace(tzinfo=UTC)
    assert scheduled >= meeting.next_attempt_at.replace(microsecond=0) >= before + timedelta(seconds=119)
    assert scheduled <= meeting.next_attempt_at + timedelta(seconds=2)
    # When it is due, the job runs and the meeting is created.
    assert meetings.sync(meeting.id, now=meeting.next_attempt_at) == "created"
    assert zoom.standin.calls[MEETING_CREATE] == 2


def test_redis_down_during_the_booking_then_the_relay_catches_up(app, profile, zoom, smtp, redis_db6):
    good = app.config["REDIS_URL"]
    app.config["REDIS_URL"] = closed_port_url()
    app.extensions.pop("notifications_redis", None)
    booking = book(profile)  # the booking succeeds although nothing could be queued
    assert booking.status == "confirmed" and meeting_of(booking.id).status == "pending"
    app.config["REDIS_URL"] = good
    app.extensions.pop("notifications_redis", None)
    assert meetings.relay() == 1
    run_worker(app)
    assert meeting_of(booking.id).status == "created"
    assert len(smtp.wait_for(2)) == 2


def test_cancelling_deletes_through_the_queue(app, profile, zoom, redis_db6):
    booking = book(profile)
    run_worker(app)
    meeting = meeting_of(booking.id)
    experts.cancel(booking.customer_id, booking.id)
    run_worker(app)
    assert meeting_of(booking.id).status == "deleted" and meeting.external_id not in zoom.standin.meetings


def test_the_worker_tick_relays_due_meetings(app, profile, zoom, redis_db6):
    from expertbook.notifications.jobs import periodic_pass

    zoom.standin.fail(MEETING_CREATE, "500")
    booking = book(profile)
    run_worker(app)
    meeting = meeting_of(booking.id)
    assert meeting.status == "pending"
    Redis.from_url(redis_db6).flushdb()  # the scheduled retry is lost (e.g. Redis restarted without persistence)
    from sqlalchemy import update

    from expertbook.database import transaction

    with transaction():
        db.session.execute(update(Meeting).where(Meeting.id == meeting.id).values(next_attempt_at=datetime.now(UTC)))
    periodic_pass(app)
    run_worker(app)
    assert meeting_of(booking.id).status == "created"
