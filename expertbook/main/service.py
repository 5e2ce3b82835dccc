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
