"""The clinic JSON API (seed 004): staff create slots, patients search and book, both list appointments.

Field names follow the seed (``slotId``, ``totalSlots``, ``tokenNumber``, ...). Errors are
``{"error": "<message>"}``; a 422 also names each invalid field in ``fields``.
"""
from __future__ import annotations

import re
from datetime import datetime, time
from typing import Any

from flask import jsonify

from expertbook.api import fields, openapi
from expertbook.api.base import api_session_hash, api_user, api_user_id, bp, json_body, query_args, token_required
from expertbook.auth import service as accounts
from expertbook.clinic import appointments, booking, inputs, moves, places, queue, sessions, states, waitlist
from expertbook.clinic import doctors as directory
from expertbook.clinic.models import Appointment, Doctor, Slot, WaitlistEntry
from expertbook.database import utcnow
from expertbook.errors import NotFound, ValidationFailed

# The service names fields as the web forms do; the API answers with the seed's names.
_API_FIELDS = {
    "slot_id": "slotId",
    "patient_name": "patientName",
    "contact_number": "contactNumber",
    "idempotency_key": "Idempotency-Key",
    "start_time": "timeSlot",
    "end_time": "timeSlot",
    "capacity": "totalSlots",
    "repeat_until": "repeatUntil",
}


def _renamed(error: ValidationFailed) -> ValidationFailed:
    renamed: dict[str, list[str]] = {}
    for name, messages in error.errors.items():
        if name.startswith("doctors-"):
            _, index, part = name.split("-", 2)
            name = f"doctors[{index}].{'doctorName' if part == 'name' else part}"
        renamed.setdefault(_API_FIELDS.get(name, name), []).extend(messages)
    return ValidationFailed(renamed, error.message)


def _staff_hospital_id() -> int:
    user = api_user()
    if not user.is_staff:
        # Patients are not told that staff endpoints exist.
        raise NotFound("Not found")
    return user.hospital_id


def _time_slot(slot: Slot) -> str:
    return f"{slot.start_time:%H:%M}-{slot.end_time:%H:%M}"


