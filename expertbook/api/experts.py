"""Expert endpoints of the JSON API (seed 002): become an expert, event types (services),
availability, bookings, and accept/decline/cancel. Bearer tokens as everywhere in the API."""
from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from flask import jsonify, request

from expertbook.api import fields, openapi
from expertbook.api.views import api_user, bp, token_required, user_json
from expertbook.errors import NotFound, ValidationFailed
from expertbook.experts import service
from expertbook.experts.models import LOCATION_KINDS, STATUSES, VIDEO_PROVIDERS, Booking, ExpertProfile, Service
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


def booking_json(booking: Booking, user_id: int) -> dict[str, Any]:
    """The JSON shape of a booking, as its customer or expert sees it."""
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
        "icsSequence": booking.ics_sequence,
        "createdAt": booking.created_at.isoformat(),
        "updatedAt": booking.updated_at.isoformat(),
        **meeting_json(booking, user_id),
    }


def meeting_json(booking: Booking, user_id: int) -> dict[str, Any]:
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


def _renamed(error: ValidationFailed, names: dict[str, str]) -> ValidationFailed:
    """The service's field errors under the API's field names."""
    return ValidationFailed({names.get(k, k): v for k, v in error.errors.items()}, error.message)


@bp.post("/auth/become-expert")
@token_required
def become_expert():
    """Make the caller an expert with a profile; omitted fields default from the account (zone: UTC)."""
    from expertbook.auth import service as accounts

    data = fields.body(optional=True)
    display_name = data.string("displayName", max_length=120)
    headline = data.string("headline", max_length=160)
    bio = data.string("bio", max_length=4000)
    handle = data.string("handle", default=None, max_length=40)
    timezone = data.string("timezone", max_length=64)
    data.check()
    user = api_user()
    try:
        accounts.become_expert(
            user.id,
            display_name or user.name,
            headline,
            bio,
            service.suggest_handle(user.name) if handle is None else handle,
            timezone or "UTC",
        )
    except ValidationFailed as error:
        raise _renamed(error, {"display_name": "displayName"}) from None
    db.session.expire_all()
    return jsonify(user=user_json(db.session.get(type(user), user.id)), expert=expert_json(service.require_profile(user.id))), 201


@bp.get("/event-types")
@token_required
def event_types():
    """The caller's own services (hidden ones included), or ``?expertId=`` an expert's visible ones."""
    query = fields.args()
    expert_id = query.id("expertId", not_found="Expert not found")
    query.check()
    if "expertId" in request.args:
        profile = db.session.get(ExpertProfile, expert_id)
        if profile is None:
            raise NotFound("Expert not found")
        return jsonify(eventTypes=[event_type_json(s) for s in service.visible_services(profile.id)])
    if service.profile_of(api_user().id) is None:
        raise NotFound("You are not an expert yet; POST /api/auth/become-expert first")
    return jsonify(eventTypes=[event_type_json(s) for s in service.own_services(api_user().id)])


# The API's names of a service's fields and the service layer's (the form's) names.
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
    """Create a service for the caller (who must be an expert). The bounds are the service form's."""
    data = fields.body()
    price = data.number("price")
    values = {
        "title": data.string("title", required=True, max_length=120),
        "slug": data.string("slug", max_length=60),
        "description": data.string("description", max_length=4000),
        "duration_min": data.integer("duration", required=True),
        "price": "" if price is None else str(price),
        "currency": data.string("currency", default="USD", max_length=3),
        "location_kind": data.choice("location", LOCATION_KINDS, default="video"),
        "location_detail": data.string("locationDetail", max_length=255),
        "requires_acceptance": data.boolean("requiresAcceptance"),
        "buffer_before_min": data.integer("bufferBefore", default=0),
        "buffer_after_min": data.integer("bufferAfter", default=0),
        "min_notice_min": data.integer("minNotice", default=60),
        "horizon_days": data.integer("horizonDays", default=60),
        "hidden": data.boolean("hidden"),
        "video_provider": data.choice("videoProvider", VIDEO_PROVIDERS, default="auto"),
        "record_meetings": data.boolean("recordMeetings"),
    }
    data.check()
    try:
        svc = service.create_service(api_user().id, values)
    except ValidationFailed as error:
        raise _renamed(error, {v: k for k, v in _EVENT_FIELDS.items()}) from None
    return jsonify(eventType=event_type_json(svc)), 201


