"""What the clinic accepts and how it says no: its limits, the checks of what people type, and the
messages of the refusals every clinic module shares (the API answers with the same words)."""
from __future__ import annotations

import re
import secrets

from expertbook.errors import ValidationFailed
from expertbook.notifications.service import check_address

MAX_REASON = 300

SLOT_NOT_FOUND = "Slot not found"
SLOT_FULL = "This slot is fully booked"
SLOT_CHANGED = "Slot availability changed, please refresh"
SLOT_CANCELLED = "This session was cancelled"
APPOINTMENT_NOT_FOUND = "Appointment not found"
ACCOUNT_NOT_FOUND = "Account not found"
WAITLIST_NOT_FOUND = "Waiting-list entry not found"
DOCTOR_NOT_FOUND = "Doctor not found"

_CONTACT = re.compile(r"[0-9]{10}")
MIN_IDEMPOTENCY_KEY, MAX_IDEMPOTENCY_KEY = 8, 64
_KEY = re.compile(rf"[A-Za-z0-9_\-:.]{{{MIN_IDEMPOTENCY_KEY},{MAX_IDEMPOTENCY_KEY}}}")


def clean_text(value: str | None, field: str, label: str, max_length: int = 120) -> str:
    """A single-line text value, stripped; raises ValidationFailed naming ``field``."""
    text = " ".join(str(value or "").split())
    if not text:
        raise ValidationFailed({field: f"Please enter the {label}."})
    if len(text) > max_length:
        raise ValidationFailed({field: f"Keep the {label} under {max_length} characters."})
    return text


def clean_patient(patient_name: str | None, contact_number: str | None) -> tuple[str, str]:
    """The patient's name and 10-digit contact number; all problems are reported together."""
    errors: dict[str, str] = {}
    name = contact = ""
    try:
        name = clean_text(patient_name, "patient_name", "patient's name")
    except ValidationFailed as error:
        errors.update({k: v[0] for k, v in error.errors.items()})
    # Spaces and hyphens only (as the API's document says): "98765 43210", "98765-43210".
    contact = re.sub(r"[ \-]", "", str(contact_number or ""))
    if not contact:
        errors["contact_number"] = "Please enter a contact number."
    elif not _CONTACT.fullmatch(contact):
        errors["contact_number"] = "The contact number must be exactly 10 digits."
    if errors:
        raise ValidationFailed(errors)
    return name, contact


def new_idempotency_key() -> str:
    """A one-time key for a booking form, so a double click or a retried POST books once."""
    return secrets.token_urlsafe(18)


def clean_key(key: str | None) -> str | None:
    if key is None or key == "":
        return None
    key = str(key).strip()
    if not _KEY.fullmatch(key):
        raise ValidationFailed({"idempotency_key": "Use 8 to 64 letters, digits, '-', '_', ':' or '.'."})
    return key


def clean_reason(reason: str | None) -> str:
    """A cancellation's reason, which the patients are told: one line of at most MAX_REASON characters."""
    return clean_text(reason, "reason", "reason", MAX_REASON)


def clean_email(email: str | None) -> str | None:
    """A walk-in's optional email address, checked; None when left empty."""
    email = (email or "").strip()
    return check_address(email, "email") if email else None
