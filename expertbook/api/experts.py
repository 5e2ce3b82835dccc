"""Expert endpoints of the JSON API (seed 002): become an expert, event types (services),
availability, bookings, and accept/decline/cancel. Bearer tokens as everywhere in the API."""
from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import jsonify, request

from expertbook.api import openapi
from expertbook.api.base import api_user, api_user_id, bp, json_body, token_required, user_json
from expertbook.errors import NotFound, ValidationFailed
from expertbook.experts import limits as guest_limits
from expertbook.experts import service
from expertbook.experts.models import STATUSES, Booking, ExpertProfile, Service
from expertbook.extensions import db


def expert_json(profile: ExpertProfile) -> dict[str, Any]:
    """The public JSON shape of an expert profile."""
    return {
        "id": profile.id,
        "userId": profile.user_id,
        "displayName": profile.display_name,
        "headline": profile.headline,
        "bio": profile.bio,
        "handle": profile.handle,
        "timezone": profile.timezone,
    }


def event_type_json(svc: Service) -> dict[str, Any]:
    """The JSON shape of a service ("event type")."""
    return {
        "id": svc.id,
        "expertId": svc.expert_id,
        "title": svc.title,
        "slug": svc.slug,
        "description": svc.description,
        "duration": svc.duration_min,
        "price": svc.price_cents / 100,
        "currency": svc.currency,
        "location": svc.location_kind,
        "locationDetail": svc.location_detail,
        "requiresAcceptance": svc.requires_acceptance,
        "bufferBefore": svc.buffer_before_min,
        "bufferAfter": svc.buffer_after_min,
        "minNotice": svc.min_notice_min,
        "horizonDays": svc.horizon_days,
        "hidden": svc.hidden,
        "videoProvider": svc.video_provider,
        "recordMeetings": svc.record_meetings,
    }


def booking_json(booking: Booking, user_id: int | None) -> dict[str, Any]:
    """The JSON shape of a booking, as its customer or expert sees it (``user_id`` None: the guest who made it)."""
    return {
        "id": booking.id,
        "status": booking.status,
        "role": "expert" if booking.expert.user_id == user_id else "customer",
        "serviceId": booking.service_id,
        "serviceTitle": booking.service.title,
        "expertId": booking.expert_id,
        "expertName": booking.expert.display_name,
        "customerName": booking.customer_name,
        "customerEmail": booking.customer_email,
        "customerPhone": booking.customer_phone,
        "notes": booking.notes,
        "start": booking.start_at.isoformat(),
        "end": booking.end_at.isoformat(),
        "customerTimezone": booking.customer_timezone,
        "cancelReason": booking.cancel_reason,
        "cancelledBy": booking.cancelled_by,
        "rescheduledFrom": booking.rescheduled_from.isoformat() if booking.rescheduled_from else None,
        "rescheduleReason": booking.reschedule_reason,
        "isGuest": booking.is_guest,
        "icsSequence": booking.ics_sequence,
        "createdAt": booking.created_at.isoformat(),
        "updatedAt": booking.updated_at.isoformat(),
        **meeting_json(booking, user_id),
    }


def meeting_json(booking: Booking, user_id: int | None) -> dict[str, Any]:
    """``meeting`` (null for bookings without one) and ``requiresReAuth`` (seed 001).

    The join link goes to the customer only; the expert starts the meeting through ``startPath``,
    which fetches a fresh host link at click time (Zoom's start URL is never stored or sent).
    """
    from expertbook.video import meetings

    meeting = meetings.meeting_for(booking.id) if booking.service.location_kind == "video" else None
    if meeting is None:
        return {"meeting": None, "requiresReAuth": False}
    as_expert = booking.expert.user_id == user_id
    created = meeting.status == "created"
    data = {
        "provider": meeting.provider,
        "meetingId": str(meeting.external_id) if meeting.external_id is not None else None,
        "status": meeting.status,
        "linkPending": meeting.status in ("pending", "reauth_needed"),
    }
    if as_expert:
        data["startPath"] = meetings.start_path(booking.id) if created else None
    else:
        data["joinUrl"] = meeting.join_url if created else None
        data["password"] = meeting.password if created else None
    return {"meeting": data, "requiresReAuth": meetings.requires_reauth(meeting)}


