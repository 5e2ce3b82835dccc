"""Clinic emails of the front desk: walk-in tokens, cancellations by the hospital, moves and the waiting list.

Every one is queued by name (``queue_composed(kind, ref_id)``) inside the transaction of the change
that causes it, and composed here when it is sent: the change's transaction pays for one small
INSERT. The composers are registered when this module is imported (the clinic service imports it).

An appointment's emails go to its account, or for a walk-in to the address the desk took (a walk-in
without one gets none: :func:`has_address` tells the service). All of them use one pair of
templates, ``templates/email/clinic/appointment_update.{txt,html}``.

Calendar files: an appointment's event keeps one UID across a move (``Appointment.calendar_id``), so
a move sends the same event again with a higher SEQUENCE, which calendars treat as an update; a
cancellation sends METHOD:CANCEL one SEQUENCE higher still.
"""
from __future__ import annotations

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import aliased

from expertbook.auth.models import User
from expertbook.clinic.links import MOVE_LINK_DAYS, move_token
from expertbook.clinic.models import Appointment, Doctor, Hospital, Slot, WaitlistEntry
from expertbook.extensions import db
from expertbook.notifications.ics import event_ics
from expertbook.notifications.service import Composed, NothingToCompose, register_composer
from expertbook.web import external_url

TEMPLATE = "clinic/appointment_update"

WALK_IN_TOKEN = "clinic-walk-in"
CANCELLED_BY_HOSPITAL = "clinic-cancelled-by-hospital"
SESSION_CANCELLED = "clinic-session-cancelled"
MOVED = "clinic-moved"
WAITLIST_PROMOTED = "clinic-waitlist-promoted"
WAITLIST_CANCELLED = "clinic-waitlist-cancelled"


def has_address(user_id: int | None, email: str | None) -> bool:
    """Whether an appointment with this account / walk-in address can be emailed at all."""
    return user_id is not None or bool(email)


# ---------------------------------------------------------------------------- what an email says

