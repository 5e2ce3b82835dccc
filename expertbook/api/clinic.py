"""The clinic JSON API (seed 004): staff create slots, patients search and book, both list appointments.

Field names follow the seed (``slotId``, ``totalSlots``, ``tokenNumber``, ...). Errors are
``{"error": "<message>"}``; a 422 also names each invalid field in ``fields``.
"""
from __future__ import annotations

import re
from datetime import datetime, time
from typing import Any

from flask import jsonify, request

from expertbook.api import fields, openapi
from expertbook.api.views import api_user, api_user_id, bp, token_required
from expertbook.clinic import service
from expertbook.clinic.models import Appointment, Slot
from expertbook.database import utcnow
from expertbook.errors import NotFound, ValidationFailed

# The service names fields as the web forms do; the API answers with the seed's names.
_API_FIELDS = {
    "patient_name": "patientName",
    "contact_number": "contactNumber",
    "idempotency_key": "Idempotency-Key",
    "start_time": "timeSlot",
    "end_time": "timeSlot",
    "capacity": "totalSlots",
    "repeat_until": "repeatUntil",
}


def _renamed(error: ValidationFailed) -> ValidationFailed:
    fields: dict[str, list[str]] = {}
    for name, messages in error.errors.items():
        if name.startswith("doctors-"):
            _, index, part = name.split("-", 2)
            name = f"doctors[{index}].{'doctorName' if part == 'name' else part}"
        fields.setdefault(_API_FIELDS.get(name, name), []).extend(messages)
    return ValidationFailed(fields, error.message)


def _staff_hospital_id() -> int:
    user = api_user()
    if not user.is_staff:
        # Patients are not told that staff endpoints exist.
        raise NotFound("Not found")
    return user.hospital_id


def _time_slot(slot: Slot) -> str:
    return f"{slot.start_time:%H:%M}-{slot.end_time:%H:%M}"


def slot_json(slot: Slot | service.SlotSnapshot, now: datetime | None = None) -> dict[str, Any]:
    """A slot in the seed's shape (from a loaded slot, or the snapshot a booking returns)."""
    now = now or utcnow()
    badge = service.slot_badge(slot, now)
    return {
        "slotId": slot.id,
        "hospitalName": slot.hospital.name,
        "location": slot.hospital.location,
        "doctorName": slot.doctor.name,
        "specialization": slot.doctor.specialization,
        "date": slot.date.isoformat(),
        "timeSlot": _time_slot(slot),
        "startTime": f"{slot.start_time:%H:%M}",
        "endTime": f"{slot.end_time:%H:%M}",
        "timezone": slot.hospital.timezone,
        "totalSlots": slot.capacity,
        "bookedSlots": slot.booked_count,
        "availableSlots": slot.places_left,
        "isActive": service.is_bookable(slot, now),
        "status": badge.label,
        "nowServing": slot.now_serving,
    }


def appointment_json(appointment: Appointment) -> dict[str, Any]:
    """An appointment in the seed's shape, with its slot."""
    body = {
        "appointmentId": appointment.id,
        "slotId": appointment.slot_id,
        "patientName": appointment.patient_name,
        "contactNumber": appointment.contact_number,
        "tokenNumber": appointment.token_number,
        "status": appointment.status,
        "bookedAt": appointment.booked_at.isoformat(),
        "cancelledAt": appointment.cancelled_at.isoformat() if appointment.cancelled_at else None,
    }
    body["slot"] = slot_json(appointment.slot)
    return body


_CLOCK = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")


def _clock(text: str, data: fields.Reader) -> time | None:
    """A wall-clock ``HH:MM`` of ``timeSlot`` (or ``startTime``/``endTime``), else a field error."""
    if not _CLOCK.fullmatch(text.strip()):
        data.errors.setdefault("timeSlot", 'Use "HH:MM-HH:MM", e.g. "09:00-12:00".')
        return None
    return time.fromisoformat(text.strip())


