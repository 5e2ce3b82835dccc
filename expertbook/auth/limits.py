"""The account throttles, one set for the whole site: the forms and the API share their buckets.

- Login: per account (the email an attempt names, normalised as accounts store it) and per client
  address; only failed attempts count, so a user who logs in is never held back.
- "Forgot password": per address asked about and per client address; every request counts (the
  answer is the same whether or not the account exists, so there is no "failure" to count).
- Registration: per client address, counting registrations made (bad input does not count).
- Resending the verification link: per account.

None of their answers carries rate-limit headers (``X-RateLimit-*``, ``Retry-After``), though other
limited endpoints do: the remaining count of a bucket keyed on an email address would tell anyone that
someone else just asked about that address (a reset, a login attempt). :func:`drop_headers` removes
them from every answer that one of these limits was checked for.
"""
from __future__ import annotations

from flask import current_app, g, request
from flask_limiter.util import get_remote_address
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


def _private(key_func):
    """``key_func``, noting that an account limit was checked for this request (see :func:`drop_headers`)."""

    def key() -> str:
        g.account_rate_limit = True
        return key_func()

    return key


def _limit(setting: str, scope: str, deduct_when, key_func=None):
    return limiter.shared_limit(
        lambda: current_app.config[setting], scope=scope, methods=["POST"], deduct_when=deduct_when,
        key_func=_private(key_func or get_remote_address),
    )


# The headers Flask-Limiter writes (its default names; ExpertBook does not rename them).
RATE_LIMIT_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "Retry-After")


def drop_headers(response):
    """An ``after_request`` function: no rate-limit header on an answer an account limit was checked
    for (its 429 included). Registered before the limiter's own, so that it runs after it (Flask runs
    them in the reverse order): Flask-Limiter has no per-limit switch for its headers."""
    if g.get("account_rate_limit"):
        for name in RATE_LIMIT_HEADERS:
            response.headers.pop(name, None)
    return response


per_ip = _limit("LOGIN_LIMIT_PER_IP", "login-ip", _failed)
per_account = _limit("LOGIN_LIMIT_PER_ACCOUNT", "login-account", _failed, _email_key("login-account"))

reset_per_ip = _limit("PASSWORD_RESET_LIMIT_PER_IP", "reset-ip", _always)
reset_per_address = _limit("PASSWORD_RESET_LIMIT_PER_ADDRESS", "reset-address", _always, _email_key("reset-address"))

register_per_ip = _limit("REGISTER_LIMIT_PER_IP", "register-ip", _accepted)

resend_per_account = _limit("VERIFICATION_RESEND_LIMIT", "verify-resend", _always, _account_id_key)
