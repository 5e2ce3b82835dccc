"""Configuration read from the environment.

Every setting the README documents is read here and nowhere else. ``create_app`` takes
an optional mapping of overrides on top, which is how the tests configure an app.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

DEV_SECRET_KEY = "dev-only-not-secret"


class ConfigError(RuntimeError):
    """Raised when the configuration cannot be used safely (e.g. production without a key)."""


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _int(value: str | None, default: int) -> int:
    return int(value) if value not in (None, "") else default


def _list(value: str | None) -> list[str]:
    """A comma-separated setting as a list of its non-empty items."""
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def _choice(value: str | None, choices: tuple[str, ...], default: str, name: str) -> str:
    """One of ``choices`` (case-insensitive), ``default`` when unset; anything else is refused at start."""
    if value is None or not value.strip():
        return default
    chosen = value.strip().lower()
    if chosen not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return chosen


def from_env(environ: Mapping[str, str] | None = None, instance_path: str = "instance") -> dict[str, Any]:
    """Build the configuration dictionary from environment variables."""
    env = os.environ if environ is None else environ
    mode = env.get("EXPERTBOOK_ENV", "production").strip().lower()
    production = mode == "production"
    database_url = env.get("DATABASE_URL") or f"sqlite:///{os.path.join(instance_path, 'expertbook.sqlite3')}"
    redis_url = env.get("REDIS_URL") or None
    return {
        "PRODUCTION": production,
        "SECRET_KEY": env.get("SECRET_KEY") or (None if production else DEV_SECRET_KEY),
        # Retired keys, most recent first: still accepted when checking what an old key signed (session
        # cookies, CSRF tokens, API tokens, signed links, sealed links in queued emails), never used to
        # sign anything new (expertbook/keys.py; docs/operations.md, "Key rotation").
        "SECRET_KEY_FALLBACKS": _list(env.get("SECRET_KEY_FALLBACKS")),
        "SQLALCHEMY_DATABASE_URI": normalise_database_url(database_url),
        "REDIS_URL": redis_url,
        "BASE_URL": (env.get("BASE_URL") or "http://127.0.0.1:5000").rstrip("/"),
        # Mail: with no MAIL_SERVER every email is written to the log instead of sent, which production
        # allows only when MAIL_BACKEND=log says so (validate).
        "MAIL_SERVER": env.get("MAIL_SERVER") or None,
        "MAIL_BACKEND": _choice(env.get("MAIL_BACKEND"), ("smtp", "log"), "smtp", "MAIL_BACKEND"),
        "MAIL_PORT": _int(env.get("MAIL_PORT"), 25),
        "MAIL_USERNAME": env.get("MAIL_USERNAME") or None,
        "MAIL_PASSWORD": env.get("MAIL_PASSWORD") or None,
        "MAIL_USE_TLS": _bool(env.get("MAIL_USE_TLS")),
        "MAIL_USE_SSL": _bool(env.get("MAIL_USE_SSL")),
        "MAIL_DEFAULT_SENDER": env.get("MAIL_DEFAULT_SENDER") or "ExpertBook <no-reply@expertbook.example>",
        "MAIL_TIMEOUT": float(env.get("MAIL_TIMEOUT") or 10),
        # Notifications (the outbox): retries, claims and the worker's periodic passes.
        "MAIL_MAX_ATTEMPTS": _int(env.get("MAIL_MAX_ATTEMPTS"), 8),
        "MAIL_RETRY_BASE_SECONDS": float(env.get("MAIL_RETRY_BASE_SECONDS") or 30),
        "MAIL_RETRY_MAX_SECONDS": float(env.get("MAIL_RETRY_MAX_SECONDS") or 3600),
        # A claim is a lease the sending process renews every third of it: a worker killed mid-send
        # frees its row this long after it died (docs/reliability.md).
        "MAIL_CLAIM_SECONDS": float(env.get("MAIL_CLAIM_SECONDS") or 30),
        "NOTIFICATIONS_QUEUE": env.get("NOTIFICATIONS_QUEUE") or "notifications",
        # How long the dispatcher thread gathers new rows into one RQ job (a little email latency
        # for far fewer enqueues under load).
        "MAIL_DISPATCH_LINGER_SECONDS": float(env.get("MAIL_DISPATCH_LINGER_SECONDS") or 0.05),
        "WORKER_TICK_SECONDS": float(env.get("WORKER_TICK_SECONDS") or 60),
        "REMINDER_HOURS": float(env.get("REMINDER_HOURS") or 24),
        # Sessions and cookies.
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": production,
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": production,
        "PERMANENT_SESSION_LIFETIME": timedelta(days=_int(env.get("SESSION_DAYS"), 14)),
        # A login ends when its server-side session expires, a fixed time after logging in, so
        # re-signing and re-sending the cookie on every answer (each poll of a live fragment
        # included) would extend nothing; the cookie is written only when the session changes.
        "SESSION_REFRESH_EACH_REQUEST": False,
        "WTF_CSRF_TIME_LIMIT": None,  # the token lives as long as the session; a stale tab must still work
        "WTF_CSRF_SSL_STRICT": production,
        # Requests: a body larger than this is refused (413) before it is read.
        "MAX_CONTENT_LENGTH": _int(env.get("MAX_CONTENT_LENGTH"), 1024 * 1024),
        # Throttling: storage is shared through Redis when there is one, so limits hold across workers.
        "RATELIMIT_STORAGE_URI": env.get("RATELIMIT_STORAGE_URI") or redis_url or "memory://",
        # Redis down must not take logins down: the limiter counts in this process's memory meanwhile
        # (logging once when it switches, and once when Redis is back), and gives up waiting for a
        # Redis that does not answer within a second.
        "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
        "RATELIMIT_STORAGE_OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        "RATELIMIT_HEADERS_ENABLED": True,
        "LOGIN_LIMIT_PER_ACCOUNT": env.get("LOGIN_LIMIT_PER_ACCOUNT") or "5 per minute;20 per hour",
        "LOGIN_LIMIT_PER_IP": env.get("LOGIN_LIMIT_PER_IP") or "20 per minute;200 per hour",
        # Password reset, email verification and registration (expertbook/auth).
        "PASSWORD_RESET_MINUTES": _int(env.get("PASSWORD_RESET_MINUTES"), 30),
        "EMAIL_VERIFICATION_DAYS": _int(env.get("EMAIL_VERIFICATION_DAYS"), 7),
        # The least time "forgot password", registration and resend take, whatever the address: the
        # answer's timing must not tell whether an account exists.
        "ACCOUNT_ANSWER_SECONDS": float(env.get("ACCOUNT_ANSWER_SECONDS") or 0.5),
        "PASSWORD_RESET_LIMIT_PER_ADDRESS": env.get("PASSWORD_RESET_LIMIT_PER_ADDRESS") or "3 per 15 minutes;10 per day",
        "PASSWORD_RESET_LIMIT_PER_IP": env.get("PASSWORD_RESET_LIMIT_PER_IP") or "20 per hour",
        "REGISTER_LIMIT_PER_IP": env.get("REGISTER_LIMIT_PER_IP") or "10 per hour",
        "VERIFICATION_RESEND_LIMIT": env.get("VERIFICATION_RESEND_LIMIT") or "3 per hour",
        # Booking without an account (experts): per client address and per email named, page and API together;
        # and failed manage-link lookups per client address and per token prefix (a working link is never limited).
        "GUEST_BOOKING_LIMIT_PER_IP": env.get("GUEST_BOOKING_LIMIT_PER_IP") or "10 per hour;30 per day",
        "GUEST_BOOKING_LIMIT_PER_EMAIL": env.get("GUEST_BOOKING_LIMIT_PER_EMAIL") or "5 per hour;10 per day",
        "MANAGE_LINK_LIMIT_PER_IP": env.get("MANAGE_LINK_LIMIT_PER_IP") or "30 per minute;300 per day",
        "MANAGE_LINK_LIMIT_PER_PREFIX": env.get("MANAGE_LINK_LIMIT_PER_PREFIX") or "10 per hour;30 per day",
        "MANAGE_MOVES_LIMIT_PER_LINK": env.get("MANAGE_MOVES_LIMIT_PER_LINK") or "5 per hour;10 per day",
        # A guest's manage link works until this long after its booking ends (to see how it ended, or
        # find the meeting while it runs over), then answers 404; and never once the booking is in an account.
        "MANAGE_LINK_HOURS_AFTER_END": float(env.get("MANAGE_LINK_HOURS_AFTER_END") or 24),
        # How many proxies in front of the app set X-Forwarded-For/-Proto; 0 trusts none. Behind one,
        # without it every client has the proxy's address and shares one login throttle.
        "PROXY_HOPS": _int(env.get("PROXY_HOPS"), 0),
        # JSON API bearer tokens.
        "API_TOKEN_HOURS": _int(env.get("API_TOKEN_HOURS"), 12),
        # No pre-ping round trip per request: expertbook.database.configure_engine checks a pooled
        # PostgreSQL connection's socket instead, which costs no round trip.
        "SQLALCHEMY_ENGINE_OPTIONS": {},
        "SQLITE_BUSY_TIMEOUT_MS": _int(env.get("SQLITE_BUSY_TIMEOUT_MS"), 30000),
        "RUN_JOBS_INLINE": redis_url is None,
        # Clinics: the zone of a new hospital's wall-clock slot times, and how often live pages poll.
        "CLINIC_TIMEZONE": env.get("CLINIC_TIMEZONE") or "Asia/Kolkata",
        "CLINIC_POLL_SECONDS": _int(env.get("CLINIC_POLL_SECONDS"), 10),
        "DEMO_PASSWORD": env.get("DEMO_PASSWORD") or "demo-password-1",
        # Logs: one JSON object per line in production, plain text for development (expertbook/observability.py).
        "LOG_FORMAT": _choice(env.get("LOG_FORMAT"), ("json", "text"), "json" if production else "text", "LOG_FORMAT"),
        # GET /metrics: from these client addresses (networks), or with this bearer secret; nobody else.
        "METRICS_ALLOW": _list(env.get("METRICS_ALLOW") if env.get("METRICS_ALLOW") is not None else "127.0.0.1/32,::1/128"),
        "METRICS_TOKEN": env.get("METRICS_TOKEN") or None,
        # Video meetings (expertbook/video): Zoom over OAuth; the URLs default to Zoom's real ones.
        "ZOOM_CLIENT_ID": env.get("ZOOM_CLIENT_ID") or None,
        "ZOOM_CLIENT_SECRET": env.get("ZOOM_CLIENT_SECRET") or None,
        "ZOOM_AUTHORIZE_URL": env.get("ZOOM_AUTHORIZE_URL") or "https://zoom.us/oauth/authorize",
        "ZOOM_TOKEN_URL": env.get("ZOOM_TOKEN_URL") or "https://zoom.us/oauth/token",
        "ZOOM_REVOKE_URL": env.get("ZOOM_REVOKE_URL") or "https://zoom.us/oauth/revoke",
        "ZOOM_API_URL": (env.get("ZOOM_API_URL") or "https://api.zoom.us/v2").rstrip("/"),
        "ZOOM_WEBHOOK_SECRET": env.get("ZOOM_WEBHOOK_SECRET") or None,
        "ZOOM_TIMEOUT": float(env.get("ZOOM_TIMEOUT") or 10),
        "VIDEO_RETRY_BASE_SECONDS": float(env.get("VIDEO_RETRY_BASE_SECONDS") or 30),
        "JITSI_BASE_URL": (env.get("JITSI_BASE_URL") or "https://meet.jit.si").rstrip("/"),
        # Experts' own calendars (expertbook/calendars): CalDAV servers and Google Calendar.
        "CALENDAR_TIMEOUT": float(env.get("CALENDAR_TIMEOUT") or 10),
        "CALENDAR_BUSY_TTL_SECONDS": float(env.get("CALENDAR_BUSY_TTL_SECONDS") or 300),
        "CALENDAR_BUSY_DAYS": _int(env.get("CALENDAR_BUSY_DAYS"), 90),
        "CALENDAR_RETRY_BASE_SECONDS": float(env.get("CALENDAR_RETRY_BASE_SECONDS") or 30),
        # A CalDAV URL is typed by an expert: https only, and never an address inside our network, unless
        # these say otherwise (tests and a server on the same private network).
        "CALDAV_ALLOW_HTTP": _bool(env.get("CALDAV_ALLOW_HTTP")),
        "CALDAV_ALLOW_PRIVATE_ADDRESSES": _bool(env.get("CALDAV_ALLOW_PRIVATE_ADDRESSES")),
        "GOOGLE_CLIENT_ID": env.get("GOOGLE_CLIENT_ID") or None,
        "GOOGLE_CLIENT_SECRET": env.get("GOOGLE_CLIENT_SECRET") or None,
        "GOOGLE_AUTHORIZE_URL": env.get("GOOGLE_AUTHORIZE_URL") or "https://accounts.google.com/o/oauth2/v2/auth",
        "GOOGLE_TOKEN_URL": env.get("GOOGLE_TOKEN_URL") or "https://oauth2.googleapis.com/token",
        "GOOGLE_REVOKE_URL": env.get("GOOGLE_REVOKE_URL") or "https://oauth2.googleapis.com/revoke",
        "GOOGLE_USERINFO_URL": env.get("GOOGLE_USERINFO_URL") or "https://openidconnect.googleapis.com/v1/userinfo",
        "GOOGLE_CALENDAR_API_URL": (env.get("GOOGLE_CALENDAR_API_URL") or "https://www.googleapis.com/calendar/v3").rstrip("/"),
        # Comma-separated Fernet keys; the first encrypts, all decrypt (key rotation).
        "TOKEN_ENCRYPTION_KEYS": env.get("TOKEN_ENCRYPTION_KEYS") or None,
        # Webhooks (expertbook/webhooks): each POST's timeout, how long and how often an event is
        # retried, and where endpoints may be (docs/webhooks.md).
        "WEBHOOK_TIMEOUT_SECONDS": float(env.get("WEBHOOK_TIMEOUT_SECONDS") or 5),
        "WEBHOOK_RETRY_HOURS": float(env.get("WEBHOOK_RETRY_HOURS") or 24),
        "WEBHOOK_RETRY_BASE_SECONDS": float(env.get("WEBHOOK_RETRY_BASE_SECONDS") or 5),
        "WEBHOOK_RETRY_MAX_SECONDS": float(env.get("WEBHOOK_RETRY_MAX_SECONDS") or 3600),
        # Only https endpoints on public addresses, unless these say otherwise (tests, development,
        # an installation whose hospital systems live on its own private network).
        "WEBHOOK_ALLOW_HTTP": _bool(env.get("WEBHOOK_ALLOW_HTTP")),
        "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": _bool(env.get("WEBHOOK_ALLOW_PRIVATE_ADDRESSES")),
        # How often one webhook's *Send test event* and *Resend* may be pressed (together).
        "WEBHOOK_SEND_LIMIT": env.get("WEBHOOK_SEND_LIMIT") or "10 per minute;200 per day",
        # Certificate authorities trusted for https endpoints (a PEM file); default: the certifi bundle.
        "WEBHOOK_CA_FILE": env.get("WEBHOOK_CA_FILE") or None,
    }


def normalise_database_url(url: str) -> str:
    """Point plain PostgreSQL URLs at psycopg 3, the driver this project pins."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def validate(config: Mapping[str, Any]) -> None:
    """Refuse configurations that would run unsafely."""
    if not config.get("SECRET_KEY"):
        raise ConfigError("SECRET_KEY must be set when EXPERTBOOK_ENV=production")
    if config.get("PRODUCTION") and config.get("SECRET_KEY") == DEV_SECRET_KEY:
        raise ConfigError("SECRET_KEY is the development default; set a real one in production")
    if config.get("PRODUCTION") and DEV_SECRET_KEY in (config.get("SECRET_KEY_FALLBACKS") or ()):
        raise ConfigError("SECRET_KEY_FALLBACKS holds the development default; remove it in production")
    import ipaddress

    for network in config.get("METRICS_ALLOW") or ():
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError as exc:
            raise ConfigError(f"METRICS_ALLOW: {network!r} is not an address or network ({exc})") from exc
    if config.get("PRODUCTION") and not config.get("MAIL_SERVER") and config.get("MAIL_BACKEND") != "log":
        raise ConfigError("MAIL_SERVER must be set in production; without it every email, links included, would be "
                          "written to the log and marked sent. Set MAIL_BACKEND=log to mean exactly that.")
    if config.get("PRODUCTION") and config.get("ZOOM_CLIENT_ID") and not config.get("TOKEN_ENCRYPTION_KEYS"):
        raise ConfigError("TOKEN_ENCRYPTION_KEYS must be set in production when Zoom is configured")
    if config.get("PRODUCTION") and config.get("GOOGLE_CLIENT_ID") and not config.get("TOKEN_ENCRYPTION_KEYS"):
        raise ConfigError("TOKEN_ENCRYPTION_KEYS must be set in production when Google is configured")
