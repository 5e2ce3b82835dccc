"""Clinic emails (templates in ``templates/email/clinic/``): the token confirmation, the patient's
cancellation and the reminder; and the front desk's: a walk-in's token, cancellations by the
hospital, moves and the waiting list.

Every one is queued by name (``queue_composed(kind, ref_id)``, the appointment's or the waiting-list
entry's id) inside the transaction of the change that causes it, and composed here, by the worker,
when it is sent: one query, the templates' context, the .ics. The token confirmation's row is
written by the booking itself (``expertbook.clinic.booking.book``: on PostgreSQL in the booking's one
statement), the hottest path of the site. The patient's cancellation is written by a receiver of
``appointment_cancelled``; the front desk's by the clinic's own modules (queue, sessions, moves), in their transaction.

An appointment's emails go to its account, or for a walk-in to the address the desk took (a walk-in
without one gets none: :func:`has_address` tells the service).

Calendar files: an appointment's event keeps one UID across a move (``Appointment.calendar_id``), so
a move sends the same event again with a higher SEQUENCE, which calendars treat as an update; a
cancellation sends METHOD:CANCEL one SEQUENCE higher still.

:func:`connect` registers all of it with the outbox; the clinic blueprint calls it once per application.
"""
from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from types import SimpleNamespace

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import aliased, joinedload

from expertbook.auth.models import User
from expertbook.clinic import signals
from expertbook.clinic.clock import zone_abbreviation, zone_name
from expertbook.clinic.links import MOVE_LINK_DAYS, move_token
from expertbook.clinic.models import Appointment, Doctor, Hospital, Slot, WaitlistEntry
from expertbook.extensions import db
from expertbook.ics import event_ics
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

TOKEN_CONFIRMATION = "clinic-token"
CANCELLATION = "clinic-cancelled"
WALK_IN_TOKEN = "clinic-walk-in"
CANCELLED_BY_HOSPITAL = "clinic-cancelled-by-hospital"
SESSION_CANCELLED = "clinic-session-cancelled"
MOVED = "clinic-moved"
WAITLIST_PROMOTED = "clinic-waitlist-promoted"
WAITLIST_CANCELLED = "clinic-waitlist-cancelled"

# The front desk's emails share one pair of templates.
UPDATE_TEMPLATE = "clinic/appointment_update"


def has_address(user_id: int | None, email: str | None) -> bool:
    """Whether an appointment with this account / walk-in address can be emailed at all."""
    return user_id is not None or bool(email)


# ---------------------------------------------------------------------------- what an email says

_SESSION_COLUMNS = (
    Slot.date, Slot.start_time, Slot.end_time, Slot.starts_at, Slot.ends_at, Slot.cancel_reason.label("session_reason"),
    Doctor.name.label("doctor_name"), Doctor.specialization,
    Hospital.name.label("hospital_name"), Hospital.location, Hospital.timezone,
)
_Earlier = aliased(Appointment)
_EarlierSlot = aliased(Slot)
_FACTS = (
    select(
        Appointment.id, Appointment.patient_name, Appointment.token_number, Appointment.email, Appointment.cancel_reason,
        Appointment.calendar_id, Appointment.calendar_sequence,
        User.name.label("user_name"), User.email.label("user_email"),
        _Earlier.token_number.label("earlier_token"), _EarlierSlot.date.label("earlier_date"),
        _EarlierSlot.start_time.label("earlier_start"), _EarlierSlot.end_time.label("earlier_end"),
        _EarlierSlot.starts_at.label("earlier_starts_at"),
        *_SESSION_COLUMNS,
    )
    .outerjoin(User, User.id == Appointment.user_id)
    .outerjoin(_Earlier, _Earlier.id == Appointment.moved_from_id)
    .outerjoin(_EarlierSlot, _EarlierSlot.id == _Earlier.slot_id)
    .join(Slot, Slot.id == Appointment.slot_id)
    .join(Doctor, Doctor.id == Slot.doctor_id)
    .join(Hospital, Hospital.id == Slot.hospital_id)
)
_WAITLIST_FACTS = (
    select(WaitlistEntry.id, WaitlistEntry.patient_name, User.name.label("user_name"), User.email.label("user_email"), *_SESSION_COLUMNS)
    .join(User, User.id == WaitlistEntry.user_id)
    .join(Slot, Slot.id == WaitlistEntry.slot_id)
    .join(Doctor, Doctor.id == Slot.doctor_id)
    .join(Hospital, Hospital.id == Slot.hospital_id)
)