@bp.post("/auth/become-expert")
@token_required
def become_expert():
    """Make the caller an expert with a profile; omitted fields default from the account (zone: UTC)."""
    data = request.get_json(silent=True)
    data = data if isinstance(data, dict) else {}
    user = api_user()
    service.create_profile(
        user.id,
        str(data.get("displayName") or user.name),
        str(data.get("headline") or ""),
        str(data.get("bio") or ""),
        str(data.get("handle") or service.suggest_handle(user.name)),
        str(data.get("timezone") or "UTC"),
    )
    db.session.expire_all()
    return jsonify(user=user_json(db.session.get(type(user), user.id)), expert=expert_json(service.require_profile(user.id))), 201


@bp.get("/event-types")
@token_required
def event_types():
    """The caller's own services (hidden ones included), or ``?expertId=`` an expert's visible ones."""
    expert_id = request.args.get("expertId")
    if expert_id:
        profile = service.published_profile(_int_arg(expert_id, "expertId"), api_user_id())
        return jsonify(eventTypes=[event_type_json(s) for s in service.visible_services(profile.id)])
    if service.profile_of(api_user().id) is None:
        raise NotFound("You are not an expert yet; POST /api/auth/become-expert first")
    return jsonify(eventTypes=[event_type_json(s) for s in service.own_services(api_user().id)])


_EVENT_FIELDS = {
    "title": "title",
    "slug": "slug",
    "description": "description",
    "duration": "duration_min",
    "price": "price",
    "currency": "currency",
    "location": "location_kind",
    "locationDetail": "location_detail",
    "requiresAcceptance": "requires_acceptance",
    "bufferBefore": "buffer_before_min",
    "bufferAfter": "buffer_after_min",
    "minNotice": "min_notice_min",
    "horizonDays": "horizon_days",
    "hidden": "hidden",
    "videoProvider": "video_provider",
    "recordMeetings": "record_meetings",
}


@bp.post("/event-types")
@token_required
def create_event_type():
    """Create a service for the caller (who must be an expert)."""
    data = json_body("title", "duration")
    values = {internal: data.get(external) for external, internal in _EVENT_FIELDS.items()}
    values["price"] = "" if values["price"] is None else str(values["price"])
    try:
        svc = service.create_service(api_user().id, values)
    except ValidationFailed as error:
        inverse = {v: k for k, v in _EVENT_FIELDS.items()}
        raise ValidationFailed({inverse.get(k, k): v for k, v in error.errors.items()}, error.message) from None
    return jsonify(eventType=event_type_json(svc)), 201


