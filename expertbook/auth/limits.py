"""The login throttle, one for the whole site: the login form and the API's login share its buckets.

Per account (the email an attempt names, normalised as accounts store it) and per client address.
Only failed attempts count, so a user who logs in is never held back.
"""
from __future__ import annotations

from flask import current_app, request

from expertbook.errors import ValidationFailed
from expertbook.extensions import limiter
from expertbook.web import json_object


def _failed(response) -> bool:
    return response.status_code >= 400


def _account_key() -> str:
    data = (json_object() or {}) if request.is_json else request.form
    email = data.get("email")
    email = email if isinstance(email, str) else ""  # the view refuses anything else
    from expertbook.auth.service import normalise_email

    try:
        email = normalise_email(email)
    except ValidationFailed:
        email = email.strip().lower()
    return "login-account:" + email


per_ip = limiter.shared_limit(
    lambda: current_app.config["LOGIN_LIMIT_PER_IP"], scope="login-ip", methods=["POST"], deduct_when=_failed
)
per_account = limiter.shared_limit(
    lambda: current_app.config["LOGIN_LIMIT_PER_ACCOUNT"], scope="login-account", methods=["POST"],
    deduct_when=_failed, key_func=_account_key,
)
