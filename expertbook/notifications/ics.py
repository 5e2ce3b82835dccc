"""iCalendar attachments for booking emails: an invitation (REQUEST/PUBLISH) or its cancellation (CANCEL)."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

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
    description: str = "",
    location: str = "",
    url: str | None = None,
    organizer: tuple[str, str] | None = None,
    attendees: Iterable[tuple[str, str]] = (),
) -> str:
    """The text of a one-event calendar.

    ``uid`` must stay the same for one booking across its invitation and its cancellation (use e.g.
    ``f"expert-booking-{id}@{host}"``); a cancellation uses ``method="CANCEL"`` and a higher ``sequence``.
    ``organizer`` and ``attendees`` are (name, email) pairs. Times must be timezone-aware.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("event times must be timezone-aware")
    method = method.upper()
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("method", method)
    event = Event()
    event.add("uid", uid)
    event.add("dtstamp", utcnow())
    event.add("dtstart", start)
    event.add("dtend", end)
    event.add("summary", summary)
    event.add("sequence", sequence)
    event.add("status", "CANCELLED" if method == "CANCEL" else "CONFIRMED")
    if description:
        event.add("description", description)
    if location:
        event.add("location", location)
    if url:
        event.add("url", url)
    if organizer:
        address = vCalAddress(f"mailto:{organizer[1]}")
        address.params["cn"] = vText(organizer[0])
        event.add("organizer", address)
    for name, email in attendees:
        address = vCalAddress(f"mailto:{email}")
        address.params["cn"] = vText(name)
        address.params["role"] = vText("REQ-PARTICIPANT")
        event.add("attendee", address, encode=0)
    calendar.add_component(event)
    return calendar.to_ical().decode()
