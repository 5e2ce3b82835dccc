"""The webhooks in /api/openapi.json: every event is described, and real payloads keep to their schemas."""
from __future__ import annotations

import json

import jsonschema_rs  # schemathesis brings it (pinned in the test extra)
from sqlalchemy import select

from expertbook.extensions import db
from expertbook.webhooks import events, service
from expertbook.webhooks.models import WebhookDelivery
from tests.factories import make_expert, make_service, make_user
from tests.webhooks.test_delivery import cancel_one, hospital_hook


def _validator(document: dict, event_type: str):
    schema = document["webhooks"][event_type]["post"]["requestBody"]["content"]["application/json"]["schema"]
    # Resolve the document's own $refs (#/components/schemas/...).
    return jsonschema_rs.Draft202012Validator({**schema, "components": document["components"]})


def test_every_event_is_in_the_openapi_document_with_the_signature_headers(client):
    document = client.get("/api/openapi.json").get_json()
    assert document["openapi"].startswith("3.1")
    assert set(document["webhooks"]) == {event.name for event in events.sent()} | {events.TEST_EVENT}
    assert {"appointment.cancelled", "booking.created", "booking.cancelled"} <= set(document["webhooks"])
    for entry in document["webhooks"].values():
        headers = {p["name"] for p in entry["post"]["parameters"] if p["in"] == "header"}
        assert headers == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    jsonschema_rs.meta.validate(document["components"]["schemas"]["WebhookAppointment"])


def test_real_payloads_keep_to_their_schemas(client, receiver):
    from expertbook.experts import service as experts
    from tests.experts.helpers import book_kwargs, next_weekday_at

    document = client.get("/api/openapi.json").get_json()
    staff, subscription, _ = hospital_hook(receiver)
    cancel_one(staff)
    service.send_test([service.owner_of(subscription)], subscription.id)
    expert = make_expert("Dr. Expert")
    service.create(service.Owner(events.EXPERT, expert.user_id), receiver.url, ["booking.created", "booking.cancelled"])
    customer = make_user("Ana Customer")
    booking = experts.book(customer.id, make_service(expert, location_kind="phone").id, next_weekday_at(10), **book_kwargs(customer))
    experts.cancel(customer.id, booking.id)
    db.session.rollback()
    payloads = [json.loads(row.payload) for row in db.session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id))]
    assert [p["type"] for p in payloads] == ["appointment.cancelled", "webhook.test", "booking.created", "booking.cancelled"]
    for payload in payloads:
        _validator(document, payload["type"]).validate(payload)
