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
    data.string("hospitalName"), data.string("location")  # documented as ignored; still only strings
    if time_slot and not (start_text and end_text):
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
    key = fields.header("Idempotency-Key", min_length=service.MIN_IDEMPOTENCY_KEY, max_length=service.MAX_IDEMPOTENCY_KEY)
    try:
        booking = service.book(slot_id, api_user_id(), patient_name, contact_number, key)
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

_NOT_FOUND = openapi.error_response("Not found (also for another hospital's objects, and for patients on staff endpoints)")
_CLOCK_PATTERN = "([01][0-9]|2[0-3]):[0-5][0-9]"
_SLOTS = openapi.answer({"slots": {"type": "array", "items": openapi.ref("Slot")}})
_APPOINTMENT = openapi.answer({"appointment": openapi.ref("Appointment")})

openapi.register(
    {
        "/organization/save-details": {
            "post": openapi.operation(
                "Staff: create slots (one per doctor, per date when repeated)",
                {
                    "201": openapi.json_response(
                        "Created",
                        openapi.answer(
                            {
                                "created": {"type": "integer", "minimum": 0},
                                "skipped": {"type": "integer", "minimum": 0, "description": "Sessions that already existed"},
                                "slots": {"type": "array", "items": openapi.ref("Slot")},
                            }
                        ),
                    ),
                    "404": _NOT_FOUND,
                    "409": openapi.error_response("The same sessions were created at the same moment by someone else"),
                },
                body=openapi.json_body("SaveDetails"),
            )
        },
        "/organization/available-slots": {
            "get": openapi.operation(
                "Search bookable slots (full, closed and past slots are left out)",
                {"200": openapi.json_response("Matching slots, soonest first", _SLOTS)},
                parameters=[
                    openapi.query("date", openapi.DATE),
                    openapi.query("location", openapi.text(120), "Part of the hospital's location, any case"),
                    openapi.query("specialization", openapi.text(120), "Part of the doctor's specialization, any case"),
                ],
            )
        },
        "/organization/all-slots": {
            "get": openapi.operation(
                "Staff: all of their own hospital's slots with booking status",
                {
                    "200": openapi.json_response(
                        "The slots",
                        openapi.answer({"slots": {"type": "array", "items": openapi.ref("Slot")}, "page": openapi.integer(1, MAX_PAGE), "hasMore": openapi.BOOLEAN}),
                    ),
                    "404": _NOT_FOUND,
                },
                parameters=[
                    openapi.query("date", openapi.DATE),
                    openapi.query("doctorId", openapi.ID, "One doctor"),
                    openapi.query("page", openapi.integer(1, MAX_PAGE), f"Pages of {ALL_SLOTS_PAGE_SIZE}"),
                ],
            )
        },
        "/appointments": {
            "post": openapi.operation(
                "Book a place in a slot and get a token number",
                {
                    "201": openapi.json_response("Booked", openapi.ref("BookingResult")),
                    "404": openapi.error_response("Slot not found"),
                    "409": openapi.error_response('"This slot is fully booked" or "Slot availability changed, please refresh"'),
                },
                body=openapi.json_body("BookAppointment"),
                parameters=[
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "description": "A retry with the same key returns the same booking",
                        "schema": {"type": "string", "pattern": "^[A-Za-z0-9_:.-]{8,64}$"},
                    }
                ],
            )
        },
        "/appointments/{appointment_id}/cancel": {
            "post": openapi.operation(
                "Cancel one's own upcoming appointment",
                {
                    "200": openapi.json_response("Cancelled", _APPOINTMENT),
                    "404": openapi.error_response("Appointment not found"),
                    "409": openapi.error_response("Already taken place, or marked arrived/no-show"),
                },
                parameters=[openapi.path_id("appointment_id")],
            )
        },
        "/appointments/my": {
            "get": openapi.operation(
                "The caller's own appointments",
                {
                    "200": openapi.json_response(
                        "Upcoming and past appointments",
                        openapi.answer({"upcoming": {"type": "array", "items": openapi.ref("Appointment")}, "past": {"type": "array", "items": openapi.ref("Appointment")}}),
                    )
                },
            )
        },
        "/appointments/all": {
            "get": openapi.operation(
                "Staff: their own hospital's appointments",
                {
                    "200": openapi.json_response("The appointments", openapi.answer({"appointments": {"type": "array", "items": openapi.ref("Appointment")}})),
                    "404": _NOT_FOUND,
                },
                parameters=[openapi.query("slotId", openapi.ID, "One slot"), openapi.query("date", openapi.DATE)],
            )
        },
    },
    {
        "Slot": openapi.answer(
            {
                "slotId": openapi.ID,
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
            }
        ),
        "SaveDetails": openapi.obj(
            {
                "hospitalName": openapi.text(description="Ignored: always the caller's own hospital"),
                "location": openapi.text(description="Ignored: always the caller's own hospital"),
                "doctors": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": service.MAX_DOCTORS_PER_FORM,
                    "items": openapi.obj({"doctorName": openapi.text(120), "specialization": openapi.text(120)}, ["doctorName", "specialization"]),
                },
                "date": openapi.DATE,
                "timeSlot": {"type": "string", "pattern": f"^{_CLOCK_PATTERN}-{_CLOCK_PATTERN}$", "example": "09:00-12:00"},
                "startTime": {"type": "string", "pattern": f"^{_CLOCK_PATTERN}$", "description": "With endTime: instead of timeSlot"},
                "endTime": {"type": "string", "pattern": f"^{_CLOCK_PATTERN}$"},
                "totalSlots": openapi.integer(1, service.MAX_CAPACITY, default=10),
                "repeatUntil": {**openapi.DATE, "description": "Repeat the session up to this date"},
                "weekdays": {"type": "array", "items": openapi.integer(0, 6), "description": "With repeatUntil: only these days (0 = Monday)"},
            },
            ["doctors", "date"],
            anyOf=[{"required": ["timeSlot"]}, {"required": ["startTime", "endTime"]}],
        ),
        "BookAppointment": openapi.obj(
            {
                "slotId": openapi.ID,
                "patientName": openapi.text(120),
                "contactNumber": {"type": "string", "pattern": "^[ -]*([0-9][ -]*){10}$", "description": "10 digits; spaces and hyphens are ignored"},
            },
            ["slotId", "patientName", "contactNumber"],
        ),
        "Appointment": openapi.answer(
            {
                "appointmentId": openapi.ID,
                "slotId": openapi.ID,
                "patientName": {"type": "string"},
                "contactNumber": {"type": "string"},
                "tokenNumber": {"type": "integer", "example": 101},
                "status": {"type": "string", "enum": list(Appointment.STATUSES)},
                "bookedAt": openapi.DATE_TIME,
                "cancelledAt": {"type": ["string", "null"], "format": "date-time"},
                "slot": openapi.ref("Slot"),
            }
        ),
        "BookingResult": openapi.answer(
            {
                "appointment": openapi.ref("Appointment"),
                "tokenNumber": {"type": "integer", "example": 101},
                "remainingSlots": {"type": "integer", "minimum": 0, "example": 9},
            }
        ),
    },
)
