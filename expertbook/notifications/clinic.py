"""Clinic emails: the token confirmation, the cancellation and the reminder.

Both booking emails are queued by name (``clinic-token`` or ``clinic-cancelled`` and the appointment's
id) and composed here, by the worker, when they are sent: one query, the templates' context, the .ics.
The token confirmation's row is written by the booking itself (``expertbook.clinic.service.book``: on
PostgreSQL in the booking's one statement), the hottest path of the site. The cancellation's is
written by a receiver of ``appointment_cancelled``, inside the cancellation's transaction, so it
commits or rolls back together with it.
"""
from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from types import SimpleNamespace

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from expertbook.clinic import signals
from expertbook.auth.models import User
from expertbook.clinic.models import Appointment, Doctor, Hospital, Slot
from expertbook.extensions import db
from expertbook.notifications.ics import event_ics
from expertbook.notifications.service import (
    Composed,
    NothingToCompose,
    Reminder,
    never_costs_the_change,
    queue_composed,
    register_composer,
    register_reminder_source,
)
from expertbook.web import external_url



_FACTS = (
    select(
        Appointment.id, Appointment.patient_name, Appointment.token_number, Appointment.calendar_id, Appointment.calendar_sequence,
        User.name.label("user_name"), User.email.label("user_email"),
        Slot.date, Slot.start_time, Slot.end_time, Slot.starts_at, Slot.ends_at,
        Doctor.name.label("doctor_name"), Doctor.specialization,
        Hospital.name.label("hospital_name"), Hospital.location,
    )
    .join(User, User.id == Appointment.user_id)
    .join(Slot, Slot.id == Appointment.slot_id)
    .join(Doctor, Doctor.id == Slot.doctor_id)
    .join(Hospital, Hospital.id == Slot.hospital_id)
)


def _load(appointment_id: int) -> SimpleNamespace:
    """What an email says about one appointment, in one query."""
    row = db.session.execute(_FACTS.where(Appointment.id == appointment_id)).one_or_none()
    if row is None:
        raise NothingToCompose(f"appointment {appointment_id} no longer exists")
    return SimpleNamespace(
        id=row.id,
        patient_name=row.patient_name,
        token_number=row.token_number,
        calendar_id=row.calendar_id,
        calendar_sequence=row.calendar_sequence,
        user=SimpleNamespace(name=row.user_name, email=row.user_email),
        slot=SimpleNamespace(
            date=row.date, start_time=row.start_time, end_time=row.end_time, starts_at=row.starts_at, ends_at=row.ends_at,
            doctor=SimpleNamespace(name=row.doctor_name, specialization=row.specialization),
            hospital=SimpleNamespace(name=row.hospital_name, location=row.location),
        ),
    )


def _facts(appointment: Appointment) -> dict:
    slot = appointment.slot
    return {
        "patient_name": appointment.patient_name,
        "token_number": appointment.token_number,
        "doctor_name": slot.doctor.name,
        "specialization": slot.doctor.specialization,
        "hospital_name": slot.hospital.name,
        "location": slot.hospital.location,
        "session_date": slot.date.strftime("%A %d %B %Y"),
        "session_time": f"{slot.start_time:%H:%M}-{slot.end_time:%H:%M}",
        "booking_url": external_url("clinic.appointment", appointment_id=appointment.id),
    }


def _uid(appointment: Appointment) -> str:
    host = current_app.config["BASE_URL"].split("://", 1)[-1].split("/", 1)[0]
    # A moved appointment is the same calendar event as the one it replaced (see clinic.emails).
    return f"clinic-appointment-{appointment.calendar_id or appointment.id}@{host}"


