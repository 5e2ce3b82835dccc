"""Reading appointments: a patient's own (one, or their lists) and a hospital's (for its staff)."""
from __future__ import annotations

from datetime import date

from sqlalchemy import Select, select
from sqlalchemy.orm import contains_eager

from expertbook.clinic.inputs import APPOINTMENT_NOT_FOUND
from expertbook.clinic.models import Appointment, Slot
from expertbook.database import utcnow
from expertbook.errors import NotFound
from expertbook.extensions import db

MY_LIST_LIMIT = 100


def with_appointment_details(query: Select) -> Select:
    return (
        query.join(Appointment.slot)
        .join(Slot.doctor)
        .join(Slot.hospital)
        .options(contains_eager(Appointment.slot).contains_eager(Slot.doctor), contains_eager(Appointment.slot).contains_eager(Slot.hospital))
    )


def own_query(user_id: int) -> Select:
    return with_appointment_details(select(Appointment)).where(Appointment.user_id == user_id)


def _own_appointment(appointment_id: int, user_id: int) -> Appointment:
    appointment = db.session.scalar(own_query(user_id).where(Appointment.id == appointment_id).execution_options(populate_existing=True))
    if appointment is None:
        raise NotFound(APPOINTMENT_NOT_FOUND)
    return appointment


def own_appointment(appointment_id: int, user_id: int) -> Appointment:
    """The patient's own appointment with its slot, doctor and hospital; NotFound for anyone else's."""
    return _own_appointment(appointment_id, user_id)


def my_appointments(user_id: int, limit: int = MY_LIST_LIMIT) -> tuple[list[Appointment], list[Appointment]]:
    """The patient's upcoming appointments (soonest first) and past ones (latest first)."""
    now = utcnow()
    upcoming = list(db.session.scalars(own_query(user_id).where(Slot.ends_at > now).order_by(Slot.starts_at, Appointment.id).limit(limit)))
    past = list(db.session.scalars(own_query(user_id).where(Slot.ends_at <= now).order_by(Slot.starts_at.desc(), Appointment.id).limit(limit)))
    return upcoming, past


def slot_appointments(slot_id: int) -> list[Appointment]:
    """A slot's appointments in token order."""
    return list(db.session.scalars(select(Appointment).where(Appointment.slot_id == slot_id).order_by(Appointment.token_number)))


def hospital_appointments(hospital_id: int, slot_id: int | None = None, day: date | None = None, limit: int = 500) -> list[Appointment]:
    """The hospital's appointments (optionally of one slot or date), newest sessions first."""
    query = with_appointment_details(select(Appointment)).where(Slot.hospital_id == hospital_id)
    if slot_id is not None:
        query = query.where(Slot.id == slot_id)
    if day is not None:
        query = query.where(Slot.date == day)
    query = query.order_by(Slot.starts_at.desc(), Appointment.token_number).limit(limit)
    return list(db.session.scalars(query))


def staff_appointment(appointment_id: int, hospital_id: int) -> Appointment:
    """One of the hospital's appointments; NotFound for any other hospital's."""
    appointment = db.session.scalar(select(Appointment).join(Slot).where(Appointment.id == appointment_id, Slot.hospital_id == hospital_id))
    if appointment is None:
        raise NotFound(APPOINTMENT_NOT_FOUND)
    return appointment


def staff_appointment_slot_id(appointment_id: int, hospital_id: int) -> int:
    """The slot of one of the hospital's appointments; NotFound for any other hospital's."""
    slot_id = db.session.scalar(
        select(Appointment.slot_id).join(Slot).where(Appointment.id == appointment_id, Slot.hospital_id == hospital_id)
    )
    if slot_id is None:
        raise NotFound(APPOINTMENT_NOT_FOUND)
    return slot_id
