"""Moving an appointment to another session (the patient's own move, or the one-click link of a
"session cancelled" email): atomic, the new place taken and the old one freed, or nothing."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from expertbook.clinic import emails
from expertbook.clinic.appointments import with_appointment_details
from expertbook.clinic.inputs import APPOINTMENT_NOT_FOUND, SLOT_NOT_FOUND
from expertbook.clinic.models import Appointment, Doctor, Slot
from expertbook.clinic.places import insert_appointment, lock_slots, refusal, take_place
from expertbook.clinic.sessions import MAX_SESSION, with_doctor_and_hospital
from expertbook.clinic.waitlist import release_places
from expertbook.database import transaction, utcnow
from expertbook.errors import Conflict, NotFound, ValidationFailed
from expertbook.extensions import db
from expertbook.notifications.service import never_costs_the_change, queue_composed

MOVE_OPTIONS_LIMIT = 50


@dataclass(frozen=True)
class Moved:
    """The outcome of a move: the new appointment and its token."""

    appointment_id: int
    token_number: int
    slot_id: int
    released: bool  # False when the old place was already given back (its session was cancelled)


def _movable(appointment: Appointment, now: datetime) -> bool:
    """Whether the appointment holds a place that can move (True), or is a place the hospital took
    away by cancelling the session and may be replaced once (False); Conflict otherwise."""
    if appointment.status == Appointment.BOOKED and not appointment.slot.is_past(now):
        return True
    if appointment.status == Appointment.CANCELLED and appointment.cancelled_by == Appointment.BY_SESSION and appointment.moved_to_id is None:
        return False
    if appointment.moved_to_id is not None:
        raise Conflict("This appointment has already been moved.")
    raise Conflict("This appointment can no longer be moved.")


def _check_target(appointment: Appointment, target: Slot | None) -> Slot:
    if target is None:
        raise NotFound(SLOT_NOT_FOUND)
    if target.id == appointment.slot_id:
        raise ValidationFailed({"slot_id": "That is the session you already have. Choose another one."})
    here = appointment.slot
    same_doctor = target.doctor_id == here.doctor_id
    same_kind = target.hospital_id == here.hospital_id and target.doctor.specialization == here.doctor.specialization
    if not (same_doctor or same_kind):
        raise ValidationFailed({"slot_id": "Choose a session with the same doctor, or the same specialization at the same hospital."})
    return target


def move_appointment(appointment_id: int, new_slot_id: int, user_id: int | None = None) -> Moved:
    """Move an appointment to another session (the same doctor, or the same specialization at the same hospital).

    One transaction: the place in the new session is taken (a new token there, by :func:`take_place`,
    the same conditional UPDATE as a booking) and the old one released, or nothing changes. The patient
    never holds both or neither, and the old token is not given out again. A full new session is a
    Conflict and leaves the old appointment exactly as it was. The place freed in the old session goes
    to its waiting list. An appointment whose session the hospital cancelled can be replaced this way
    once (its place was given back already).

    ``user_id`` is the patient's account (their own appointments only); None is the signed link of a
    session-cancelled email, which the caller has checked.
    """
    now = utcnow()
    query = with_appointment_details(select(Appointment)).where(Appointment.id == appointment_id).execution_options(populate_existing=True)
    if user_id is not None:
        query = query.where(Appointment.user_id == user_id)
    with transaction() as session:
        appointment = session.scalar(query)
        if appointment is None:
            raise NotFound(APPOINTMENT_NOT_FOUND)
        target = _check_target(appointment, session.scalar(with_doctor_and_hospital(select(Slot)).where(Slot.id == new_slot_id)))
        lock_slots(session, appointment.slot_id, target.id)
        # Read again under the locks: a cancellation of the session, say, may have just committed.
        appointment = session.scalar(query)
        holds_place = _movable(appointment, now)
        if user_id is None and holds_place:
            # The signed link is only ever minted for a place the hospital took away; it must not move a live one.
            raise NotFound(APPOINTMENT_NOT_FOUND)
        connection = session.connection()
        taken = take_place(connection, target.id, now)
        if taken is None:
            raise refusal(target.id, now)  # rolls back: the old appointment is untouched
        # A held place moves with its calendar event (same UID, next SEQUENCE); a replaced cancelled one starts afresh.
        calendar = {"calendar_id": appointment.calendar_uid_id, "calendar_sequence": appointment.calendar_sequence + 1} if holds_place else {}
        new_id, token = insert_appointment(
            connection,
            taken,
            {
                "slot_id": target.id, "user_id": appointment.user_id, "patient_name": appointment.patient_name,
                "contact_number": appointment.contact_number, "status": Appointment.BOOKED, "booked_at": now,
                "walk_in": appointment.walk_in, "email": appointment.email, "moved_from_id": appointment.id, **calendar,
            },
        )
        if holds_place:
            ended = update(Appointment).where(Appointment.id == appointment.id, Appointment.status == Appointment.BOOKED).values(
                status=Appointment.CANCELLED, cancelled_at=now, cancelled_by=Appointment.BY_MOVE, moved_to_id=new_id
            )
        else:
            ended = update(Appointment).where(
                Appointment.id == appointment.id, Appointment.status == Appointment.CANCELLED, Appointment.moved_to_id.is_(None)
            ).values(moved_to_id=new_id)
        if not session.execute(ended, execution_options={"synchronize_session": False}).rowcount:
            # Cancelled or moved by another request since it was read: undo the new place too.
            raise Conflict("This appointment changed meanwhile. Please look at it again.")
        if holds_place:
            release_places(session, appointment.slot_id, now)
        if emails.has_address(appointment.user_id, appointment.email):
            with never_costs_the_change(f"the move email of appointment {new_id}"):
                queue_composed(emails.MOVED, new_id)
    session.expire_all()
    return Moved(new_id, token, target.id, holds_place)


def move_options(appointment: Appointment, limit: int = MOVE_OPTIONS_LIMIT) -> list[Slot]:
    """The sessions an appointment can move to: bookable now, the same doctor, or the same
    specialization at the same hospital; soonest first."""
    here = appointment.slot
    now = utcnow()
    query = with_doctor_and_hospital(select(Slot)).where(
        Slot.id != here.id,
        Slot.closed.is_(False),
        Slot.booked_count < Slot.capacity,
        Slot.ends_at > now,
        Slot.starts_at > now - MAX_SESSION,
        (Slot.doctor_id == here.doctor_id) | ((Slot.hospital_id == here.hospital_id) & (Doctor.specialization == here.doctor.specialization)),
    )
    return list(db.session.scalars(query.order_by(Slot.starts_at, Doctor.name, Slot.id).limit(limit)))


def appointment_for_move_link(appointment_id: int) -> Appointment:
    """The appointment a valid move link names, with its session's details; NotFound if it is gone."""
    appointment = db.session.scalar(with_appointment_details(select(Appointment)).where(Appointment.id == appointment_id))
    if appointment is None:
        raise NotFound(APPOINTMENT_NOT_FOUND)
    return appointment