def _session(row) -> SimpleNamespace:
    return SimpleNamespace(
        date=row.date, start_time=row.start_time, end_time=row.end_time, starts_at=row.starts_at, ends_at=row.ends_at,
        cancel_reason=row.session_reason,
        doctor=SimpleNamespace(name=row.doctor_name, specialization=row.specialization),
        hospital=SimpleNamespace(name=row.hospital_name, location=row.location, timezone=row.timezone),
    )


def _recipient(row) -> SimpleNamespace:
    # An account's own name and address; a walk-in's address with the patient's name.
    if row.user_email:
        return SimpleNamespace(name=row.user_name, email=row.user_email)
    return SimpleNamespace(name=row.patient_name, email=row.email)


def _load(appointment_id: int) -> SimpleNamespace:
    """What an email says about one appointment, in one query; NothingToCompose if it is gone or has no address."""
    row = db.session.execute(_FACTS.where(Appointment.id == appointment_id)).one_or_none()
    if row is None:
        raise NothingToCompose(f"appointment {appointment_id} no longer exists")
    if not (row.user_email or row.email):
        raise NothingToCompose(f"appointment {appointment_id} has no email address")
    earlier = None
    if row.earlier_token is not None:
        # A move stays within the hospital, so the earlier session's time is in the same zone.
        earlier = SimpleNamespace(
            token_number=row.earlier_token, date=row.earlier_date, start_time=row.earlier_start, end_time=row.earlier_end,
            starts_at=row.earlier_starts_at, hospital=SimpleNamespace(timezone=row.timezone),
        )
    return SimpleNamespace(
        id=row.id,
        patient_name=row.patient_name,
        token_number=row.token_number,
        cancel_reason=row.cancel_reason,
        calendar_id=row.calendar_id,
        calendar_sequence=row.calendar_sequence,
        user=_recipient(row),
        earlier=earlier,
        slot=_session(row),
    )


def _times(slot) -> str:
    """The session's hours in the hospital's local time, with its zone's abbreviation ("09:00-12:00 IST"):
    an email is read wherever the patient is, so a bare time could be misread."""
    return f"{slot.start_time:%H:%M}-{slot.end_time:%H:%M} {zone_abbreviation(slot.hospital.timezone, slot.starts_at)}"


def _when(slot) -> str:
    return f"{slot.date:%A %d %B %Y}, {_times(slot)}"


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
        "session_time": _times(slot),
        "booking_url": external_url("clinic.appointment", appointment_id=appointment.id),
    }


def _uid(appointment: Appointment) -> str:
    host = current_app.config["BASE_URL"].split("://", 1)[-1].split("/", 1)[0]
    # A moved appointment is the same calendar event as the one it replaced.
    return f"clinic-appointment-{appointment.calendar_id or appointment.id}@{host}"


def _calendar(appointment: Appointment, method: str) -> str:
    """The appointment's session as a one-event calendar in the hospital's zone: REQUEST at the appointment's
    SEQUENCE, CANCEL one higher."""
    slot = appointment.slot
    return event_ics(
        _uid(appointment),
        slot.starts_at,
        slot.ends_at,
        f"{slot.doctor.name} - token {appointment.token_number}",
        # In the hospital's zone (TZID and its VTIMEZONE): calendars show the hospital's hours, not UTC's.
        timezone=zone_name(slot.hospital.timezone),
        method=method,
        sequence=appointment.calendar_sequence + (1 if method == "CANCEL" else 0),
        location=f"{slot.hospital.name}, {slot.hospital.location}",
        description=f"Token number {appointment.token_number}. Patients are seen in token order.",
        url=external_url("clinic.appointment", appointment_id=appointment.id),
    )