def _int_arg(value, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValidationFailed({name: "Must be a whole number."}, f"{name} must be a whole number") from None


@bp.get("/experts/<int:expert_id>/availability")
@token_required
def availability(expert_id: int):
    """Free start times of one of the expert's services on ``date`` (in ``tz``, default the expert's zone)."""
    profile = service.published_profile(expert_id, api_user_id())
    try:
        day = date.fromisoformat(request.args.get("date", ""))
    except ValueError:
        raise ValidationFailed({"date": "Use YYYY-MM-DD."}, "date must be YYYY-MM-DD") from None
    zone = service.valid_timezone(request.args.get("tz") or profile.timezone, "tz")
    services = service.visible_services(profile.id)
    if request.args.get("serviceId"):
        wanted = _int_arg(request.args["serviceId"], "serviceId")
        services = [s for s in services if s.id == wanted]
    if not services:
        raise NotFound("Service not found")
    svc = services[0]
    starts = service.times_on(svc, day, zone)
    local = ZoneInfo(zone)
    return jsonify(
        expertId=profile.id,
        serviceId=svc.id,
        date=day.isoformat(),
        timezone=zone,
        expertTimezone=profile.timezone,
        slots=[
            {"start": s.isoformat(), "end": (s + service.rules_of(svc).duration).isoformat(), "localTime": s.astimezone(local).strftime("%H:%M")}
            for s in starts
        ],
    )


def _start(data: dict) -> datetime:
    try:
        start = datetime.fromisoformat(str(data["start"]).replace("Z", "+00:00"))
    except ValueError:
        start = None
    if start is None or start.tzinfo is None:
        raise ValidationFailed({"start": "Use an ISO 8601 time with an offset, e.g. 2026-03-02T09:00:00Z."}, "start must be an ISO 8601 time with an offset")
    return start.astimezone(UTC)


@bp.post("/bookings")
@guest_limits.guest_per_ip  # the booking page's buckets too: guests only (a request without a bearer token)
@guest_limits.guest_per_email
def create_booking():
    """Book a time. Send ``Idempotency-Key`` to make retries safe: a repeat answers the same booking (200).

    Without a bearer token it books as a guest: ``name`` and ``email`` are required, and the answer
    carries ``manageUrl``, the private link to view, move or cancel the booking (not in a repeat's
    answer: the link was emailed). Throttled per client address and per email.
    """
    if request.headers.get("Authorization"):
        return _create_booking_with_account()
    data = json_body("serviceId", "start", "name", "email")
    booking = service.book(
        None,
        _int_arg(data["serviceId"], "serviceId"),
        _start(data),
        name=str(data["name"]),
        email=str(data["email"]),
        phone=str(data.get("phone") or ""),
        notes=str(data.get("notes") or ""),
        customer_timezone=str(data.get("timezone") or "UTC"),
        idempotency_key=request.headers.get("Idempotency-Key", "").strip() or None,
    )
    if booking.replayed:
        # The private link went out in the first answer and by email; a repeat does not hand it out again.
        return jsonify(booking=booking_json(booking, None)), 200
    return jsonify(booking=booking_json(booking, None), manageUrl=service.manage_url(booking)), 201


@token_required
def _create_booking_with_account():
    data = json_body("serviceId", "start")
    user = api_user()
    key = request.headers.get("Idempotency-Key", "").strip() or None
    booking = service.book(
        user.id,
        _int_arg(data["serviceId"], "serviceId"),
        _start(data),
        name=str(data.get("name") or user.name),
        email=str(data.get("email") or user.email),
        phone=str(data.get("phone") or ""),
        notes=str(data.get("notes") or ""),
        customer_timezone=str(data.get("timezone") or "UTC"),
        idempotency_key=key,
    )
    return jsonify(booking=booking_json(booking, user.id)), 200 if booking.replayed else 201


@bp.get("/bookings")
@token_required
def list_bookings():
    """The caller's bookings as customer and as expert, soonest first."""
    user = api_user()
    bookings = {b.id: b for b in service.bookings_as_customer(user.id)}
    if service.profile_of(user.id) is not None:
        bookings.update({b.id: b for b in service.bookings_as_expert(user.id)})
    ordered = sorted(bookings.values(), key=lambda b: (b.start_at, b.id))
    return jsonify(bookings=[booking_json(b, user.id) for b in ordered])


@bp.get("/bookings/<int:booking_id>")
@token_required
def get_booking(booking_id: int):
    """One booking, for its customer or its expert; 404 for anyone else."""
    user_id = api_user_id()
    return jsonify(booking=booking_json(service.booking_for(user_id, booking_id), user_id))


_ACTIONS = ("cancel", "accept", "decline", "reschedule")


@bp.patch("/bookings/<int:booking_id>")
@token_required
def change_booking(booking_id: int):
    """``{"action": "cancel"|"accept"|"decline"|"reschedule", "reason"?, "start"?}``: cancel or move it (either
    party; a move needs ``start``), or answer a request (expert). A move to a time just taken answers 409."""
    data = json_body("action")
    user = api_user()
    action = data["action"]
    reason = str(data.get("reason") or "")
    if action == "cancel":
        booking = service.cancel(user.id, booking_id, reason)
    elif action in ("accept", "decline"):
        booking = service.respond(user.id, booking_id, action == "accept")
    elif action == "reschedule":
        booking = service.reschedule(user.id, booking_id, _start(json_body("action", "start")), reason)
    else:
        raise ValidationFailed({"action": 'Use "cancel", "accept", "decline" or "reschedule".'}, 'action must be "cancel", "accept", "decline" or "reschedule"')
    return jsonify(booking=booking_json(booking, user.id))


def _feed_json(user_id: int) -> dict[str, Any]:
    url, webcal_url = service.calendar_feed_urls(user_id)
    return {"url": url, "webcalUrl": webcal_url}


@bp.get("/calendar-feed")
@token_required
def calendar_feed():
    """The caller's private calendar subscription address (``url`` null while the feed is off)."""
    return jsonify(_feed_json(api_user_id()))


@bp.post("/calendar-feed/reset")
@token_required
def reset_calendar_feed():
    """Turn the feed on, or give it a new address (the old one stops working)."""
    service.reset_calendar_feed(api_user_id())
    return jsonify(_feed_json(api_user_id()))


@bp.delete("/calendar-feed")
@token_required
def revoke_calendar_feed():
    """Turn the feed off: its address answers 404 from now on."""
    service.revoke_calendar_feed(api_user_id())
    return "", 204


_BEARER = [{"bearer": []}]
_NOT_FOUND = openapi.error_response("Not found (or not yours)")
_CONFLICT = openapi.error_response('"That time was just taken. Please pick another." or the request was already answered')
_BOOKING = {"type": "object", "properties": {"booking": openapi.ref("Booking")}}
_FEED = openapi.json_response("The feed's address", openapi.ref("CalendarFeed"))

openapi.register(
    {
        "/auth/become-expert": {
            "post": {
                "summary": "Become an expert: creates the profile (defaults from the account) and Mon-Fri 08:00-17:00 hours",
                "security": _BEARER,
                "requestBody": {"required": False, "content": {"application/json": {"schema": openapi.ref("BecomeExpert")}}},
                "responses": {
                    "201": openapi.json_response("Now an expert", {"type": "object", "properties": {"user": openapi.ref("User"), "expert": openapi.ref("Expert")}}),
                    "401": openapi.UNAUTHORIZED,
                    "409": openapi.error_response("Already an expert"),
                    "422": openapi.INVALID,
                },
            }
        },
        "/event-types": {
            "get": {
                "summary": "The caller's services, or an expert's visible services with ?expertId=",
                "security": _BEARER,
                "parameters": [{"name": "expertId", "in": "query", "required": False, "schema": {"type": "integer"}}],
                "responses": {
                    "200": openapi.json_response("Services", {"type": "object", "properties": {"eventTypes": {"type": "array", "items": openapi.ref("EventType")}}}),
                    "401": openapi.UNAUTHORIZED,
                    "404": _NOT_FOUND,
                },
            },
            "post": {
                "summary": "Create a service (experts only)",
                "security": _BEARER,
                "requestBody": openapi.json_body("EventTypeInput"),
                "responses": {
                    "201": openapi.json_response("Created", {"type": "object", "properties": {"eventType": openapi.ref("EventType")}}),
                    "401": openapi.UNAUTHORIZED,
                    "404": _NOT_FOUND,
                    "422": openapi.INVALID,
                },
            },
        },
        "/experts/{expert_id}/availability": {
            "get": {
                "summary": "Free start times of a service on one date",
                "security": _BEARER,
                "parameters": [
                    {"name": "expert_id", "in": "path", "required": True, "schema": {"type": "integer"}},
                    {"name": "date", "in": "query", "required": True, "schema": {"type": "string", "format": "date"}},
                    {"name": "serviceId", "in": "query", "required": False, "schema": {"type": "integer"}, "description": "Default: the expert's first visible service"},
                    {"name": "tz", "in": "query", "required": False, "schema": {"type": "string"}, "description": "IANA zone the date is in; default the expert's"},
                ],
                "responses": {
                    "200": openapi.json_response("Free times", openapi.ref("Availability")),
                    "401": openapi.UNAUTHORIZED,
                    "404": _NOT_FOUND,
                    "422": openapi.INVALID,
                },
            }
        },
        "/bookings": {
            "get": {
                "summary": "The caller's bookings (as customer and as expert)",
                "security": _BEARER,
                "responses": {
                    "200": openapi.json_response("Bookings", {"type": "object", "properties": {"bookings": {"type": "array", "items": openapi.ref("Booking")}}}),
                    "401": openapi.UNAUTHORIZED,
                },
            },
            "post": {
                "summary": "Book a time (confirmed at once, or pending if the service requires acceptance); "
                           "without a bearer token, as a guest with name and email",
                "description": "With a bearer token the booking is the account's (name and email default from it). Without one "
                               "it is a guest booking: `name` and `email` are required, `phone` and `notes` optional, and the "
                               "answer carries `manageUrl`, the private link (signed, valid until the booking has ended) to view, "
                               "move or cancel it; guest bookings are throttled per client address and per email (429).",
                "security": [{"bearer": []}, {}],
                "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string", "maxLength": 80}, "description": "Repeat it on retries: the same booking is answered with 200"}],
                "requestBody": openapi.json_body("BookingInput"),
                "responses": {
                    "201": openapi.json_response("Booked (a guest booking also carries manageUrl)", openapi.ref("BookingCreated")),
                    "200": openapi.json_response("The booking this Idempotency-Key already made", openapi.ref("BookingCreated")),
                    "401": openapi.UNAUTHORIZED,
                    "404": _NOT_FOUND,
                    "409": _CONFLICT,
                    "422": openapi.INVALID,
                    "429": openapi.error_response("Too many guest bookings from this address or for this email"),
                },
            },
        },
        "/bookings/{booking_id}": {
            "get": {
                "summary": "One booking, for its customer or its expert",
                "security": _BEARER,
                "parameters": [{"name": "booking_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
                "responses": {
                    "200": openapi.json_response("The booking", _BOOKING),
                    "401": openapi.UNAUTHORIZED,
                    "404": _NOT_FOUND,
                },
            },
            "patch": {
                "summary": "Cancel or reschedule (customer or expert), accept or decline (expert) a booking",
                "description": 'Reschedule: `{"action": "reschedule", "start": "<ISO instant>", "reason"?}` moves the booking to '
                               "another free time of the same service under the booking rules (hours, buffers, notice, no overlap). "
                               "A booking that needs acceptance goes back to pending when its customer moves it. The calendar UID "
                               "stays and `icsSequence` goes up; a Zoom meeting is moved, not re-created (same join link). "
                               "409 when the time was just taken.",
                "security": _BEARER,
                "parameters": [{"name": "booking_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
                "requestBody": openapi.json_body("BookingAction"),
                "responses": {
                    "200": openapi.json_response("Changed", _BOOKING),
                    "401": openapi.UNAUTHORIZED,
                    "404": _NOT_FOUND,
                    "409": _CONFLICT,
                    "422": openapi.INVALID,
                },
            },
        },
        "/calendar-feed": {
            "get": {
                "summary": "The caller's private calendar subscription address (null while off)",
                "security": _BEARER,
                "responses": {"200": _FEED, "401": openapi.UNAUTHORIZED},
            },
            "delete": {
                "summary": "Turn the calendar feed off (its address answers 404)",
                "security": _BEARER,
                "responses": {"204": {"description": "Off"}, "401": openapi.UNAUTHORIZED},
            },
        },
        "/calendar-feed/reset": {
            "post": {
                "summary": "Turn the calendar feed on, or give it a new address (the old one stops working)",
                "security": _BEARER,
                "responses": {"200": _FEED, "401": openapi.UNAUTHORIZED},
            }
        },
    },
    {
        "BecomeExpert": {
            "type": "object",
            "properties": {
                "displayName": {"type": "string"},
                "headline": {"type": "string"},
                "bio": {"type": "string"},
                "handle": {"type": "string", "pattern": "^[a-z0-9-]{3,40}$"},
                "timezone": {"type": "string", "description": "IANA zone, default UTC"},
            },
        },
        "Expert": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "userId": {"type": "integer"},
                "displayName": {"type": "string"},
                "headline": {"type": "string"},
                "bio": {"type": "string"},
                "handle": {"type": "string"},
                "timezone": {"type": "string"},
            },
        },
        "EventTypeInput": {
            "type": "object",
            "required": ["title", "duration"],
            "properties": {
                "title": {"type": "string"},
                "slug": {"type": "string"},
                "description": {"type": "string"},
                "duration": {"type": "integer", "description": "Minutes (5-480)"},
                "price": {"type": "number"},
                "currency": {"type": "string", "description": "ISO 4217"},
                "location": {"type": "string", "enum": ["video", "in_person", "phone"]},
                "locationDetail": {"type": "string", "description": "Address or phone number"},
                "requiresAcceptance": {"type": "boolean"},
                "bufferBefore": {"type": "integer"},
                "bufferAfter": {"type": "integer"},
                "minNotice": {"type": "integer", "description": "Minutes"},
                "horizonDays": {"type": "integer"},
                "hidden": {"type": "boolean"},
                "videoProvider": {"type": "string", "enum": ["auto", "zoom", "jitsi"], "description": "video services: auto = Zoom if connected, else Jitsi"},
                "recordMeetings": {"type": "boolean", "description": "Zoom cloud recording"},
            },
        },
        "EventType": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "expertId": {"type": "integer"},
                "title": {"type": "string"},
                "slug": {"type": "string"},
                "description": {"type": "string"},
                "duration": {"type": "integer"},
                "price": {"type": "number"},
                "currency": {"type": "string"},
                "location": {"type": "string"},
                "locationDetail": {"type": "string"},
                "requiresAcceptance": {"type": "boolean"},
                "bufferBefore": {"type": "integer"},
                "bufferAfter": {"type": "integer"},
                "minNotice": {"type": "integer"},
                "horizonDays": {"type": "integer"},
                "hidden": {"type": "boolean"},
                "videoProvider": {"type": "string", "enum": ["auto", "zoom", "jitsi"], "description": "video services: auto = Zoom if connected, else Jitsi"},
                "recordMeetings": {"type": "boolean", "description": "Zoom cloud recording"},
            },
        },
        "Availability": {
            "type": "object",
            "properties": {
                "expertId": {"type": "integer"},
                "serviceId": {"type": "integer"},
                "date": {"type": "string", "format": "date"},
                "timezone": {"type": "string"},
                "expertTimezone": {"type": "string"},
                "slots": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"start": {"type": "string", "format": "date-time"}, "end": {"type": "string", "format": "date-time"}, "localTime": {"type": "string"}},
                    },
                },
            },
        },
        "BookingInput": {
            "type": "object",
            "required": ["serviceId", "start"],
            "properties": {
                "serviceId": {"type": "integer"},
                "start": {"type": "string", "format": "date-time", "description": "One of the availability slots' start"},
                "name": {"type": "string", "description": "Default: the account's name; required for a guest"},
                "email": {"type": "string", "format": "email", "description": "Default: the account's email; required for a guest"},
                "phone": {"type": "string"},
                "notes": {"type": "string"},
                "timezone": {"type": "string", "description": "The customer's IANA zone (default UTC)"},
            },
        },
        "BookingAction": {
            "type": "object",
            "required": ["action"],
            "properties": {
                "action": {"type": "string", "enum": list(_ACTIONS)},
                "reason": {"type": "string"},
                "start": {"type": "string", "format": "date-time", "description": "reschedule: the new start, one of the availability slots"},
            },
        },
        "BookingCreated": {
            "type": "object",
            "properties": {
                "booking": openapi.ref("Booking"),
                "manageUrl": {"type": "string", "format": "uri", "description": "Guest bookings only: the private manage link"},
            },
        },
        "CalendarFeed": {
            "type": "object",
            "properties": {
                "url": {"type": ["string", "null"], "format": "uri", "description": "https address of the iCalendar feed"},
                "webcalUrl": {"type": ["string", "null"], "description": "the same address as webcal:// (opens the calendar app)"},
            },
        },
        "Booking": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "status": {"type": "string", "enum": list(STATUSES)},
                "role": {"type": "string", "enum": ["customer", "expert"]},
                "serviceId": {"type": "integer"},
                "serviceTitle": {"type": "string"},
                "expertId": {"type": "integer"},
                "expertName": {"type": "string"},
                "customerName": {"type": "string"},
                "customerEmail": {"type": "string"},
                "customerPhone": {"type": "string"},
                "notes": {"type": "string"},
                "start": {"type": "string", "format": "date-time"},
                "end": {"type": "string", "format": "date-time"},
                "customerTimezone": {"type": "string"},
                "cancelReason": {"type": "string"},
                "cancelledBy": {"type": ["integer", "null"]},
                "rescheduledFrom": {"type": ["string", "null"], "format": "date-time", "description": "the start before the last move"},
                "rescheduleReason": {"type": "string"},
                "isGuest": {"type": "boolean", "description": "made without an account and not claimed by one yet"},
                "icsSequence": {"type": "integer"},
                "createdAt": {"type": "string", "format": "date-time"},
                "updatedAt": {"type": "string", "format": "date-time"},
                "meeting": {
                    "type": ["object", "null"],
                    "description": "The video meeting (null without one). joinUrl/password: the customer only; "
                                   "startPath: the expert only (our route; it redirects to a fresh host link).",
                    "properties": {
                        "provider": {"type": "string", "enum": ["zoom", "jitsi"]},
                        "meetingId": {"type": ["string", "null"], "description": "Zoom's 64-bit meeting id, as a string"},
                        "status": {"type": "string", "enum": ["pending", "created", "reauth_needed", "failed", "deleted"]},
                        "linkPending": {"type": "boolean"},
                        "joinUrl": {"type": ["string", "null"]},
                        "password": {"type": ["string", "null"]},
                        "startPath": {"type": ["string", "null"]},
                    },
                },
                "requiresReAuth": {"type": "boolean", "description": "the meeting waits for the expert to re-authorize Zoom (the expert has been emailed)"},
            },
        },
    },
)
