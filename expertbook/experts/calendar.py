"""Expert bookings as calendar files (built by :mod:`expertbook.ics`): one booking's file (its
download link and its emails) and a user's subscription feed.

Each side gets its own file: a video booking's customer finds the join link in LOCATION, URL and
DESCRIPTION; its expert finds OUR "Start meeting" route there (never Zoom's start_url, which grants
host rights and expires). The links come from the video area, which registers a
:func:`register_meeting_links` source (experts never imports video).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from icalendar import Event

from expertbook.experts.models import Booking
from expertbook.ics import calendar_ics, event


@dataclass(frozen=True)
class MeetingLinks:
    """What a video booking's files and emails say about its meeting (built by the video area)."""

    join_url: str | None  # the customer's link (no host rights); None while the meeting is being made
    meeting_id: str | None  # the provider's meeting number, shown to both sides
    start_url: str  # OUR host "Start meeting" route, which fetches a fresh start link on click
    key: str  # names the meeting in the dedupe keys: a meeting re-created with new links emails again


_links_source: list[Callable[[Booking], MeetingLinks | None]] = []


def register_meeting_links(source: Callable[[Booking], MeetingLinks | None]) -> None:
    """Let the video area tell the calendar files a booking's meeting links (the last registration wins)."""
    _links_source[:] = [source]


def meeting_links(booking: Booking) -> MeetingLinks | None:
    """The booking's meeting links, if it is a video booking whose meeting the video area knows."""
    if booking.service.location_kind != "video" or not _links_source:
        return None
    return _links_source[0](booking)


def booking_event(booking: Booking, timezone: str, links: MeetingLinks | None = None, *, for_expert: bool = False) -> Event:
    """The booking as one VEVENT, times in ``timezone``, with the meeting link of the side it is for.

    The UID never changes, so calendar apps update the same event; SEQUENCE is the booking's change
    counter, so a later copy always wins (a reschedule moves the event). A cancelled or declined
    booking is ``STATUS:CANCELLED``.
    """
    service, expert = booking.service, booking.expert
    gone = booking.status in ("cancelled", "declined")
    description = [f"{service.title} ({booking.duration_minutes} min) with {expert.display_name}.", f"Booked by {booking.customer_name}."]
    link = None
    if links is not None and links.join_url and not gone:
        link = links.start_url if for_expert else links.join_url
        description.append(f"Start the meeting (host): {link}" if for_expert else f"Join the meeting: {link}")
    if booking.notes:
        description.append(f"Notes: {booking.notes}")
    if booking.status == "pending":
        description.append("Waiting for the expert to accept.")
    if gone and booking.cancel_reason:
        description.append(f"Reason: {booking.cancel_reason}")
    return event(
        f"{booking.ics_uid}@expertbook",
        booking.start_at,
        booking.end_at,
        f"{service.title} with {booking.customer_name if for_expert else expert.display_name}",
        sequence=booking.ics_sequence,
        status="CANCELLED" if gone else ("TENTATIVE" if booking.status == "pending" else "CONFIRMED"),
        timezone=timezone,
        description="\n".join(description),
        location=link or service.location_detail or service.location_label,
        url=link,
        organizer=(expert.display_name, expert.user.email),
        attendees=[(booking.customer_name, booking.customer_email)],
        partstat="ACCEPTED" if booking.status == "confirmed" else ("DECLINED" if gone else "NEEDS-ACTION"),
        stamp=booking.updated_at,
        created=booking.created_at,
        modified=booking.updated_at,
    )


def booking_ics(booking: Booking, links: MeetingLinks | None = None, *, for_expert: bool = False) -> bytes:
    """The booking as an iCalendar file for one side, times in the expert's zone; a cancelled or
    declined booking is sent as ``METHOD:CANCEL``."""
    gone = booking.status in ("cancelled", "declined")
    one = booking_event(booking, booking.expert.timezone, links, for_expert=for_expert)
    return calendar_ics([one], method="CANCEL" if gone else "REQUEST").encode()


def feed_ics(user_id: int, bookings: Iterable[Booking], name: str) -> bytes:
    """A user's subscription feed: each booking in the zone that user sees it in (the expert's own
    zone for their clients' bookings, the zone the customer booked in for their own), with that
    side's meeting link; cancelled and declined ones as ``STATUS:CANCELLED`` so calendars drop them."""
    events = []
    for booking in bookings:
        for_expert = booking.expert.user_id == user_id
        zone = booking.expert.timezone if for_expert else booking.customer_timezone
        links = meeting_links(booking) if booking.is_active else None  # a cancelled booking's file shows no link
        events.append(booking_event(booking, zone, links, for_expert=for_expert))
    return calendar_ics(events, method="PUBLISH", name=name).encode()
