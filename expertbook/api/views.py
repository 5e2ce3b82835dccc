"""The JSON API blueprint: accounts and the OpenAPI document; each area's endpoints are in their own module.

The blueprint and the plumbing (bearer tokens, JSON bodies and errors) are in :mod:`expertbook.api.base`;
the endpoints of each area live in ``expertbook/api/<area>.py``, imported here so they register on ``bp``.
"""
from __future__ import annotations

from typing import Any

from flask import current_app, jsonify, url_for

from expertbook.api import clinic as _clinic_endpoints  # noqa: F401 - registers the clinic endpoints on bp
from expertbook.api import experts as _experts_endpoints  # noqa: F401 - registers the experts endpoints on bp
from expertbook.api import openapi, service
from expertbook.api.base import api_session_hash, api_user, api_user_id, bp, json_body, new_token, token_required, user_json
from expertbook.auth import limits, sessions
from expertbook.auth import service as accounts
from expertbook.auth.models import User
from expertbook.clinic import service as clinic
from expertbook.errors import Conflict, ValidationFailed

__all__ = ["bp"]


def _token_json(user: User) -> dict[str, Any]:
    token, expires_in = new_token(user.id)
    return {"token": token, "tokenType": "Bearer", "expiresIn": expires_in, "user": user_json(user)}


CHECK_YOUR_EMAIL = {"status": "check your email"}


def _neutral():
    """How long the answers that must not tell whether an account exists take at least."""
    return accounts.steady(current_app.config["ACCOUNT_ANSWER_SECONDS"])


# ---------------------------------------------------------------------------- accounts


@bp.post("/auth/signup")
@limits.register_per_ip
def signup():
    """Create an account (clinic API): role ``patient``, or ``hospital`` with ``hospitalName`` and ``location``.

    Answers 202 ``{"status": "check your email"}`` whether or not the address already has an account
    (its owner is then told by email); the client logs in with ``POST /auth/login``.
    """
    data = json_body("name", "email", "password")
    role = data.get("role") or "patient"
    if role == "hospital":
        data = json_body("name", "email", "password", "hospitalName", "location")
    elif role != "patient":
        raise ValidationFailed({"role": 'Use "patient" or "hospital".'}, 'Role must be "patient" or "hospital"')
    with _neutral():
        if role == "hospital":
            clinic.register_hospital(data["hospitalName"], data["location"], data["name"], data["email"], data["password"])
        else:
            accounts.register_user(data["name"], data["email"], data["password"])
    return jsonify(CHECK_YOUR_EMAIL), 202


@bp.post("/auth/register")
@limits.register_per_ip
def register():
    """Create a customer account (experts API); answers 202 ``{"status": "check your email"}`` like signup."""
    data = json_body("name", "email", "password")
    with _neutral():
        accounts.register_user(data["name"], data["email"], data["password"])
    return jsonify(CHECK_YOUR_EMAIL), 202


@bp.post("/auth/login")
@limits.per_ip  # the same buckets as the login form's: two doors do not double the guesses
@limits.per_account
def login():
    """Exchange email and password for a signed bearer token with an expiry (one new login session)."""
    data = json_body("email", "password")
    user = accounts.authenticate(str(data["email"]), str(data["password"]))
    if user is None:
        return jsonify(error="Invalid email or password"), 401
    return jsonify(_token_json(user))


@bp.post("/auth/logout")
@token_required
def logout():
    """End the session of this token: it answers 401 from now on (other tokens and browsers stay logged in)."""
    sessions.end_by_hash(api_session_hash(), api_user_id())
    return "", 204


@bp.post("/auth/logout-everywhere")
@token_required
def logout_everywhere():
    """End every session of the account: all its API tokens (this one too) and every logged-in browser."""
    sessions.end_all(api_user_id())
    return "", 204


@bp.get("/auth/me")
@token_required
def me():
    """The account the bearer token belongs to."""
    return jsonify(user=user_json(api_user()))


