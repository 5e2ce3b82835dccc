"""Calendar files (.ics, RFC 5545) for bookings: one booking's file (the download link, the emails)
and a user's subscription feed."""
from __future__ import annotations

from collections.abc import Iterable

from icalendar import Calendar, Event, vCalAddress, vText
from zoneinfo import ZoneInfo

from expertbook.experts.models import Booking

PRODID = "-//ExpertBook//Expert bookings//EN"


def _calendar(method: str | None) -> Calendar:
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    if method:
        cal.add("method", method)
    return cal


def _event(booking: Booking, timezone: str) -> Event:
    """The booking as one VEVENT with times in ``timezone``.

    The UID never changes, so calendar apps update the same event; SEQUENCE is the booking's change
    counter, so a later copy always wins. A cancelled or declined booking is ``STATUS:CANCELLED``.
    """
    service = booking.service
    expert = booking.expert
    gone = booking.status in ("cancelled", "declined")
    zone = ZoneInfo(timezone)
    event = Event()
    event.add("uid", f"{booking.ics_uid}@expertbook")
    event.add("sequence", booking.ics_sequence)
    event.add("dtstamp", booking.updated_at)
    event.add("created", booking.created_at)
    event.add("last-modified", booking.updated_at)
    event.add("dtstart", booking.start_at.astimezone(zone))
    event.add("dtend", booking.end_at.astimezone(zone))
    event.add("summary", f"{service.title} with {expert.display_name}")
    description = [f"{service.title} ({service.duration_min} min) with {expert.display_name}.", f"Booked by {booking.customer_name}."]
    if booking.notes:
        description.append(f"Notes: {booking.notes}")
    if booking.status == "pending":
        description.append("Waiting for the expert to accept.")
    if gone and booking.cancel_reason:
        description.append(f"Reason: {booking.cancel_reason}")
    event.add("description", "\n".join(description))
    event.add("location", service.location_detail or service.location_label)
    event.add("status", "CANCELLED" if gone else ("TENTATIVE" if booking.status == "pending" else "CONFIRMED"))
    organizer = vCalAddress(f"mailto:{expert.user.email}")
    organizer.params["cn"] = vText(expert.display_name)
    event.add("organizer", organizer)
    attendee = vCalAddress(f"mailto:{booking.customer_email}")
    attendee.params["cn"] = vText(booking.customer_name)
    attendee.params["role"] = vText("REQ-PARTICIPANT")
    attendee.params["partstat"] = vText("ACCEPTED" if booking.status == "confirmed" else ("DECLINED" if gone else "NEEDS-ACTION"))
    event.add("attendee", attendee)
    return event


def booking_ics(booking: Booking) -> bytes:
    """The booking as an iCalendar file: times in the expert's zone with its VTIMEZONE; a cancelled
    or declined booking is sent as ``METHOD:CANCEL``."""
    gone = booking.status in ("cancelled", "declined")
    cal = _calendar("CANCEL" if gone else "REQUEST")
    cal.add_component(_event(booking, booking.expert.timezone))
    cal.add_missing_timezones()
    return cal.to_ical()


def feed_ics(user_id: int, bookings: Iterable[Booking], name: str) -> bytes:
    """A user's subscription feed: each booking in the zone that user sees it in (the expert's own
    zone for their clients' bookings, the zone the customer booked in for their own), cancelled and
    declined ones as ``STATUS:CANCELLED`` so subscribed calendars drop them."""
    cal = _calendar("PUBLISH")
    cal.add("x-wr-calname", name)
    for booking in bookings:
        zone = booking.expert.timezone if booking.expert.user_id == user_id else booking.customer_timezone
        cal.add_component(_event(booking, zone))
    cal.add_missing_timezones()
    return cal.to_ical()
