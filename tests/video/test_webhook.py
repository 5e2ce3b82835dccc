"""Zoom's webhook: signature checked, URL validation answered, deauthorization forgets the tokens."""
from __future__ import annotations

import hashlib
import hmac
import json
import time

from sqlalchemy import select

from expertbook.extensions import db
from expertbook.video import service
from expertbook.video.errors import ReauthRequired
from expertbook.video.models import DEAUTHORIZED, ZoomConnection
from tests.video.conftest import WEBHOOK_SECRET

import pytest


def _signed(client, event: dict, secret: str = WEBHOOK_SECRET, timestamp: int | None = None, signature: str | None = None):
    body = json.dumps(event).encode()
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    headers = {"x-zm-request-timestamp": ts, "x-zm-signature": signature or f"v0={digest}", "Content-Type": "application/json"}
    return client.post("/video/zoom/webhook", data=body, headers=headers)


def _deauth_event(zoom_user_id: str, account_id: str = "acct") -> dict:
    return {
        "event": "app_deauthorized",
        "event_ts": int(time.time() * 1000),
        "payload": {
            "account_id": account_id,
            "user_id": zoom_user_id,
            "signature": "irrelevant",
            "deauthorization_time": "2030-01-01T00:00:00Z",
            "client_id": "standin-client-id",
        },
    }


def test_url_validation_challenge(client, zoom):
    response = _signed(client, {"event": "endpoint.url_validation", "payload": {"plainToken": "qgg8vlvZRS6UYooatFL8Aw"}, "event_ts": 1})
    assert response.status_code == 200
    expected = hmac.new(WEBHOOK_SECRET.encode(), b"qgg8vlvZRS6UYooatFL8Aw", hashlib.sha256).hexdigest()
    assert response.get_json() == {"plainToken": "qgg8vlvZRS6UYooatFL8Aw", "encryptedToken": expected}


def test_deauthorization_marks_the_connection_gone(client, connected_expert, zoom):
    response = _signed(client, _deauth_event(zoom.standin.user["id"], zoom.standin.user["account_id"]))
    assert response.status_code == 204
    db.session.rollback()
    connection = db.session.scalar(select(ZoomConnection).where(ZoomConnection.user_id == connected_expert.id))
    assert connection.status == DEAUTHORIZED and connection.secrets is None and connection.zoom_user_index is None
    with pytest.raises(ReauthRequired):
        service.access_token(connected_expert.id)
    # New meetings fall back to Jitsi, and the settings page says what happened.
    from datetime import UTC, datetime

    assert service.create_meeting(connected_expert.id, "t", datetime(2030, 1, 1, tzinfo=UTC), 30, "UTC", False).provider == "jitsi"
    assert "removed from your Zoom account" in client.get("/video/settings").get_data(as_text=True)


def test_deauthorization_finds_connections_after_key_rotation(app, client, connected_expert, zoom, encryption_key):
    from cryptography.fernet import Fernet

    app.config["TOKEN_ENCRYPTION_KEYS"] = f"{Fernet.generate_key().decode()},{encryption_key}"
    # Before the rotation has run, the stored index is still the old key's: it must still match.
    assert service.handle_deauthorization(zoom.standin.user["id"]) == 1


def test_deauthorization_of_someone_else_changes_nothing(client, connected_expert, zoom):
    assert _signed(client, _deauth_event("another-zoom-user")).status_code == 204
    db.session.rollback()
    assert db.session.scalar(select(ZoomConnection.status)) == "connected"


@pytest.mark.parametrize(
    "tamper",
    ["wrong-secret", "bad-signature", "stale", "future", "missing-signature", "missing-timestamp"],
)
def test_bad_signatures_are_refused(client, connected_expert, zoom, tamper):
    event = _deauth_event(zoom.standin.user["id"])
    if tamper == "wrong-secret":
        response = _signed(client, event, secret="not-the-secret")
    elif tamper == "bad-signature":
        response = _signed(client, event, signature="v0=" + "0" * 64)
    elif tamper == "stale":
        response = _signed(client, event, timestamp=int(time.time()) - 3600)
    elif tamper == "future":
        response = _signed(client, event, timestamp=int(time.time()) + 3600)
    else:
        headers = {"x-zm-request-timestamp": str(int(time.time())), "x-zm-signature": "v0=abc"}
        headers.pop("x-zm-signature" if tamper == "missing-signature" else "x-zm-request-timestamp")
        response = client.post("/video/zoom/webhook", data=json.dumps(event), headers=headers)
    assert response.status_code == 401
    db.session.rollback()
    assert db.session.scalar(select(ZoomConnection.status)) == "connected"


def test_a_body_changed_after_signing_is_refused(client, connected_expert, zoom):
    ts = str(int(time.time()))
    body = json.dumps(_deauth_event("someone-else")).encode()
    signature = "v0=" + hmac.new(WEBHOOK_SECRET.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    forged = json.dumps(_deauth_event(zoom.standin.user["id"])).encode()
    response = client.post("/video/zoom/webhook", data=forged, headers={"x-zm-request-timestamp": ts, "x-zm-signature": signature})
    assert response.status_code == 401


def test_only_the_webhook_is_csrf_exempt(client, connected_expert, zoom):
    # The webhook needs no CSRF token (Zoom cannot send one)...
    assert _signed(client, {"event": "meeting.started", "payload": {}}).status_code == 204
    # ...but the area's other writes still do.
    assert client.post("/video/zoom/disconnect").status_code == 400
    assert client.post("/video/zoom/test").status_code == 400


def test_without_a_webhook_secret_the_endpoint_is_absent(app, client, zoom):
    app.config["ZOOM_WEBHOOK_SECRET"] = None
    assert _signed(client, {"event": "endpoint.url_validation", "payload": {"plainToken": "x"}}).status_code == 404
