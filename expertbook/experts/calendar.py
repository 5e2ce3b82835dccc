"""Calendar files (.ics, RFC 5545) for bookings, shared by the download link and, later, emails."""
from __future__ import annotations

from icalendar import Calendar, Event, vCalAddress, vText
from zoneinfo import ZoneInfo

from expertbook.experts.models import Booking

PRODID = "-//ExpertBook//Expert bookings//EN"


def booking_ics(booking: Booking) -> bytes:
    """The booking as an iCalendar file.

    The UID never changes, so calendar apps update the same event; SEQUENCE is the booking's change
    counter, so a later file always wins. Times carry the expert's TZID with its VTIMEZONE. A
    cancelled or declined booking is sent as ``METHOD:CANCEL`` with ``STATUS:CANCELLED``.
    """
    service = booking.service
    expert = booking.expert
    gone = booking.status in ("cancelled", "declined")
    zone = ZoneInfo(expert.timezone)

    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "CANCEL" if gone else "REQUEST")

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
    cal.add_component(event)
    cal.add_missing_timezones()
    return cal.to_ical()
