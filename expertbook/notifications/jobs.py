"""The RQ side of notifications: the send job, the worker that runs it, and the worker's periodic passes."""
from __future__ import annotations

import logging
import os
import threading

from flask import Flask
from rq import SimpleWorker

from expertbook.jobs import app_context

log = logging.getLogger(__name__)


def send_email(outbox_id: int) -> str:
    """RQ job: send one outbox row (idempotent; see :func:`expertbook.notifications.service.send`)."""
    from expertbook.notifications import service

    with app_context():
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
      instead of patching it (the scheduler process RQ forks is covered by ``dispose_engine_after_fork``);
    - ``kill -9`` of the worker then really stops the send in progress: a forked horse could outlive its
      parent and finish a send after the relay has handed the row to another worker, a duplicate email;
    - our jobs are short, I/O-bound SMTP dialogues whose every socket operation is bounded by
      ``MAIL_TIMEOUT``, and RQ's SIGALRM job timeout still applies in the main thread.

    Each job gets its own app context, hence its own SQLAlchemy session, removed when the job ends.
    """

    def __init__(self, *args, app: Flask, **kwargs):
        super().__init__(*args, **kwargs)
        self.app = app

    def perform_job(self, job, queue, execution):  # noqa: D102 - RQ hook
        with self.app.app_context():
            return super().perform_job(job, queue, execution)


def dispose_engine_after_fork(app: Flask) -> None:
    """Make any child process this one forks (RQ's scheduler) drop the inherited connection pool."""
    from expertbook.extensions import db

    with app.app_context():
        engine = db.engine
    # close=False: the sockets belong to the parent; the child must neither use nor close them.
    os.register_at_fork(after_in_child=lambda: engine.dispose(close=False))


def periodic_pass(app: Flask) -> None:
    """Queue due reminders, run the relay hooks (due meeting jobs), then relay the outbox. Errors are logged, never raised."""
    from expertbook.notifications import service

    with app.app_context():
        try:
            service.send_due_reminders()
        except Exception:
            log.exception("the reminder pass failed")
        service.run_relay_hooks()  # other areas' due jobs first (a meeting created now queues its emails)
        try:
            service.relay()
        except Exception:
            log.exception("the relay pass failed")


class Ticker(threading.Thread):
    """Runs :func:`periodic_pass` every ``WORKER_TICK_SECONDS`` beside the worker loop.

    Several workers may each run one: the relay and the reminders are safe to run concurrently.
    The thread has its own app context per pass, so its own database session. RQ forks its scheduler
    process while this thread may be running; the child only runs the scheduler, which opens its own
    Redis connection (redis-py resets its pool on a pid change) and never touches the database, whose
    pool ``dispose_engine_after_fork`` drops in the child; logging re-creates its locks after a fork.
    """

    def __init__(self, app: Flask):
        super().__init__(name="notifications-ticker", daemon=True)
        self.app = app
        self.interval = float(app.config["WORKER_TICK_SECONDS"])
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            periodic_pass(self.app)

    def stop(self) -> None:
        self.stopped.set()