@bp.post("/organization/save-details")
@token_required
def save_details():
    """Staff create slots for their own hospital: one per doctor (and per date when repeated)."""
    _staff_hospital_id()
    data = fields.body()
    # Blank names are the service's to refuse (with the form's messages); here only the types.
    doctors = [
        (doctor.string("doctorName", max_length=120), doctor.string("specialization", max_length=120))
        for doctor in data.objects("doctors", required=True, max_items=service.MAX_DOCTORS_PER_FORM)
    ]
    day = data.day("date", required=True)
    time_slot = data.string("timeSlot", max_length=11)
    start_text, end_text = data.string("startTime", max_length=5), data.string("endTime", max_length=5)
    capacity = data.integer("totalSlots", default=10)
    repeat_until = data.day("repeatUntil")
    weekdays = data.integers("weekdays", low=0, high=6)
    if time_slot and not (start_text or end_text):
        start_text, _, end_text = time_slot.partition("-")
    if not start_text or not end_text:
        data.errors.setdefault("timeSlot", 'Send "timeSlot": "09:00-12:00" (or startTime and endTime).')
        data.missing = True
    start, end = (_clock(start_text, data), _clock(end_text, data)) if start_text and end_text else (None, None)
    data.check()
    try:
        created = service.create_slots(api_user().id, doctors, day, start, end, capacity, repeat_until, weekdays)
    except ValidationFailed as error:
        raise _renamed(error) from None
    now = utcnow()
    return jsonify(created=len(created.slots), skipped=created.skipped, slots=[slot_json(s, now) for s in created.slots]), 201


@bp.get("/organization/available-slots")
@token_required
def available_slots():
    """Slots a patient can book now; ``date``, ``location`` and ``specialization`` may each be left out."""
    query = fields.args()
    day = query.day("date")
    location = query.string("location", max_length=120)
    specialization = query.string("specialization", max_length=120)
    query.check()
    slots = service.search_slots(day, location, specialization)
    now = utcnow()
    return jsonify(slots=[slot_json(s, now) for s in slots])


ALL_SLOTS_PAGE_SIZE = 200
MAX_PAGE = 10_000


@bp.get("/organization/all-slots")
@token_required
def all_slots():
    """Staff: their own hospital's slots with booking status, a page at a time (``date``, ``doctorId``, ``page``)."""
    hospital_id = _staff_hospital_id()
    query = fields.args()
    page = query.integer("page", default=1, low=1, high=MAX_PAGE)
    day = query.day("date")
    doctor_id = query.id("doctorId", not_found="Doctor not found")
    query.check()
    slots, more = service.staff_slots(hospital_id, day, doctor_id, page=page, page_size=ALL_SLOTS_PAGE_SIZE, upcoming_only=False)
    now = utcnow()
    return jsonify(slots=[slot_json(s, now) for s in slots], page=page, hasMore=more)


@bp.post("/appointments")
# The rush's hot path: book() refuses an account that no longer exists (the appointment's foreign
# key), so the separate lookup of the account is not needed here.
@token_required(check_account=False)
def book_appointment():
    """Book a place: answers 201 with ``tokenNumber`` and ``remainingSlots``.

    Send an ``Idempotency-Key`` header to make retries safe: the same key returns the same booking.
    """
    data = fields.body()
    slot_id = data.id("slotId", required=True, not_found=service.SLOT_NOT_FOUND)
    patient_name = data.string("patientName", required=True, max_length=120)
    contact_number = data.string("contactNumber", required=True)
    data.check()
    try:
        booking = service.book(slot_id, api_user_id(), patient_name, contact_number, request.headers.get("Idempotency-Key"))
    except ValidationFailed as error:
        raise _renamed(error) from None
    except NotFound as error:
        if error.message == service.ACCOUNT_NOT_FOUND:
            return jsonify(error="Invalid token"), 401
        raise
    if booking.replayed:
        body = appointment_json(service.own_appointment(booking.appointment_id, api_user_id()))
    else:
        # A new booking answers from what its UPDATE ... RETURNING and INSERT gave back: no read-back.
        body = {
            "appointmentId": booking.appointment_id,
            "slotId": slot_id,
            "patientName": booking.patient_name,
            "contactNumber": booking.contact_number,
            "tokenNumber": booking.token_number,
            "status": Appointment.BOOKED,
            "bookedAt": booking.booked_at.isoformat(),
            "cancelledAt": None,
            "slot": slot_json(booking.slot, booking.booked_at),
        }
    response = jsonify(appointment=body, tokenNumber=booking.token_number, remainingSlots=booking.remaining)
    if booking.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response, 201


@bp.post("/appointments/<int:appointment_id>/cancel")
@token_required
def cancel_appointment(appointment_id: int):
    """Cancel the caller's own upcoming appointment; the place is freed, the token is not reused."""
    service.cancel(appointment_id, api_user().id)
    return jsonify(appointment=appointment_json(service.own_appointment(appointment_id, api_user().id)))