def _calendar(appointment: Appointment, method: str, sequence: int) -> str:
    slot = appointment.slot
    return event_ics(
        _uid(appointment),
        slot.starts_at,
        slot.ends_at,
        f"{slot.doctor.name} - token {appointment.token_number}",
        method=method,
        sequence=sequence,
        location=f"{slot.hospital.name}, {slot.hospital.location}",
        description=f"Token number {appointment.token_number}. Patients are seen in token order.",
        url=external_url("clinic.appointment", appointment_id=appointment.id),
    )


TOKEN_CONFIRMATION = "clinic-token"
CANCELLATION = "clinic-cancelled"


def compose_token_confirmation(appointment_id: int) -> Composed:
    """The patient's token confirmation, with the session in a calendar file."""
    appointment = _load(appointment_id)
    facts = _facts(appointment)
    return Composed(
        appointment.user.email,
        appointment.user.name,
        "clinic_token_confirmed",
        {**facts, "cancel_url": external_url("clinic.my_appointments")},
        subject=f"Your token {appointment.token_number} - {facts['doctor_name']}, {appointment.slot.date:%d %b %Y}",
        ics=_calendar(appointment, "REQUEST", appointment.calendar_sequence),
    )


def compose_cancellation(appointment_id: int) -> Composed:
    """The patient's cancellation, with a METHOD:CANCEL calendar file for the same event."""
    appointment = _load(appointment_id)
    facts = _facts(appointment)
    return Composed(
        appointment.user.email,
        appointment.user.name,
        "booking_cancelled",
        {
            "what": f"Token {appointment.token_number} with {facts['doctor_name']} at {facts['hospital_name']}",
            "when": f"{facts['session_date']}, {facts['session_time']}",
            "cancelled_by": "you",
            "rebook_url": external_url("clinic.search"),
        },
        subject=f"Cancelled: token {appointment.token_number} - {facts['doctor_name']}, {appointment.slot.date:%d %b %Y}",
        ics=_calendar(appointment, "CANCEL", appointment.calendar_sequence + 1),
    )


def cancellation(app, appointment_id: int, **_) -> None:
    """Queue the cancellation email by name (composed by the worker, like the confirmation)."""
    with never_costs_the_change(f"the cancellation of appointment {appointment_id}"):
        queue_composed(CANCELLATION, appointment_id)


def clinic_reminders(now: datetime, until: datetime) -> Iterator[Reminder]:
    """A reminder for every booked appointment whose session starts within the reminder window."""
    appointments = db.session.scalars(
        select(Appointment)
        .join(Appointment.slot)
        .where(Appointment.status == Appointment.BOOKED, Slot.starts_at >= now, Slot.starts_at < until, Slot.closed.is_(False))
        .options(joinedload(Appointment.slot).joinedload(Slot.doctor), joinedload(Appointment.slot).joinedload(Slot.hospital), joinedload(Appointment.user))
    ).all()
    for appointment in appointments:
        # A walk-in has no account: the address the desk took, if any.
        to_email, to_name = (appointment.user.email, appointment.user.name) if appointment.user else (appointment.email, appointment.patient_name)
        if not to_email:
            continue
        facts = _facts(appointment)
        yield Reminder(
            kind="clinic",
            id=appointment.id,
            to_email=to_email,
            to_name=to_name,
            subject=f"Reminder: token {appointment.token_number} - {facts['doctor_name']}, {appointment.slot.date:%d %b}",
            context={
                "what": f"{facts['doctor_name']} ({facts['specialization']}) at {facts['hospital_name']}",
                "when": f"{facts['session_date']}, {facts['session_time']}",
                "where": f"{facts['hospital_name']}, {facts['location']}",
                "token_number": appointment.token_number,
                "booking_url": facts["booking_url"],
            },
        )


def connect() -> None:
    """Subscribe to the clinic's signals and register the reminder source (idempotent)."""
    signals.appointment_cancelled.connect(cancellation)
    register_composer(TOKEN_CONFIRMATION, compose_token_confirmation)
    register_composer(CANCELLATION, compose_cancellation)
    register_reminder_source(clinic_reminders)
