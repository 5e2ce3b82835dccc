"""The hospital's doctors directory: every session points at a doctor's row, so a rename is one edit."""
from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from expertbook.clinic.inputs import DOCTOR_NOT_FOUND, clean_text
from expertbook.clinic.models import Doctor, Slot
from expertbook.database import transaction
from expertbook.errors import NotFound, ValidationFailed
from expertbook.extensions import db

MAX_BIO = 500


def _clean_doctor(name: str | None, specialization: str | None, bio: str | None) -> tuple[str, str, str]:
    errors: dict[str, str] = {}
    cleaned = []
    for field, label, value in (("name", "doctor's name", name), ("specialization", "specialization", specialization)):
        try:
            cleaned.append(clean_text(value, field, label))
        except ValidationFailed as error:
            errors.update({k: v[0] for k, v in error.errors.items()})
    bio = " ".join(str(bio or "").split())
    if len(bio) > MAX_BIO:
        errors["bio"] = f"Keep the bio under {MAX_BIO} characters."
    if errors:
        raise ValidationFailed(errors)
    return cleaned[0], cleaned[1], bio


def _duplicate_doctor(name: str, specialization: str) -> ValidationFailed:
    return ValidationFailed({"name": f"{name} ({specialization}) is already in the directory."})


def add_doctor(hospital_id: int, name: str | None, specialization: str | None, bio: str | None = "") -> Doctor:
    """Add a doctor to the hospital's directory (active)."""
    name, specialization, bio = _clean_doctor(name, specialization, bio)
    try:
        with transaction() as session:
            doctor = Doctor(hospital_id=hospital_id, name=name, specialization=specialization, bio=bio, active=True)
            session.add(doctor)
            session.flush()
    except IntegrityError:
        raise _duplicate_doctor(name, specialization) from None
    return doctor


def update_doctor(doctor_id: int, hospital_id: int, name: str | None, specialization: str | None, bio: str | None, active: bool) -> Doctor:
    """Rename, re-describe or (de)activate one of the hospital's doctors. Every session, search and
    page reads the doctor from here, so the change shows everywhere at once. An inactive doctor keeps
    their sessions but is not offered for new ones."""
    name, specialization, bio = _clean_doctor(name, specialization, bio)
    try:
        with transaction() as session:
            changed = session.execute(
                update(Doctor)
                .where(Doctor.id == doctor_id, Doctor.hospital_id == hospital_id)
                .values(name=name, specialization=specialization, bio=bio, active=bool(active)),
                execution_options={"synchronize_session": False},
            ).rowcount
            if not changed:
                raise NotFound(DOCTOR_NOT_FOUND)
            # Pages cache by the slot's version: make them show the new name.
            session.execute(update(Slot).where(Slot.doctor_id == doctor_id).values(version=Slot.version + 1), execution_options={"synchronize_session": False})
    except IntegrityError:
        raise _duplicate_doctor(name, specialization) from None
    return staff_doctor(doctor_id, hospital_id)


def staff_doctor(doctor_id: int, hospital_id: int) -> Doctor:
    """One of the hospital's doctors; NotFound for any other hospital's."""
    doctor = db.session.scalar(
        select(Doctor).where(Doctor.id == doctor_id, Doctor.hospital_id == hospital_id).execution_options(populate_existing=True)
    )
    if doctor is None:
        raise NotFound(DOCTOR_NOT_FOUND)
    return doctor


def doctors_of(hospital_id: int, active_only: bool = False) -> list[Doctor]:
    """The hospital's doctors (the directory), by name; ``active_only`` for the ones new sessions may use."""
    query = select(Doctor).where(Doctor.hospital_id == hospital_id)
    if active_only:
        query = query.where(Doctor.active.is_(True))
    return list(db.session.scalars(query.order_by(Doctor.name, Doctor.specialization)))
