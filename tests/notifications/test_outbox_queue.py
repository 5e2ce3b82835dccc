"""The outbox through RQ: real Redis (database 1), real RQ workers, a real SMTP server on loopback.

Workers run in-process (``AppWorker.work(burst=True)``, the class ``flask worker`` uses) or, for the
crash test, as a ``flask --app wsgi worker`` subprocess that is killed with SIGKILL mid-send.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue
from rq.registry import ScheduledJobRegistry
from sqlalchemy import select

from expertbook.database import transaction, utcnow
from expertbook.extensions import db
from expertbook.notifications import service
from expertbook.notifications.jobs import AppWorker
from expertbook.notifications.models import OutboxEmail
from tests.factories import queue_notice
from tests.notifications.conftest import TEST_QUEUE, closed_port_url, mail_config

pytestmark = pytest.mark.redis
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def app_config(smtp, redis_url):
    return mail_config(smtp, REDIS_URL=redis_url, RUN_JOBS_INLINE=False)


def rows() -> list[OutboxEmail]:
    db.session.rollback()
    return list(db.session.scalars(select(OutboxEmail).order_by(OutboxEmail.id)))


def run_worker(app) -> float:
    """One burst of an in-process worker (with the scheduler, which moves due retries onto the queue).

    First the dispatcher's thread is let finish, so the queue holds what it holds a moment after the commits.
    """
    assert service.flush_dispatch()
    connection = Redis.from_url(app.config["REDIS_URL"])
    worker = AppWorker([Queue(TEST_QUEUE, connection=connection)], connection=connection, app=app)
    started = time.monotonic()
    worker.work(burst=True, with_scheduler=True, logging_level="WARNING")
    return time.monotonic() - started


def work_until(app, done, timeout: float = 15.0) -> None:
    """Run worker bursts (and relay passes) until ``done()`` or the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run_worker(app)
        if done():
            return
        time.sleep(0.05)
    raise AssertionError(f"not done within {timeout} s: {rows()}")


def test_the_row_is_enqueued_after_commit_and_sent_by_the_worker(app, smtp, redis_url):
    outbox_id = queue_notice()
    queue = Queue(TEST_QUEUE, connection=Redis.from_url(redis_url))
    # The dispatcher's thread enqueues it on its own, a moment after the commit.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not queue.job_ids:
        time.sleep(0.01)
    assert queue.job_ids == [service.job_id(outbox_id, 0)]
    assert smtp.messages == []  # nothing is sent in the request: the worker does it
    # The relay finds the job already queued: dispatching twice adds no second job.
    assert service.relay() == 1
    assert queue.job_ids == [service.job_id(outbox_id, 0)]
    run_worker(app)
    [row] = rows()
    assert row.status == "sent" and row.attempts == 1
    [message] = smtp.messages
    assert message["Message-ID"] == row.message_id


def hold_dispatch(app) -> None:
    """Keep the dispatcher's thread from enqueueing until flush_dispatch(): the rows form one batch, however slow the test."""
    from expertbook.notifications.service import dispatcher

    dispatcher(app).linger = 60


def test_rows_committed_together_share_one_job_and_each_is_sent_once(app, smtp, redis_url):
    hold_dispatch(app)
    ids = [queue_notice(to_email=f"p{n}@example.com") for n in range(3)]
    assert service.flush_dispatch()
    queue = Queue(TEST_QUEUE, connection=Redis.from_url(redis_url))
    [job] = queue.jobs
    assert job.func_name == service.BATCH_JOB_PATH and job.args == (ids,)
    # The relay finds each row waiting in that job: no second job.
    service.relay()
    assert queue.job_ids == [job.id]
    run_worker(app)
    assert [row.status for row in rows()] == ["sent"] * 3 and all(row.attempts == 1 for row in rows())
    # A relay pass afterwards finds nothing due, and a stray second run of the job sends nothing again.
    assert service.relay() == 0
    queue.enqueue(service.BATCH_JOB_PATH, ids)
    run_worker(app)
    time.sleep(0.1)
    assert sorted(m["To"].addresses[0].addr_spec for m in smtp.messages) == [f"p{n}@example.com" for n in range(3)]


