"""The login throttle, one for the whole site: the login form and the API's login share its buckets.

Per account (the email an attempt names, normalised as accounts store it) and per client address.
Only failed attempts count, so a user who logs in is never held back.
"""
from __future__ import annotations

from flask import current_app, request

from expertbook.errors import ValidationFailed
from expertbook.extensions import limiter


def _failed(response) -> bool:
    return response.status_code >= 400


def submitted_email() -> str:
    """The email a form or JSON request names, normalised as accounts store it (for per-address limits)."""
    data = request.get_json(silent=True) if request.is_json else request.form
    email = str(data.get("email", "")) if hasattr(data, "get") else ""  # a form, or a JSON object
    from expertbook.auth.service import normalise_email

    try:
        return normalise_email(email)
    except ValidationFailed:
        return email.strip().lower()


def _account_key() -> str:
    return "login-account:" + submitted_email()


per_ip = limiter.shared_limit(
    lambda: current_app.config["LOGIN_LIMIT_PER_IP"], scope="login-ip", methods=["POST"], deduct_when=_failed
)
per_account = limiter.shared_limit(
    lambda: current_app.config["LOGIN_LIMIT_PER_ACCOUNT"], scope="login-account", methods=["POST"],
    deduct_when=_failed, key_func=_account_key,
)