@bp.get("/experts/<int:expert_id>/availability")
@token_required
def availability(expert_id: int):
    """Free start times of one of the expert's services on ``date`` (in ``tz``, default the expert's zone)."""
    query = fields.args()
    day = query.day("date", required=True)
    service_id = query.id("serviceId", not_found="Service not found")
    tz = query.string("tz", max_length=64)
    query.check()
    profile = db.session.get(ExpertProfile, expert_id)
    if profile is None:
        raise NotFound("Expert not found")
    zone = service.valid_timezone(tz or profile.timezone, "tz")
    services = service.visible_services(profile.id)
    if service_id is not None:
        services = [s for s in services if s.id == service_id]
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


@bp.post("/bookings")
@token_required
def create_booking():
    """Book a time. Send ``Idempotency-Key`` to make retries safe: a repeat answers the same booking (200)."""
    data = fields.body()
    service_id = data.id("serviceId", required=True, not_found="Service not found")
    start = data.moment("start", required=True)
    # Left out, they default to the account's; sent, they must be valid (an empty name is not a name).
    name = data.string("name", default=None, max_length=120)
    email = data.string("email", default=None, max_length=254)
    phone = data.string("phone", max_length=40)
    notes = data.string("notes", max_length=2000)
    timezone = data.string("timezone", default="UTC", max_length=64)
    data.check()
    key = fields.header("Idempotency-Key", max_length=service.MAX_IDEMPOTENCY_KEY)
    user = api_user()
    try:
        booking = service.book(
            user.id,
            service_id,
            start,
            name=user.name if name is None else name,
            email=user.email if email is None else email,
            phone=phone,
            notes=notes,
            customer_timezone=timezone,
            idempotency_key=key,
        )
    except ValidationFailed as error:
        raise _renamed(error, {"customer_timezone": "timezone"}) from None
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


@bp.patch("/bookings/<int:booking_id>")
@token_required
def change_booking(booking_id: int):
    """``{"action": "cancel"|"accept"|"decline", "reason": "..."}``: cancel (either party), or answer a request (expert)."""
    data = fields.body()
    action = data.choice("action", ACTIONS, required=True)
    reason = data.string("reason", max_length=1000)
    data.check()
    user = api_user()
    if action == "cancel":
        booking = service.cancel(user.id, booking_id, reason)
    else:
        booking = service.respond(user.id, booking_id, action == "accept")
    return jsonify(booking=booking_json(booking, user.id))


ACTIONS = ("cancel", "accept", "decline")
_NOT_FOUND = openapi.error_response("Not found (or not yours)")
_CONFLICT = openapi.error_response('"That time was just taken. Please pick another." or the request was already answered')
_BOOKING = openapi.answer({"booking": openapi.ref("Booking")})
_EVENT_TYPES = openapi.answer({"eventTypes": {"type": "array", "items": openapi.ref("EventType")}})
_LOCATIONS = list(LOCATION_KINDS)
_PROVIDERS = list(VIDEO_PROVIDERS)
_MINUTES = "Minutes"