def _on(appointment) -> str:
    return f"token {appointment.token_number} - {appointment.slot.doctor.name}, {appointment.slot.date:%d %b %Y}"


# ---------------------------------------------------------------------------- the patient's own


def compose_token_confirmation(appointment_id: int) -> Composed:
    """The patient's token confirmation, with the session in a calendar file."""
    appointment = _load(appointment_id)
    facts = _facts(appointment)
    return Composed(
        appointment.user.email,
        appointment.user.name,
        "clinic/token_confirmed",
        {**facts, "cancel_url": external_url("clinic.my_appointments")},
        subject=f"Your {_on(appointment)}",
        ics=_calendar(appointment, "REQUEST"),
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
        subject=f"Cancelled: {_on(appointment)}",
        ics=_calendar(appointment, "CANCEL"),
    )


def cancellation(app, appointment_id: int, **_) -> None:
    """Queue the cancellation email by name (composed by the worker, like the confirmation)."""
    with never_costs_the_change(f"the cancellation of appointment {appointment_id}"):
        queue_composed(CANCELLATION, appointment_id)


def clinic_reminders(now: datetime, until: datetime) -> Iterator[Reminder]:
    """A reminder for every booked appointment whose session starts within the reminder window.

    A closed session still gets its reminders: closing only stops new bookings, and the patients
    already booked there still come. Only cancelled appointments are skipped.
    """
    appointments = db.session.scalars(
        select(Appointment)
        .join(Appointment.slot)
        .where(Appointment.status == Appointment.BOOKED, Slot.starts_at >= now, Slot.starts_at < until)
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


# ---------------------------------------------------------------------------- the front desk's


def _details(slot, patient_name: str, token: int | None = None) -> list[list[str]]:
    details = [["Token number", str(token)]] if token is not None else []
    return details + [
        ["Patient", patient_name],
        ["Doctor", f"{slot.doctor.name} ({slot.doctor.specialization})"],
        ["When", _when(slot)],
        ["Where", f"{slot.hospital.name}, {slot.hospital.location}"],
    ]


def _search_url(slot) -> str:
    return external_url("clinic.search", specialization=slot.doctor.specialization)


def _update(to, subject: str, heading: str, intro: str, details, *, action: tuple[str, str] | None = None,
            reason: str | None = None, note: str = "", ics: str | None = None) -> Composed:
    context = {
        "heading": heading,
        "intro": intro,
        "details": details,
        "reason": reason or "",
        "action_url": action[1] if action else "",
        "action_label": action[0] if action else "",
        "note": note,
    }
    return Composed(to.email, to.name, UPDATE_TEMPLATE, context, subject=subject, ics=ics)


def _about(appointment, subject: str, heading: str, intro: str, method: str, **extra) -> Composed:
    """A front-desk email about one appointment: to its patient, with its details and its calendar event."""
    details = _details(appointment.slot, appointment.patient_name, appointment.token_number)
    return _update(appointment.user, subject, heading, intro, details, ics=_calendar(appointment, method), **extra)


def compose_walk_in_token(appointment_id: int) -> Composed:
    """A walk-in who left an address gets their token in writing, with the calendar entry."""
    a = _load(appointment_id)
    return _about(a, f"Your {_on(a)}", f"Your token number is {a.token_number}", "The front desk booked your place.", "REQUEST",
                  note="Patients are seen in token order.")


def compose_cancelled_by_hospital(appointment_id: int) -> Composed:
    """The hospital cancelled this one appointment: the reason, and a link to book again."""
    a = _load(appointment_id)
    return _about(a, f"Cancelled by the hospital: {_on(a)}", "Your appointment was cancelled", f"{a.slot.hospital.name} cancelled this appointment.",
                  "CANCEL", reason=a.cancel_reason, action=("Book another session", _search_url(a.slot)),
                  note="The calendar entry attached removes it from your calendar.")


def compose_session_cancelled(appointment_id: int) -> Composed:
    """The whole session was cancelled (the doctor is unavailable): the reason and a one-click move link."""
    a = _load(appointment_id)
    return _about(
        a, f"Session cancelled: {_on(a)} - choose another session", "Your session was cancelled",
        f"{a.slot.hospital.name} cancelled the whole session, so token {a.token_number} is cancelled.", "CANCEL",
        reason=a.slot.cancel_reason or a.cancel_reason,
        action=("Move to another session", external_url("clinic.move_by_link", token=move_token(a.id))),
        note=f"The link shows the other sessions you can move to (it works for {MOVE_LINK_DAYS} days). "
        "The calendar entry attached removes the cancelled one from your calendar.",
    )


def compose_moved(appointment_id: int) -> Composed:
    """The patient moved to another session: the new token, and the calendar event updated."""
    a = _load(appointment_id)
    earlier = f" It replaces token {a.earlier.token_number} on {_when(a.earlier)}." if a.earlier else ""
    return _about(a, f"Moved: your new {_on(a)}", f"Your new token number is {a.token_number}",
                  f"Your appointment has moved to this session.{earlier}", "REQUEST",
                  action=("View your appointment", external_url("clinic.appointment", appointment_id=a.id)),
                  note="The calendar entry attached updates the one you had.")


def compose_waitlist_promoted(appointment_id: int) -> Composed:
    """A place freed up and the first person waiting got it: their token."""
    a = _load(appointment_id)
    return _about(a, f"A place freed up: your {_on(a)}", f"You have a place: token {a.token_number}",
                  "A place freed up in the session you were waiting for, and it is yours.", "REQUEST",
                  action=("View your appointment", external_url("clinic.appointment", appointment_id=a.id)),
                  note="Can't come after all? Cancel it in My appointments so the next person waiting gets the place.")


def compose_waitlist_cancelled(entry_id: int) -> Composed:
    """The session someone was waiting for was cancelled: the reason, and where to look instead."""
    row = db.session.execute(_WAITLIST_FACTS.where(WaitlistEntry.id == entry_id)).one_or_none()
    if row is None:
        raise NothingToCompose(f"waiting-list entry {entry_id} no longer exists")
    slot = _session(row)
    return _update(
        SimpleNamespace(name=row.user_name, email=row.user_email),
        f"Session cancelled: {slot.doctor.name}, {slot.date:%d %b %Y}",
        "The session you were waiting for was cancelled",
        f"{slot.hospital.name} cancelled this session, so its waiting list is closed.",
        _details(slot, row.patient_name),
        reason=slot.cancel_reason,
        action=("Find another session", _search_url(slot)),
    )


COMPOSERS = {
    TOKEN_CONFIRMATION: compose_token_confirmation,
    CANCELLATION: compose_cancellation,
    WALK_IN_TOKEN: compose_walk_in_token,
    CANCELLED_BY_HOSPITAL: compose_cancelled_by_hospital,
    SESSION_CANCELLED: compose_session_cancelled,
    MOVED: compose_moved,
    WAITLIST_PROMOTED: compose_waitlist_promoted,
    WAITLIST_CANCELLED: compose_waitlist_cancelled,
}


def connect() -> None:
    """Subscribe to the clinic's signals and register the composers and the reminder source (idempotent)."""
    signals.appointment_cancelled.connect(cancellation)
    for kind, composer in COMPOSERS.items():
        register_composer(kind, composer)
    register_reminder_source(clinic_reminders)
