"""The events a subscription can ask for, and the JSON each one sends (docs/webhooks.md).

Every body is a Standard Webhooks envelope: ``{"type": ..., "timestamp": ..., "data": {...}}``, where
``timestamp`` is when the change happened (RFC 3339, UTC) and ``data`` the object it happened to, as it
was right after the change. The names of the fields follow the JSON API's (``appointmentId``,
``tokenNumber``...), so an integrator reads one vocabulary.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from expertbook.clinic.models import Appointment, Slot, WaitlistEntry
from expertbook.experts.models import Booking
from expertbook.extensions import db

HOSPITAL = "hospital"
EXPERT = "expert"


@dataclass(frozen=True)
class EventType:
    """One event: its name on the wire, whose subscriptions may want it, and what the page calls it."""

    name: str
    owner: str
    label: Any  # a lazy translated string


EVENTS: tuple[EventType, ...] = (
    EventType("appointment.booked", HOSPITAL, _l("An appointment was booked (online or at the desk)")),
    EventType("appointment.cancelled", HOSPITAL, _l("An appointment was cancelled")),
    EventType("appointment.moved", HOSPITAL, _l("An appointment was moved to another session")),
    EventType("appointment.arrived", HOSPITAL, _l("A patient arrived")),
    EventType("appointment.called", HOSPITAL, _l("A token was called")),
    EventType("appointment.seen", HOSPITAL, _l("A patient was seen")),
    EventType("appointment.no_show", HOSPITAL, _l("A patient did not come")),
    EventType("session.cancelled", HOSPITAL, _l("A whole session was cancelled")),
    EventType("waitlist.promoted", HOSPITAL, _l("A patient on a waiting list got a place")),
    EventType("booking.created", EXPERT, _l("A booking was made (confirmed, or waiting for your answer)")),
    EventType("booking.accepted", EXPERT, _l("You accepted a booking request")),
    EventType("booking.declined", EXPERT, _l("You declined a booking request")),
    EventType("booking.rescheduled", EXPERT, _l("A booking was moved to another time")),
    EventType("booking.cancelled", EXPERT, _l("A booking was cancelled")),
)
BY_NAME = {event.name: event for event in EVENTS}
# The events something actually sends (each receiver that is connected adds its own, see
# expertbook.webhooks.subscribers.connect): only those are offered and described, so nobody
# subscribes to an event that never comes.
_sent: set[str] = set()


def sends(*names: str) -> None:
    """Record that ``names`` are now sent by a connected receiver (or a statement part)."""
    unknown = set(names) - set(BY_NAME)
    if unknown:
        raise ValueError(f"unknown webhook events: {sorted(unknown)}")
    _sent.update(names)
#: What *Send test event* sends; never subscribed to, every subscription accepts it.
TEST_EVENT = "webhook.test"


def events_for(owner: str) -> list[EventType]:
    """The events a subscription of a hospital (``HOSPITAL``) or an expert (``EXPERT``) may want."""
    return [event for event in EVENTS if event.owner == owner and event.name in _sent]


def sent() -> list[EventType]:
    """Every event that is sent, in catalogue order."""
    return [event for event in EVENTS if event.name in _sent]


def envelope(event_type: str, occurred_at: datetime, data: dict[str, Any]) -> str:
    """The body of a delivery, as the exact text that is signed and sent."""
    return json.dumps(
        {"type": event_type, "timestamp": _moment(occurred_at), "data": data},
        separators=(",", ":"), ensure_ascii=False,
    )


def _moment(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


# ---------------------------------------------------------------------------- clinic


def session_data(slot: Slot) -> dict[str, Any]:
    """A session (a doctor's slot) as the clinic events carry it."""
    return {
        "sessionId": slot.id,
        "hospitalId": slot.hospital_id,
        "hospitalName": slot.hospital.name,
        "doctorId": slot.doctor_id,
        "doctorName": slot.doctor.name,
        "specialization": slot.doctor.specialization,
        "date": slot.date.isoformat(),
        "startTime": f"{slot.start_time:%H:%M}",
        "endTime": f"{slot.end_time:%H:%M}",
        "timezone": slot.hospital.timezone,
        "startsAt": _moment(slot.starts_at),
        "endsAt": _moment(slot.ends_at),
        "capacity": slot.capacity,
        "booked": slot.booked_count,
        "nowServing": slot.now_serving,
        "cancelledAt": _moment(slot.cancelled_at),
        "cancelReason": slot.cancel_reason,
    }


def appointment_data(appointment: Appointment, *, as_booked: bool = False) -> dict[str, Any]:
    """An appointment with its session. ``as_booked``: as it was when it was booked (the booking's
    event may be composed a moment later, when the appointment may have changed again)."""
    data = {
        "appointmentId": appointment.id,
        "tokenNumber": appointment.token_number,
        "status": appointment.status,
        "patientName": appointment.patient_name,
        "contactNumber": appointment.contact_number,
        "walkIn": appointment.walk_in,
        "bookedAt": _moment(appointment.booked_at),
        "cancelledAt": _moment(appointment.cancelled_at),
        "cancelledBy": appointment.cancelled_by,
        "cancelReason": appointment.cancel_reason,
        "movedFromId": appointment.moved_from_id,
        "movedToId": appointment.moved_to_id,
        "session": session_data(appointment.slot),
    }
    if as_booked:
        data.update(status=Appointment.BOOKED, cancelledAt=None, cancelledBy=None, cancelReason=None, movedToId=None)
    return data


def load_appointment(appointment_id: int) -> Appointment | None:
    """An appointment with its session, doctor and hospital, in one query."""
    return db.session.scalar(
        select(Appointment)
        .where(Appointment.id == appointment_id)
        .options(joinedload(Appointment.slot).joinedload(Slot.doctor), joinedload(Appointment.slot).joinedload(Slot.hospital))
        # As it is now: the change that sends the event may have written it with a plain UPDATE.
        .execution_options(populate_existing=True)
    )


def waitlist_data(entry: WaitlistEntry, appointment: Appointment | None) -> dict[str, Any]:
    """A waiting-list place that became an appointment."""
    return {
        "waitlistId": entry.id,
        "patientName": entry.patient_name,
        "joinedAt": _moment(entry.joined_at),
        "promotedAt": _moment(entry.ended_at),
        "appointment": appointment_data(appointment) if appointment is not None else None,
    }


# ---------------------------------------------------------------------------- experts


def booking_data(booking: Booking) -> dict[str, Any]:
    """An expert's booking, as the expert sees it."""
    return {
        "bookingId": booking.id,
        "status": booking.status,
        "serviceId": booking.service_id,
        "serviceTitle": booking.service.title,
        "expertId": booking.expert_id,
        "customerName": booking.customer_name,
        "customerEmail": booking.customer_email,
        "customerPhone": booking.customer_phone,
        "notes": booking.notes,
        "start": _moment(booking.start_at),
        "end": _moment(booking.end_at),
        "customerTimezone": booking.customer_timezone,
        "isGuest": booking.is_guest,
        "cancelReason": booking.cancel_reason,
        "rescheduledFrom": _moment(booking.rescheduled_from),
        "rescheduleReason": booking.reschedule_reason,
        "createdAt": _moment(booking.created_at),
        "updatedAt": _moment(booking.updated_at),
    }


def test_data(subscription_id: int) -> dict[str, Any]:
    """What *Send test event* carries: nothing real, only which subscription asked."""
    return {"subscriptionId": subscription_id, "message": "This is a test event from ExpertBook."}