openapi.register(
    {
        "/auth/become-expert": {
            "post": openapi.operation(
                "Become an expert: creates the profile (defaults from the account) and Mon-Fri 08:00-17:00 hours",
                {
                    "201": openapi.json_response("Now an expert", openapi.answer({"user": openapi.ref("User"), "expert": openapi.ref("Expert")})),
                    "409": openapi.error_response("Already an expert"),
                },
                body=openapi.json_body("BecomeExpert", required=False),
            )
        },
        "/event-types": {
            "get": openapi.operation(
                "The caller's services, or an expert's visible services with ?expertId=",
                {"200": openapi.json_response("Services", _EVENT_TYPES), "404": _NOT_FOUND},
                parameters=[openapi.query("expertId", openapi.ID)],
            ),
            "post": openapi.operation(
                "Create a service (experts only)",
                {"201": openapi.json_response("Created", openapi.answer({"eventType": openapi.ref("EventType")})), "404": _NOT_FOUND},
                body=openapi.json_body("EventTypeInput"),
            ),
        },
        "/experts/{expert_id}/availability": {
            "get": openapi.operation(
                "Free start times of a service on one date",
                {"200": openapi.json_response("Free times", openapi.ref("Availability")), "404": _NOT_FOUND},
                parameters=[
                    openapi.path_id("expert_id"),
                    openapi.query("date", openapi.DATE, required=True),
                    openapi.query("serviceId", openapi.ID, "Default: the expert's first visible service"),
                    openapi.query("tz", openapi.text(64), "IANA zone the date is in; default the expert's"),
                ],
            )
        },
        "/bookings": {
            "get": openapi.operation(
                "The caller's bookings (as customer and as expert)",
                {"200": openapi.json_response("Bookings", openapi.answer({"bookings": {"type": "array", "items": openapi.ref("Booking")}}))},
            ),
            "post": openapi.operation(
                "Book a time (confirmed at once, or pending if the service requires acceptance)",
                {
                    "201": openapi.json_response("Booked", _BOOKING),
                    "200": openapi.json_response("The booking this Idempotency-Key already made", _BOOKING),
                    "404": _NOT_FOUND,
                    "409": _CONFLICT,
                },
                body=openapi.json_body("BookingInput"),
                parameters=[
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "pattern": "^[ -~]*$", "maxLength": service.MAX_IDEMPOTENCY_KEY},
                        "description": "Printable ASCII; repeat it on retries: the same booking is answered with 200",
                    }
                ],
            ),
        },
        "/bookings/{booking_id}": {
            "patch": openapi.operation(
                "Cancel (customer or expert), accept or decline (expert) a booking",
                {"200": openapi.json_response("Changed", _BOOKING), "404": _NOT_FOUND, "409": _CONFLICT},
                body=openapi.json_body("BookingAction"),
                parameters=[openapi.path_id("booking_id")],
            )
        },
    },
    {
        "BecomeExpert": openapi.obj(
            {
                "displayName": openapi.text(120, description="Default: the account's name"),
                "headline": openapi.text(160),
                "bio": openapi.text(4000),
                "handle": openapi.text(40, description="3-40 lower-case letters, digits and single hyphens; default from the name"),
                "timezone": openapi.text(64, description="IANA zone, default UTC"),
            }
        ),
        "Expert": openapi.answer(
            {
                "id": openapi.ID,
                "userId": openapi.ID,
                "displayName": {"type": "string"},
                "headline": {"type": "string"},
                "bio": {"type": "string"},
                "handle": {"type": "string"},
                "timezone": {"type": "string"},
            }
        ),
        # The service form's bounds (expertbook/experts/forms.py), enforced by the same service rules.
        "EventTypeInput": openapi.obj(
            {
                "title": openapi.text(120, minLength=1),
                "slug": openapi.text(60, description="Lower-case letters, digits and single hyphens; default from the title"),
                "description": openapi.text(4000),
                "duration": openapi.integer(5, service.MAX_DURATION, description=_MINUTES),
                "price": {"type": "number", "minimum": 0, "maximum": 1_000_000, "description": "At most two decimals (whole cents); shown only"},
                "currency": openapi.text(3, description="ISO 4217, default USD"),
                "location": {"type": "string", "enum": _LOCATIONS, "default": "video"},
                "locationDetail": openapi.text(255, description="Address or phone number (needed for in_person and phone)"),
                "requiresAcceptance": openapi.BOOLEAN,
                "bufferBefore": openapi.integer(0, service.MAX_BUFFER, description=_MINUTES),
                "bufferAfter": openapi.integer(0, service.MAX_BUFFER, description=_MINUTES),
                "minNotice": openapi.integer(0, service.MAX_NOTICE, description=_MINUTES),
                "horizonDays": openapi.integer(1, service.MAX_HORIZON),
                "hidden": openapi.BOOLEAN,
                "videoProvider": {"type": "string", "enum": _PROVIDERS, "description": "video services: auto = Zoom if connected, else Jitsi"},
                "recordMeetings": {"type": "boolean", "description": "Zoom cloud recording"},
            },
            ["title", "duration"],
        ),
        "EventType": openapi.answer(
            {
                "id": openapi.ID,
                "expertId": openapi.ID,
                "title": {"type": "string"},
                "slug": {"type": "string"},
                "description": {"type": "string"},
                "duration": {"type": "integer"},
                "price": {"type": "number"},
                "currency": {"type": "string"},
                "location": {"type": "string", "enum": _LOCATIONS},
                "locationDetail": {"type": "string"},
                "requiresAcceptance": openapi.BOOLEAN,
                "bufferBefore": {"type": "integer"},
                "bufferAfter": {"type": "integer"},
                "minNotice": {"type": "integer"},
                "horizonDays": {"type": "integer"},
                "hidden": openapi.BOOLEAN,
                "videoProvider": {"type": "string", "enum": _PROVIDERS},
                "recordMeetings": openapi.BOOLEAN,
            }
        ),
        "Availability": openapi.answer(
            {
                "expertId": openapi.ID,
                "serviceId": openapi.ID,
                "date": {"type": "string", "format": "date"},
                "timezone": {"type": "string"},
                "expertTimezone": {"type": "string"},
                "slots": {
                    "type": "array",
                    "items": openapi.answer({"start": openapi.DATE_TIME, "end": openapi.DATE_TIME, "localTime": {"type": "string"}}),
                },
            }
        ),
        "BookingInput": openapi.obj(
            {
                "serviceId": openapi.ID,
                "start": {**openapi.DATE_TIME, "description": "One of the availability slots' start, with its offset (1900 to 2999)"},
                "name": openapi.text(120, minLength=1, description="Default: the account's name"),
                "email": openapi.text(254, format="email", description="Default: the account's email"),
                "phone": openapi.text(40),
                "notes": openapi.text(2000),
                "timezone": openapi.text(64, description="The customer's IANA zone (default UTC)"),
            },
            ["serviceId", "start"],
        ),
        "BookingAction": openapi.obj(
            {"action": {"type": "string", "enum": list(ACTIONS)}, "reason": openapi.text(1000, description="cancel: shown to the other party")},
            ["action"],
        ),
        "Booking": openapi.answer(
            {
                "id": openapi.ID,
                "status": {"type": "string", "enum": list(STATUSES)},
                "role": {"type": "string", "enum": ["customer", "expert"]},
                "serviceId": openapi.ID,
                "serviceTitle": {"type": "string"},
                "expertId": openapi.ID,
                "expertName": {"type": "string"},
                "customerName": {"type": "string"},
                "customerEmail": {"type": "string"},
                "customerPhone": {"type": "string"},
                "notes": {"type": "string"},
                "start": openapi.DATE_TIME,
                "end": openapi.DATE_TIME,
                "customerTimezone": {"type": "string"},
                "cancelReason": {"type": "string"},
                "cancelledBy": openapi.NULLABLE_ID,
                "icsSequence": {"type": "integer"},
                "createdAt": openapi.DATE_TIME,
                "updatedAt": openapi.DATE_TIME,
                "meeting": {
                    "type": ["object", "null"],
                    "description": "The video meeting (null without one). joinUrl/password: the customer only; "
                                   "startPath: the expert only (our route; it redirects to a fresh host link).",
                    "required": ["provider", "meetingId", "status", "linkPending"],
                    "additionalProperties": False,
                    "properties": {
                        "provider": {"type": "string", "enum": ["zoom", "jitsi"]},
                        "meetingId": {"type": ["string", "null"], "description": "Zoom's 64-bit meeting id, as a string"},
                        "status": {"type": "string", "enum": ["pending", "created", "reauth_needed", "failed", "deleted"]},
                        "linkPending": openapi.BOOLEAN,
                        "joinUrl": {"type": ["string", "null"]},
                        "password": {"type": ["string", "null"]},
                        "startPath": {"type": ["string", "null"]},
                    },
                },
                "requiresReAuth": {"type": "boolean", "description": "the meeting waits for the expert to re-authorize Zoom (the expert has been emailed)"},
            }
        ),
    },
)
