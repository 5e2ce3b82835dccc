"""What can go wrong when talking to a calendar server, classified for the code that retries.

- :class:`CalendarUnavailable`: try again later (unreachable, timed out, 5xx or 429); ``retry_after``
  is the server's ``Retry-After`` in seconds when it sent one.
- :class:`CalendarRefused`: the server refused our credentials (a CalDAV password changed or revoked);
  nothing will work until the expert gives a new one.
- :class:`ReauthNeeded`: Google refused to refresh our grant; the expert must re-authorize.
- :class:`CalendarRejected`: the server refused the request itself (a bug or bad input); do not retry.
"""
from __future__ import annotations


class CalendarError(Exception):
    """Base of every calendar-server failure."""


class CalendarUnavailable(CalendarError):
    """A temporary failure: retry with backoff, no sooner than ``retry_after`` seconds if given."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class CalendarRefused(CalendarError):
    """The server refused the user name and password (HTTP 401 or 403 on login)."""


class ReauthNeeded(CalendarError):
    """Google refused to refresh the expert's grant; the connection is marked ``reconnect_needed``."""

    def __init__(self, user_id: int, message: str = "The expert's Google authorization has expired or was revoked."):
        super().__init__(message)
        self.user_id = user_id


class CalendarRejected(CalendarError):
    """The server refused the request permanently (4xx other than 401/404/409/410/429)."""