def test_rows_of_a_batch_job_whose_worker_died_are_relayed_one_by_one(app, smtp, redis_url):
    from rq.job import JobStatus

    hold_dispatch(app)
    ids = [queue_notice(to_email=f"d{n}@example.com") for n in range(2)]
    assert service.flush_dispatch()
    queue = Queue(TEST_QUEUE, connection=Redis.from_url(redis_url))
    [job] = queue.jobs
    queue.remove(job)  # a worker took the batch...
    job.set_status(JobStatus.STARTED)  # ...and died before claiming anything
    assert service.relay() == 2
    assert sorted(queue.job_ids) == sorted(service.job_id(outbox_id, 0) for outbox_id in ids)
    run_worker(app)
    assert [row.status for row in rows()] == ["sent", "sent"] and len(smtp.messages) == 2


def test_a_row_in_a_batch_whose_claim_fails_does_not_stop_the_others(app, smtp, redis_url, monkeypatch):
    from expertbook.notifications import jobs

    ids = [queue_notice(to_email=f"q{n}@example.com") for n in range(3)]
    send = service.send

    def flaky(outbox_id):
        if outbox_id == ids[0]:
            raise RuntimeError("database went away")
        return send(outbox_id)

    monkeypatch.setattr(service, "send", flaky)
    assert jobs.send_emails(ids) == {"error": 1, "sent": 2}
    assert [row.status for row in rows()] == ["pending", "sent", "sent"]
    monkeypatch.setattr(service, "send", send)
    assert service.relay() == 1  # the relay comes back to the one left pending
    run_worker(app)
    assert [row.status for row in rows()] == ["sent"] * 3


def test_redis_down_during_the_write_then_exactly_one_email_after_it_is_back(app, smtp, redis_url, notification_logs):
    app.config["REDIS_URL"] = closed_port_url()
    with transaction():
        from expertbook.auth.models import User

        db.session.add(User(name="Booker", email="booker@example.com", password_hash="x"))
        outbox_id = service.queue_email("notice", "booker@example.com", "Booker", "notice",
                                        {"heading": "Booked", "message": "Your booking is confirmed."}, subject="Booked")
    # The booking committed, the email waits in the outbox.
    assert service.flush_dispatch()
    assert db.session.scalar(select(User.id).where(User.email == "booker@example.com")) is not None
    [row] = rows()
    assert row.id == outbox_id and row.status == "pending"
    assert "stays pending for the relay" in notification_logs.text
    # Redis is back (the app's client is rebuilt on the real URL), and the relay runs.
    app.config["REDIS_URL"] = redis_url
    app.extensions.pop("notifications_redis", None)
    assert service.relay() == 1
    run_worker(app)
    assert rows()[0].status == "sent"
    # Running the relay and the worker again changes nothing.
    assert service.relay() == 0
    run_worker(app)
    time.sleep(0.1)
    assert len(smtp.messages) == 1


def test_451_twice_then_accepted_is_delivered_exactly_once(app, smtp, redis_url):
    smtp.then("451 4.3.0 Try later", "451 4.3.0 Try later")
    outbox_id = queue_notice()
    run_worker(app)
    [row] = rows()
    assert row.status == "pending" and row.attempts == 1
    # The retry is scheduled in RQ (not just left for the relay).
    scheduled = ScheduledJobRegistry(TEST_QUEUE, connection=Redis.from_url(redis_url))
    assert service.job_id(outbox_id, 1) in scheduled.get_job_ids()
    work_until(app, lambda: rows()[0].status == "sent")
    [row] = rows()
    assert row.attempts == 3 and smtp.data_commands == 3
    assert len(smtp.messages) == 1


def test_550_is_failed_at_once_and_visible_to_admins(app, smtp, redis_url, client):
    from tests.factories import login, make_admin

    smtp.then("550 5.1.1 User unknown")
    queue_notice(to_email="nobody@example.com")
    run_worker(app)
    [row] = rows()
    assert row.status == "failed" and row.attempts == 1 and "550 5.1.1 User unknown" in row.last_error
    assert ScheduledJobRegistry(TEST_QUEUE, connection=Redis.from_url(redis_url)).get_job_ids() == []
    service.relay()
    run_worker(app)
    assert rows()[0].attempts == 1 and smtp.data_commands == 1
    login(client, make_admin())
    page = client.get("/notifications?status=failed").get_data(as_text=True)
    assert "nobody@example.com" in page and "550 5.1.1 User unknown" in page and "Retry" in page