@bp.post("/auth/forgot-password")
@limits.reset_per_ip
@limits.reset_per_address
def forgot_password():
    """Email a password reset link if an account has this address; always 202, alike in status, body and time."""
    data = json_body("email")
    with _neutral():
        accounts.request_password_reset(str(data["email"]))
    return jsonify(CHECK_YOUR_EMAIL), 202


@bp.post("/auth/reset-password")
@limits.reset_per_ip
def reset_password():
    """Set a new password with the token from the reset email: 200, or 400 for a wrong, expired or used token.

    Every session and token of the account ends; the client logs in again with the new password.
    """
    data = json_body("token", "password")
    accounts.reset_password(str(data["token"]), str(data["password"]))
    return jsonify(status="password changed")


@bp.post("/auth/resend-verification")
@token_required
@limits.resend_per_account
def resend_verification():
    """Send a fresh verification link to the account's address: 202, or 409 when it is verified already."""
    if not accounts.resend_verification(api_user_id()):
        raise Conflict("Your email address is already verified")
    return jsonify(CHECK_YOUR_EMAIL), 202


@bp.get("/openapi.json")
def openapi_document():
    """The OpenAPI 3.1 description of this API."""
    return jsonify(openapi.document(url_for("main.index", _external=True).rstrip("/") + "/api"))


