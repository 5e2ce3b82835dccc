"""Demo data, loaded by ``flask demo``. Running it again changes nothing that is already there."""
from __future__ import annotations

from sqlalchemy import select

from expertbook.auth import service as accounts
from expertbook.auth.models import User
from expertbook.extensions import db

PATIENT = ("Priya Raman", "patient@demo.expertbook.example")
HOSPITAL = ("City General Hospital", "Chennai", "Anil Kumar", "staff@demo.expertbook.example")


def _user(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == email))


def load(password: str) -> list[tuple[str, str]]:
    """Create the demo accounts (and, as areas add them, their data); return (role, email) pairs."""
    if _user(PATIENT[1]) is None:
        accounts.register_user(PATIENT[0], PATIENT[1], password)
    if _user(HOSPITAL[3]) is None:
        accounts.register_hospital(HOSPITAL[0], HOSPITAL[1], HOSPITAL[2], HOSPITAL[3], password)
    load_clinic()
    return [("patient / customer", PATIENT[1]), ("hospital staff admin", HOSPITAL[3])]


# ---------------------------------------------------------------------------- clinic

CLINIC_DOCTORS = [
    ("Dr. Anjali Sharma", "Cardiology"),
    ("Dr. Vikram Rao", "Dermatology"),
    ("Dr. Meena Iyer", "Paediatrics"),
    ("Dr. Arjun Nair", "Orthopaedics"),
]
FAMILY = ["Priya Raman", "Karthik Raman", "Lakshmi Raman", "Arun Raman", "Divya Raman"]


def load_clinic() -> None:
    """City General Hospital's doctors, a week of sessions from today, and some bookings by the demo patient.

    Sessions that exist are skipped and bookings carry fixed idempotency keys, so running it again adds
    only what is missing (e.g. the days that have come into the week since).
    """
    from datetime import time, timedelta

    from expertbook.clinic import service as clinic
    from expertbook.clinic.models import Slot
    from expertbook.errors import ServiceError

    staff, patient = _user(HOSPITAL[3]), _user(PATIENT[1])
    if staff is None or patient is None or staff.hospital_id is None:
        return
    today = clinic.local_today(staff.hospital.timezone)
    week_end = today + timedelta(days=6)
    sessions = [(time(9), time(12), 10, CLINIC_DOCTORS), (time(17), time(19), 6, CLINIC_DOCTORS[:2])]
    for start, end, capacity, doctors in sessions:
        try:
            clinic.create_slots(staff.id, doctors, today, start, end, capacity, week_end)
        except ServiceError:
            pass  # e.g. today's evening session is over and nothing else is missing
    slots = db.session.scalars(
        select(Slot).where(Slot.hospital_id == staff.hospital_id, Slot.date >= today, Slot.date <= week_end).order_by(Slot.date, Slot.start_time, Slot.id)
    ).all()
    for index, slot in enumerate(slots):
        # A few bookings everywhere, and one evening session almost full, so every badge shows up.
        wanted = 5 if slot.start_time == time(17) and index % 3 == 0 else index % 4
        for n in range(wanted):
            try:
                clinic.book(slot.id, patient.id, FAMILY[n % len(FAMILY)], "9876543210", idempotency_key=f"demo-{slot.id}-{n}")
            except ServiceError:
                break  # over, closed or full: leave it as it is
