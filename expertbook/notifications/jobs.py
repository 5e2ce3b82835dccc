"""The RQ side of notifications: the send job, the worker that runs it, and the worker's periodic passes."""
from __future__ import annotations

import logging
import threading
import time

from flask import Flask
from rq import SimpleWorker

from expertbook.jobs import app_context
from expertbook.observability import job_request_id, request_id_context

log = logging.getLogger(__name__)

# The periodic pass leaves an email's first attempt to the dispatcher of the process that committed it
# for this long (the dispatcher enqueues within MAIL_DISPATCH_LINGER_SECONDS, 0.05 s by default).
FRESH_ROW_SECONDS = 2.0


def send_email(outbox_id: int) -> str:
    """RQ job: send one outbox row (idempotent; see :func:`expertbook.notifications.service.send`)."""
    from expertbook.notifications import service

    with app_context(), request_id_context(job_request_id(outbox_id)):
        return service.send(outbox_id)


def send_emails(outbox_ids: list[int]) -> dict[str, int]:
    """RQ job: send several rows committed together, one by one; returns how many ended how.

    One row's trouble does not stop the others: a failure the outbox cannot record (the database
    gone for a moment) leaves that row pending or claimed, and the relay comes back to it.
    """
    from rq.timeouts import BaseTimeoutException

    from expertbook.notifications import service

    def run() -> dict[str, int]:
        outcomes: dict[str, int] = {}
        for outbox_id in outbox_ids:
            try:
                with request_id_context(job_request_id(outbox_id)):
                    outcome = service.send(outbox_id)
            except BaseTimeoutException:
                raise  # RQ's job timeout stops the batch; the rows not reached stay for the relay
            except Exception:
                log.exception("email %s: sending failed; the relay will retry it", outbox_id)
                outcome = "error"
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        return outcomes

    with app_context():
        return run()


class AppWorker(SimpleWorker):
    """An RQ worker that runs every job inside a fresh application context of ``app``.

    It does not fork (RQ's ``SimpleWorker``), deliberately:

    - a forked work-horse would inherit the parent's pooled database connections, and two processes
      talking over one PostgreSQL socket corrupt each other's sessions; not forking removes the problem
      instead of patching it;
    - ``kill -9`` of the worker then really stops the send in progress: a forked horse could outlive its
      parent and finish a send after the relay has handed the row to another worker, a duplicate email;
    - our jobs are short, I/O-bound SMTP dialogues whose every socket operation is bounded by
      ``MAIL_TIMEOUT``, and RQ's SIGALRM job timeout still applies in the main thread.

    It runs without RQ's scheduler: nothing is scheduled in Redis (a retry is its row's
    ``next_attempt_at``, enqueued by the relay when due). Each job gets its own app context, hence its
    own SQLAlchemy session, removed when the job ends.
    """

    # RQ waits up to a minute between attempts to reach a Redis that went away; ours is back within
    # seconds of Redis, so due rows go out within a tick of it.
    max_connection_wait_time = 2.0

    def __init__(self, *args, app: Flask, **kwargs):
        super().__init__(*args, **kwargs)
        self.app = app
        self.stop_signalled = False

    def perform_job(self, job, queue, execution):  # noqa: D102 - RQ hook
        # A job one request caused (a meeting) logs under that request's id; an email job sets each row's own.
        with self.app.app_context(), request_id_context(job_request_id()):
            return super().perform_job(job, queue, execution)

    def request_stop(self, signum, frame):  # noqa: D102 - RQ's SIGTERM/SIGINT handler
        self.stop_signalled = True
        super().request_stop(signum, frame)

    def teardown(self):
        """RQ's teardown, which must not fail while Redis is away (the loop is restarted after it)."""
        from redis.exceptions import RedisError

        try:
            self.register_death()
        except RedisError as exc:
            log.warning("worker %s: could not register its end with Redis (%s)", self.name, exc)
        try:
            self.unsubscribe()
        except RedisError:
            if self.pubsub_thread is not None:
                self.pubsub_thread.stop()  # its loop ends at its next turn; the connection is gone anyway


