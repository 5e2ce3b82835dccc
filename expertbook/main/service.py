"""Health checks of the parts ExpertBook depends on."""
from __future__ import annotations

from sqlalchemy import text

from expertbook.extensions import db


def database_status() -> str:
    """``"ok"`` if the database answers a query, else the error's class name."""
    try:
        db.session.execute(text("SELECT 1"))
        return "ok"
    except Exception as exc:  # health reporting must describe, not raise
        db.session.rollback()
        return f"error: {type(exc).__name__}"


def redis_status(redis_url: str | None) -> str | None:
    """``"ok"`` if Redis answers PING, an error string if not, None when Redis is not configured."""
    if not redis_url:
        return None
    from redis import Redis

    try:
        Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=1).ping()
        return "ok"
    except Exception as exc:
        return f"error: {type(exc).__name__}"


def rate_limit_status(storage_uri: str) -> str | None:
    """Where login throttling counts now: ``"ok"`` in its shared storage, or the per-process memory it
    falls back to while that storage (Redis) is unreachable; None when it is configured in memory."""
    from expertbook.extensions import limiter

    if storage_uri.startswith("memory://"):
        return None
    # Flask-Limiter keeps this flag; it clears it itself once the storage answers again.
    return "fallback: per-process memory" if getattr(limiter, "_storage_dead", False) else "ok"


# ---------------------------------------------------------------------------- the outbox and the workers, as seen now

# /healthz says "degraded" when no worker has been seen for this long while emails are due.
WORKER_SILENT_SECONDS = 120


def outbox_state(now=None) -> dict:
    """Counts of unsent emails by status, how many are due now, and the age in seconds of the oldest due one.

    Two indexed queries (ix_outbox_emails_status_next_attempt_at), whatever the table's size: read when
    scraped or asked for health, never per request.
    """
    from sqlalchemy import func, select

    from expertbook.database import utcnow
    from expertbook.notifications.models import FAILED, PENDING, SENDING, OutboxEmail

    now = now or utcnow()
    counts = {status: 0 for status in (PENDING, SENDING, FAILED)}
    for status, count in db.session.execute(
        select(OutboxEmail.status, func.count()).where(OutboxEmail.status.in_(list(counts))).group_by(OutboxEmail.status)
    ):
        counts[status] = count
    due, oldest = db.session.execute(
        select(func.count(), func.min(OutboxEmail.next_attempt_at))
        .where(OutboxEmail.status == PENDING, OutboxEmail.next_attempt_at <= now)
    ).one()
    db.session.rollback()
    if oldest is not None and oldest.tzinfo is None:  # SQLite gives naive UTC
        from datetime import UTC

        oldest = oldest.replace(tzinfo=UTC)
    return {"counts": counts, "due": due, "oldest_due_seconds": (now - oldest).total_seconds() if oldest else 0.0}


def workers_status(redis_url: str | None) -> str | None:
    """``"ok"`` unless no worker has been seen for 2 minutes while emails are due; None without Redis
    (no workers then: the web processes send), or when Redis does not answer (its own check says so)."""
    if not redis_url:
        return None
    from redis import Redis

    from expertbook import observability

    try:
        ages = observability.heartbeats(Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=1))
    except Exception:
        return None
    newest = min(ages.values(), default=None)
    if newest is not None and newest <= WORKER_SILENT_SECONDS:
        return "ok"
    due = outbox_state()["due"]
    if not due:
        return "ok"
    seen = "no worker seen in the last hour" if newest is None else f"no worker seen for {newest:.0f} s"
    return f"error: {seen} while {due} email(s) are due"


def metrics_exposition(config) -> tuple[bytes, str]:
    """The text of ``/metrics`` and its content type: this machine's processes' request metrics, and what
    the database and Redis say now about the outbox, the workers and the failures they counted."""
    import os

    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    from expertbook import observability

    observability._define_metrics()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        processes = CollectorRegistry()
        multiprocess.MultiProcessCollector(processes)
    else:
        processes = REGISTRY

    class Now:
        def collect(self):
            state = outbox_state()
            emails = GaugeMetricFamily("expertbook_outbox_emails", "Emails not sent yet, by status", labels=["status"])
            for status, count in state["counts"].items():
                emails.add_metric([status], count)
            yield emails
            yield GaugeMetricFamily("expertbook_outbox_due_emails", "Emails due to be sent now", value=state["due"])
            yield GaugeMetricFamily("expertbook_outbox_oldest_due_age_seconds",
                                    "How long the oldest due email has been waiting (0: none)", value=state["oldest_due_seconds"])
            redis_url = config.get("REDIS_URL")
            if not redis_url:
                return
            from redis import Redis

            try:
                client = Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=1)
                ages = observability.heartbeats(client)
                failures = list(observability.shared_failures(client))
            except Exception:
                return  # Redis down: /healthz says so; these series are absent meanwhile
            beats = GaugeMetricFamily("expertbook_worker_heartbeat_age_seconds", "Seconds since each worker was last seen",
                                      labels=["worker"])
            for name, age in sorted(ages.items()):
                beats.add_metric([name], age)
            yield beats
            yield GaugeMetricFamily("expertbook_worker_last_seen_age_seconds",
                                    "Seconds since any worker was last seen (+Inf: none in the last hour)",
                                    value=min(ages.values(), default=float("inf")))
            shared = CounterMetricFamily("expertbook_external_failures", "Failed calls to SMTP and Zoom, every process of every machine",
                                         labels=["service", "kind"])
            for service, kind, count in failures:
                shared.add_metric([service, kind], count)
            yield shared

    now = CollectorRegistry()
    now.register(Now())
    return generate_latest(processes) + generate_latest(now), CONTENT_TYPE_LATEST