_SESSION_COLUMNS = (
    Slot.id.label("slot_id"), Slot.date, Slot.start_time, Slot.end_time, Slot.starts_at, Slot.ends_at, Slot.cancel_reason.label("session_reason"),
    Doctor.name.label("doctor_name"), Doctor.specialization,
    Hospital.name.label("hospital_name"), Hospital.location,
)
_Earlier = aliased(Appointment)
_EarlierSlot = aliased(Slot)
_APPOINTMENT_FACTS = (
    select(
        Appointment.id, Appointment.patient_name, Appointment.token_number, Appointment.email, Appointment.cancel_reason,
        Appointment.calendar_id, Appointment.calendar_sequence,
        User.name.label("user_name"), User.email.label("user_email"),
        _Earlier.token_number.label("earlier_token"), _EarlierSlot.date.label("earlier_date"),
        _EarlierSlot.start_time.label("earlier_start"), _EarlierSlot.end_time.label("earlier_end"),
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


def _appointment(appointment_id: int):
    row = db.session.execute(_APPOINTMENT_FACTS.where(Appointment.id == appointment_id)).one_or_none()
    if row is None:
        raise NothingToCompose(f"appointment {appointment_id} no longer exists")
    if not (row.user_email or row.email):
        raise NothingToCompose(f"appointment {appointment_id} has no email address")
    return row


def _recipient(row) -> tuple[str, str]:
    # An account's own name and address; a walk-in's address with the patient's name.
    return (row.user_email, row.user_name) if row.user_email else (row.email, row.patient_name)


def _when(date, start, end) -> str:
    return f"{date:%A %d %B %Y}, {start:%H:%M}-{end:%H:%M}"


def _details(row, token: int | None = None) -> list[tuple[str, str]]:
    details = [("Token number", str(token))] if token is not None else []
    return details + [
        ("Patient", row.patient_name),
        ("Doctor", f"{row.doctor_name} ({row.specialization})"),
        ("When", _when(row.date, row.start_time, row.end_time)),
        ("Where", f"{row.hospital_name}, {row.location}"),
    ]


def _search_url(row) -> str:
    return external_url("clinic.search", specialization=row.specialization)


def _uid(calendar_id: int) -> str:
    host = current_app.config["BASE_URL"].split("://", 1)[-1].split("/", 1)[0]
    return f"clinic-appointment-{calendar_id}@{host}"


def calendar(row, method: str, sequence: int) -> str:
    """The appointment's session as a one-event calendar (its UID survives moves)."""
    return event_ics(
        _uid(row.calendar_id or row.id),
        row.starts_at,
        row.ends_at,
        f"{row.doctor_name} - token {row.token_number}",
        method=method,
        sequence=sequence,
        location=f"{row.hospital_name}, {row.location}",
        description=f"Token number {row.token_number}. Patients are seen in token order.",
        url=external_url("clinic.appointment", appointment_id=row.id),
    )


def _email(to: tuple[str, str], subject: str, *, heading: str, intro: str, details, action: tuple[str, str] | None = None,
           reason: str | None = None, note: str = "", ics: str | None = None) -> Composed:
    context = {
        "patient_name": to[1],
        "heading": heading,
        "intro": intro,
        "details": [list(pair) for pair in details],
        "reason": reason or "",
        "action_url": action[1] if action else "",
        "action_label": action[0] if action else "",
        "note": note,
    }
    return Composed(to[0], to[1], TEMPLATE, context, subject=subject, ics=ics)


# ---------------------------------------------------------------------------- composers


def _about(row, subject: str, heading: str, intro: str, method: str, **extra) -> Composed:
    """An email about one appointment: to its patient, with its details and its calendar event
    (REQUEST at the appointment's SEQUENCE, CANCEL one higher)."""
    sequence = row.calendar_sequence + (1 if method == "CANCEL" else 0)
    return _email(_recipient(row), subject, heading=heading, intro=intro, details=_details(row, row.token_number),
                  ics=calendar(row, method, sequence), **extra)


def _on(row) -> str:
    return f"token {row.token_number} - {row.doctor_name}, {row.date:%d %b %Y}"


def compose_walk_in_token(appointment_id: int) -> Composed:
    """A walk-in who left an address gets their token in writing, with the calendar entry."""
    row = _appointment(appointment_id)
    return _about(row, f"Your {_on(row)}", f"Your token number is {row.token_number}", "The front desk booked your place.", "REQUEST",
                  note="Patients are seen in token order.")


def compose_cancelled_by_hospital(appointment_id: int) -> Composed:
    """The hospital cancelled this one appointment: the reason, and a link to book again."""
    row = _appointment(appointment_id)
    return _about(row, f"Cancelled by the hospital: {_on(row)}", "Your appointment was cancelled", f"{row.hospital_name} cancelled this appointment.",
                  "CANCEL", reason=row.cancel_reason, action=("Book another session", _search_url(row)),
                  note="The calendar entry attached removes it from your calendar.")


def compose_session_cancelled(appointment_id: int) -> Composed:
    """The whole session was cancelled (the doctor is unavailable): the reason and a one-click move link."""
    row = _appointment(appointment_id)
    return _about(
        row, f"Session cancelled: {_on(row)} - choose another session", "Your session was cancelled",
        f"{row.hospital_name} cancelled the whole session, so token {row.token_number} is cancelled.", "CANCEL",
        reason=row.session_reason or row.cancel_reason,
        action=("Move to another session", external_url("clinic.move_by_link", token=move_token(row.id))),
        note=f"The link shows the other sessions you can move to (it works for {MOVE_LINK_DAYS} days). "
        "The calendar entry attached removes the cancelled one from your calendar.",
    )


def compose_moved(appointment_id: int) -> Composed:
    """The patient moved to another session: the new token, and the calendar event updated."""
    row = _appointment(appointment_id)
    earlier = ""
    if row.earlier_token is not None:
        earlier = f" It replaces token {row.earlier_token} on {_when(row.earlier_date, row.earlier_start, row.earlier_end)}."
    return _about(row, f"Moved: your new {_on(row)}", f"Your new token number is {row.token_number}",
                  f"Your appointment has moved to this session.{earlier}", "REQUEST",
                  action=("View your appointment", external_url("clinic.appointment", appointment_id=row.id)),
                  note="The calendar entry attached updates the one you had.")


def compose_waitlist_promoted(appointment_id: int) -> Composed:
    """A place freed up and the first person waiting got it: their token."""
    row = _appointment(appointment_id)
    return _about(row, f"A place freed up: your {_on(row)}", f"You have a place: token {row.token_number}",
                  "A place freed up in the session you were waiting for, and it is yours.", "REQUEST",
                  action=("View your appointment", external_url("clinic.appointment", appointment_id=row.id)),
                  note="Can't come after all? Cancel it in My appointments so the next person waiting gets the place.")


def compose_waitlist_cancelled(entry_id: int) -> Composed:
    """The session someone was waiting for was cancelled: the reason, and where to look instead."""
    row = db.session.execute(_WAITLIST_FACTS.where(WaitlistEntry.id == entry_id)).one_or_none()
    if row is None:
        raise NothingToCompose(f"waiting-list entry {entry_id} no longer exists")
    return _email(
        (row.user_email, row.user_name),
        f"Session cancelled: {row.doctor_name}, {row.date:%d %b %Y}",
        heading="The session you were waiting for was cancelled",
        intro=f"{row.hospital_name} cancelled this session, so its waiting list is closed.",
        details=_details(row),
        reason=row.session_reason,
        action=("Find another session", _search_url(row)),
    )


COMPOSERS = {
    WALK_IN_TOKEN: compose_walk_in_token,
    CANCELLED_BY_HOSPITAL: compose_cancelled_by_hospital,
    SESSION_CANCELLED: compose_session_cancelled,
    MOVED: compose_moved,
    WAITLIST_PROMOTED: compose_waitlist_promoted,
    WAITLIST_CANCELLED: compose_waitlist_cancelled,
}
for _kind, _composer in COMPOSERS.items():
    register_composer(_kind, _composer)
