"""Signed one-click links for clinic emails: "move to another session" after the hospital cancelled one.

The link names one appointment and works without logging in (a walk-in has no account to log in
to), so it is signed with the app's secret key under a purpose of its own and expires. It is signed
with the current ``SECRET_KEY`` and accepted under a fallback too (:mod:`expertbook.keys`). It only opens
the page of choices; the move itself is a POST from that page.
"""
from __future__ import annotations

from itsdangerous import BadSignature, URLSafeTimedSerializer

from expertbook import keys

MOVE_LINK_DAYS = 30
_SALT = "expertbook-clinic-move"


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(keys.for_itsdangerous(), salt=_SALT)


def move_token(appointment_id: int) -> str:
    """The token of a move link for ``appointment_id``."""
    return _serializer().dumps({"a": appointment_id})


def appointment_of_move_token(token: str) -> int | None:
    """The appointment a move link's token names, or None if it is forged, damaged or expired."""
    try:
        data = _serializer().loads(token, max_age=MOVE_LINK_DAYS * 24 * 3600)
    except BadSignature:  # SignatureExpired is one too
        return None
    value = data.get("a") if isinstance(data, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None
