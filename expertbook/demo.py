"""Demo data, loaded by ``flask demo``. Running it again changes nothing that is already there."""
from __future__ import annotations

from sqlalchemy import select

from expertbook.auth import service as accounts
from expertbook.auth.models import User
from expertbook.extensions import db

PATIENT = ("Priya Raman", "patient@demo.expertbook.example")
HOSPITAL = ("City General Hospital", "Chennai", "Anil Kumar", "staff@demo.expertbook.example")
ADMIN = ("Site Admin", "admin@demo.expertbook.example")


def _user(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == email))


def load(password: str) -> list[tuple[str, str]]:
    """Create the demo accounts (and, as areas add them, their data); return (role, email) pairs."""
    if _user(PATIENT[1]) is None:
        accounts.register_user(PATIENT[0], PATIENT[1], password)
    if _user(HOSPITAL[3]) is None:
        accounts.register_hospital(HOSPITAL[0], HOSPITAL[1], HOSPITAL[2], HOSPITAL[3], password)
    logins = [("patient / customer", PATIENT[1]), ("hospital staff admin", HOSPITAL[3])]
    logins += _notifications(password)
    return logins


def _notifications(password: str) -> list[tuple[str, str]]:
    """A site administrator, who sees the email outbox at /notifications."""
    from expertbook.notifications import service as notifications

    if _user(ADMIN[1]) is None:
        accounts.register_user(ADMIN[0], ADMIN[1], password)
    notifications.make_admin(ADMIN[1])
    return [("site admin (emails)", ADMIN[1])]