_CREDENTIALS = {"type": "object", "required": ["email", "password"], "properties": {"email": {"type": "string", "format": "email"}, "password": {"type": "string"}}}
_CHECK_EMAIL = openapi.json_response(
    'Always the same, whether or not the address has an account: {"status": "check your email"}',
    {"type": "object", "properties": {"status": {"const": "check your email"}}},
)
_TOO_MANY = openapi.error_response("Too many attempts from this address (or for this email)")
_NO_CONTENT = {"description": "Done; no body"}
openapi.register(
    {
        "/auth/signup": {
            "post": {
                "summary": "Create a patient or hospital account",
                "description": "Answers 202 whether or not the email already has an account: a new account gets a "
                "verification email, an existing one's owner an email saying someone tried to register. No token is "
                "returned in either case: log in with `POST /auth/login`. Throttled per client address.",
                "requestBody": openapi.json_body("Signup"),
                "responses": {"202": _CHECK_EMAIL, "422": openapi.INVALID, "429": _TOO_MANY},
            }
        },
        "/auth/register": {
            "post": {
                "summary": "Create a customer account",
                "description": "Like `/auth/signup` (role patient): 202 for a new and an existing email alike; log in afterwards.",
                "requestBody": openapi.json_body("Register"),
                "responses": {"202": _CHECK_EMAIL, "422": openapi.INVALID, "429": _TOO_MANY},
            }
        },
        "/auth/login": {
            "post": {
                "summary": "Get a bearer token",
                "description": "Each login opens one login session (listed on the account's Security page); the token "
                "works until it expires or that session ends.",
                "requestBody": openapi.json_body("Credentials"),
                "responses": {
                    "200": openapi.json_response("Logged in", openapi.ref("TokenResponse")),
                    "401": openapi.error_response("Invalid email or password"),
                    "422": openapi.INVALID,
                    "429": openapi.error_response("Too many failed attempts"),
                },
            }
        },
        "/auth/logout": {
            "post": {
                "summary": "Revoke this token",
                "description": "Ends the login session of the token sent; it answers 401 from then on. Other tokens "
                "and browsers stay logged in.",
                "security": [{"bearer": []}],
                "responses": {"204": _NO_CONTENT, "401": openapi.UNAUTHORIZED},
            }
        },
        "/auth/logout-everywhere": {
            "post": {
                "summary": "Revoke every token and browser session of the account",
                "security": [{"bearer": []}],
                "responses": {"204": _NO_CONTENT, "401": openapi.UNAUTHORIZED},
            }
        },
        "/auth/me": {
            "get": {
                "summary": "The caller's account",
                "security": [{"bearer": []}],
                "responses": {
                    "200": openapi.json_response("The account", {"type": "object", "properties": {"user": openapi.ref("User")}}),
                    "401": openapi.UNAUTHORIZED,
                },
            }
        },
        "/auth/forgot-password": {
            "post": {
                "summary": "Email a password reset link",
                "description": "If an account has this email, it gets a link (`/reset-password/<token>`, single use, valid "
                "`PASSWORD_RESET_MINUTES`). The answer is 202 either way, with the same body and timing. Throttled per "
                "email and per client address.",
                "requestBody": openapi.json_body("ForgotPassword"),
                "responses": {"202": _CHECK_EMAIL, "422": openapi.INVALID, "429": _TOO_MANY},
            }
        },
        "/auth/reset-password": {
            "post": {
                "summary": "Set a new password with the token from the reset email",
                "description": "Ends every login session and API token of the account and emails a notice. "
                "A wrong, expired, used or superseded token (the password changed since it was sent) answers 400, "
                "always with the same message. Log in afterwards.",
                "requestBody": openapi.json_body("ResetPassword"),
                "responses": {
                    "200": openapi.json_response("Changed", {"type": "object", "properties": {"status": {"const": "password changed"}}}),
                    "400": openapi.error_response("This link has expired or was already used"),
                    "422": openapi.INVALID,
                    "429": _TOO_MANY,
                },
            }
        },
        "/auth/resend-verification": {
            "post": {
                "summary": "Send a fresh email verification link",
                "description": "The earlier link stops working. Until the address is verified, an expert's public page and a "
                "hospital's slots are hidden from the public.",
                "security": [{"bearer": []}],
                "responses": {
                    "202": _CHECK_EMAIL,
                    "401": openapi.UNAUTHORIZED,
                    "409": openapi.error_response("Your email address is already verified"),
                    "429": _TOO_MANY,
                },
            }
        },
    },
    {
        "Credentials": _CREDENTIALS,
        "Register": {
            "type": "object",
            "required": ["name", "email", "password"],
            "properties": {"name": {"type": "string"}, "email": {"type": "string", "format": "email"}, "password": {"type": "string", "minLength": accounts.MIN_PASSWORD}},
        },
        "Signup": {
            "type": "object",
            "required": ["name", "email", "password"],
            "properties": {
                "name": {"type": "string"},
                "email": {"type": "string", "format": "email"},
                "password": {"type": "string", "minLength": accounts.MIN_PASSWORD},
                "role": {"type": "string", "enum": ["patient", "hospital"], "default": "patient"},
                "hospitalName": {"type": "string", "description": "Required when role is hospital"},
                "location": {"type": "string", "description": "Required when role is hospital"},
            },
        },
        "ForgotPassword": {"type": "object", "required": ["email"], "properties": {"email": {"type": "string", "format": "email"}}},
        "ResetPassword": {
            "type": "object",
            "required": ["token", "password"],
            "properties": {
                "token": {"type": "string", "description": "The token of the emailed link /reset-password/<token>"},
                "password": {"type": "string", "minLength": accounts.MIN_PASSWORD, "maxLength": accounts.MAX_PASSWORD},
            },
        },
        "User": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "name": {"type": "string"},
                "email": {"type": "string"},
                "emailVerified": {"type": "boolean", "description": "Whether the owner followed the verification link"},
                "role": {"type": "string", "enum": ["patient", "hospital"]},
                "isExpert": {"type": "boolean"},
                "hospitalId": {"type": ["integer", "null"]},
            },
        },
        "TokenResponse": {
            "type": "object",
            "properties": {
                "token": {"type": "string"},
                "tokenType": {"const": "Bearer"},
                "expiresIn": {"type": "integer", "description": "Seconds"},
                "user": openapi.ref("User"),
            },
        },
    },
)
