"""What the clinic does when something happens to an account (``auth`` knows no area; it calls these).

- A staff admin verifies their email address → their hospital is published (its slots are shown).
- "Download my data" → the account's hospital (staff) and appointments.
- "Delete my account" → refused for a hospital's last staff admin; otherwise the account's upcoming
  appointments are cancelled (their places freed) and every appointment of the account is kept for
  the hospital's records, anonymised ("Deleted patient", no contact number).

:func:`connect` is called once when the clinic blueprint is registered.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from expertbook.auth import service as accounts
from expertbook.auth import signals as account_signals
from expertbook.auth.models import User
from expertbook.clinic import appointments, queue
from expertbook.clinic.models import Appointment, Hospital, Slot, WaitlistEntry
from expertbook.database import utcnow
from expertbook.extensions import db
from expertbook.clinic.emails import CANCELLATION, TOKEN_CONFIRMATION
from expertbook.notifications.service import forget_named

DELETED_PATIENT = "Deleted patient"


def publish_hospital(app, user_id: int, **_) -> None:
    """A staff admin's address is verified: their hospital's slots may be shown to the public."""
    user = db.session.get(User, user_id)
    if user is not None and user.is_staff_admin and user.hospital_id is not None:
        db.session.execute(
            update(Hospital).where(Hospital.id == user.hospital_id, Hospital.published.is_(False)).values(published=True)
        )


def _appointment_json(appointment: Appointment) -> dict[str, Any]:
    slot = appointment.slot
    return {
        "id": appointment.id,
        "hospital": slot.hospital.name,
        "location": slot.hospital.location,
        "doctor": slot.doctor.name,
        "specialization": slot.doctor.specialization,
        "date": slot.date.isoformat(),
        "startTime": slot.start_time.strftime("%H:%M"),
        "endTime": slot.end_time.strftime("%H:%M"),
        "tokenNumber": appointment.token_number,
        "patientName": appointment.patient_name,
        "contactNumber": appointment.contact_number,
        "status": appointment.status,
        "bookedAt": appointment.booked_at.isoformat(),
        "cancelledAt": appointment.cancelled_at.isoformat() if appointment.cancelled_at else None,
    }


def clinic_data(user_id: int) -> dict[str, Any]:
    """The account's hospital (if on a staff) and clinic appointments, for "Download my data"."""
    user = db.session.get(User, user_id)
    hospital = user.hospital if user is not None else None
    rows = db.session.scalars(
        appointments.own_query(user_id).order_by(Slot.starts_at, Appointment.id)  # noqa: SLF001 - the clinic's own query
    ).all()
    waiting = db.session.scalars(
        select(WaitlistEntry).where(WaitlistEntry.user_id == user_id).order_by(WaitlistEntry.joined_at, WaitlistEntry.id)
    ).all()
    return {
        "hospitalStaff": {"hospital": hospital.name, "location": hospital.location, "staffAdmin": user.is_staff_admin} if hospital else None,
        "appointments": [_appointment_json(row) for row in rows],
        "waitingLists": [_waiting_json(entry) for entry in waiting],
    }


def _waiting_json(entry: WaitlistEntry) -> dict[str, Any]:
    """One place on a waiting list (any state): the name and number given, and the session waited for."""
    slot = entry.slot
    return {
        "id": entry.id,
        "hospital": slot.hospital.name,
        "doctor": slot.doctor.name,
        "date": slot.date.isoformat(),
        "startTime": slot.start_time.strftime("%H:%M"),
        "patientName": entry.patient_name,
        "contactNumber": entry.contact_number,
        "status": entry.status,
        "joinedAt": entry.joined_at.isoformat(),
        "endedAt": entry.ended_at.isoformat() if entry.ended_at else None,
    }


def last_admin_check(user_id: int) -> str | None:
    """A hospital must keep a staff admin: its last one is told to name another first."""
    user = db.session.get(User, user_id)
    if user is None or not user.is_staff_admin or user.hospital_id is None:
        return None
    # The hospital's row is the lock two admins leaving at once queue on (in the deletion's transaction).
    hospital = db.session.scalar(
        select(Hospital).where(Hospital.id == user.hospital_id).with_for_update(of=Hospital) if db.session.info.get("uow_depth")
        else select(Hospital).where(Hospital.id == user.hospital_id)
    )
    other_admins = db.session.scalar(
        select(User.id).where(User.hospital_id == user.hospital_id, User.is_staff_admin.is_(True), User.id != user_id).limit(1)
    )
    if other_admins is not None:
        return None
    return (
        f"You are the last staff admin of {hospital.name}. First make a colleague a staff admin: on the Staff page, "
        "enter their email and tick \"Also a staff admin\" (add them to the staff first if they are not on it yet)."
    )


def forget_patient(user_id: int) -> None:
    """Cancel the account's upcoming appointments and anonymise all of them (inside the deletion's transaction)."""
    now = utcnow()
    upcoming = db.session.scalars(
        select(Appointment.id)
        .join(Slot, Slot.id == Appointment.slot_id)
        .where(Appointment.user_id == user_id, Appointment.status == Appointment.BOOKED, Slot.ends_at > now)
    ).all()
    for appointment_id in upcoming:
        queue.cancel(appointment_id, user_id)  # frees the place, as the patient's own cancellation does
    ids = db.session.scalars(select(Appointment.id).where(Appointment.user_id == user_id)).all()
    # The cancellation emails just queued, and any confirmation still to be composed, would go to a
    # person who is gone: they go too (the account's other emails go with its address).
    forget_named((TOKEN_CONFIRMATION, CANCELLATION), ids)
    db.session.execute(
        update(Appointment)
        .where(Appointment.user_id == user_id)
        .values(patient_name=DELETED_PATIENT, contact_number="", user_id=None, idempotency_key=None)
        .execution_options(synchronize_session=False)
    )


def connect() -> None:
    """Subscribe to the account events (idempotent)."""
    account_signals.email_verified.connect(publish_hospital)
    accounts.register_account_data_source(clinic_data)
    accounts.register_account_deletion_check(last_admin_check)
    accounts.register_account_deletion_hook(forget_patient)
