"""The account throttles, one set for the whole site: the forms and the API share their buckets.

- Login: per account (the email an attempt names, normalised as accounts store it) and per client
  address; only failed attempts count, so a user who logs in is never held back.
- "Forgot password": per address asked about and per client address; every request counts (the
  answer is the same whether or not the account exists, so there is no "failure" to count).
- Registration: per client address, counting registrations made (bad input does not count).
- Resending the verification link: per account.
"""
from __future__ import annotations

from flask import current_app, g, request
from flask_login import current_user

from expertbook.errors import ValidationFailed
from expertbook.extensions import limiter
from expertbook.web import json_object


def _failed(response) -> bool:
    return response.status_code >= 400


def _accepted(response) -> bool:
    return response.status_code < 400


def submitted_email() -> str:
    """The email a form or JSON request names, normalised as accounts store it (for per-address limits)."""
    data = (json_object() or {}) if request.is_json else request.form
    email = data.get("email")
    email = email if isinstance(email, str) else ""  # the view refuses anything else
    from expertbook.auth.service import normalise_email

    try:
        return normalise_email(email)
    except ValidationFailed:
        return email.strip().lower()


def _always(response) -> bool:
    return True


def _email_key(prefix: str):
    def key() -> str:
        return f"{prefix}:{submitted_email()}"

    return key


def _account_id_key() -> str:
    # The API sets g.api_user_id (token_required runs first); the site has the logged-in user.
    user_id = g.get("api_user_id") or (current_user.id if current_user.is_authenticated else "")
    return f"verify-resend:{user_id}"


def _limit(setting: str, scope: str, deduct_when, key_func=None):
    options = {"key_func": key_func} if key_func is not None else {}
    return limiter.shared_limit(lambda: current_app.config[setting], scope=scope, methods=["POST"], deduct_when=deduct_when, **options)


per_ip = _limit("LOGIN_LIMIT_PER_IP", "login-ip", _failed)
per_account = _limit("LOGIN_LIMIT_PER_ACCOUNT", "login-account", _failed, _email_key("login-account"))

reset_per_ip = _limit("PASSWORD_RESET_LIMIT_PER_IP", "reset-ip", _always)
reset_per_address = _limit("PASSWORD_RESET_LIMIT_PER_ADDRESS", "reset-address", _always, _email_key("reset-address"))

register_per_ip = _limit("REGISTER_LIMIT_PER_IP", "register-ip", _accepted)

resend_per_account = _limit("VERIFICATION_RESEND_LIMIT", "verify-resend", _always, _account_id_key)
