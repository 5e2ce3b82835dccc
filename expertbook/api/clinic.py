"""The clinic JSON API (seed 004): staff create slots, patients search and book, both list appointments.

Field names follow the seed (``slotId``, ``totalSlots``, ``tokenNumber``, ...). Errors are
``{"error": "<message>"}``; a 422 also names each invalid field in ``fields``.
"""
from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from flask import jsonify, request

from expertbook.api import openapi
from expertbook.api.base import MISSING_FIELDS, api_session_hash, api_user, api_user_id, bp, json_body, token_required
from expertbook.clinic import service
from expertbook.clinic.models import Appointment, Slot, WaitlistEntry
from expertbook.database import utcnow
from expertbook.errors import NotFound, ValidationFailed

# The service names fields as the web forms do; the API answers with the seed's names.
_API_FIELDS = {
    "patient_name": "patientName",
    "contact_number": "contactNumber",
    "slot_id": "slotId",
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
        "walkIn": appointment.walk_in,
        "cancelledBy": appointment.cancelled_by,
        "cancelReason": appointment.cancel_reason,
        "movedFromId": appointment.moved_from_id,
        "movedToId": appointment.moved_to_id,
    }
    body["slot"] = slot_json(appointment.slot)
    return body


def waitlist_json(entry, position: int) -> dict[str, Any]:
    """A place on a waiting list, with its position (1 = next to get a freed place) and its slot."""
    return {
        "waitlistId": entry.id,
        "slotId": entry.slot_id,
        "patientName": entry.patient_name,
        "contactNumber": entry.contact_number,
        "status": entry.status,
        "position": position,
        "joinedAt": entry.joined_at.isoformat(),
        "slot": slot_json(entry.slot),
    }


def _date_arg(value: Any, field: str) -> date | None:
    if value in (None, ""):
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ValidationFailed({field: "Use a date like 2025-01-31."}) from None


def _time_arg(value: Any, field: str) -> time | None:
    if value in (None, ""):
        return None
    try:
        return time.fromisoformat(str(value).strip())
    except ValueError:
        raise ValidationFailed({field: "Use a time like 09:30."}) from None


def _int_arg(value: Any, field: str, default: int | None = None) -> int | None:
    if value in (None, ""):
        return default
    if isinstance(value, bool):
        raise ValidationFailed({field: "Use a whole number."})
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValidationFailed({field: "Use a whole number."}) from None


@bp.post("/organization/save-details")
@token_required
def save_details():
    """Staff create slots for their own hospital: one per doctor (and per date when repeated)."""
    _staff_hospital_id()
    data = json_body("doctors", "date")
    doctors = data["doctors"]
    if not isinstance(doctors, list) or not all(isinstance(d, dict) for d in doctors):
        raise ValidationFailed({"doctors": "Send a list of {doctorName, specialization}."}, MISSING_FIELDS)
    start, end = data.get("startTime"), data.get("endTime")
    if data.get("timeSlot") and not (start or end):
        start, _, end = str(data["timeSlot"]).partition("-")
    if not start or not end:
        raise ValidationFailed({"timeSlot": 'Send "timeSlot": "09:00-12:00" (or startTime and endTime).'}, MISSING_FIELDS)
    weekdays = data.get("weekdays")
    if weekdays is not None and (not isinstance(weekdays, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in weekdays)):
        raise ValidationFailed({"weekdays": "Send a list of weekday numbers, 0 = Monday."})
    try:
        created = service.create_slots(
            api_user().id,
            [(d.get("doctorName"), d.get("specialization")) for d in doctors],
            _date_arg(data["date"], "date"),
            _time_arg(start, "timeSlot"),
            _time_arg(end, "timeSlot"),
            _int_arg(data.get("totalSlots"), "totalSlots", 10),
            _date_arg(data.get("repeatUntil"), "repeatUntil"),
            weekdays,
        )
    except ValidationFailed as error:
        raise _renamed(error) from None
    now = utcnow()
    return jsonify(created=len(created.slots), skipped=created.skipped, slots=[slot_json(s, now) for s in created.slots]), 201


@bp.get("/organization/available-slots")
@token_required
def available_slots():
    """Slots a patient can book now; ``date``, ``location`` and ``specialization`` may each be left out."""
    slots = service.search_slots(
        _date_arg(request.args.get("date"), "date"), request.args.get("location"), request.args.get("specialization")
    )
    now = utcnow()
    return jsonify(slots=[slot_json(s, now) for s in slots])


