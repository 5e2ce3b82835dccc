"""Fixtures of the account tests: the real SMTP server on loopback (shared with the notification tests)
and the link an email carries."""
from __future__ import annotations

import re
from email.message import EmailMessage

import pytest

from tests.notifications.conftest import mail_config, smtp  # noqa: F401 - the fixture, for this folder


@pytest.fixture
def mail_app_config(smtp):  # noqa: F811
    """Configuration that sends emails to the loopback SMTP server, in-process after each commit."""
    return mail_config(smtp)


def text_of(message: EmailMessage) -> str:
    """The plain-text body of an email."""
    return message.get_body(("plain",)).get_content()


def link_in(message: EmailMessage, path: str) -> str:
    """The absolute link of ``path`` (e.g. ``/reset-password/``) in an email's text, and the same in its HTML part."""
    text = text_of(message)
    found = re.search(r"https?://\S+" + re.escape(path) + r"[A-Za-z0-9_\-]+", text)
    assert found, f"no {path} link in:\n{text}"
    assert found.group(0) in message.get_body(("html",)).get_content()
    return found.group(0)


def to(message: EmailMessage) -> str:
    return message["To"].addresses[0].addr_spec