def test_an_admin_retry_of_a_failed_email_goes_through_the_queue(app, smtp, redis_url):
    smtp.then("550 5.1.1 User unknown")
    outbox_id = queue_notice()
    run_worker(app)
    assert rows()[0].status == "failed"
    service.retry_failed(outbox_id)  # reuses the job id of attempt 0, whose job has finished
    run_worker(app)
    [row] = rows()
    assert row.status == "sent" and row.attempts == 1
    assert len(smtp.messages) == 1 and smtp.data_commands == 2


def test_the_workers_periodic_pass_relays_what_redis_missed(app, smtp, redis_url):
    from expertbook.notifications.jobs import Ticker

    app.config["REDIS_URL"] = closed_port_url()
    queue_notice()
    assert rows()[0].status == "pending"
    app.config["REDIS_URL"] = redis_url
    app.extensions.pop("notifications_redis", None)
    app.config["WORKER_TICK_SECONDS"] = 0.05
    ticker = Ticker(app)
    ticker.start()
    try:
        queue = Queue(TEST_QUEUE, connection=Redis.from_url(redis_url))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not queue.job_ids:
            time.sleep(0.05)
    finally:
        ticker.stop()
        ticker.join(5)
    run_worker(app)
    assert rows()[0].status == "sent" and len(smtp.messages) == 1


def test_a_job_taken_by_a_worker_that_died_before_claiming_is_relayed(app, smtp, redis_url):
    from rq.job import Job, JobStatus

    outbox_id = queue_notice()
    assert service.flush_dispatch()
    queue = Queue(TEST_QUEUE, connection=Redis.from_url(redis_url))
    job = Job.fetch(service.job_id(outbox_id, 0), connection=queue.connection)
    queue.remove(job)  # a worker took it off the queue...
    job.set_status(JobStatus.STARTED)  # ...started it, and died before its claim committed
    assert rows()[0].status == "pending" and rows()[0].attempts == 0
    assert service.relay() == 1
    run_worker(app)
    [row] = rows()
    assert row.status == "sent" and len(smtp.messages) == 1


def test_a_hanging_server_times_out_the_worker_moves_on_and_the_email_is_retried(app, smtp, redis_url):
    app.config["MAIL_TIMEOUT"] = 0.5
    smtp.then("hang")
    first = queue_notice(to_email="first@example.com")
    second = queue_notice(to_email="second@example.com")
    elapsed = run_worker(app)
    # MAIL_TIMEOUT is 0.5 s: the burst ends quickly, and the email behind the hung one went out.
    assert elapsed < 10
    by_id = {row.id: row for row in rows()}
    assert by_id[first].status == "pending" and "timed out" in by_id[first].last_error
    assert by_id[second].status == "sent"
    smtp.release()
    work_until(app, lambda: all(row.status == "sent" for row in rows()))
    assert sorted(m["To"].addresses[0].addr_spec for m in smtp.messages) == ["first@example.com", "second@example.com"]


def test_a_worker_killed_mid_send_still_delivers_exactly_once(app, smtp, redis_url, database_url, tmp_path):
    outbox_id = queue_notice(to_email="crash@example.com")
    smtp.then("hang")
    env = dict(
        os.environ,
        EXPERTBOOK_ENV="development",
        SECRET_KEY="test-secret-key",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        MAIL_SERVER="127.0.0.1",
        MAIL_PORT=str(smtp.port),
        MAIL_TIMEOUT="60",  # it would hang a minute: the kill comes first
        MAIL_CLAIM_SECONDS="1",
        NOTIFICATIONS_QUEUE=TEST_QUEUE,
        BASE_URL="http://testserver.example",
        RATELIMIT_STORAGE_URI="memory://",
    )
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "worker", "--burst", "--queue", TEST_QUEUE],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        assert smtp.hang_started.wait(30), (tmp_path / "worker.log").read_text()
        [row] = rows()
        assert row.status == "sending" and row.attempts == 1
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
        log.close()
    smtp.release()  # the server now accepts; the dead worker's connection is gone
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and rows()[0].claimed_until > utcnow():
        time.sleep(0.05)
    assert service.relay() == 1  # the abandoned row is dispatched again, under a fresh job id
    run_worker(app)
    [row] = rows()
    assert row.id == outbox_id and row.status == "sent" and row.attempts == 2
    assert len(smtp.messages) == 1 and smtp.messages[0]["Message-ID"] == row.message_id
    service.relay()
    run_worker(app)
    time.sleep(0.1)
    assert len(smtp.messages) == 1
