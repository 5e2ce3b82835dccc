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
from expertbook.api.base import api_user, bp, json_body, token_required, user_json
from expertbook.auth import limits
from expertbook.auth import service as accounts
from expertbook.auth.models import User
from expertbook.clinic import service as clinic
from expertbook.errors import ValidationFailed

__all__ = ["bp"]


def _token_json(user: User) -> dict[str, Any]:
    token, expires_in = service.issue_token(user.id, current_app.config["SECRET_KEY"], current_app.config["API_TOKEN_HOURS"])
    return {"token": token, "tokenType": "Bearer", "expiresIn": expires_in, "user": user_json(user)}


# ---------------------------------------------------------------------------- accounts


@bp.post("/auth/signup")
def signup():
    """Create an account (clinic API): role ``patient``, or ``hospital`` with ``hospitalName`` and ``location``."""
    data = json_body("name", "email", "password")
    role = data.get("role") or "patient"
    if role == "hospital":
        data = json_body("name", "email", "password", "hospitalName", "location")
        user = clinic.register_hospital(data["hospitalName"], data["location"], data["name"], data["email"], data["password"])
    elif role == "patient":
        user = accounts.register_user(data["name"], data["email"], data["password"])
    else:
        raise ValidationFailed({"role": 'Use "patient" or "hospital".'}, 'Role must be "patient" or "hospital"')
    return jsonify(user=user_json(user)), 201


@bp.post("/auth/register")
def register():
    """Create a customer account (experts API) and return a bearer token for it."""
    data = json_body("name", "email", "password")
    user = accounts.register_user(data["name"], data["email"], data["password"])
    return jsonify(_token_json(user)), 201


@bp.post("/auth/login")
@limits.per_ip  # the same buckets as the login form's: two doors do not double the guesses
@limits.per_account
def login():
    """Exchange email and password for a signed bearer token with an expiry."""
    data = json_body("email", "password")
    user = accounts.authenticate(str(data["email"]), str(data["password"]))
    if user is None:
        return jsonify(error="Invalid email or password"), 401
    return jsonify(_token_json(user))


@bp.get("/auth/me")
@token_required
def me():
    """The account the bearer token belongs to."""
    return jsonify(user=user_json(api_user()))


@bp.get("/openapi.json")
def openapi_document():
    """The OpenAPI 3.1 description of this API."""
    return jsonify(openapi.document(url_for("main.index", _external=True).rstrip("/") + "/api"))


_CREDENTIALS = {"type": "object", "required": ["email", "password"], "properties": {"email": {"type": "string", "format": "email"}, "password": {"type": "string"}}}
openapi.register(
    {
        "/auth/signup": {
            "post": {
                "summary": "Create a patient or hospital account",
                "requestBody": openapi.json_body("Signup"),
                "responses": {
                    "201": openapi.json_response("Created", {"type": "object", "properties": {"user": openapi.ref("User")}}),
                    "422": openapi.INVALID,
                },
            }
        },
        "/auth/register": {
            "post": {
                "summary": "Create a customer account and log in",
                "requestBody": openapi.json_body("Register"),
                "responses": {"201": openapi.json_response("Created", openapi.ref("TokenResponse")), "422": openapi.INVALID},
            }
        },
        "/auth/login": {
            "post": {
                "summary": "Get a bearer token",
                "requestBody": openapi.json_body("Credentials"),
                "responses": {
                    "200": openapi.json_response("Logged in", openapi.ref("TokenResponse")),
                    "401": openapi.error_response("Invalid email or password"),
                    "422": openapi.INVALID,
                    "429": openapi.error_response("Too many failed attempts"),
                },
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
        "User": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "name": {"type": "string"},
                "email": {"type": "string"},
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
