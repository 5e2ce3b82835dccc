"""The desk's queue: who is called next, how many wait before a token, marking patients arrived or
no-show, and cancelling one appointment (the patient's own or the desk's, with a reason)."""
from __future__ import annotations

from sqlalchemy import func, select, update

from expertbook.clinic import emails, signals
from expertbook.clinic.appointments import own_appointment
from expertbook.clinic.inputs import APPOINTMENT_NOT_FOUND, clean_reason
from expertbook.clinic.models import Appointment, Slot
from expertbook.clinic.places import FIRST_TOKEN, lock_slots
from expertbook.clinic.sessions import staff_slot_in
from expertbook.clinic.states import WAITING
from expertbook.clinic.waitlist import release_places
from expertbook.database import transaction, utcnow
from expertbook.errors import Conflict, NotFound, ValidationFailed
from expertbook.extensions import db
from expertbook.notifications.service import never_costs_the_change, queue_composed


def call_next(slot_id: int, hospital_id: int) -> Slot:
    """Show the next waiting token on the "now serving" screen (cancelled and no-show tokens are skipped)."""
    with transaction() as session:
        # The row lock keeps two desks from calling the same patient at once.
        slot = staff_slot_in(session, slot_id, hospital_id, lock=True)
        following = _next_waiting(slot.id, slot.now_serving)
        if following is None:
            raise Conflict("No more patients are waiting for this slot.")
        slot.now_serving = following
        slot.version = slot.version + 1
    return slot


def _next_waiting(slot_id: int, after: int | None) -> int | None:
    return db.session.scalar(
        select(func.min(Appointment.token_number)).where(
            Appointment.slot_id == slot_id,
            Appointment.token_number > (after or FIRST_TOKEN - 1),
            Appointment.status.in_(WAITING),
        )
    )


def next_token(slot: Slot) -> int | None:
    """The token that will be called after the one now being served."""
    return _next_waiting(slot.id, slot.now_serving)


def next_tokens(slot: Slot, count: int = 3) -> list[int]:
    """The next ``count`` tokens to be called after the one now being served, in order (the wall screen)."""
    return list(
        db.session.scalars(
            select(Appointment.token_number)
            .where(
                Appointment.slot_id == slot.id,
                Appointment.token_number > (slot.now_serving or FIRST_TOKEN - 1),
                Appointment.status.in_(WAITING),
            )
            .order_by(Appointment.token_number)
            .limit(count)
        )
    )


def tokens_ahead(appointment: Appointment, slot: Slot) -> int:
    """How many waiting tokens will be called before this appointment's."""
    return db.session.scalar(
        select(func.count()).where(
            Appointment.slot_id == slot.id,
            Appointment.token_number < appointment.token_number,
            Appointment.token_number > (slot.now_serving or FIRST_TOKEN - 1),
            Appointment.status.in_(WAITING),
        )
    ) or 0


def set_appointment_status(appointment_id: int, hospital_id: int, status: str) -> Appointment:
    """Staff mark a patient arrived or no-show (or back to booked); cancelled appointments stay cancelled."""
    if status not in (Appointment.BOOKED, Appointment.ARRIVED, Appointment.NO_SHOW):
        raise ValidationFailed({"status": "Choose arrived, no-show or booked."})
    with transaction() as session:
        appointment = session.scalar(
            select(Appointment)
            .join(Slot)
            .where(Appointment.id == appointment_id, Slot.hospital_id == hospital_id)
            .execution_options(populate_existing=True)
        )
        if appointment is None:
            raise NotFound(APPOINTMENT_NOT_FOUND)
        # The slot first, as every change that touches a slot and its appointments does (see lock_slots).
        session.execute(update(Slot).where(Slot.id == appointment.slot_id).values(version=Slot.version + 1), execution_options={"synchronize_session": False})
        changed = session.execute(
            update(Appointment)
            .where(Appointment.id == appointment_id, Appointment.status != Appointment.CANCELLED)
            .values(status=status),
            execution_options={"synchronize_session": False},
        ).rowcount
        if not changed:
            raise Conflict("The patient cancelled this appointment.")
    session.expire_all()
    return appointment


def cancel(appointment_id: int, user_id: int) -> Appointment:
    """The patient cancels their own upcoming appointment; the place is freed, the token is not reused.

    The freed place goes at once, in the same transaction, to the first person on the session's
    waiting list, if anyone waits.
    """
    with transaction() as session:
        appointment = own_appointment(appointment_id, user_id)
        if appointment.status == Appointment.CANCELLED:
            return appointment
        if appointment.status != Appointment.BOOKED:
            raise Conflict("This appointment can no longer be cancelled.")
        now = utcnow()
        if appointment.slot.is_past(now):
            raise Conflict("This appointment has already taken place.")
        lock_slots(session, appointment.slot_id)
        changed = session.execute(
            update(Appointment)
            .where(Appointment.id == appointment_id, Appointment.status == Appointment.BOOKED)
            .values(status=Appointment.CANCELLED, cancelled_at=now, cancelled_by=Appointment.BY_PATIENT),
            execution_options={"synchronize_session": False},
        ).rowcount
        if changed:
            release_places(session, appointment.slot_id, now)
            signals.send(signals.appointment_cancelled, appointment_id=appointment_id)
    session.expire_all()
    return appointment


def staff_cancel(appointment_id: int, hospital_id: int, reason: str | None) -> Appointment:
    """Staff cancel one appointment of their hospital, with a reason the patient is emailed (with a
    link to book again). The place is freed (and given to the first person waiting); the token is
    never given out again."""
    reason = clean_reason(reason)
    with transaction() as session:
        found = session.execute(
            select(Appointment.slot_id, Appointment.user_id, Appointment.email, Slot.ends_at)
            .join(Slot, Slot.id == Appointment.slot_id)
            .where(Appointment.id == appointment_id, Slot.hospital_id == hospital_id)
        ).one_or_none()
        if found is None:
            raise NotFound(APPOINTMENT_NOT_FOUND)
        now = utcnow()
        if found.ends_at <= now:
            raise Conflict("This session is over; its appointments can no longer be cancelled.")
        lock_slots(session, found.slot_id)
        changed = session.execute(
            update(Appointment)
            .where(Appointment.id == appointment_id, Appointment.status != Appointment.CANCELLED)
            .values(status=Appointment.CANCELLED, cancelled_at=now, cancelled_by=Appointment.BY_STAFF, cancel_reason=reason),
            execution_options={"synchronize_session": False},
        ).rowcount
        if not changed:
            raise Conflict("This appointment is already cancelled.")
        release_places(session, found.slot_id, now)
        if emails.has_address(found.user_id, found.email):
            with never_costs_the_change(f"the cancellation email of appointment {appointment_id}"):
                queue_composed(emails.CANCELLED_BY_HOSPITAL, appointment_id)
    return session.get(Appointment, appointment_id, populate_existing=True)
