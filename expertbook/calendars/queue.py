"""Running the calendars area's jobs: on the RQ queue ``default`` with Redis, in-process without.

The database is the schedule: each row (a connection to read, an event to write) says when its job is
due (``next_refresh_at`` / ``next_attempt_at``), and the relay hooks (:func:`expertbook.calendars.service.relay`,
:func:`expertbook.calendars.writes.relay`) enqueue whatever is due and not waiting in the queue, so a job lost
with Redis or a dead worker comes back within one worker tick. Job ids are deterministic per (row, due
time), so dispatching the same due work twice finds the job waiting.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime

from flask import current_app

log = logging.getLogger(__name__)

QUEUE = "default"  # served by ``flask --app wsgi worker``, as the video meetings are
REFRESH_JOB = "expertbook.calendars.jobs.refresh_busy"
EVENT_JOB = "expertbook.calendars.jobs.sync_event"


def uses_queue() -> bool:
    from expertbook.notifications.service import uses_queue as notifications_uses_queue

    return notifications_uses_queue()


def job_id(kind: str, row_id: int, due: datetime | None) -> str:
    return f"calendar-{kind}-{row_id}-{int(due.timestamp()) if due else 0}"


def job_seconds() -> int:
    """RQ's bound on one job: a token refresh and a few calls, each bounded by ``CALENDAR_TIMEOUT``."""
    return int(float(current_app.config["CALENDAR_TIMEOUT"]) * 8) + 60


def _queue():
    from rq import Queue

    from expertbook.notifications.service import redis_connection

    return Queue(QUEUE, connection=redis_connection())


def enqueue(path: str, kind: str, row_id: int, due: datetime | None, waiting: set[str] | None = None) -> bool:
    """Put the row's job on the queue now, unless it is already waiting there. Raises redis errors."""
    from expertbook.notifications.service import waiting_jobs

    queue = _queue()
    jid = job_id(kind, row_id, due)
    if jid in (waiting if waiting is not None else waiting_jobs(queue, [jid])):
        return False
    queue.enqueue(path, row_id, job_id=jid, job_timeout=job_seconds(), result_ttl=24 * 3600,
                  failure_ttl=7 * 24 * 3600, description=f"calendar {kind} {row_id}")
    return True


def dispatch(path: str, kind: str, run: Callable[[int], str], row_id: int, due: datetime | None) -> None:
    """Start a row's job if it is due. Never raises: whatever asked for it has committed and stays.

    Work due later is never scheduled in Redis: the relay enqueues it when due (woken at ``due`` when
    this process is a worker). Without a queue the job runs here.
    """
    from expertbook.database import utcnow
    from expertbook.notifications.service import relay_due_at

    if due is not None and due > utcnow():
        relay_due_at(due)
        return
    if uses_queue():
        try:
            enqueue(path, kind, row_id, due)
        except Exception as exc:  # noqa: BLE001 - Redis away: the relay will
            log.warning("could not enqueue calendar %s %s (%s); the relay will", kind, row_id, exc)
        return
    try:
        run(row_id)
    except Exception:  # noqa: BLE001 - the row stays due; the relay retries
        log.exception("in-process calendar %s job %s failed; the relay will retry it", kind, row_id)


def relay_rows(path: str, kind: str, run: Callable[[int], str], rows: Iterable[tuple[int, datetime | None]]) -> int:
    """Enqueue (or, without a queue, run) the jobs of due ``rows`` (id, due) not already waiting; returns how many."""
    from expertbook.notifications.service import waiting_jobs

    rows = list(rows)
    if not rows:
        return 0
    if uses_queue():
        waiting = waiting_jobs(_queue(), [job_id(kind, row_id, due) for row_id, due in rows])
        for row_id, due in rows:
            enqueue(path, kind, row_id, due, waiting)
    else:
        for row_id, _ in rows:
            try:
                run(row_id)
            except Exception:  # noqa: BLE001
                log.exception("calendar %s %s: the relay's attempt failed", kind, row_id)
    log.info("relay dispatched %s calendar %s job(s)", len(rows), kind)
    return len(rows)


def retry_delay(attempt: int, retry_after: float | None = None, cap: float = 3600.0) -> float:
    """Seconds before retry number ``attempt`` (1 = the first): ``CALENDAR_RETRY_BASE_SECONDS`` doubling up
    to ``cap``, with jitter over the upper half; never sooner than the server's ``Retry-After``.
    Calendar work never gives up on a temporary fault: the booking is committed, its event must follow."""
    import random

    base = float(current_app.config["CALENDAR_RETRY_BASE_SECONDS"])
    ceiling = min(cap, base * 2 ** (max(attempt, 1) - 1))
    delay = ceiling / 2 + ceiling / 2 * random.random()
    return max(delay, float(retry_after)) if retry_after is not None else delay
