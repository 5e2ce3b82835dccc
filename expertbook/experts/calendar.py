"""An expert booking as a calendar file (.ics), for its download link and its emails (built by :mod:`expertbook.ics`)."""
from __future__ import annotations

from expertbook.experts.models import Booking
from expertbook.ics import event_ics


def booking_ics(booking: Booking) -> bytes:
    """The booking as an iCalendar file.

    The UID never changes, so calendar apps update the same event; SEQUENCE is the booking's change
    counter, so a later file always wins. Times carry the expert's TZID with its VTIMEZONE. A
    cancelled or declined booking is sent as ``METHOD:CANCEL`` with ``STATUS:CANCELLED``.
    """
    service = booking.service
    expert = booking.expert
    gone = booking.status in ("cancelled", "declined")
    description = [f"{service.title} ({service.duration_min} min) with {expert.display_name}.", f"Booked by {booking.customer_name}."]
    if booking.notes:
        description.append(f"Notes: {booking.notes}")
    if booking.status == "pending":
        description.append("Waiting for the expert to accept.")
    if gone and booking.cancel_reason:
        description.append(f"Reason: {booking.cancel_reason}")
    return event_ics(
        f"{booking.ics_uid}@expertbook",
        booking.start_at,
        booking.end_at,
        f"{service.title} with {expert.display_name}",
        method="CANCEL" if gone else "REQUEST",
        sequence=booking.ics_sequence,
        status="CANCELLED" if gone else ("TENTATIVE" if booking.status == "pending" else "CONFIRMED"),
        timezone=expert.timezone,
        description="\n".join(description),
        location=service.location_detail or service.location_label,
        organizer=(expert.display_name, expert.user.email),
        attendees=[(booking.customer_name, booking.customer_email)],
        partstat="ACCEPTED" if booking.status == "confirmed" else ("DECLINED" if gone else "NEEDS-ACTION"),
        stamp=booking.updated_at,
        created=booking.created_at,
        modified=booking.updated_at,
    ).encode()
