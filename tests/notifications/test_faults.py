"""Faults with real processes: a Redis server of the test's own, ``flask --app wsgi worker`` subprocesses
killed with SIGKILL, a scripted SMTP server and the Zoom stand-in on loopback.

What must hold (issue 12): the database is the only schedule, so a row that is due is sent within
``WORKER_TICK_SECONDS`` and a few seconds of a live worker existing, whatever happened to Redis or to an
earlier worker, and exactly once (counted at the SMTP server by Message-ID). The same for meetings.
Every wait is bounded; the test's processes are stopped at its end.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from expertbook.database import transaction, utcnow
from expertbook.extensions import db
from expertbook.notifications import service
from expertbook.notifications.models import OutboxEmail
from tests.notifications.conftest import TEST_QUEUE, mail_config
from tests.video.conftest import connected_expert, encryption_key, expert, zoom  # noqa: F401 - fixtures

pytestmark = pytest.mark.faults
ROOT = Path(__file__).resolve().parents[2]
TICK = 1.0  # WORKER_TICK_SECONDS of the workers here
FEW = 8.0  # "a few seconds": a worker's passes and a send on a busy CI machine
WORKER_ENV = {
    "WORKER_TICK_SECONDS": str(TICK),
    "MAIL_RETRY_BASE_SECONDS": "1",
    "MAIL_RETRY_MAX_SECONDS": "2",
    "MAIL_CLAIM_SECONDS": "2",
    "MAIL_TIMEOUT": "5",
    "ZOOM_TIMEOUT": "2",
    "VIDEO_RETRY_BASE_SECONDS": "1",
}


def wait_until(done: Callable[[], object], timeout: float, what: str) -> float:
    """Poll ``done()`` until true, at most ``timeout`` seconds; returns how long it took."""
    started = time.monotonic()
    while not done():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.1)
    return time.monotonic() - started


class Workers:
    """``flask --app wsgi worker`` subprocesses, each in its own process group, with a log file each."""

    def __init__(self, directory: Path, env: dict[str, str]):
        self.directory = directory
        self.env = env
        self.started: list[tuple[subprocess.Popen, Path]] = []

    def start(self, **extra_env: str) -> subprocess.Popen:
        """Start a worker and wait (bounded) until its RQ loop listens on the queues."""
        log_path = self.directory / f"worker-{len(self.started) + 1}.log"
        log = open(log_path, "wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "worker", "--queue", TEST_QUEUE, "--queue", "default"],
            cwd=ROOT, env=self.env | extra_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        self.started.append((process, log_path))

        def listening() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"the worker exited with {process.returncode}:\n{self.log(process)[-3000:]}")
            return "Listening on" in self.log(process)

        wait_until(listening, 60, "the worker listens on its queues")
        return process

    def log(self, process: subprocess.Popen) -> str:
        path = next(path for started, path in self.started if started is process)
        return path.read_text(errors="replace")

    def kill(self, process: subprocess.Popen) -> None:
        """SIGKILL the worker's whole process group, as a crash or an OOM kill would."""
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def stop_all(self) -> None:
        for process, _ in self.started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


@pytest.fixture
def app_config(smtp, redis_server, zoom, encryption_key):  # noqa: F811
    return zoom.config() | mail_config(smtp, REDIS_URL=redis_server.url, RUN_JOBS_INLINE=False) | {
        key: float(value) for key, value in WORKER_ENV.items()
    } | {"TOKEN_ENCRYPTION_KEYS": encryption_key}


@pytest.fixture
def workers(app, database_url, smtp, redis_server, zoom, encryption_key, tmp_path):  # noqa: F811
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("MAIL_", "ZOOM_", "REDIS_", "DATABASE_"))}
    environment |= WORKER_ENV | {
        "EXPERTBOOK_ENV": "development",
        "SECRET_KEY": "test-secret-key",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_server.url,
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": str(smtp.port),
        "NOTIFICATIONS_QUEUE": TEST_QUEUE,
        "BASE_URL": app.config["BASE_URL"],
        "RATELIMIT_STORAGE_URI": "memory://",
        "PYTHONUNBUFFERED": "1",
        "TOKEN_ENCRYPTION_KEYS": encryption_key,
    } | zoom.config()
    started = Workers(tmp_path, environment)
    yield started
    started.stop_all()


