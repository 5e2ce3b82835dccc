"""The JSON API blueprint: accounts and the OpenAPI document; each area's endpoints are in their own module.

The blueprint and the plumbing (bearer tokens, JSON bodies and errors) are in :mod:`expertbook.api.base`;
the endpoints of each area live in ``expertbook/api/<area>.py``, imported here so they register on ``bp``.
"""
from __future__ import annotations

from typing import Any

from flask import current_app, jsonify, url_for

from expertbook.api import clinic as _clinic_endpoints  # noqa: F401 - registers the clinic endpoints on bp
from expertbook.api import experts as _experts_endpoints  # noqa: F401 - registers the experts endpoints on bp
from expertbook.api import openapi
from expertbook.api import fields
from expertbook.api.base import api_session_hash, api_user, api_user_id, bp, json_body, new_token, token_required, user_json
from expertbook.auth import limits, sessions
from expertbook.auth import service as accounts
from expertbook.auth.models import User
from expertbook.clinic import hospitals
from expertbook.errors import Conflict

__all__ = ["bp"]


def _token_json(user: User) -> dict[str, Any]:
    token, expires_in = new_token(user.id)
    return {"token": token, "tokenType": "Bearer", "expiresIn": expires_in, "user": user_json(user)}


CHECK_YOUR_EMAIL = {"status": "check your email"}


def _neutral():
    """How long the answers that must not tell whether an account exists take at least."""
    return accounts.steady(current_app.config["ACCOUNT_ANSWER_SECONDS"])


# ---------------------------------------------------------------------------- accounts


def _account_fields(data: fields.Reader) -> tuple[str, str, str]:
    """The name, email and password every new account is sent with (their rules are the service's)."""
    name = data.string("name", required=True, max_length=120)
    email = data.string("email", required=True, max_length=accounts.MAX_EMAIL)
    password = data.string("password", required=True, max_length=accounts.MAX_PASSWORD)
    return name, email, password


@bp.post("/auth/signup")
@limits.register_per_ip
def signup():
    """Create an account (clinic API): role ``patient``, or ``hospital`` with ``hospitalName`` and ``location``.

    Answers 202 ``{"status": "check your email"}`` whether or not the address already has an account
    (its owner is then told by email); the client logs in with ``POST /auth/login``.
    """
    data = json_body()
    name, email, password = _account_fields(data)
    role = data.choice("role", ("patient", "hospital"), default="patient")
    data.check()
    if role == "hospital":
        hospital_name = data.string("hospitalName", required=True, max_length=120)
        location = data.string("location", required=True, max_length=120)
        data.check()
    with _neutral():
        if role == "hospital":
            hospitals.register_hospital(hospital_name, location, name, email, password)
        else:
            accounts.register_user(name, email, password)
    return jsonify(CHECK_YOUR_EMAIL), 202


@bp.post("/auth/register")
@limits.register_per_ip
def register():
    """Create a customer account (experts API); answers 202 ``{"status": "check your email"}`` like signup."""
    data = json_body()
    name, email, password = _account_fields(data)
    data.check()
    with _neutral():
        accounts.register_user(name, email, password)
    return jsonify(CHECK_YOUR_EMAIL), 202


@bp.post("/auth/login")
@limits.per_ip  # the same buckets as the login form's: two doors do not double the guesses
@limits.per_account
def login():
    """Exchange email and password for a signed bearer token with an expiry (one new login session)."""
    data = json_body()
    email = data.string("email", required=True, max_length=accounts.MAX_EMAIL)
    password = data.string("password", required=True, max_length=accounts.MAX_PASSWORD)
    data.check()
    user = accounts.authenticate(email, password)
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
    data = json_body()
    email = data.string("email", required=True, max_length=accounts.MAX_EMAIL)
    data.check()
    with _neutral():
        accounts.request_password_reset(email)
    return jsonify(CHECK_YOUR_EMAIL), 202


@bp.post("/auth/reset-password")
@limits.reset_per_ip
def reset_password():
    """Set a new password with the token from the reset email: 200, or 400 for a wrong, expired or used token.

    Every session and token of the account ends; the client logs in again with the new password.
    """
    data = json_body()
    token = data.string("token", required=True)
    password = data.string("password", required=True, max_length=accounts.MAX_PASSWORD)
    data.check()
    accounts.reset_password(token, password)
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


