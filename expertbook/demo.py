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
    return [("patient / customer", PATIENT[1]), ("hospital staff admin", HOSPITAL[3])]