def rows() -> list[OutboxEmail]:
    db.session.rollback()
    return list(db.session.scalars(select(OutboxEmail).order_by(OutboxEmail.id)))


def all_sent(count: int) -> Callable[[], bool]:
    """Whether the outbox holds ``count`` rows, all sent."""
    return lambda: len(found := rows()) == count and all(row.status == "sent" for row in found)


def assert_each_sent_once(smtp) -> None:
    """Every row arrived at the SMTP server exactly once (by Message-ID), and no copy comes later."""
    time.sleep(2 * TICK)  # a duplicate would come with the next passes
    arrived = Counter(message["Message-ID"] for message in smtp.messages)
    assert sorted(arrived) == sorted(row.message_id for row in rows())
    assert set(arrived.values()) == {1}, f"sent more than once: {arrived}"


def queue_notices(count: int) -> list[int]:
    """``count`` emails committed together (one batch job for the worker)."""
    with transaction():
        return [
            service.queue_email("notice", f"p{n}@example.com", f"P {n}", "notice",
                                {"heading": "Booked", "message": f"Booking {n} is confirmed."}, subject=f"Booked {n}")
            for n in range(count)
        ]


# ---------------------------------------------------------------------------- emails


def test_a_killed_worker_and_a_new_one_then_a_451_the_email_is_sent_once_within_a_tick(app, smtp, workers):
    # The repro: the retry used to wait for RQ's scheduler, whose lock the dead worker held.
    from expertbook.clinic import booking
    from tests.factories import make_slot, make_user

    workers.kill(workers.start())
    workers.start()
    live_since = utcnow()
    smtp.then("451 4.3.0 Try later")
    slot = make_slot(days_ahead=3)  # beyond REMINDER_HOURS: the booking's only email is its confirmation
    booking.book(slot.id, make_user(email="patient@example.com").id, "R", "9876543210")
    wait_until(all_sent(1), 30, "the booking's email is sent")
    [row] = rows()
    assert row.kind == "clinic-token" and row.attempts == 2 and smtp.data_commands == 2
    # Its retry was due at next_attempt_at; it went out within a tick and a few seconds of that.
    assert (row.sent_at - max(row.next_attempt_at, live_since)).total_seconds() <= TICK + FEW
    assert_each_sent_once(smtp)


def test_a_worker_killed_in_the_middle_of_a_batch_every_email_is_sent_once(app, smtp, workers):
    smtp.slow_seconds = 2.0  # each message takes two seconds: the kill lands in the middle of the batch
    first = workers.start()
    ids = queue_notices(5)
    # Kill it while the server takes the third message: two are sent and recorded, the third is in
    # flight. (A kill between the server's "250" and the row's update would send that one twice,
    # under the same Message-ID: a window no SMTP client can close; docs/reliability.md.)
    wait_until(lambda: smtp.data_commands >= 3, 40, "the batch reaches its third email")
    workers.kill(first)
    killed = time.monotonic()
    left = [row for row in rows() if row.status != "sent"]
    assert len(left) == 3 and {row.id for row in left} <= set(ids) and len(smtp.messages) == 2
    # The row being sent stays claimed for at most MAIL_CLAIM_SECONDS (nobody renews it now); the
    # others are pending and due.
    lease = timedelta(seconds=float(WORKER_ENV["MAIL_CLAIM_SECONDS"]) + 0.5)
    assert all(row.status == "pending" or (row.status == "sending" and row.claimed_until <= utcnow() + lease) for row in left)
    workers.start()
    wait_until(all_sent(5), 40, "every email of the batch is sent")
    assert time.monotonic() - killed <= 40
    assert_each_sent_once(smtp)