_NAME = openapi.text(120, description='Letters etc.; not "<", ">" or "@"')
_EMAIL = openapi.text(accounts.MAX_EMAIL, format="email")
_NEW_PASSWORD = openapi.text(accounts.MAX_PASSWORD, minLength=accounts.MIN_PASSWORD)
_USER_ANSWER = openapi.answer({"user": openapi.ref("User")})
_CHECK_EMAIL = openapi.json_response(
    'Always the same, whether or not the address has an account: {"status": "check your email"}',
    openapi.answer({"status": {"const": "check your email"}}),
)
_TOO_MANY = openapi.error_response("Too many attempts from this address (or for this email)")
_NO_CONTENT = {"description": "Done; no body"}
openapi.register(
    {
        "/auth/signup": {
            "post": openapi.operation(
                "Create a patient or hospital account",
                {"202": _CHECK_EMAIL, "429": _TOO_MANY},
                secured=False,
                body=openapi.json_body("Signup"),
                description="Answers 202 whether or not the email already has an account: a new account gets a "
                "verification email, an existing one's owner an email saying someone tried to register. No token is "
                "returned in either case: log in with `POST /auth/login`. Throttled per client address.",
            )
        },
        "/auth/register": {
            "post": openapi.operation(
                "Create a customer account",
                {"202": _CHECK_EMAIL, "429": _TOO_MANY},
                secured=False,
                body=openapi.json_body("Register"),
                description="Like `/auth/signup` (role patient): 202 for a new and an existing email alike; log in afterwards.",
            )
        },
        "/auth/login": {
            "post": openapi.operation(
                "Get a bearer token",
                {
                    "200": openapi.json_response("Logged in", openapi.ref("TokenResponse")),
                    "401": openapi.error_response("Invalid email or password"),
                    "429": openapi.error_response("Too many failed attempts"),
                },
                secured=False,
                body=openapi.json_body("Credentials"),
                description="Each login opens one login session (listed on the account's Security page); the token "
                "works until it expires or that session ends.",
            )
        },
        "/auth/logout": {
            "post": openapi.operation(
                "Revoke this token",
                {"204": _NO_CONTENT},
                description="Ends the login session of the token sent; it answers 401 from then on. Other tokens "
                "and browsers stay logged in.",
            )
        },
        "/auth/logout-everywhere": {
            "post": openapi.operation("Revoke every token and browser session of the account", {"204": _NO_CONTENT})
        },
        "/auth/me": {"get": openapi.operation("The caller's account", {"200": openapi.json_response("The account", _USER_ANSWER)})},
        "/auth/forgot-password": {
            "post": openapi.operation(
                "Email a password reset link",
                {"202": _CHECK_EMAIL, "429": _TOO_MANY},
                secured=False,
                body=openapi.json_body("ForgotPassword"),
                description="If an account has this email, it gets a link (`/reset-password/<token>`, single use, valid "
                "`PASSWORD_RESET_MINUTES`). The answer is 202 either way, with the same body and timing. Throttled per "
                "email and per client address.",
            )
        },
        "/auth/reset-password": {
            "post": openapi.operation(
                "Set a new password with the token from the reset email",
                {
                    "200": openapi.json_response("Changed", openapi.answer({"status": {"const": "password changed"}})),
                    "400": openapi.error_response("This link has expired or was already used"),
                    "429": _TOO_MANY,
                },
                secured=False,
                body=openapi.json_body("ResetPassword"),
                description="Ends every login session and API token of the account and emails a notice. "
                "A wrong, expired, used or superseded token (the password changed since it was sent) answers 400, "
                "always with the same message. Log in afterwards.",
            )
        },
        "/auth/resend-verification": {
            "post": openapi.operation(
                "Send a fresh email verification link",
                {
                    "202": _CHECK_EMAIL,
                    "409": openapi.error_response("Your email address is already verified"),
                    "429": _TOO_MANY,
                },
                description="The earlier link stops working. Until the address is verified, an expert's public page and a "
                "hospital's slots are hidden from the public.",
            )
        },
    },
    {
        "Credentials": openapi.obj(
            {"email": openapi.text(accounts.MAX_EMAIL), "password": openapi.text(accounts.MAX_PASSWORD)}, ["email", "password"]
        ),
        "Register": openapi.obj({"name": _NAME, "email": _EMAIL, "password": _NEW_PASSWORD}, ["name", "email", "password"]),
        "Signup": openapi.obj(
            {
                "name": _NAME,
                "email": _EMAIL,
                "password": _NEW_PASSWORD,
                "role": {"type": "string", "enum": ["patient", "hospital"], "default": "patient"},
                "hospitalName": openapi.text(120, description="Required when role is hospital"),
                "location": openapi.text(120, description="Required when role is hospital"),
            },
            ["name", "email", "password"],
            # A hospital account needs its hospital's name and location.
            anyOf=[
                {"properties": {"role": {"const": "patient"}}},
                {"required": ["role", "hospitalName", "location"], "properties": {"role": {"const": "hospital"}}},
            ],
        ),
        "ForgotPassword": openapi.obj({"email": openapi.text(accounts.MAX_EMAIL)}, ["email"]),
        "ResetPassword": openapi.obj(
            {
                "token": openapi.text(description="The token of the emailed link /reset-password/<token>"),
                "password": _NEW_PASSWORD,
            },
            ["token", "password"],
        ),
        "User": openapi.answer(
            {
                "id": openapi.ID,
                "name": {"type": "string"},
                "email": {"type": "string"},
                "emailVerified": {"type": "boolean", "description": "Whether the owner followed the verification link"},
                "role": {"type": "string", "enum": ["patient", "hospital"]},
                "isExpert": openapi.BOOLEAN,
                "hospitalId": openapi.NULLABLE_ID,
            }
        ),
        "TokenResponse": openapi.answer(
            {
                "token": {"type": "string"},
                "tokenType": {"const": "Bearer"},
                "expiresIn": {"type": "integer", "description": "Seconds"},
                "user": openapi.ref("User"),
            }
        ),
    },
)
