"""Keep one-time tokens out of the logs.

A reset or verification link's first request carries its token in the path
(``/reset-password/<token>``). The request loggers (Werkzeug's development server, gunicorn's
access and error logs, Flask's own "Exception on <path>") would write that path down; this filter
replaces the token with ``[redacted]`` in every record they emit, whatever the format.
"""
from __future__ import annotations

import logging

from flask import Flask

from expertbook import observability

# The loggers that write request paths down.
REQUEST_LOGGERS = ("werkzeug", "gunicorn.access", "gunicorn.error", "flask.app")


def redact(text: str) -> str:
    """``text`` with the token of every link (reset, verification, manage, move, feed) replaced by ``[redacted]``.

    The one list of such links is :data:`expertbook.observability.TOKEN_PATHS`, which the log formatters
    apply to every line as well.
    """
    return observability.redact(text)


def _clean(value):
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: _clean(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return tuple(_clean(item) for item in value)
    return value


class TokenFilter(logging.Filter):
    """Redact tokens in a record's message and arguments (gunicorn passes its atoms as a dict)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if record.args:
            record.args = _clean(record.args)
        return True


_filter = TokenFilter()


def install(app: Flask) -> None:
    """Put the filter on the request loggers and on the app's own logger (idempotent)."""
    for logger in (*(logging.getLogger(name) for name in REQUEST_LOGGERS), app.logger):
        if _filter not in logger.filters:
            logger.addFilter(_filter)
