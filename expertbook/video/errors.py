"""What can go wrong when talking to a video provider, classified for the code that retries.

- :class:`TransientMeetingError`: try again later (Zoom unreachable, timed out, 5xx or 429);
  ``retry_after`` is the provider's ``Retry-After`` in seconds when it sent one.
- :class:`ReauthRequired`: the expert's Zoom grant is gone (refresh refused, app deauthorized);
  nothing will work until the expert re-authorizes, so do not retry.
- :class:`MeetingNotFound`: Zoom says the meeting does not exist (code 3001).
- :class:`MeetingProviderError`: Zoom refused the request for another reason (a bug or bad input); do not retry.
"""
from __future__ import annotations


class MeetingError(Exception):
    """Base of every video-provider failure."""


class TransientMeetingError(MeetingError):
    """A temporary failure: retry with backoff, no sooner than ``retry_after`` seconds if given."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class ReauthRequired(MeetingError):
    """The expert must re-authorize Zoom; the credential is marked ``reconnect_needed``."""

    def __init__(self, user_id: int, message: str = "The expert's Zoom authorization has expired or was revoked."):
        super().__init__(message)
        self.user_id = user_id


class MeetingNotFound(MeetingError):
    """The meeting does not exist at the provider (Zoom code 3001)."""


class MeetingProviderError(MeetingError):
    """The provider refused the request permanently (4xx other than 401/404/429)."""

    def __init__(self, message: str, status: int | None = None, code: int | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
