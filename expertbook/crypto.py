"""Encryption at rest for stored credentials (Zoom and Google grants, CalDAV app passwords): MultiFernet
over ``TOKEN_ENCRYPTION_KEYS``.

The first key encrypts; every key decrypts, so a new key can be put first, ``flask rotate-token-keys``
re-encrypts every row with it, and the old key is then removed. Lookups by a provider's user id (Zoom's
deauthorization webhook) go through a keyed hash, a "blind index", so the id itself stays encrypted.
Infrastructure: it knows no area (the video and calendars areas both store their secrets with it).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app

from expertbook.config import ConfigError


def _keys(config) -> list[bytes]:
    raw = config.get("TOKEN_ENCRYPTION_KEYS")
    if raw:
        return [key.strip().encode("ascii") for key in raw.split(",") if key.strip()]
    if config.get("PRODUCTION"):
        raise ConfigError("TOKEN_ENCRYPTION_KEYS must be set in production to store Zoom, Google or CalDAV credentials")
    # Development only: a fixed key derived from SECRET_KEY, so local data stays readable across restarts
    # (and, derived from the fallbacks too, across a rotation of SECRET_KEY).
    from expertbook import keys

    return [
        base64.urlsafe_b64encode(hashlib.sha256(b"expertbook-token-encryption:" + key.encode()).digest())
        for key in keys.accepted(config)
    ]


def _fernet() -> MultiFernet:
    try:
        return MultiFernet([Fernet(key) for key in _keys(current_app.config)])
    except ValueError as error:  # a malformed key: say which setting is wrong, never echo the key
        raise ConfigError("TOKEN_ENCRYPTION_KEYS holds a value that is not a Fernet key") from error


def encrypt(data: dict[str, Any]) -> str:
    """Encrypt a JSON-serialisable mapping with the first key."""
    return _fernet().encrypt(json.dumps(data, separators=(",", ":")).encode()).decode("ascii")


def decrypt(token: str) -> dict[str, Any]:
    """Decrypt what :func:`encrypt` produced, with whichever configured key made it."""
    try:
        return json.loads(_fernet().decrypt(token.encode("ascii")))
    except InvalidToken as error:
        raise ConfigError("stored credentials cannot be decrypted with TOKEN_ENCRYPTION_KEYS") from error


def rotate(token: str) -> str:
    """Re-encrypt ``token`` with the first key (MultiFernet.rotate)."""
    return _fernet().rotate(token.encode("ascii")).decode("ascii")


def blind_indexes(value: str) -> list[str]:
    """Keyed hashes of ``value``, one per configured key (the first is what gets stored).

    Matching any of them finds rows written before a rotation finished.
    """
    return [
        hmac.new(hashlib.sha256(b"blind-index:" + key).digest(), value.encode(), hashlib.sha256).hexdigest()
        for key in _keys(current_app.config)
    ]
