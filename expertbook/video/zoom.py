"""Zoom REST API v2 over HTTP: requests with a bearer token, and what each answer means for us.

Nothing here touches the database; :mod:`expertbook.video.service` supplies tokens and handles
the 401 code 124 (refresh once, then retry).
"""
from __future__ import annotations

import email.utils
import logging
from datetime import UTC, datetime
from typing import Any

import requests

from expertbook.observability import count_failure
from expertbook.video.errors import MeetingNotFound, MeetingProviderError, TransientMeetingError

log = logging.getLogger(__name__)

INVALID_ACCESS_TOKEN = 124  # Zoom's code for an expired or unknown access token
MEETING_NOT_FOUND = 3001


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Parse a ``Retry-After`` header (delta-seconds or an HTTP date) into seconds from now."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def zoom_code(response: requests.Response) -> int | None:
    """Zoom's numeric error ``code`` from an error answer, if it has one."""
    try:
        body = response.json()
    except ValueError:
        return None
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, int) else None


def is_invalid_token(response: requests.Response) -> bool:
    """Whether Zoom refused the access token (401, code 124), which one refresh may cure."""
    return response.status_code == 401 and zoom_code(response) in (INVALID_ACCESS_TOKEN, None)


def send(method: str, url: str, access_token: str, timeout: float, json: Any = None) -> requests.Response:
    """Send one API request; an unreachable or silent Zoom is a :class:`TransientMeetingError`."""
    try:
        return requests.request(
            method,
            url,
            json=json,
            headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
            timeout=timeout,
            allow_redirects=False,
        )
    except requests.Timeout as error:
        count_failure("zoom", "timeout")
        raise TransientMeetingError(f"Zoom did not answer {method} {url} in time") from error
    except requests.RequestException as error:
        count_failure("zoom", "unreachable")
        raise TransientMeetingError(f"Zoom could not be reached: {error.__class__.__name__}") from error


def check(response: requests.Response) -> requests.Response:
    """Classify an answer other than a refusable token: return it if it succeeded, else raise."""
    status = response.status_code
    if status < 400:
        return response
    retry_after = retry_after_seconds(response.headers.get("Retry-After"))
    if status == 429 or status >= 500:
        count_failure("zoom", "transient")
        raise TransientMeetingError(f"Zoom answered {status}", retry_after)
    code = zoom_code(response)
    if status == 404 and code == MEETING_NOT_FOUND:
        raise MeetingNotFound("Zoom says the meeting does not exist")
    try:
        message = response.json().get("message", "")
    except (ValueError, AttributeError):
        message = ""
    count_failure("zoom", "refused")
    log.warning("Zoom refused %s %s: %s code=%s %s", response.request.method, response.url, status, code, message)
    raise MeetingProviderError(f"Zoom refused the request ({status}, code {code}): {message}", status, code)
