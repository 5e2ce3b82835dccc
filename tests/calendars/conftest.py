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


@pytest.fixture
def app_config():
    return {
        "TOKEN_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "CALDAV_ALLOW_HTTP": True,
        "CALDAV_ALLOW_PRIVATE_ADDRESSES": True,
        "CALENDAR_TIMEOUT": 3.0,
        "JITSI_BASE_URL": "https://jitsi.test.example",
    }
