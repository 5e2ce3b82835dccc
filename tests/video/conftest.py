"""Fixtures of the video tests: a Zoom stand-in on loopback, and an app pointed at it."""
from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from expertbook.video.standin import StandInServer

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
