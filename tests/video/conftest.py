"""Fixtures of the video tests: a Zoom stand-in on loopback, and an app pointed at it."""
from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from expertbook.devtools.zoom_standin import StandInServer

WEBHOOK_SECRET = "webhook-secret-for-tests"


@pytest.fixture
def zoom():
    """A fresh Zoom stand-in served over HTTP on a free loopback port."""
    with StandInServer() as server:
        yield server


@pytest.fixture
def encryption_key() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture
def app_config(zoom, encryption_key):
    return zoom.config() | {
        "ZOOM_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "ZOOM_TIMEOUT": 2.0,
        "TOKEN_ENCRYPTION_KEYS": encryption_key,
        "JITSI_BASE_URL": "https://jitsi.test.example",
    }


@pytest.fixture
def expert(app):
    from tests.factories import make_expert_user

    return make_expert_user()


@pytest.fixture
def connected_expert(client, zoom, expert):
    """An expert whose Zoom is connected through the real OAuth flow against the stand-in."""
    from tests.factories import connect_zoom, login

    login(client, expert)
    assert connect_zoom(client, zoom.url).status_code == 303
    return expert


def expire_stored_token(user_id: int, standin=None) -> None:
    """Make the stored access token look expired (and, with ``standin``, really expire it at Zoom)."""
    from sqlalchemy import select

    from expertbook.database import transaction
    from expertbook.extensions import db
    from expertbook import crypto
    from expertbook.video.models import ZoomConnection

    with transaction():
        connection = db.session.scalar(select(ZoomConnection).where(ZoomConnection.user_id == user_id))
        data = crypto.decrypt(connection.secrets)
        data["expires_at"] = 0
        connection.secrets = crypto.encrypt(data)
    if standin is not None:
        standin.expire_access_tokens()
