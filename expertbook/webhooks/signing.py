"""Signing secrets and signatures, per the Standard Webhooks specification (the ``standardwebhooks`` package).

A secret is ``whsec_`` and 32 random bytes in base64. It is stored encrypted with the token
encryption keys (``TOKEN_ENCRYPTION_KEYS``, as Zoom's credentials are): signing needs the secret
itself, so a hash would not do. Each request carries ``webhook-id`` (the delivery's message id, the
same on every attempt), ``webhook-timestamp`` (the attempt's time, in seconds) and
``webhook-signature`` (``v1,`` and the base64 HMAC-SHA256 of ``id.timestamp.body``).
"""
from __future__ import annotations

import base64
import secrets
from datetime import datetime

from standardwebhooks.webhooks import Webhook

from expertbook import crypto

PREFIX = "whsec_"


def new_secret() -> str:
    """A fresh signing secret, in the format every Standard Webhooks library reads."""
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def seal(secret: str) -> str:
    """The secret as stored: encrypted with the first token encryption key."""
    return crypto.encrypt({"secret": secret})


def unseal(stored: str) -> str:
    """The secret back from what :func:`seal` stored (any configured key decrypts)."""
    return crypto.decrypt(stored)["secret"]


def headers(secret: str, message_id: str, at: datetime, body: bytes) -> dict[str, str]:
    """The request headers of one attempt: the Standard Webhooks three, and the content type."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, at, body),
        "Content-Type": "application/json",
        "User-Agent": "ExpertBook-Webhooks/1",
    }


def rotate(stored: str) -> str:
    """What :func:`seal` stored, re-encrypted with the first token encryption key (key rotation)."""
    return crypto.rotate(stored)