def work(app: Flask, queue_names: list[str], burst: bool = False, restart_delay: float = 1.0, max_delay: float = 4.0) -> None:
    """Run the RQ worker loop on ``queue_names`` until a signal (or the end of a burst) stops it.

    RQ's loop survives a Redis outage while it waits for a job, but quits on a Redis error anywhere
    else (reporting a finished job, its heartbeat, its own registration). The process must outlive
    any outage, so the loop is started again, as a new RQ worker, after ``restart_delay`` (doubling
    while Redis stays away, up to ``max_delay``); the periodic pass (:class:`Ticker`) runs in its own
    thread all along. The worker has a Redis client of its own: RQ lengthens its socket timeout to
    block on the queues, which the app's client, used by the relay and the dispatcher, must not inherit.
    """
    import signal

    from redis import Redis
    from redis.exceptions import RedisError
    from rq import Queue
    from rq.exceptions import StopRequested

    stop = threading.Event()

    def stop_between_runs(signum, frame):
        stop.set()

    failures = 0
    while not stop.is_set():
        started = time.monotonic()
        connection = Redis.from_url(app.config["REDIS_URL"], socket_connect_timeout=2)
        worker = None
        try:
            # Even making the worker talks to Redis (it names its connection).
            worker = AppWorker([Queue(name, connection=connection) for name in queue_names], connection=connection, app=app)
            if stop.is_set():  # signalled while the worker was being made
                return
            worker.work(burst=burst, with_scheduler=False)
        except StopRequested:  # a signal that came as the loop was ending
            if worker is not None:
                worker.stop_signalled = True
        except RedisError as exc:
            log.warning("the worker cannot reach Redis (%s)", exc)
        except Exception:
            log.exception("the worker loop failed")
        finally:
            # Between two runs a signal only asks this loop to end (RQ's handlers belong to a worker
            # that has ended).
            signal.signal(signal.SIGTERM, stop_between_runs)
            signal.signal(signal.SIGINT, stop_between_runs)
            connection.close()
        if burst or (worker is not None and worker.stop_signalled):
            return
        failures = failures + 1 if time.monotonic() - started < 30 else 1
        delay = min(restart_delay * 2 ** (failures - 1), max_delay)
        log.warning("the worker loop ended (Redis unreachable?); starting it again in %.1f s", delay)
        stop.wait(delay)


def periodic_pass(app: Flask, reminders: bool = True) -> None:
    """Queue due reminders, run the relay hooks (due meeting jobs), then relay the outbox. Errors are logged, never raised.

    ``reminders=False`` only relays (a pass the :class:`Ticker` runs early because a retry fell due).
    """
    from redis.exceptions import RedisError

    from expertbook.notifications import service

    with app.app_context():
        if reminders:
            try:
                service.send_due_reminders()
            except Exception:
                log.exception("the reminder pass failed")
        service.run_relay_hooks()  # other areas' due jobs first (a meeting created now queues its emails)
        try:
            # Rows committed a moment ago are their dispatcher's to enqueue (with their request id).
            service.relay(settle_seconds=FRESH_ROW_SECONDS)
        except RedisError as exc:  # expected while Redis is away: one line per pass, not a traceback
            log.warning("the relay pass could not reach Redis (%s); the due rows wait for the next pass", exc)
        except Exception:
            log.exception("the relay pass failed")


class Ticker(threading.Thread):
    """Runs :func:`periodic_pass` every ``WORKER_TICK_SECONDS`` beside the worker loop.

    It is what makes due rows go out: the relay enqueues every email and meeting job that is due, so
    whatever Redis or an earlier worker lost is back in the queue within a tick. :meth:`wake_at`
    brings a relay pass forward to when a retry this process recorded falls due, so retries keep
    their backoff instead of waiting for the next tick (at most one early pass per
    :attr:`min_gap` seconds). Several workers may each run one: the relay and the reminders are safe
    to run concurrently. Each pass has its own app context, so its own database session, and no
    error ends the thread.
    """

    min_gap = 0.5

    def __init__(self, app: Flask):
        super().__init__(name="notifications-ticker", daemon=True)
        self.app = app
        self.interval = float(app.config["WORKER_TICK_SECONDS"])
        self.stopped = threading.Event()
        self._changed = threading.Condition()
        self._early: float | None = None  # monotonic time of an early relay pass, if one is wanted

    def wake_at(self, due) -> None:
        """Run a relay pass at ``due`` (an aware datetime) if that comes before the next tick."""
        from expertbook.database import utcnow

        at = time.monotonic() + max((due - utcnow()).total_seconds(), 0.0)
        with self._changed:
            if self._early is None or at < self._early:
                self._early = at
                self._changed.notify_all()

    def run(self) -> None:
        next_tick = time.monotonic() + self.interval
        while not self.stopped.is_set():
            with self._changed:
                while not self.stopped.is_set():
                    now = time.monotonic()
                    at = min(next_tick, self._early if self._early is not None else next_tick)
                    if at <= now:
                        break
                    self._changed.wait(at - now)
                if self.stopped.is_set():
                    return
                full = time.monotonic() >= next_tick
                if self._early is not None and self._early <= time.monotonic():
                    self._early = None
            try:
                periodic_pass(self.app, reminders=full)
            except Exception:  # periodic_pass logs its own errors; this is the last guard of the thread
                log.exception("the periodic pass failed")
            if full:
                next_tick = time.monotonic() + self.interval
            with self._changed:  # an early pass asked for right now waits a little: a burst of retries is one pass
                if self._early is not None:
                    self._early = max(self._early, time.monotonic() + self.min_gap)

    def stop(self) -> None:
        self.stopped.set()
        with self._changed:
            self._changed.notify_all()
