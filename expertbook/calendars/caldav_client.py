"""CalDAV (RFC 4791) over the ``caldav`` library: list an account's calendars, read busy times, write and
delete one booking's event. Nothing here touches the database.

The server is whatever URL an expert typed, so it is checked before every use (:func:`check_url`): https
only and no private, loopback or link-local address unless the settings allow them, and redirects are
never followed. Each request is bounded by ``CALENDAR_TIMEOUT``.
"""
from __future__ import annotations

import ipaddress
import logging
import socket
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote, urlsplit

from flask import current_app

from expertbook.calendars import busy
from expertbook.calendars.errors import CalendarError, CalendarRefused, CalendarRejected, CalendarUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Account:
    """What it takes to log in to a CalDAV server."""

    url: str
    username: str
    password: str


@dataclass(frozen=True)
class FoundCalendar:
    """One calendar collection of an account (that can hold events)."""

    remote_id: str  # its URL
    name: str


class UnsafeURL(ValueError):
    """The URL may not be used: not https, or it leads to a private, loopback or link-local address."""


def check_url(url: str) -> str:
    """``url`` if the server may be contacted, else :class:`UnsafeURL` saying why (in English, for the log;
    the form shows its own words).

    Every address the host name resolves to is checked, so a name that points inside our network is
    refused as a literal address would be.
    """
    config = current_app.config
    parts = urlsplit((url or "").strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UnsafeURL("not an http(s) URL")
    if parts.scheme != "https" and not config.get("CALDAV_ALLOW_HTTP"):
        raise UnsafeURL("only https URLs are allowed")
    if parts.username or parts.password:
        raise UnsafeURL("the URL must not carry a user name or password")
    if not config.get("CALDAV_ALLOW_PRIVATE_ADDRESSES"):
        try:
            found = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80), proto=socket.IPPROTO_TCP)
        except (socket.gaierror, UnicodeError) as error:
            raise CalendarUnavailable(f"the server's name does not resolve: {error}") from error
        for *_, sockaddr in found:
            address = ipaddress.ip_address(sockaddr[0].split("%")[0])
            if not address.is_global or address.is_multicast:
                raise UnsafeURL("the server's address is private, loopback or link-local")
    return url.strip()


def _client(account: Account):
    import caldav

    check_url(account.url)
    client = caldav.DAVClient(
        url=account.url,
        username=account.username,
        password=account.password,
        timeout=float(current_app.config["CALENDAR_TIMEOUT"]),
        enable_rfc6764=False,  # the URL given is the server: no DNS discovery that could lead elsewhere
        require_tls=not current_app.config.get("CALDAV_ALLOW_HTTP"),
        rate_limit_handle=False,  # a 429 is ours to schedule, not a sleep inside a job
    )
    client.session.max_redirects = 0  # a redirect could lead past check_url
    return client


def _classified(error: Exception, what: str) -> CalendarError:
    """A caldav or HTTP failure as one of ours (the message names no secret)."""
    from caldav.lib import error as dav_error

    if isinstance(error, CalendarError):
        return error
    if isinstance(error, dav_error.AuthorizationError):
        return CalendarRefused(f"the server refused the user name or password ({what})")
    if isinstance(error, dav_error.RateLimitError):
        return CalendarUnavailable(f"the server asked us to slow down ({what})", getattr(error, "retry_after_seconds", None))
    if isinstance(error, dav_error.NotFoundError):
        return CalendarRejected(f"the server has no such calendar ({what})")
    if isinstance(error, dav_error.DAVError):
        reason = str(getattr(error, "reason", "") or error)[:300]
        status = getattr(error, "status", None)
        if status is None or status == 429 or status >= 500:
            # No status: the answer could not be read (a proxy's error page, a cut connection).
            return CalendarUnavailable(f"the server failed ({what}): {reason}")
        return CalendarRejected(f"the server refused the request ({what}): {status} {reason}")
    return CalendarUnavailable(f"the server could not be reached ({what}): {error.__class__.__name__}")


def calendars(account: Account) -> list[FoundCalendar]:
    """The account's calendars that can hold events, by name. Raises a :class:`CalendarError`."""
    try:
        with _client(account) as client:
            found = []
            for calendar in client.principal().calendars():
                try:
                    components = calendar.get_supported_components()
                except Exception:  # noqa: BLE001 - a server that does not say: assume it holds events
                    components = ["VEVENT"]
                if components and "VEVENT" not in components:
                    continue  # a task list or a journal
                name = calendar.get_display_name() or str(calendar.url).rstrip("/").rsplit("/", 1)[-1]
                found.append(FoundCalendar(str(calendar.url), str(name)[:255]))
    except UnsafeURL:
        raise
    except Exception as error:  # noqa: BLE001 - classified below
        raise _classified(error, "listing calendars") from error
    return sorted(found, key=lambda item: item.name.lower())


def busy_times(account: Account, calendar_urls: list[str], start: datetime, end: datetime, zone: str) -> dict[str, list[busy.Interval]]:
    """Each calendar's busy intervals in ``[start, end)`` (see :mod:`expertbook.calendars.busy`).

    The server filters by time range (recurring events included); the expansion is ours, so a server
    that cannot expand still gives every occurrence. Raises a :class:`CalendarError`.
    """
    result: dict[str, list[busy.Interval]] = {}
    try:
        with _client(account) as client:
            for url in calendar_urls:
                calendar = client.calendar(url=url)
                objects = calendar.search(start=start, end=end, event=True, expand=False)
                result[url] = busy.intervals([obj.data for obj in objects if obj.data], start, end, zone)
    except UnsafeURL:
        raise
    except Exception as error:  # noqa: BLE001
        raise _classified(error, "reading busy times") from error
    return result


def event_url(calendar_url: str, uid: str) -> str:
    """Where a booking's event lives in a calendar: named after its UID, so writing it again replaces it."""
    return calendar_url.rstrip("/") + "/" + quote(uid, safe="") + ".ics"


def put_event(account: Account, calendar_url: str, uid: str, ics_text: str) -> None:
    """Create or replace the event ``uid`` (PUT to its own URL). Raises a :class:`CalendarError`."""
    try:
        with _client(account) as client:
            response = client.put(event_url(calendar_url, uid), ics_text, {"Content-Type": 'text/calendar; charset="utf-8"'})
            status = int(getattr(response, "status", 0) or 0)
    except UnsafeURL:
        raise
    except Exception as error:  # noqa: BLE001
        raise _classified(error, "writing an event") from error
    _check_status(status, "writing an event")


def delete_event(account: Account, calendar_url: str, uid: str) -> None:
    """Delete the event ``uid``; an event already gone counts as deleted. Raises a :class:`CalendarError`."""
    try:
        with _client(account) as client:
            response = client.delete(event_url(calendar_url, uid))
            status = int(getattr(response, "status", 0) or 0)
    except UnsafeURL:
        raise
    except Exception as error:  # noqa: BLE001
        if error.__class__.__name__ == "NotFoundError":
            return
        raise _classified(error, "deleting an event") from error
    if status in (404, 410):
        return
    _check_status(status, "deleting an event")


def _check_status(status: int, what: str) -> None:
    if 200 <= status < 300:
        return
    if status == 429 or status >= 500:
        raise CalendarUnavailable(f"the server answered {status} ({what})")
    if status in (401, 403):
        raise CalendarRefused(f"the server refused the user name or password ({what})")
    raise CalendarRejected(f"the server answered {status} ({what})")
