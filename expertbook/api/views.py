"""The JSON API blueprint: bearer-token authentication, JSON errors, accounts and the OpenAPI document.

The API authenticates only with ``Authorization: Bearer`` tokens, never with the session cookie,
which is why it is exempt from CSRF. Each area's endpoints live in their own module of this package
and are imported at the bottom of this file.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import partial, wraps
from importlib import import_module
from typing import Any

from flask import Blueprint, abort, current_app, g, jsonify, request, url_for
from sqlalchemy import bindparam, select

from expertbook.api import fields, openapi, service
from expertbook.auth import limits
from expertbook.auth import service as accounts
from expertbook.auth.models import User
from expertbook.errors import ServiceError, ValidationFailed
from expertbook.extensions import csrf, db

bp = Blueprint("api", __name__, url_prefix="/api")
csrf.exempt(bp)



# ---------------------------------------------------------------------------- plumbing


@bp.errorhandler(ServiceError)
def _service_error(error: ServiceError):
    body: dict[str, Any] = {"error": error.message}
    if isinstance(error, ValidationFailed):
        body["fields"] = error.errors
    return jsonify(body), error.status


def api_user() -> User:
    """The user the current request's bearer token belongs to (loaded on first use; see :func:`token_required`)."""
    user = g.get("api_user")
    if user is None:
        user = g.api_user = db.session.get(User, g.api_user_id)
        if user is None:  # the account went away during this request
            abort(401, description="Invalid token")
    return user


def api_user_id() -> int:
    """The id of the user the bearer token belongs to, without loading the user."""
    return g.api_user_id


def token_required(view: Callable | None = None, *, check_account: bool = True) -> Callable:
    """Require a valid bearer token: 401 "No login token found", "Token expired" or "Invalid token".

    The account must still exist, which costs one indexed lookup of its id; the full user (with its
    hospital) is loaded only when the view asks for it with :func:`api_user`. A view whose only write
    refuses a missing account by itself (a foreign key) may pass ``check_account=False`` to save the
    lookup; it must then answer 401 "Invalid token" when that happens.
    """
    if view is None:
        return partial(token_required, check_account=check_account)

    @wraps(view)
    def wrapped(*args, **kwargs):
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return jsonify(error="No login token found"), 401
        try:
            user_id = service.user_id_from_token(token.strip(), current_app.config["SECRET_KEY"])
        except service.TokenError as error:
            return jsonify(error=str(error)), 401
        if check_account and db.session.connection().scalar(_USER_EXISTS, {"user_id": user_id}) is None:
            return jsonify(error="Invalid token"), 401
        g.api_user_id = user_id
        return view(*args, **kwargs)

    return wrapped


_USER_EXISTS = select(User.__table__.c.id).where(User.__table__.c.id == bindparam("user_id"))


def user_json(user: User) -> dict[str, Any]:
    """The public JSON shape of an account."""
    return {
        "id": user.id,
        "name": user.name,
        "email": user.email,
        "role": "hospital" if user.is_staff else "patient",
        "isExpert": user.is_expert,
        "hospitalId": user.hospital_id,
    }


def _token_json(user: User) -> dict[str, Any]:
    token, expires_in = service.issue_token(user.id, current_app.config["SECRET_KEY"], current_app.config["API_TOKEN_HOURS"])
    return {"token": token, "tokenType": "Bearer", "expiresIn": expires_in, "user": user_json(user)}


# ---------------------------------------------------------------------------- accounts


def _account_fields(data: fields.Reader) -> tuple[str, str, str]:
    """The name, email and password every new account is sent with (their rules are the service's)."""
    name = data.string("name", required=True, max_length=120)
    email = data.string("email", required=True, max_length=accounts.MAX_EMAIL)
    password = data.string("password", required=True, max_length=accounts.MAX_PASSWORD)
    return name, email, password


@bp.post("/auth/signup")
def signup():
    """Create an account (clinic API): role ``patient``, or ``hospital`` with ``hospitalName`` and ``location``."""
    data = fields.body()
    name, email, password = _account_fields(data)
    role = data.choice("role", ("patient", "hospital"), default="patient")
    data.check()
    if role == "hospital":
        hospital_name = data.string("hospitalName", required=True, max_length=120)
        location = data.string("location", required=True, max_length=120)
        data.check()
        user = accounts.register_hospital(hospital_name, location, name, email, password)
    else:
        user = accounts.register_user(name, email, password)
    return jsonify(user=user_json(user)), 201


@bp.post("/auth/register")
def register():
    """Create a customer account (experts API) and return a bearer token for it."""
    data = fields.body()
    name, email, password = _account_fields(data)
    data.check()
    user = accounts.register_user(name, email, password)
    return jsonify(_token_json(user)), 201


@bp.post("/auth/login")
@limits.per_ip  # the same buckets as the login form's: two doors do not double the guesses
@limits.per_account
def login():
    """Exchange email and password for a signed bearer token with an expiry."""
    data = fields.body()
    email = data.string("email", required=True, max_length=accounts.MAX_EMAIL)
    password = data.string("password", required=True, max_length=accounts.MAX_PASSWORD)
    data.check()
    user = accounts.authenticate(email, password)
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


_NAME = openapi.text(120, description="Letters etc.; not \"<\", \">\" or \"@\"")
_EMAIL = openapi.text(accounts.MAX_EMAIL, format="email")
_NEW_PASSWORD = openapi.text(accounts.MAX_PASSWORD, minLength=accounts.MIN_PASSWORD)
_USER_ANSWER = openapi.answer({"user": openapi.ref("User")})
openapi.register(
    {
        "/auth/signup": {
            "post": openapi.operation(
                "Create a patient or hospital account",
                {"201": openapi.json_response("Created", _USER_ANSWER)},
                secured=False,
                body=openapi.json_body("Signup"),
            )
        },
        "/auth/register": {
            "post": openapi.operation(
                "Create a customer account and log in",
                {"201": openapi.json_response("Created", openapi.ref("TokenResponse"))},
                secured=False,
                body=openapi.json_body("Register"),
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
            )
        },
        "/auth/me": {"get": openapi.operation("The caller's account", {"200": openapi.json_response("The account", _USER_ANSWER)})},
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
        "User": openapi.answer(
            {
                "id": openapi.ID,
                "name": {"type": "string"},
                "email": {"type": "string"},
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

# Each area's endpoints live in ``expertbook/api/<area>.py`` and register themselves on ``bp`` when imported.
API_AREAS: tuple[str, ...] = ("clinic", "experts")
for _area in API_AREAS:
    import_module(f"expertbook.api.{_area}")