@bp.get("/organization/all-slots")
@token_required
def all_slots():
    """Staff: their own hospital's slots with booking status, a page at a time (``date``, ``doctorId``, ``page``)."""
    hospital_id = _staff_hospital_id()
    page = max(_int_arg(request.args.get("page"), "page", 1) or 1, 1)
    slots, more = service.staff_slots(
        hospital_id,
        _date_arg(request.args.get("date"), "date"),
        _int_arg(request.args.get("doctorId"), "doctorId"),
        page=page,
        page_size=200,
        upcoming_only=False,
    )
    now = utcnow()
    return jsonify(slots=[slot_json(s, now) for s in slots], page=page, hasMore=more)


# What every new online booking says about itself, the same keys as appointment_json().
_NEW_BOOKING = {"cancelledAt": None, "walkIn": False, "cancelledBy": None, "cancelReason": None, "movedFromId": None, "movedToId": None}


@bp.post("/appointments")
# The rush's hot path: book() checks that the token's login session is still open inside its own
# statement (and so refuses a revoked token, or an account that no longer exists), so the separate
# lookup of the session is not needed here.
@token_required(check_session=False)
def book_appointment():
    """Book a place: answers 201 with ``tokenNumber`` and ``remainingSlots``.

    Send an ``Idempotency-Key`` header to make retries safe: the same key returns the same booking.
    """
    data = json_body("slotId", "patientName", "contactNumber")
    slot_id = _int_arg(data["slotId"], "slotId")
    try:
        booking = service.book(
            slot_id, api_user_id(), data["patientName"], str(data["contactNumber"]), request.headers.get("Idempotency-Key"),
            api_session=api_session_hash(),
        )
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
            **_NEW_BOOKING,
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
    """The caller's own appointments: upcoming (soonest first), then past (latest first), and their
    places on waiting lists (``waitlist``, soonest session first, each with its position)."""
    upcoming, past = service.my_appointments(api_user().id)
    return jsonify(
        upcoming=[appointment_json(a) for a in upcoming],
        past=[appointment_json(a) for a in past],
        waitlist=[waitlist_json(entry, position) for entry, position in service.my_waitlist(api_user().id)],
    )


@bp.get("/appointments/all")
@token_required
def all_appointments():
    """Staff: their own hospital's appointments (``slotId`` and ``date`` narrow it down)."""
    hospital_id = _staff_hospital_id()
    appointments = service.hospital_appointments(
        hospital_id, _int_arg(request.args.get("slotId"), "slotId"), _date_arg(request.args.get("date"), "date")
    )
    return jsonify(appointments=[appointment_json(a) for a in appointments])


# ---------------------------------------------------------------------------- the front desk


@bp.post("/organization/slots/<int:slot_id>/walk-in")
@token_required
def walk_in(slot_id: int):
    """Staff give a walk-in patient (no account) a place and the next token, like an online booking."""
    hospital_id = _staff_hospital_id()
    data = json_body("patientName", "contactNumber")
    try:
        booking = service.walk_in(slot_id, hospital_id, data["patientName"], str(data["contactNumber"]), data.get("email"))
    except ValidationFailed as error:
        raise _renamed(error) from None
    return jsonify(appointmentId=booking.appointment_id, tokenNumber=booking.token_number, remainingSlots=booking.remaining), 201


def _reason() -> str:
    return json_body("reason")["reason"]


@bp.post("/organization/appointments/<int:appointment_id>/cancel")
@token_required
def staff_cancel_appointment(appointment_id: int):
    """Staff cancel one of their hospital's appointments with a reason; the patient is emailed it."""
    hospital_id = _staff_hospital_id()
    cancelled = service.staff_cancel(appointment_id, hospital_id, _reason())
    return jsonify(appointment=appointment_json(cancelled))


@bp.post("/organization/slots/<int:slot_id>/cancel")
@token_required
def cancel_session(slot_id: int):
    """Staff cancel a whole session with a reason: its appointments and waiting list are cancelled and emailed."""
    hospital_id = _staff_hospital_id()
    result = service.cancel_session(slot_id, hospital_id, _reason())
    return jsonify(
        cancelled=result.cancelled,
        notified=result.notified,
        waitlistNotified=result.waitlist_notified,
        toPhone=[{"tokenNumber": token, "patientName": name, "contactNumber": contact} for token, name, contact in result.to_phone],
    )


@bp.post("/appointments/<int:appointment_id>/reschedule")
@token_required
def reschedule(appointment_id: int):
    """Move the caller's appointment to another session in one step: a new token there, the old place released."""
    data = json_body("slotId")
    try:
        moved = service.move_appointment(appointment_id, _int_arg(data["slotId"], "slotId"), api_user_id())
    except ValidationFailed as error:
        raise _renamed(error) from None
    return jsonify(appointmentId=moved.appointment_id, tokenNumber=moved.token_number, slotId=moved.slot_id)