@bp.get("/appointments/my")
@token_required
def my_appointments():
    """The caller's own appointments: upcoming (soonest first), then past (latest first)."""
    upcoming, past = service.my_appointments(api_user().id)
    return jsonify(upcoming=[appointment_json(a) for a in upcoming], past=[appointment_json(a) for a in past])


@bp.get("/appointments/all")
@token_required
def all_appointments():
    """Staff: their own hospital's appointments (``slotId`` and ``date`` narrow it down)."""
    hospital_id = _staff_hospital_id()
    query = fields.args()
    slot_id = query.id("slotId", not_found=service.SLOT_NOT_FOUND)
    day = query.day("date")
    query.check()
    return jsonify(appointments=[appointment_json(a) for a in service.hospital_appointments(hospital_id, slot_id, day)])


# ---------------------------------------------------------------------------- OpenAPI

_SECURED = [{"bearer": []}]
_NOT_FOUND = openapi.error_response("Not found (also for another hospital's objects)")


def _q(name: str, description: str, schema: dict | None = None) -> dict:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema or {"type": "string"}}


openapi.register(
    {
        "/organization/save-details": {
            "post": {
                "summary": "Staff: create slots (one per doctor, per date when repeated)",
                "security": _SECURED,
                "requestBody": openapi.json_body("SaveDetails"),
                "responses": {
                    "201": openapi.json_response(
                        "Created",
                        {"type": "object", "properties": {"created": {"type": "integer"}, "skipped": {"type": "integer", "description": "Sessions that already existed"}, "slots": {"type": "array", "items": openapi.ref("Slot")}}},
                    ),
                    "401": openapi.UNAUTHORIZED,
                    "404": _NOT_FOUND,
                    "409": openapi.error_response("The same sessions were created at the same moment by someone else"),
                    "422": openapi.INVALID,
                },
            }
        },
        "/organization/available-slots": {
            "get": {
                "summary": "Search bookable slots (full, closed and past slots are left out)",
                "security": _SECURED,
                "parameters": [
                    _q("date", "YYYY-MM-DD", {"type": "string", "format": "date"}),
                    _q("location", "Part of the hospital's location, any case"),
                    _q("specialization", "Part of the doctor's specialization, any case"),
                ],
                "responses": {
                    "200": openapi.json_response("Matching slots, soonest first", {"type": "object", "properties": {"slots": {"type": "array", "items": openapi.ref("Slot")}}}),
                    "401": openapi.UNAUTHORIZED,
                    "422": openapi.INVALID,
                },
            }
        },
        "/organization/all-slots": {
            "get": {
                "summary": "Staff: all of their own hospital's slots with booking status",
                "security": _SECURED,
                "parameters": [
                    _q("date", "YYYY-MM-DD", {"type": "string", "format": "date"}),
                    _q("doctorId", "One doctor", {"type": "integer"}),
                    _q("page", "Pages of 200", {"type": "integer", "minimum": 1}),
                ],
                "responses": {
                    "200": openapi.json_response(
                        "The slots",
                        {"type": "object", "properties": {"slots": {"type": "array", "items": openapi.ref("Slot")}, "page": {"type": "integer"}, "hasMore": {"type": "boolean"}}},
                    ),
                    "401": openapi.UNAUTHORIZED,
                    "404": _NOT_FOUND,
                },
            }
        },
        "/appointments": {
            "post": {
                "summary": "Book a place in a slot and get a token number",
                "security": _SECURED,
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "description": "8-64 characters; a retry with the same key returns the same booking",
                        "schema": {"type": "string"},
                    }
                ],
                "requestBody": openapi.json_body("BookAppointment"),
                "responses": {
                    "201": openapi.json_response("Booked", openapi.ref("BookingResult")),
                    "401": openapi.UNAUTHORIZED,
                    "404": openapi.error_response("Slot not found"),
                    "409": openapi.error_response('"This slot is fully booked" or "Slot availability changed, please refresh"'),
                    "422": openapi.INVALID,
                },
            }
        },
        "/appointments/{appointment_id}/cancel": {
            "post": {
                "summary": "Cancel one's own upcoming appointment",
                "security": _SECURED,
                "parameters": [{"name": "appointment_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
                "responses": {
                    "200": openapi.json_response("Cancelled", {"type": "object", "properties": {"appointment": openapi.ref("Appointment")}}),
                    "401": openapi.UNAUTHORIZED,
                    "404": openapi.error_response("Appointment not found"),
                    "409": openapi.error_response("Already taken place, or marked arrived/no-show"),
                },
            }
        },
        "/appointments/my": {
            "get": {
                "summary": "The caller's own appointments",
                "security": _SECURED,
                "responses": {
                    "200": openapi.json_response(
                        "Upcoming and past appointments",
                        {"type": "object", "properties": {"upcoming": {"type": "array", "items": openapi.ref("Appointment")}, "past": {"type": "array", "items": openapi.ref("Appointment")}}},
                    ),
                    "401": openapi.UNAUTHORIZED,
                },
            }
        },
        "/appointments/all": {
            "get": {
                "summary": "Staff: their own hospital's appointments",
                "security": _SECURED,
                "parameters": [_q("slotId", "One slot", {"type": "integer"}), _q("date", "YYYY-MM-DD", {"type": "string", "format": "date"})],
                "responses": {
                    "200": openapi.json_response("The appointments", {"type": "object", "properties": {"appointments": {"type": "array", "items": openapi.ref("Appointment")}}}),
                    "401": openapi.UNAUTHORIZED,
                    "404": _NOT_FOUND,
                },
            }
        },
    },
    {
        "Slot": {
            "type": "object",
            "properties": {
                "slotId": {"type": "integer"},
                "hospitalName": {"type": "string"},
                "location": {"type": "string"},
                "doctorName": {"type": "string"},
                "specialization": {"type": "string"},
                "date": {"type": "string", "format": "date"},
                "timeSlot": {"type": "string", "example": "09:00-12:00", "description": "The hospital's local time"},
                "startTime": {"type": "string", "example": "09:00"},
                "endTime": {"type": "string", "example": "12:00"},
                "timezone": {"type": "string", "example": "Asia/Kolkata"},
                "totalSlots": {"type": "integer"},
                "bookedSlots": {"type": "integer"},
                "availableSlots": {"type": "integer"},
                "isActive": {"type": "boolean", "description": "Takes bookings now (not full, closed or past)"},
                "status": {"type": "string", "enum": ["Available", "Almost full", "Fully booked", "Closed", "Past"]},
                "nowServing": {"type": ["integer", "null"]},
            },
        },
        "SaveDetails": {
            "type": "object",
            "required": ["doctors", "date", "timeSlot"],
            "properties": {
                "hospitalName": {"type": "string", "description": "Ignored: always the caller's own hospital"},
                "location": {"type": "string", "description": "Ignored: always the caller's own hospital"},
                "doctors": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"type": "object", "required": ["doctorName", "specialization"], "properties": {"doctorName": {"type": "string"}, "specialization": {"type": "string"}}},
                },
                "date": {"type": "string", "format": "date"},
                "timeSlot": {"type": "string", "example": "09:00-12:00"},
                "totalSlots": {"type": "integer", "default": 10, "minimum": 1, "maximum": service.MAX_CAPACITY},
                "repeatUntil": {"type": "string", "format": "date", "description": "Repeat the session up to this date"},
                "weekdays": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 6}, "description": "With repeatUntil: only these days (0 = Monday)"},
            },
        },
        "BookAppointment": {
            "type": "object",
            "required": ["slotId", "patientName", "contactNumber"],
            "properties": {
                "slotId": {"type": "integer"},
                "patientName": {"type": "string"},
                "contactNumber": {"type": "string", "pattern": "^[0-9]{10}$"},
            },
        },
        "Appointment": {
            "type": "object",
            "properties": {
                "appointmentId": {"type": "integer"},
                "slotId": {"type": "integer"},
                "patientName": {"type": "string"},
                "contactNumber": {"type": "string"},
                "tokenNumber": {"type": "integer", "example": 101},
                "status": {"type": "string", "enum": list(Appointment.STATUSES)},
                "bookedAt": {"type": "string", "format": "date-time"},
                "cancelledAt": {"type": ["string", "null"], "format": "date-time"},
                "slot": openapi.ref("Slot"),
            },
        },
        "BookingResult": {
            "type": "object",
            "properties": {
                "appointment": openapi.ref("Appointment"),
                "tokenNumber": {"type": "integer", "example": 101},
                "remainingSlots": {"type": "integer", "example": 9},
            },
        },
    },
)
