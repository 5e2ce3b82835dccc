"""iCalendar files (RFC 5545) for the whole app: one event, as an invitation (REQUEST/PUBLISH) or its
cancellation (CANCEL). The clinic's emails and the expert bookings' download and emails all build theirs here."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, vCalAddress, vText

from expertbook.database import utcnow

PRODID = "-//ExpertBook//Bookings//EN"


def event_ics(
    uid: str,
    start: datetime,
    end: datetime,
    summary: str,
    *,
    method: str = "REQUEST",
    sequence: int = 0,
    status: str | None = None,
    timezone: str | None = None,
    description: str = "",
    location: str = "",
    url: str | None = None,
    organizer: tuple[str, str] | None = None,
    attendees: Iterable[tuple[str, str]] = (),
    partstat: str | None = None,
    stamp: datetime | None = None,
    created: datetime | None = None,
    modified: datetime | None = None,
) -> str:
    """The text of a one-event calendar.

    ``uid`` must stay the same for one booking across its invitation and its cancellation (e.g.
    ``f"clinic-appointment-{id}@{host}"``); a later version has a higher ``sequence``, and a cancellation
    uses ``method="CANCEL"``. ``status`` defaults to CANCELLED for a cancellation, else CONFIRMED.
    Times must be timezone-aware; with ``timezone`` (an IANA name) they are written in that zone with
    its TZID and VTIMEZONE, else in UTC. ``organizer`` and ``attendees`` are (name, email) pairs;
    ``partstat`` is the attendees' participation status. ``stamp`` (DTSTAMP) defaults to now.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("event times must be timezone-aware")
    method = method.upper()
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", method)
    zone = ZoneInfo(timezone) if timezone else None
    event = Event()
    event.add("uid", uid)
    event.add("sequence", sequence)
    event.add("dtstamp", stamp or utcnow())
    if created:
        event.add("created", created)
    if modified:
        event.add("last-modified", modified)
    event.add("dtstart", start.astimezone(zone) if zone else start)
    event.add("dtend", end.astimezone(zone) if zone else end)
    event.add("summary", summary)
    if description:
        event.add("description", description)
    if location:
        event.add("location", location)
    if url:
        event.add("url", url)
    event.add("status", status or ("CANCELLED" if method == "CANCEL" else "CONFIRMED"))
    if organizer:
        event.add("organizer", _address(*organizer))
    for name, email in attendees:
        address = _address(name, email)
        address.params["role"] = vText("REQ-PARTICIPANT")
        if partstat:
            address.params["partstat"] = vText(partstat)
        event.add("attendee", address)
    calendar.add_component(event)
    _add_timezones(calendar)
    return calendar.to_ical().decode()


def _address(name: str, email: str) -> vCalAddress:
    address = vCalAddress(f"mailto:{email}")
    address.params["cn"] = vText(name)
    return address


def _add_timezones(calendar: Calendar) -> None:
    """A VTIMEZONE for every TZID the calendar's times use (none for UTC times)."""
    calendar.add_missing_timezones()
