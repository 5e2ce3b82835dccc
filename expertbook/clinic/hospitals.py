"""Hospitals and their staff: registering a hospital with its first staff admin, adding colleagues."""
from __future__ import annotations

from sqlalchemy import select, update

from expertbook.auth.models import User
from expertbook.auth.service import clean_name, normalise_email, register_account
from expertbook.clinic.models import Hospital
from expertbook.database import transaction
from expertbook.errors import Conflict, NotFound, ValidationFailed
from expertbook.extensions import db


def staff_hospital_id(user_id: int) -> int:
    hospital_id = db.session.scalar(select(User.hospital_id).where(User.id == user_id))
    if hospital_id is None:
        raise NotFound("Not found")
    return hospital_id


def register_hospital(hospital_name: str, location: str, name: str, email: str, password: str, *, verified: bool = False) -> User | None:
    """Register a hospital together with its first staff admin, a new account (see
    ``auth.service.register_account``): returns the admin, or None when the address already had an
    account (its owner is told by email, and no hospital is made). The caller answers both alike.
    The hospital is published once its admin verifies their address (:mod:`expertbook.clinic.account_hooks`)."""
    hospital_name = clean_name(hospital_name, "hospital_name")
    location = clean_name(location, "location")

    def setup(user: User) -> None:
        hospital = Hospital(name=hospital_name, location=location)
        db.session.add(hospital)
        user.is_staff_admin = True
        hospital.staff.append(user)

    return register_account(name, email, password, setup=setup, verified=verified)


def add_staff(admin_id: int, email: str, make_admin: bool = False) -> User:
    """Let a staff admin add an existing account, by email, to the admin's hospital, or make a colleague
    already on the staff a staff admin (``make_admin``)."""
    email = normalise_email(email)
    with transaction():
        admin = db.session.get(User, admin_id)
        if admin is None or not admin.is_staff_admin or admin.hospital_id is None:
            raise NotFound("Not found")
        user = db.session.scalar(select(User).where(User.email == email).with_for_update(of=User))
        if user is None:
            raise ValidationFailed({"email": "No account uses this email yet. Ask them to register first, then add them."})
        if user.hospital_id == admin.hospital_id:
            if not make_admin or user.is_staff_admin:
                raise Conflict(f"{user.name} is already on your staff.")
            user.is_staff_admin = True  # a colleague on the staff becomes a staff admin
        elif user.hospital_id is not None:
            raise Conflict("This person already works for another hospital.")
        else:
            user.hospital_id = admin.hospital_id
            user.is_staff_admin = make_admin
        if user.is_staff_admin and user.email_verified_at is not None:
            # A verified staff admin publishes the hospital, as verifying their address would.
            db.session.execute(update(Hospital).where(Hospital.id == admin.hospital_id).values(published=True))
    return user


def staff_of(hospital_id: int) -> list[User]:
    """The staff of one hospital, admins first."""
    return list(
        db.session.scalars(
            select(User).where(User.hospital_id == hospital_id).order_by(User.is_staff_admin.desc(), User.name)
        )
    )
