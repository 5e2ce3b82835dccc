"""Expert endpoints of the JSON API (seed 002): become an expert, event types (services),
availability, bookings, and accept/decline/cancel. Bearer tokens as everywhere in the API."""
from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from flask import jsonify, request

from expertbook.api import fields, openapi
from expertbook.api.base import api_user, api_user_id, bp, json_body, query_args, token_required, user_json
from expertbook.errors import NotFound, ValidationFailed
from expertbook.experts import limits as guest_limits
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


def _renamed(error: ValidationFailed, names: dict[str, str]) -> ValidationFailed:
    """The service's field errors under the API's field names."""
    return ValidationFailed({names.get(k, k): v for k, v in error.errors.items()}, error.message)


@bp.post("/auth/become-expert")
@token_required
def become_expert():
    """Make the caller an expert with a profile; omitted fields default from the account (zone: UTC)."""
    data = json_body(optional=True)
    display_name = data.string("displayName", max_length=120)
    headline = data.string("headline", max_length=160)
    bio = data.string("bio", max_length=4000)
    handle = data.string("handle", default=None, max_length=40)
    timezone = data.string("timezone", max_length=64)
    data.check()
    user = api_user()
    try:
        service.create_profile(
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
    query = query_args()
    expert_id = query.id("expertId", not_found="Expert not found")
    query.check()
    if "expertId" in request.args:
        profile = service.published_profile(expert_id, api_user_id())
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
    data = json_body()
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
    query = query_args()
    day = query.day("date", required=True)
    service_id = query.id("serviceId", not_found="Service not found")
    tz = query.string("tz", max_length=64)
    query.check()
    profile = service.published_profile(expert_id, api_user_id())
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


def _booking_fields(data: fields.Reader, *, guest: bool) -> dict[str, Any]:
    """The fields of a new booking. A guest must send name and email; an account's default to its own
    when left out (sent, they must be valid: an empty name is not a name)."""
    return {
        "service_id": data.id("serviceId", required=True, not_found="Service not found"),
        "start": data.moment("start", required=True),
        "name": data.string("name", required=guest, default=None, max_length=120),
        "email": data.string("email", required=guest, default=None, max_length=254),
        "phone": data.string("phone", max_length=40),
        "notes": data.string("notes", max_length=2000),
        "timezone": data.string("timezone", default="UTC", max_length=64),
    }


def _book(user_id: int | None, values: dict[str, Any]) -> Booking:
    key = fields.header("Idempotency-Key", max_length=service.MAX_IDEMPOTENCY_KEY)
    try:
        return service.book(
            user_id,
            values["service_id"],
            values["start"],
            name=values["name"],
            email=values["email"],
            phone=values["phone"],
            notes=values["notes"],
            customer_timezone=values["timezone"],
            idempotency_key=key,
        )
    except ValidationFailed as error:
        raise _renamed(error, {"customer_timezone": "timezone"}) from None


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
    data = json_body()
    values = _booking_fields(data, guest=True)
    data.check()
    booking = _book(None, values)
    if booking.replayed:
        # The private link went out in the first answer and by email; a repeat does not hand it out again.
        return jsonify(booking=booking_json(booking, None)), 200
    return jsonify(booking=booking_json(booking, None), manageUrl=service.manage_url(booking)), 201


@token_required
def _create_booking_with_account():
    """The booking of the bearer token's account (name and email default from it)."""
    data = json_body()
    values = _booking_fields(data, guest=False)
    data.check()
    user = api_user()
    values["name"] = user.name if values["name"] is None else values["name"]
    values["email"] = user.email if values["email"] is None else values["email"]
    booking = _book(user.id, values)
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


ACTIONS = ("cancel", "accept", "decline", "reschedule")


@bp.patch("/bookings/<int:booking_id>")
@token_required
def change_booking(booking_id: int):
    """``{"action": "cancel"|"accept"|"decline"|"reschedule", "reason"?, "start"?}``: cancel or move it (either
    party; a move needs ``start``), or answer a request (expert). A move to a time just taken answers 409."""
    data = json_body()
    action = data.choice("action", ACTIONS, required=True)
    reason = data.string("reason", max_length=1000)
    start = data.moment("start", required=action == "reschedule")
    data.check()
    user = api_user()
    if action == "cancel":
        booking = service.cancel(user.id, booking_id, reason)
    elif action == "reschedule":
        booking = service.reschedule(user.id, booking_id, start, reason)
    else:
        booking = service.respond(user.id, booking_id, action == "accept")
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


_NOT_FOUND = openapi.error_response("Not found (or not yours)")
_CONFLICT = openapi.error_response('"That time was just taken. Please pick another." or the request was already answered')
_BOOKING = openapi.answer({"booking": openapi.ref("Booking")})
_FEED = openapi.json_response("The feed's address", openapi.ref("CalendarFeed"))
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
                "Book a time (confirmed at once, or pending if the service requires acceptance); "
                "without a bearer token, as a guest with name and email",
                {
                    "201": openapi.json_response("Booked (a guest booking also carries manageUrl)", openapi.ref("BookingCreated")),
                    "200": openapi.json_response("The booking this Idempotency-Key already made", openapi.ref("BookingCreated")),
                    "404": _NOT_FOUND,
                    "409": _CONFLICT,
                    "429": openapi.error_response("Too many guest bookings from this address or for this email"),
                },
                optional_bearer=True,
                body=openapi.json_body("BookingInput"),
                description="With a bearer token the booking is the account's (name and email default from it). Without one "
                "it is a guest booking: `name` and `email` are required, `phone` and `notes` optional, and the "
                "answer carries `manageUrl`, the private link (signed, valid until the booking has ended) to view, "
                "move or cancel it; guest bookings are throttled per client address and per email (429).",
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
            "get": openapi.operation(
                "One booking, for its customer or its expert",
                {"200": openapi.json_response("The booking", _BOOKING), "404": _NOT_FOUND},
                parameters=[openapi.path_id("booking_id")],
            ),
            "patch": openapi.operation(
                "Cancel or reschedule (customer or expert), accept or decline (expert) a booking",
                {"200": openapi.json_response("Changed", _BOOKING), "404": _NOT_FOUND, "409": _CONFLICT},
                body=openapi.json_body("BookingAction"),
                parameters=[openapi.path_id("booking_id")],
                description='Reschedule: `{"action": "reschedule", "start": "<ISO instant>", "reason"?}` moves the booking to '
                "another free time of the same service under the booking rules (hours, buffers, notice, no overlap). "
                "A booking that needs acceptance goes back to pending when its customer moves it. The calendar UID "
                "stays and `icsSequence` goes up; a Zoom meeting is moved, not re-created (same join link). "
                "409 when the time was just taken.",
            ),
        },
        "/calendar-feed": {
            "get": openapi.operation("The caller's private calendar subscription address (null while off)", {"200": _FEED}),
            "delete": openapi.operation("Turn the calendar feed off (its address answers 404)", {"204": {"description": "Off"}}),
        },
        "/calendar-feed/reset": {
            "post": openapi.operation("Turn the calendar feed on, or give it a new address (the old one stops working)", {"200": _FEED}),
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
                "name": openapi.text(120, minLength=1, description="Default: the account's name; required for a guest"),
                "email": openapi.text(254, format="email", description="Default: the account's email; required for a guest"),
                "phone": openapi.text(40),
                "notes": openapi.text(2000),
                "timezone": openapi.text(64, description="The customer's IANA zone (default UTC)"),
            },
            ["serviceId", "start"],
        ),
        "BookingAction": openapi.obj(
            {
                "action": {"type": "string", "enum": list(ACTIONS)},
                "reason": openapi.text(1000, description="cancel and reschedule: shown to the other party"),
                "start": {**openapi.DATE_TIME, "description": "reschedule (required): the new start, one of the availability slots"},
            },
            ["action"],
            # A move needs its new start.
            anyOf=[
                {"properties": {"action": {"enum": ["cancel", "accept", "decline"]}}},
                {"required": ["action", "start"], "properties": {"action": {"const": "reschedule"}}},
            ],
        ),
        "BookingCreated": openapi.obj(
            {
                "booking": openapi.ref("Booking"),
                "manageUrl": {"type": "string", "format": "uri", "description": "Guest bookings only: the private manage link"},
            },
            ["booking"],
            additionalProperties=False,
        ),
        "CalendarFeed": openapi.answer(
            {
                "url": {"type": ["string", "null"], "format": "uri", "description": "https address of the iCalendar feed"},
                "webcalUrl": {"type": ["string", "null"], "description": "the same address as webcal:// (opens the calendar app)"},
            }
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
                "rescheduledFrom": {"type": ["string", "null"], "format": "date-time", "description": "the start before the last move"},
                "rescheduleReason": {"type": "string"},
                "isGuest": {"type": "boolean", "description": "made without an account and not claimed by one yet"},
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
                        "provider": {"type": "string", "enum": ["zoom", "jitsi", "meet"]},
                        "meetingId": {"type": ["string", "null"], "description": "Zoom's 64-bit meeting id, as a string"},
                        "status": {"type": "string", "enum": ["pending", "created", "reauth_needed", "failed", "deleted"]},
                        "linkPending": openapi.BOOLEAN,
                        "joinUrl": {"type": ["string", "null"]},
                        "password": {"type": ["string", "null"]},
                        "startPath": {"type": ["string", "null"]},
                    },
                },
                "requiresReAuth": {"type": "boolean", "description": "the meeting waits for the expert to re-authorize Zoom or Google (the expert has been emailed)"},
            }
        ),
    },
)
