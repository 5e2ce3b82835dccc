"""Fixtures for the notification tests: a real SMTP server on loopback whose answers a test scripts,
and (for the queue tests) a real Redis database this area owns (number 1)."""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller

from tests.conftest import free_port, redis_database

TEST_QUEUE = "eb-notifications-test"


class ScriptedSMTPHandler:
    """An aiosmtpd handler that answers DATA as scripted, then accepts.

    ``script`` holds one action per upcoming DATA command: an SMTP reply like ``"451 4.3.0 Try later"``
    or ``"550 5.1.1 No such user"``, ``"hang"`` (no answer until ``release()`` or ``hang_seconds``), or
    ``"slow:<seconds>"`` (accept, but only after that long). ``slow_seconds`` delays every accepted
    message that is not scripted. When the script is empty, messages are accepted and kept in ``messages``.
    """

    def __init__(self):
        self.script: list[str] = []
        self.messages: list[EmailMessage] = []
        self.data_commands = 0
        self.hang_started = threading.Event()
        self.released = threading.Event()
        self.hang_seconds = 60.0
        self.slow_seconds = 0.0
        self.lock = threading.Lock()

    def then(self, *actions: str) -> "ScriptedSMTPHandler":
        self.script.extend(actions)
        return self

    def release(self) -> None:
        self.released.set()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.data_commands += 1
            action = self.script.pop(0) if self.script else "accept"
        if action == "hang":
            self.hang_started.set()
            deadline = time.monotonic() + self.hang_seconds
            while not self.released.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            return "451 4.4.2 Gave up waiting"  # never delivered: the client is gone by now
        delay = self.slow_seconds if action == "accept" else float(action[5:]) if action.startswith("slow:") else None
        if delay is None:
            return action
        await asyncio.sleep(delay)  # a client that goes away meanwhile cancels this: nothing is stored
        if server.transport is None or server.transport.is_closing():
            return "451 4.4.2 The client went away"
        message = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        with self.lock:
            self.messages.append(message)
        return "250 2.0.0 OK"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        """Wait (bounded) until ``count`` messages arrived; return them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.messages) < count:
            time.sleep(0.02)
        return list(self.messages)


@pytest.fixture
def smtp():
    """A real SMTP server on 127.0.0.1, scripted through its handler (yielded)."""
    handler = ScriptedSMTPHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), ready_timeout=10)
    controller.start()
    handler.port = controller.port
    yield handler
    handler.release()
    controller.stop()


@pytest.fixture
def redis_url():
    """Redis database 1 (this area's own), emptied before and after the test."""
    yield from redis_database(1)


def closed_port_url() -> str:
    """A Redis URL on a loopback port where nothing listens."""
    return f"redis://127.0.0.1:{free_port()}/1"


class Records(logging.Handler):
    """Collects log records of one logger (works with or without pytest's logging plugin)."""

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)

    @property
    def text(self) -> str:
        return "\n".join(record.getMessage() for record in self.records)


@pytest.fixture
def notification_logs():
    """Log records of ``expertbook.notifications`` during the test."""
    handler = Records()
    logger = logging.getLogger("expertbook.notifications")
    # Alembic's fileConfig (run by the migrations fixture) disables every logger that existed then.
    children = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict) if name.startswith(logger.name)]
    disabled = {child: child.disabled for child in children}
    for child in children:
        child.disabled = False
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(previous)
    for child, was in disabled.items():
        child.disabled = was


def mail_config(smtp: ScriptedSMTPHandler, **extra) -> dict:
    """App configuration that sends to ``smtp`` with short timeouts and backoff, for fast tests."""
    config = {
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": smtp.port,
        # Long enough for a healthy server on a loaded CI machine; the tests of a hanging server
        # shorten it themselves, so that only they wait for a timeout.
        "MAIL_TIMEOUT": 5.0,
        "MAIL_RETRY_BASE_SECONDS": 0.05,
        "MAIL_RETRY_MAX_SECONDS": 0.2,
        "MAIL_CLAIM_SECONDS": 30,
        "MAIL_MAX_ATTEMPTS": 8,
        "NOTIFICATIONS_QUEUE": TEST_QUEUE,
    }
    config.update(extra)
    return config

