"""What the experts area does when something happens to an account (``auth`` knows no area; it calls these).

- "Download my data" → the expert profile, services, and bookings (made, and received as an expert).
- "Delete my account" → refused for an expert with upcoming bookings (they cancel or hold them first).
  Otherwise the account's upcoming bookings as a customer are cancelled as the customer would cancel
  them (the expert gets the usual cancellation email), and every booking it made stays with its
  expert, anonymised ("Deleted patient", no email, phone or notes). Its own expert profile, services
  and hours go with the account (ON DELETE CASCADE), and with them its past bookings as an expert.

:func:`connect` is called once when the experts blueprint is registered.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update

from expertbook.auth import service as accounts
from expertbook.database import utcnow
from expertbook.experts import service
from expertbook.experts.models import ACTIVE_STATUSES, Booking, Service
from expertbook.extensions import db
from expertbook.notifications.service import forget_address

DELETED_CUSTOMER = "Deleted patient"


def _iso(moment) -> str | None:
    return moment.isoformat() if moment else None


def _service_json(svc: Service) -> dict[str, Any]:
    return {
        "id": svc.id,
        "title": svc.title,
        "slug": svc.slug,
        "description": svc.description,
        "durationMinutes": svc.duration_min,
        "price": svc.price_cents / 100,
        "currency": svc.currency,
        "location": svc.location_kind,
        "locationDetail": svc.location_detail,
        "requiresAcceptance": svc.requires_acceptance,
        "hidden": svc.hidden,
        "deletedAt": _iso(svc.deleted_at),
    }


def _booking_json(booking: Booking) -> dict[str, Any]:
    return {
        "id": booking.id,
        "status": booking.status,
        "service": booking.service.title,
        "expert": booking.expert.display_name,
        "start": _iso(booking.start_at),
        "end": _iso(booking.end_at),
        "customerName": booking.customer_name,
        "customerEmail": booking.customer_email,
        "customerPhone": booking.customer_phone,
        "notes": booking.notes,
        "customerTimezone": booking.customer_timezone,
        "cancelReason": booking.cancel_reason,
        "createdAt": _iso(booking.created_at),
    }


def experts_data(user_id: int) -> dict[str, Any]:
    """The account's expert profile, services and bookings, for "Download my data"."""
    profile = service.profile_of(user_id)
    made = service.bookings_as_customer(user_id)
    data: dict[str, Any] = {
        "expertProfile": None,
        "services": [],
        "bookings": {"made": [_booking_json(b) for b in made], "asExpert": []},
    }
    if profile is not None:
        data["expertProfile"] = {
            "displayName": profile.display_name,
            "headline": profile.headline,
            "bio": profile.bio,
            "handle": profile.handle,
            "timezone": profile.timezone,
            "createdAt": _iso(profile.created_at),
        }
        data["services"] = [_service_json(s) for s in db.session.scalars(select(Service).where(Service.expert_id == profile.id).order_by(Service.id))]
        data["bookings"]["asExpert"] = [_booking_json(b) for b in service.bookings_as_expert(user_id)]
    return data


def upcoming_bookings_check(user_id: int) -> str | None:
    """An expert with upcoming bookings must cancel them (or let them take place) first."""
    profile = service.profile_of(user_id)
    if profile is None:
        return None
    count = db.session.scalar(
        select(func.count(Booking.id)).where(Booking.expert_id == profile.id, Booking.status.in_(ACTIVE_STATUSES), Booking.end_at > utcnow())
    )
    if not count:
        return None
    return (
        f"You have {count} upcoming booking{'s' if count != 1 else ''} as an expert. Cancel {'them' if count != 1 else 'it'} "
        "on your expert dashboard (your customers are told by email), or delete your account after "
        f"{'they have' if count != 1 else 'it has'} taken place."
    )


def forget_customer(user_id: int) -> None:
    """Cancel the account's upcoming bookings and anonymise every booking it made (inside the deletion's transaction)."""
    now = utcnow()
    upcoming = db.session.scalars(
        select(Booking.id).where(Booking.customer_id == user_id, Booking.status.in_(ACTIVE_STATUSES), Booking.end_at > now)
    ).all()
    for booking_id in upcoming:
        # As the customer's own cancellation: the expert is told, the meeting is deleted, the time is free.
        service.cancel(user_id, booking_id, "The customer deleted their account.", now=now)
    addresses = set(db.session.scalars(select(Booking.customer_email).where(Booking.customer_id == user_id)))
    for address in addresses:
        # The addresses the account gave when booking: the emails to them (the cancellations just
        # queued included) are the account's, and go with it.
        if address:
            forget_address(address)
    db.session.execute(
        update(Booking)
        .where(Booking.customer_id == user_id)
        .values(customer_name=DELETED_CUSTOMER, customer_email="", customer_phone="", notes="", customer_id=None, idempotency_key=None,
                updated_at=utcnow())  # the expert's calendar feed changed: its Last-Modified must move
        .execution_options(synchronize_session=False)
    )


def connect() -> None:
    """Register with the account events (idempotent)."""
    accounts.register_account_data_source(experts_data)
    accounts.register_account_deletion_check(upcoming_bookings_check)
    accounts.register_account_deletion_hook(forget_customer)
