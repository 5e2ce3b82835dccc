"""How sessions and appointments read: the hospital's today, a session's badge and colour, and what an
appointment's page says first. Pure rules over loaded rows (no query), shared by pages, API and emails."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from expertbook.clinic.clock import zone
from expertbook.clinic.models import Appointment, Slot
from expertbook.database import utcnow

# The statuses of a token that is still to be called.
WAITING = (Appointment.BOOKED, Appointment.ARRIVED)


def local_today(timezone: str | None) -> date:
    """Today's date where the hospital is."""
    return utcnow().astimezone(zone(timezone)).date()


def to_utc(day: date, at: time, timezone: str | None) -> datetime:
    """A hospital wall-clock time on ``day`` as an aware UTC datetime."""
    return datetime.combine(day, at, tzinfo=zone(timezone)).astimezone(UTC)


@dataclass(frozen=True)
class Badge:
    label: str
    css: str


def slot_badge(slot: Slot, now: datetime | None = None) -> Badge:
    """The one place that decides a slot's status badge: Cancelled, Past, Closed, Fully booked, Almost full or Available."""
    now = now or utcnow()
    if getattr(slot, "cancelled_at", None) is not None:
        return Badge("Cancelled", "badge-cancelled")
    if slot.is_past(now):
        return Badge("Past", "badge-past")
    if slot.closed:
        return Badge("Closed", "badge-closed")
    left = slot.places_left
    if left <= 0:
        return Badge("Fully booked", "badge-fully-booked")
    if almost_full(left, slot.capacity):
        return Badge("Almost full", "badge-almost-full")
    return Badge("Available", "badge-available")


def almost_full(left: int, capacity: int) -> bool:
    """Whether a session with places still free is nearly taken: at least four in five of its places are booked.

    A share rather than a count, so a 2-place session with nobody booked is not "almost full" while
    a 100-place one with 15 left is.
    """
    return 0 < left and (capacity - left) * 5 >= capacity * 4


def availability_class(slot: Slot, now: datetime | None = None) -> str:
    """The colour of "N of M left": the same rule as the badge, in three shades."""
    css = slot_badge(slot, now).css
    if css == "badge-available":
        return "avail-ok"
    if css == "badge-almost-full":
        return "avail-warn"
    return "avail-full"


@dataclass(frozen=True)
class AppointmentState:
    """What an appointment's page says first. ``live`` ones (booked or arrived, session not over) show the
    token large, count the tokens ahead, refresh, print and can be cancelled (booked only)."""

    key: str  # "confirmed", "arrived", "cancelled", "no_show" or "past"
    live: bool


def appointment_state(status: str, slot: Slot, now: datetime | None = None) -> AppointmentState:
    """The one place that decides how an appointment reads: cancelled and no-show first, then a session
    that is over, then checked in (arrived) or confirmed."""
    if status == Appointment.CANCELLED:
        return AppointmentState("cancelled", False)
    if status == Appointment.NO_SHOW:
        return AppointmentState("no_show", False)
    if slot.is_past(now or utcnow()):
        return AppointmentState("past", False)
    if status == Appointment.ARRIVED:
        return AppointmentState("arrived", True)
    return AppointmentState("confirmed", True)


def is_bookable(slot: Slot, now: datetime | None = None) -> bool:
    """Whether the slot takes bookings right now (what search offers)."""
    return slot_badge(slot, now).css in {"badge-available", "badge-almost-full"}
