"""Fixtures of the calendar tests: a real Radicale server on loopback, a Google stand-in, and an app pointed at them."""
from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from tests.calendars.radicale_server import Radicale


@pytest.fixture
def radicale(tmp_path):
    """A running Radicale server of this test (tests may stop and start it)."""
    server = Radicale(tmp_path).start()
    yield server
    server.stop()


def base_config() -> dict:
    return {
        "TOKEN_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "CALDAV_ALLOW_HTTP": True,
        "CALDAV_ALLOW_PRIVATE_ADDRESSES": True,
        "CALENDAR_TIMEOUT": 3.0,
        "JITSI_BASE_URL": "https://jitsi.test.example",
    }


@pytest.fixture
def app_config():
    return base_config()


@pytest.fixture
def google():
    """A fresh Google stand-in served over HTTP on a free loopback port."""
    from expertbook.devtools.google_standin import GoogleServer

    with GoogleServer() as server:
        yield server