def slot_json(slot: Slot | places.SlotSnapshot, now: datetime | None = None) -> dict[str, Any]:
    """A slot in the seed's shape (from a loaded slot, or the snapshot a booking returns)."""
    now = now or utcnow()
    badge = states.slot_badge(slot, now)
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
        "isActive": states.is_bookable(slot, now),
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
    data = json_body()
    # Blank names are the service's to refuse (with the form's messages); here only the types.
    doctors = [
        (doctor.string("doctorName", max_length=120), doctor.string("specialization", max_length=120))
        for doctor in data.objects("doctors", required=True, max_items=sessions.MAX_DOCTORS_PER_FORM)
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
        created = sessions.create_slots(api_user().id, doctors, day, start, end, capacity, repeat_until, weekdays)
    except ValidationFailed as error:
        raise _renamed(error) from None
    now = utcnow()
    return jsonify(created=len(created.slots), skipped=created.skipped, slots=[slot_json(s, now) for s in created.slots]), 201


@bp.get("/organization/available-slots")
@token_required
def available_slots():
    """Slots a patient can book now; ``date``, ``location`` and ``specialization`` may each be left out."""
    query = query_args()
    day = query.day("date")
    location = query.string("location", max_length=120)
    specialization = query.string("specialization", max_length=120)
    query.check()
    slots = sessions.search_slots(day, location, specialization)
    now = utcnow()
    return jsonify(slots=[slot_json(s, now) for s in slots])


ALL_SLOTS_PAGE_SIZE = 200
MAX_PAGE = 10_000


@bp.get("/organization/all-slots")
@token_required
def all_slots():
    """Staff: their own hospital's slots with booking status, a page at a time (``date``, ``doctorId``, ``page``)."""
    hospital_id = _staff_hospital_id()
    query = query_args()
    page = query.integer("page", default=1, low=1, high=MAX_PAGE)
    day = query.day("date")
    doctor_id = query.id("doctorId", not_found="Doctor not found")
    query.check()
    slots, more = sessions.staff_slots(hospital_id, day, doctor_id, page=page, page_size=ALL_SLOTS_PAGE_SIZE, upcoming_only=False)
    now = utcnow()
    return jsonify(slots=[slot_json(s, now) for s in slots], page=page, hasMore=more)


def _patient(data: fields.Reader) -> tuple[str, str]:
    """The patient's name and contact number (their rules are the service's; here only the types)."""
    return data.string("patientName", required=True, max_length=120), data.string("contactNumber", required=True)


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
    data = json_body()
    slot_id = data.id("slotId", required=True, not_found=inputs.SLOT_NOT_FOUND)
    patient_name, contact_number = _patient(data)
    data.check()
    key = fields.header("Idempotency-Key", min_length=inputs.MIN_IDEMPOTENCY_KEY, max_length=inputs.MAX_IDEMPOTENCY_KEY)
    try:
        made = booking.book(slot_id, api_user_id(), patient_name, contact_number, key, api_session=api_session_hash())
    except ValidationFailed as error:
        raise _renamed(error) from None
    except NotFound as error:
        if error.message == inputs.ACCOUNT_NOT_FOUND:
            return jsonify(error="Invalid token"), 401
        raise
    if made.replayed:
        body = appointment_json(appointments.own_appointment(made.appointment_id, api_user_id()))
    else:
        # A new booking answers from what its UPDATE ... RETURNING and INSERT gave back: no read-back.
        body = {
            "appointmentId": made.appointment_id,
            "slotId": slot_id,
            "patientName": made.patient_name,
            "contactNumber": made.contact_number,
            "tokenNumber": made.token_number,
            "status": Appointment.BOOKED,
            "bookedAt": made.booked_at.isoformat(),
            **_NEW_BOOKING,
            "slot": slot_json(made.slot, made.booked_at),
        }
    response = jsonify(appointment=body, tokenNumber=made.token_number, remainingSlots=made.remaining)
    if made.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response, 201


@bp.post("/appointments/<int:appointment_id>/cancel")
@token_required
def cancel_appointment(appointment_id: int):
    """Cancel the caller's own upcoming appointment; the place is freed, the token is not reused."""
    queue.cancel(appointment_id, api_user().id)
    return jsonify(appointment=appointment_json(appointments.own_appointment(appointment_id, api_user().id)))


@bp.get("/appointments/my")
@token_required
def my_appointments():
    """The caller's own appointments: upcoming (soonest first), then past (latest first), and their
    places on waiting lists (``waitlist``, soonest session first, each with its position)."""
    upcoming, past = appointments.my_appointments(api_user().id)
    return jsonify(
        upcoming=[appointment_json(a) for a in upcoming],
        past=[appointment_json(a) for a in past],
        waitlist=[waitlist_json(entry, position) for entry, position in waitlist.my_waitlist(api_user().id)],
    )


@bp.get("/appointments/all")
@token_required
def all_appointments():
    """Staff: their own hospital's appointments (``slotId`` and ``date`` narrow it down)."""
    hospital_id = _staff_hospital_id()
    query = query_args()
    slot_id = query.id("slotId", not_found=inputs.SLOT_NOT_FOUND)
    day = query.day("date")
    query.check()
    return jsonify(appointments=[appointment_json(a) for a in appointments.hospital_appointments(hospital_id, slot_id, day)])


# ---------------------------------------------------------------------------- the front desk


@bp.post("/organization/slots/<int:slot_id>/walk-in")
@token_required
def walk_in(slot_id: int):
    """Staff give a walk-in patient (no account) a place and the next token, like an online booking."""
    hospital_id = _staff_hospital_id()
    data = json_body()
    patient_name, contact_number = _patient(data)
    email = data.string("email", default=None, max_length=accounts.MAX_EMAIL)
    data.check()
    try:
        given = booking.walk_in(slot_id, hospital_id, patient_name, contact_number, email)
    except ValidationFailed as error:
        raise _renamed(error) from None
    return jsonify(appointmentId=given.appointment_id, tokenNumber=given.token_number, remainingSlots=given.remaining), 201


def _reason() -> str:
    data = json_body()
    reason = data.string("reason", required=True, max_length=inputs.MAX_REASON)
    data.check()
    return reason


@bp.post("/organization/appointments/<int:appointment_id>/cancel")
@token_required
def staff_cancel_appointment(appointment_id: int):
    """Staff cancel one of their hospital's appointments with a reason; the patient is emailed it."""
    hospital_id = _staff_hospital_id()
    cancelled = queue.staff_cancel(appointment_id, hospital_id, _reason())
    return jsonify(appointment=appointment_json(cancelled))


@bp.post("/organization/slots/<int:slot_id>/cancel")
@token_required
def cancel_session(slot_id: int):
    """Staff cancel a whole session with a reason: its appointments and waiting list are cancelled and emailed."""
    hospital_id = _staff_hospital_id()
    result = sessions.cancel_session(slot_id, hospital_id, _reason())
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
    data = json_body()
    slot_id = data.id("slotId", required=True, not_found=inputs.SLOT_NOT_FOUND)
    data.check()
    try:
        moved = moves.move_appointment(appointment_id, slot_id, api_user_id())
    except ValidationFailed as error:
        raise _renamed(error) from None
    return jsonify(appointmentId=moved.appointment_id, tokenNumber=moved.token_number, slotId=moved.slot_id)


@bp.post("/slots/<int:slot_id>/waitlist")
@token_required
def join_waitlist(slot_id: int):
    """Join a full session's waiting list; the first person waiting gets the next freed place automatically."""
    data = json_body()
    patient_name, contact_number = _patient(data)
    data.check()
    try:
        waiting = waitlist.join_waitlist(slot_id, api_user_id(), patient_name, contact_number)
    except ValidationFailed as error:
        raise _renamed(error) from None
    return jsonify(waitlistId=waiting.entry_id, position=waiting.position), 201


@bp.delete("/waitlist/<int:waitlist_id>")
@token_required
def leave_waitlist(waitlist_id: int):
    """Leave a waiting list (harmless if already left)."""
    entry = waitlist.leave_waitlist(waitlist_id, api_user_id())
    return jsonify(waitlistId=entry.id, status=entry.status)


# ---------------------------------------------------------------------------- OpenAPI

# ---------------------------------------------------------------------------- staff: the doctors directory


def doctor_json(doctor: Doctor) -> dict[str, Any]:
    """One doctor of the directory, as the API shows it."""
    return {
        "doctorId": doctor.id,
        "doctorName": doctor.name,
        "specialization": doctor.specialization,
        "bio": doctor.bio,
        "active": doctor.active,
    }


def _doctor_errors(error: ValidationFailed) -> ValidationFailed:
    # The directory's service names the doctor's name "name"; the API, as in saveDetails, "doctorName".
    return ValidationFailed({("doctorName" if name == "name" else name): messages for name, messages in error.errors.items()}, error.message)


@bp.get("/organization/doctors")
@token_required
def doctors():
    """Staff: their hospital's doctors directory (active and inactive), by name."""
    return jsonify(doctors=[doctor_json(d) for d in directory.doctors_of(_staff_hospital_id())])


@bp.post("/organization/doctors")
@token_required
def add_doctor():
    """Staff: add a doctor to their hospital's directory; sessions are then created for them by name."""
    hospital_id = _staff_hospital_id()
    data = json_body()
    name = data.string("doctorName", required=True, max_length=120)
    specialization = data.string("specialization", required=True, max_length=120)
    bio = data.string("bio", max_length=directory.MAX_BIO)
    data.check()
    try:
        doctor = directory.add_doctor(hospital_id, name, specialization, bio)
    except ValidationFailed as error:
        raise _doctor_errors(error) from None
    return jsonify(doctor=doctor_json(doctor)), 201


@bp.patch("/organization/doctors/<int:doctor_id>")
@token_required
def update_doctor(doctor_id: int):
    """Staff: rename, re-describe or (de)activate a doctor; fields left out keep their value. Every
    session and search shows the change at once; an inactive doctor keeps their sessions."""
    hospital_id = _staff_hospital_id()
    current = directory.staff_doctor(doctor_id, hospital_id)  # 404 for another hospital's
    data = json_body()
    name = data.string("doctorName", default=None, max_length=120)
    specialization = data.string("specialization", default=None, max_length=120)
    bio = data.string("bio", default=None, max_length=directory.MAX_BIO)
    active = data.boolean("active", default=current.active)
    data.check()
    try:
        doctor = directory.update_doctor(
            doctor_id, hospital_id,
            current.name if name is None else name,
            current.specialization if specialization is None else specialization,
            current.bio if bio is None else bio,
            active,
        )
    except ValidationFailed as error:
        raise _doctor_errors(error) from None
    return jsonify(doctor=doctor_json(doctor))


_NOT_FOUND = openapi.error_response("Not found (also for another hospital's objects, and for patients on staff endpoints)")
_CLOCK_PATTERN = "([01][0-9]|2[0-3]):[0-5][0-9]"
_SLOTS = openapi.answer({"slots": {"type": "array", "items": openapi.ref("Slot")}})
_APPOINTMENT = openapi.answer({"appointment": openapi.ref("Appointment")})
_CONTACT = {"type": "string", "pattern": "^[ -]*([0-9][ -]*){10}$", "description": "10 digits; spaces and hyphens are ignored"}

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
                        "Upcoming and past appointments, and places on waiting lists",
                        openapi.answer(
                            {
                                "upcoming": {"type": "array", "items": openapi.ref("Appointment")},
                                "past": {"type": "array", "items": openapi.ref("Appointment")},
                                "waitlist": {"type": "array", "items": openapi.ref("WaitlistEntry")},
                            }
                        ),
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
        "/organization/slots/{slot_id}/walk-in": {
            "post": openapi.operation(
                "Staff: give a walk-in patient a place and the next token (the same rule as an online booking)",
                {
                    "201": openapi.json_response("Booked", openapi.ref("WalkInResult")),
                    "404": openapi.error_response("Slot not found (also another hospital's)"),
                    "409": openapi.error_response('"This slot is fully booked", "This session was cancelled" or "Slot availability changed, please refresh"'),
                },
                body=openapi.json_body("WalkIn"),
                parameters=[openapi.path_id("slot_id")],
            )
        },
        "/organization/appointments/{appointment_id}/cancel": {
            "post": openapi.operation(
                "Staff: cancel one appointment with a reason; the patient is emailed the reason and a link to book again",
                {
                    "200": openapi.json_response("Cancelled; the place went to the first person waiting, if any", _APPOINTMENT),
                    "404": openapi.error_response("Appointment not found (also another hospital's)"),
                    "409": openapi.error_response("Already cancelled, or the session is over"),
                },
                body=openapi.json_body("Reason"),
                parameters=[openapi.path_id("appointment_id")],
            )
        },
        "/organization/slots/{slot_id}/cancel": {
            "post": openapi.operation(
                "Staff: cancel a whole session (the doctor is unavailable) with a reason",
                {
                    "200": openapi.json_response(
                        "Cancelled",
                        openapi.answer(
                            {
                                "cancelled": {"type": "integer", "minimum": 0, "description": "Appointments cancelled"},
                                "notified": {"type": "integer", "minimum": 0, "description": "Of them, emailed"},
                                "waitlistNotified": {"type": "integer", "minimum": 0, "description": "People on the waiting list emailed"},
                                "toPhone": {
                                    "type": "array",
                                    "description": "Walk-ins without an email address: phone them",
                                    "items": openapi.answer({"tokenNumber": {"type": "integer"}, "patientName": {"type": "string"}, "contactNumber": {"type": "string"}}),
                                },
                            }
                        ),
                    ),
                    "404": openapi.error_response("Slot not found (also another hospital's)"),
                    "409": openapi.error_response("Already cancelled, or over"),
                },
                body=openapi.json_body("Reason"),
                parameters=[openapi.path_id("slot_id")],
                description="Every booked or arrived appointment is cancelled; each patient with an email address is emailed the reason "
                "and a one-click link to move to another session; the waiting list is emailed too; the session leaves search. Final: "
                "unlike closing, a cancelled session cannot be reopened.",
            )
        },
        "/appointments/{appointment_id}/reschedule": {
            "post": openapi.operation(
                "Move one's appointment to another session (the same doctor, or the same specialization at the same hospital)",
                {
                    "200": openapi.json_response(
                        "Moved",
                        openapi.answer({"appointmentId": {**openapi.ID, "description": "The new appointment"}, "tokenNumber": {"type": "integer"}, "slotId": openapi.ID}),
                    ),
                    "404": openapi.error_response('"Appointment not found" or "Slot not found"'),
                    "409": openapi.error_response('"This slot is fully booked" (the old appointment is untouched), or the appointment can no longer be moved'),
                },
                body=openapi.json_body("Reschedule"),
                parameters=[openapi.path_id("appointment_id")],
                description="One transaction: a new token in the new session and the old place released, or nothing changes. "
                "Also replaces, once, an appointment whose session the hospital cancelled.",
            )
        },
        "/slots/{slot_id}/waitlist": {
            "post": openapi.operation(
                "Join a full session's waiting list",
                {
                    "201": openapi.json_response("On the list", openapi.answer({"waitlistId": openapi.ID, "position": {"type": "integer", "minimum": 1, "example": 1}})),
                    "404": openapi.error_response("Slot not found"),
                    "409": openapi.error_response("The session has free places (book instead), is closed, cancelled or over, or the patient already waits"),
                },
                body=openapi.json_body("JoinWaitlist"),
                parameters=[openapi.path_id("slot_id")],
                description="When a place frees (a cancellation, a move away, more places), the first person waiting gets it at once, "
                "with the next token, and is emailed.",
            )
        },
        "/organization/doctors": {
            "get": openapi.operation(
                "Staff: their hospital's doctors directory",
                {"200": openapi.json_response("Every doctor, active or not, by name", openapi.answer({"doctors": {"type": "array", "items": openapi.ref("Doctor")}})), "404": _NOT_FOUND},
            ),
            "post": openapi.operation(
                "Staff: add a doctor to the directory",
                {
                    "201": openapi.json_response("Added (active)", openapi.answer({"doctor": openapi.ref("Doctor")})),
                    "404": _NOT_FOUND,
                },
                body=openapi.json_body("NewDoctor"),
                description="A doctor's name and specialization are unique in a hospital's directory (422 naming doctorName otherwise).",
            ),
        },
        "/organization/doctors/{doctor_id}": {
            "patch": openapi.operation(
                "Staff: rename, re-describe or (de)activate a doctor",
                {
                    "200": openapi.json_response("Changed; every session and search shows it at once", openapi.answer({"doctor": openapi.ref("Doctor")})),
                    "404": openapi.error_response("Doctor not found (also another hospital's)"),
                },
                body=openapi.json_body("DoctorChange"),
                parameters=[openapi.path_id("doctor_id")],
                description="Fields left out keep their value. An inactive doctor keeps their sessions but is not offered for new ones.",
            )
        },
        "/waitlist/{waitlist_id}": {
            "delete": openapi.operation(
                "Leave a waiting list",
                {
                    "200": openapi.json_response("Left", openapi.answer({"waitlistId": openapi.ID, "status": {"const": "left"}})),
                    "404": openapi.error_response("Waiting-list entry not found (also another person's)"),
                    "409": openapi.error_response("A place already freed up: the entry became an appointment (cancel that instead)"),
                },
                parameters=[openapi.path_id("waitlist_id")],
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
                "status": {"type": "string", "enum": ["Available", "Almost full", "Fully booked", "Closed", "Past", "Cancelled"]},
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
                    "maxItems": sessions.MAX_DOCTORS_PER_FORM,
                    "items": openapi.obj({"doctorName": openapi.text(120), "specialization": openapi.text(120)}, ["doctorName", "specialization"]),
                },
                "date": openapi.DATE,
                "timeSlot": {"type": "string", "pattern": f"^{_CLOCK_PATTERN}-{_CLOCK_PATTERN}$", "example": "09:00-12:00"},
                "startTime": {"type": "string", "pattern": f"^{_CLOCK_PATTERN}$", "description": "With endTime: instead of timeSlot"},
                "endTime": {"type": "string", "pattern": f"^{_CLOCK_PATTERN}$"},
                "totalSlots": openapi.integer(1, sessions.MAX_CAPACITY, default=10),
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
                "contactNumber": _CONTACT,
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
                "walkIn": {"type": "boolean", "description": "Given at the front desk (no account)"},
                "cancelledBy": {"type": ["string", "null"], "enum": [Appointment.BY_PATIENT, Appointment.BY_STAFF, Appointment.BY_SESSION, Appointment.BY_MOVE, None]},
                "cancelReason": {"type": ["string", "null"]},
                "movedFromId": {"type": ["integer", "null"], "description": "The appointment this one replaced (a move)"},
                "movedToId": {"type": ["integer", "null"], "description": "The appointment that replaced this one (a move)"},
                "slot": openapi.ref("Slot"),
            }
        ),
        "WalkIn": openapi.obj(
            {
                "patientName": openapi.text(120),
                "contactNumber": _CONTACT,
                "email": openapi.text(accounts.MAX_EMAIL, format="email", description="Optional: the token, and any cancellation, are emailed there"),
            },
            ["patientName", "contactNumber"],
        ),
        "WalkInResult": openapi.answer(
            {"appointmentId": openapi.ID, "tokenNumber": {"type": "integer", "example": 104}, "remainingSlots": {"type": "integer", "minimum": 0}}
        ),
        "Doctor": openapi.answer(
            {
                "doctorId": openapi.ID,
                "doctorName": {"type": "string"},
                "specialization": {"type": "string"},
                "bio": {"type": "string"},
                "active": {"type": "boolean", "description": "Offered for new sessions"},
            }
        ),
        "NewDoctor": openapi.obj(
            {"doctorName": openapi.text(120), "specialization": openapi.text(120), "bio": openapi.text(directory.MAX_BIO)},
            ["doctorName", "specialization"],
        ),
        "DoctorChange": openapi.obj(
            {"doctorName": openapi.text(120), "specialization": openapi.text(120), "bio": openapi.text(directory.MAX_BIO), "active": openapi.BOOLEAN}
        ),
        "Reason": openapi.obj({"reason": openapi.text(inputs.MAX_REASON)}, ["reason"]),
        "Reschedule": openapi.obj({"slotId": openapi.ID}, ["slotId"]),
        "JoinWaitlist": openapi.obj({"patientName": openapi.text(120), "contactNumber": _CONTACT}, ["patientName", "contactNumber"]),
        "WaitlistEntry": openapi.answer(
            {
                "waitlistId": openapi.ID,
                "slotId": openapi.ID,
                "patientName": {"type": "string"},
                "contactNumber": {"type": "string"},
                "status": {"type": "string", "enum": list(WaitlistEntry.STATUSES)},
                "position": {"type": "integer", "description": "1 = the next freed place is theirs"},
                "joinedAt": openapi.DATE_TIME,
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
