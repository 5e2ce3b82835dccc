"""The webhooks in ``/api/openapi.json``: OpenAPI 3.1's ``webhooks`` section, one entry per event.

Each entry is the POST we send: the three Standard Webhooks headers and the JSON envelope, whose
``data`` is described exactly (every property always present, nothing else), so an integrator can
generate a receiver from it. A test validates real payloads against these schemas.
"""
from __future__ import annotations

from typing import Any

from expertbook.api import openapi
from expertbook.webhooks import events

STRING = {"type": "string"}
NULLABLE_STRING = {"type": ["string", "null"]}
MOMENT = {"type": "string", "format": "date-time", "description": "RFC 3339, UTC (`Z`)"}
NULLABLE_MOMENT = {"type": ["string", "null"], "format": "date-time"}
INTEGER = {"type": "integer"}
NULLABLE_INTEGER = {"type": ["integer", "null"]}
BOOLEAN = {"type": "boolean"}

SCHEMAS: dict[str, Any] = {
    "WebhookSession": openapi.answer({
        "sessionId": INTEGER, "hospitalId": INTEGER, "hospitalName": STRING, "doctorId": INTEGER, "doctorName": STRING,
        "specialization": STRING, "date": {"type": "string", "format": "date"},
        "startTime": {"type": "string", "description": "HH:MM, the hospital's wall-clock time"},
        "endTime": {"type": "string", "description": "HH:MM"}, "timezone": {"type": "string", "description": "IANA zone of the hospital"},
        "startsAt": MOMENT, "endsAt": MOMENT, "capacity": INTEGER, "booked": INTEGER, "nowServing": NULLABLE_INTEGER,
        "cancelledAt": NULLABLE_MOMENT, "cancelReason": NULLABLE_STRING,
    }, description="A doctor's session (a slot)."),
    "WebhookAppointment": openapi.answer({
        "appointmentId": INTEGER, "tokenNumber": INTEGER,
        "status": {"type": "string", "description": "booked, arrived, no_show or cancelled (more states as the queue gains them)"},
        "patientName": STRING, "contactNumber": STRING, "walkIn": BOOLEAN, "bookedAt": MOMENT,
        "cancelledAt": NULLABLE_MOMENT,
        "cancelledBy": {"type": ["string", "null"], "description": "patient, staff, session or moved"},
        "cancelReason": NULLABLE_STRING, "movedFromId": NULLABLE_INTEGER, "movedToId": NULLABLE_INTEGER,
        "session": openapi.ref("WebhookSession"),
    }, description="A patient's appointment with its token number, as it was right after the event."),
    "WebhookWaitlistPromotion": openapi.answer({
        "waitlistId": INTEGER, "patientName": STRING, "joinedAt": MOMENT, "promotedAt": NULLABLE_MOMENT,
        "appointment": {"oneOf": [openapi.ref("WebhookAppointment"), {"type": "null"}]},
    }, description="A place on a waiting list that became an appointment."),
    "WebhookSessionCancelled": openapi.answer({
        "session": openapi.ref("WebhookSession"),
        "cancelledAppointmentIds": {"type": "array", "items": INTEGER},
    }, description="A whole session, cancelled, and the appointments that went with it."),
    "WebhookBooking": openapi.answer({
        "bookingId": INTEGER, "status": {"type": "string", "enum": ["pending", "confirmed", "declined", "cancelled"]},
        "serviceId": INTEGER, "serviceTitle": STRING, "expertId": INTEGER, "customerName": STRING,
        "customerEmail": STRING, "customerPhone": STRING, "notes": STRING, "start": MOMENT, "end": MOMENT,
        "customerTimezone": STRING, "isGuest": BOOLEAN, "cancelReason": NULLABLE_STRING, "rescheduledFrom": NULLABLE_MOMENT,
        "rescheduleReason": NULLABLE_STRING, "createdAt": MOMENT, "updatedAt": MOMENT,
    }, description="An expert's booking, as the expert sees it, right after the event."),
    "WebhookTest": openapi.answer({"subscriptionId": INTEGER, "message": STRING}, description="What *Send test event* sends."),
}

DATA_OF = {
    "appointment": "WebhookAppointment",
    "booking": "WebhookBooking",
    "session": "WebhookSessionCancelled",
    "waitlist": "WebhookWaitlistPromotion",
    "webhook": "WebhookTest",
}

HEADERS = [
    {"name": "webhook-id", "in": "header", "required": True, "schema": STRING,
     "description": "The message's id: the same on every attempt and on a resend; drop a message whose id you have seen."},
    {"name": "webhook-timestamp", "in": "header", "required": True, "schema": {"type": "string", "pattern": "^[0-9]+$"},
     "description": "When this attempt was signed, in seconds since 1970 (UTC); refuse one far from your clock."},
    {"name": "webhook-signature", "in": "header", "required": True, "schema": STRING,
     "description": "`v1,` and the base64 HMAC-SHA256, with the secret's bytes (after `whsec_`, base64-decoded), "
                    "of `<webhook-id>.<webhook-timestamp>.<body>`. Verify it with a Standard Webhooks library."},
]


def _entry(event_type: str, summary: str) -> dict[str, Any]:
    data = DATA_OF[event_type.split(".")[0]]
    return {
        "post": {
            "summary": summary,
            "description": "Sent to every active subscription that asked for this event, signed per the Standard Webhooks "
                           "specification, at least once and in order per subscription; retried with backoff for 24 hours "
                           "(WEBHOOK_RETRY_HOURS) until your endpoint answers 2xx within 5 seconds. Redirects are not followed. "
                           "See docs/webhooks.md.",
            "parameters": HEADERS,
            "requestBody": {"required": True, "content": {"application/json": {"schema": openapi.obj(
                {"type": {"type": "string", "const": event_type}, "timestamp": MOMENT, "data": openapi.ref(data)},
                ["type", "timestamp", "data"], additionalProperties=False,
            )}}},
            "responses": {
                "2XX": {"description": "Received: the delivery is done."},
                "default": {"description": "Anything else (or no answer within the timeout) is retried later."},
            },
        }
    }


def register() -> None:
    """Describe every event in the API document (idempotent)."""
    described = {event.name: _entry(event.name, str(event.label)) for event in events.sent()}
    described[events.TEST_EVENT] = _entry(events.TEST_EVENT, "A test event (the *Send test event* button)")
    openapi.register_webhooks(described, SCHEMAS)