@bp.post("/slots/<int:slot_id>/waitlist")
@token_required
def join_waitlist(slot_id: int):
    """Join a full session's waiting list; the first person waiting gets the next freed place automatically."""
    data = json_body("patientName", "contactNumber")
    try:
        waiting = service.join_waitlist(slot_id, api_user_id(), data["patientName"], str(data["contactNumber"]))
    except ValidationFailed as error:
        raise _renamed(error) from None
    return jsonify(waitlistId=waiting.entry_id, position=waiting.position), 201


@bp.delete("/waitlist/<int:waitlist_id>")
@token_required
def leave_waitlist(waitlist_id: int):
    """Leave a waiting list (harmless if already left)."""
    entry = service.leave_waitlist(waitlist_id, api_user_id())
    return jsonify(waitlistId=entry.id, status=entry.status)


# ---------------------------------------------------------------------------- OpenAPI

_SECURED = [{"bearer": []}]
_NOT_FOUND = openapi.error_response("Not found (also for another hospital's objects)")


def _path(name: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "integer"}}


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
                "parameters": [_path("appointment_id")],
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
                        "Upcoming and past appointments, and places on waiting lists",
                        {
                            "type": "object",
                            "properties": {
                                "upcoming": {"type": "array", "items": openapi.ref("Appointment")},
                                "past": {"type": "array", "items": openapi.ref("Appointment")},
                                "waitlist": {"type": "array", "items": openapi.ref("WaitlistEntry")},
                            },
                        },
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
        "/organization/slots/{slot_id}/walk-in": {
            "post": {
                "summary": "Staff: give a walk-in patient a place and the next token (the same rule as an online booking)",
                "security": _SECURED,
                "parameters": [_path("slot_id")],
                "requestBody": openapi.json_body("WalkIn"),
                "responses": {
                    "201": openapi.json_response("Booked", openapi.ref("WalkInResult")),
                    "401": openapi.UNAUTHORIZED,
                    "404": openapi.error_response("Slot not found (also another hospital's)"),
                    "409": openapi.error_response('"This slot is fully booked", "This session was cancelled" or "Slot availability changed, please refresh"'),
                    "422": openapi.INVALID,
                },
            }
        },
        "/organization/appointments/{appointment_id}/cancel": {
            "post": {
                "summary": "Staff: cancel one appointment with a reason; the patient is emailed the reason and a link to book again",
                "security": _SECURED,
                "parameters": [_path("appointment_id")],
                "requestBody": openapi.json_body("Reason"),
                "responses": {
                    "200": openapi.json_response("Cancelled; the place went to the first person waiting, if any", {"type": "object", "properties": {"appointment": openapi.ref("Appointment")}}),
                    "401": openapi.UNAUTHORIZED,
                    "404": openapi.error_response("Appointment not found (also another hospital's)"),
                    "409": openapi.error_response("Already cancelled, or the session is over"),
                    "422": openapi.INVALID,
                },
            }
        },
        "/organization/slots/{slot_id}/cancel": {
            "post": {
                "summary": "Staff: cancel a whole session (the doctor is unavailable) with a reason",
                "description": "Every booked or arrived appointment is cancelled; each patient with an email address is emailed the reason "
                "and a one-click link to move to another session; the waiting list is emailed too; the session leaves search. Final: "
                "unlike closing, a cancelled session cannot be reopened.",
                "security": _SECURED,
                "parameters": [_path("slot_id")],
                "requestBody": openapi.json_body("Reason"),
                "responses": {
                    "200": openapi.json_response(
                        "Cancelled",
                        {
                            "type": "object",
                            "properties": {
                                "cancelled": {"type": "integer", "description": "Appointments cancelled"},
                                "notified": {"type": "integer", "description": "Of them, emailed"},
                                "waitlistNotified": {"type": "integer", "description": "People on the waiting list emailed"},
                                "toPhone": {
                                    "type": "array",
                                    "description": "Walk-ins without an email address: phone them",
                                    "items": {"type": "object", "properties": {"tokenNumber": {"type": "integer"}, "patientName": {"type": "string"}, "contactNumber": {"type": "string"}}},
                                },
                            },
                        },
                    ),
                    "401": openapi.UNAUTHORIZED,
                    "404": openapi.error_response("Slot not found (also another hospital's)"),
                    "409": openapi.error_response("Already cancelled, or over"),
                    "422": openapi.INVALID,
                },
            }
        },
        "/appointments/{appointment_id}/reschedule": {
            "post": {
                "summary": "Move one's appointment to another session (the same doctor, or the same specialization at the same hospital)",
                "description": "One transaction: a new token in the new session and the old place released, or nothing changes. "
                "Also replaces, once, an appointment whose session the hospital cancelled.",
                "security": _SECURED,
                "parameters": [_path("appointment_id")],
                "requestBody": openapi.json_body("Reschedule"),
                "responses": {
                    "200": openapi.json_response(
                        "Moved",
                        {"type": "object", "properties": {"appointmentId": {"type": "integer", "description": "The new appointment"}, "tokenNumber": {"type": "integer"}, "slotId": {"type": "integer"}}},
                    ),
                    "401": openapi.UNAUTHORIZED,
                    "404": openapi.error_response('"Appointment not found" or "Slot not found"'),
                    "409": openapi.error_response('"This slot is fully booked" (the old appointment is untouched), or the appointment can no longer be moved'),
                    "422": openapi.INVALID,
                },
            }
        },
        "/slots/{slot_id}/waitlist": {
            "post": {
                "summary": "Join a full session's waiting list",
                "description": "When a place frees (a cancellation, a move away, more places), the first person waiting gets it at once, "
                "with the next token, and is emailed.",
                "security": _SECURED,
                "parameters": [_path("slot_id")],
                "requestBody": openapi.json_body("JoinWaitlist"),
                "responses": {
                    "201": openapi.json_response("On the list", {"type": "object", "properties": {"waitlistId": {"type": "integer"}, "position": {"type": "integer", "example": 1}}}),
                    "401": openapi.UNAUTHORIZED,
                    "404": openapi.error_response("Slot not found"),
                    "409": openapi.error_response("The session has free places (book instead), is closed, cancelled or over, or the patient already waits"),
                    "422": openapi.INVALID,
                },
            }
        },
        "/waitlist/{waitlist_id}": {
            "delete": {
                "summary": "Leave a waiting list",
                "security": _SECURED,
                "parameters": [_path("waitlist_id")],
                "responses": {
                    "200": openapi.json_response("Left", {"type": "object", "properties": {"waitlistId": {"type": "integer"}, "status": {"const": "left"}}}),
                    "401": openapi.UNAUTHORIZED,
                    "404": openapi.error_response("Waiting-list entry not found (also another person's)"),
                    "409": openapi.error_response("A place already freed up: the entry became an appointment (cancel that instead)"),
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
                "status": {"type": "string", "enum": ["Available", "Almost full", "Fully booked", "Closed", "Past", "Cancelled"]},
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
        "WalkIn": {
            "type": "object",
            "required": ["patientName", "contactNumber"],
            "properties": {
                "patientName": {"type": "string"},
                "contactNumber": {"type": "string", "pattern": "^[0-9]{10}$"},
                "email": {"type": "string", "format": "email", "description": "Optional: the token, and any cancellation, are emailed there"},
            },
        },
        "WalkInResult": {
            "type": "object",
            "properties": {"appointmentId": {"type": "integer"}, "tokenNumber": {"type": "integer", "example": 104}, "remainingSlots": {"type": "integer"}},
        },
        "Reason": {"type": "object", "required": ["reason"], "properties": {"reason": {"type": "string", "maxLength": service.MAX_REASON}}},
        "Reschedule": {"type": "object", "required": ["slotId"], "properties": {"slotId": {"type": "integer"}}},
        "JoinWaitlist": {
            "type": "object",
            "required": ["patientName", "contactNumber"],
            "properties": {"patientName": {"type": "string"}, "contactNumber": {"type": "string", "pattern": "^[0-9]{10}$"}},
        },
        "WaitlistEntry": {
            "type": "object",
            "properties": {
                "waitlistId": {"type": "integer"},
                "slotId": {"type": "integer"},
                "patientName": {"type": "string"},
                "contactNumber": {"type": "string"},
                "status": {"type": "string", "enum": list(WaitlistEntry.STATUSES)},
                "position": {"type": "integer", "description": "1 = the next freed place is theirs"},
                "joinedAt": {"type": "string", "format": "date-time"},
                "slot": openapi.ref("Slot"),
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
                "walkIn": {"type": "boolean", "description": "Given at the front desk (no account)"},
                "cancelledBy": {"type": ["string", "null"], "enum": [Appointment.BY_PATIENT, Appointment.BY_STAFF, Appointment.BY_SESSION, Appointment.BY_MOVE, None]},
                "cancelReason": {"type": ["string", "null"]},
                "movedFromId": {"type": ["integer", "null"], "description": "The appointment this one replaced (a move)"},
                "movedToId": {"type": ["integer", "null"], "description": "The appointment that replaced this one (a move)"},
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