def test_redis_restarted_empty_with_retries_due_every_email_is_sent_once_and_the_worker_lives_on(
    app, smtp, workers, redis_server
):
    # Redis goes away while the worker is in the middle of a job (RQ's loop then quits on the error
    # it meets reporting the job, and the worker starts it again) and while retries fall due.
    worker = workers.start(MAIL_RETRY_BASE_SECONDS="3", MAIL_RETRY_MAX_SECONDS="4")  # the retries fall due in the outage
    smtp.then("451 4.3.0 Try later", "451 4.3.0 Try later", "slow:4")
    first, second, third = queue_notices(3)
    wait_until(lambda: smtp.data_commands >= 3, 30, "two emails got their 451, the third is being sent")
    redis_server.stop()
    assert smtp.data_commands == 3 and smtp.messages == []
    assert {row.id: row.status for row in rows()} == {first: "pending", second: "pending", third: "sending"}
    # Without Redis the web side still books: the row waits in the outbox.
    with transaction():
        service.queue_email("notice", "late@example.com", "Late", "notice",
                            {"heading": "Booked", "message": "Booked while Redis was away."}, subject="Booked late")
    assert service.flush_dispatch()
    wait_until(lambda: rows()[2].status == "sent", 15, "the send in flight finishes and is recorded")
    wait_until(lambda: all(row.next_attempt_at <= utcnow() for row in rows()), 10, "every retry falls due during the outage")
    time.sleep(2 * TICK)  # the worker's passes meet the outage
    assert worker.poll() is None, "the worker died with Redis"
    redis_server.start()  # empty: no persistence
    back = time.monotonic()
    wait_until(all_sent(4), 30, "every email is sent after Redis is back")
    assert time.monotonic() - back <= TICK + FEW + 2 * 2.0  # the worker reconnects within 2 s
    assert worker.poll() is None and len(workers.started) == 1  # the same worker process did it
    assert_each_sent_once(smtp)
    assert "starting it again" in workers.log(worker)  # RQ's loop quit with Redis, and came back
    # Restarted loops or not, SIGTERM (systemd's stop) still ends the worker, warmly.
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(20) == 0


# ---------------------------------------------------------------------------- meetings


def test_a_meeting_retried_across_a_killed_worker_and_an_emptied_redis_is_created_once(
    app, zoom, connected_expert, smtp, workers, redis_server  # noqa: F811
):
    from expertbook.devtools.zoom_standin import MEETING_CREATE
    from expertbook.experts import service as experts
    from expertbook.video.models import Meeting
    from tests.experts.helpers import book_kwargs, next_weekday_at
    from tests.factories import make_service, make_user

    def meeting() -> Meeting:
        db.session.rollback()
        return db.session.scalar(select(Meeting))

    worker = workers.start(VIDEO_RETRY_BASE_SECONDS="6")  # the retry (3-6 s later) is the next worker's to make
    zoom.standin.fail(MEETING_CREATE, "500")
    customer = make_user("Ana Customer", "ana@example.com")
    service_ = make_service(experts.profile_of(connected_expert.id))
    experts.book(customer.id, service_.id, next_weekday_at(10), **book_kwargs(customer))
    wait_until(lambda: meeting().attempts == 1, 30, "the worker's first create got Zoom's 500")
    workers.kill(worker)
    assert meeting().status == "pending" and zoom.standin.calls[MEETING_CREATE] == 1 and zoom.standin.meetings == {}
    redis_server.stop()
    redis_server.start()  # empty: whatever was queued is gone
    workers.start()
    wait_until(lambda: meeting().status == "created", 30, "the meeting is created by the new worker")
    assert zoom.standin.calls[MEETING_CREATE] == 2 and list(zoom.standin.meetings) == [meeting().external_id]
    wait_until(lambda: len(found := rows()) == 2 and all(row.status == "sent" for row in found), 30,
               "both confirmations, with the link, are sent")
    assert_each_sent_once(smtp)
    assert zoom.standin.calls[MEETING_CREATE] == 2 and len(zoom.standin.meetings) == 1
