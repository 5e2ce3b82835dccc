"""Calendar jobs through RQ (real Redis, database 9, this area's own, and the worker class ``flask worker``
runs): a booking's event is written by the worker, not the web request; busy times go stale and the relay
pass (the worker's tick) has them read again; a job lost with Redis comes back with the relay."""
from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from redis import Redis
from rq import Queue

from expertbook.calendars import queue as calendar_queue
from expertbook.calendars import service as calendars
from expertbook.calendars import writes
from expertbook.database import utcnow
from expertbook.experts import service as experts
from expertbook.extensions import db
from expertbook.notifications.jobs import AppWorker
from tests.calendars.conftest import base_config
from tests.calendars.helpers import choose, connect_caldav, connection, events_of
from tests.conftest import redis_database
from tests.experts.helpers import book_kwargs, next_weekday_at
from tests.factories import login, make_expert, make_service, make_user

pytestmark = pytest.mark.redis
LONDON = ZoneInfo("Europe/London")


@pytest.fixture
def redis_db9():
    yield from redis_database(9)


@pytest.fixture
def app_config(redis_db9):
    return base_config() | {"REDIS_URL": redis_db9, "RUN_JOBS_INLINE": False, "CALENDAR_BUSY_TTL_SECONDS": 60}


def run_worker(app) -> int:
    """A burst of the worker on the calendars' queue; returns how many jobs were waiting."""
    connection_ = Redis.from_url(app.config["REDIS_URL"])
    waiting = Queue(calendar_queue.QUEUE, connection=connection_).count
    AppWorker([Queue(calendar_queue.QUEUE, connection=connection_)], connection=connection_, app=app).work(
        burst=True, with_scheduler=False, logging_level="WARNING")
    db.session.rollback()  # the test's own reads start afresh, after what the worker committed
    return waiting


def test_the_worker_reads_busy_times_and_writes_events_and_the_relay_brings_lost_jobs_back(app, client, radicale):
    profile = make_expert("Ada Expert", handle="ada", timezone="Europe/London")
    svc = make_service(profile, "Consultation", slug="consult", location_kind="phone", location_detail="+44 20 7946 0000")
    radicale.calendar("Work")
    radicale.calendar("Bookings")
    start = next_weekday_at(10)
    radicale.add_event("Work", "busy-1", start, start + timedelta(hours=1))
    login(client, profile.user)
    assert connect_caldav(client, radicale).status_code == 303
    day = start.astimezone(LONDON).date()
    # The page's request only listed the calendars: the busy times are the worker's to read.
    assert connection().last_ok_at is not None
    assert start in experts.times_on(svc, day, "Europe/London")
    assert run_worker(app) == 1
    assert start not in experts.times_on(svc, day, "Europe/London")

    choose(client, connection().id, ["Work"], "Bookings")
    customer = make_user("Cara Customer")
    booking = experts.book(customer.id, svc.id, start + timedelta(hours=2), **book_kwargs(customer))
    assert radicale.events("Bookings") == [] and events_of(booking.id)[0].status == "pending"
    assert run_worker(app) == 1
    assert len(radicale.events("Bookings")) == 1 and events_of(booking.id)[0].status == "written"

    # Redis loses the queued work (a restart without persistence): the rows are the schedule, so the
    # relay pass enqueues whatever is due again.
    experts.cancel(customer.id, booking.id)
    Redis.from_url(app.config["REDIS_URL"]).flushdb()
    later = utcnow() + timedelta(minutes=2)  # and the busy times are older than their TTL by then
    assert writes.relay(now=later) == 1
    assert calendars.relay(now=later) == 1
    assert run_worker(app) == 2
    assert radicale.events("Bookings") == []
    assert events_of(booking.id)[0].status == "deleted"
