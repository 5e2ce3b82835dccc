"""The webhooks' signal receivers: each turns an area's event into deliveries, inside the change's transaction.

They only write rows (:func:`expertbook.webhooks.delivery.record`, in a savepoint that never costs
the change); the deliveries are dispatched after the commit. A change nobody subscribed to costs one
small indexed query. The clinic's ``appointment.booked`` has no receiver: the booking writes it in
its own single statement (see :func:`connect`), so the booking stays one statement on PostgreSQL.
:func:`connect` is called once per application; connecting again is a no-op.
"""
from __future__ import annotations

from expertbook.experts import signals as booking_signals
from expertbook.experts.models import Booking
from expertbook.extensions import db
from expertbook.webhooks import delivery, events


# ---------------------------------------------------------------------------- experts


def _booking_event(event_type: str, booking_id: int) -> None:
    booking = db.session.get(Booking, booking_id, populate_existing=True)
    if booking is None:
        return
    delivery.record(event_type, lambda: events.booking_data(booking), expert_user_id=booking.expert.user_id, ref_id=booking_id)


def on_booking_made(sender, booking_id: int, **extra) -> None:
    # booking_confirmed with accepted=True is an acceptance, not a new booking.
    _booking_event("booking.accepted" if extra.get("accepted") else "booking.created", booking_id)


def on_booking_declined(sender, booking_id: int, **extra) -> None:
    _booking_event("booking.declined", booking_id)


def on_booking_rescheduled(sender, booking_id: int, **extra) -> None:
    _booking_event("booking.rescheduled", booking_id)


def on_booking_cancelled(sender, booking_id: int, **extra) -> None:
    _booking_event("booking.cancelled", booking_id)


# ---------------------------------------------------------------------------- clinic


def _appointment_event(event_type: str, appointment_id: int) -> None:
    appointment = events.load_appointment(appointment_id)
    if appointment is None:
        return
    delivery.record(event_type, lambda: events.appointment_data(appointment),
                    hospital_id=appointment.slot.hospital_id, ref_id=appointment_id)


def on_appointment_cancelled(sender, appointment_id: int, **extra) -> None:
    _appointment_event("appointment.cancelled", appointment_id)


def connect() -> None:
    """Subscribe to the areas' signals and join the relay pass (idempotent)."""
    from expertbook.clinic import signals as clinic_signals
    from expertbook.notifications.service import register_relay_hook

    booking_signals.booking_requested.connect(on_booking_made)
    booking_signals.booking_confirmed.connect(on_booking_made)
    booking_signals.booking_declined.connect(on_booking_declined)
    booking_signals.booking_rescheduled.connect(on_booking_rescheduled)
    booking_signals.booking_cancelled.connect(on_booking_cancelled)
    clinic_signals.appointment_cancelled.connect(on_appointment_cancelled)
    # appointment.booked: written by the booking's own statement, only for the hospital's subscribers
    # (a receiver of appointment_booked would put every online booking back into a transaction).
    clinic_signals.write_with_every_booking(delivery.booked_insert, delivery.dispatch)
    events.sends("appointment.booked", "booking.created", "booking.accepted", "booking.declined", "booking.rescheduled", "booking.cancelled",
                 "appointment.cancelled")
    register_relay_hook(delivery.relay)
