"""The API's plumbing, shared by every module of the package: the blueprint, bearer tokens, JSON bodies and errors.

The API authenticates only with ``Authorization: Bearer`` tokens, never with the session cookie,
which is why it is exempt from CSRF.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import partial, wraps
from typing import Any

from flask import Blueprint, abort, current_app, g, jsonify, request

from expertbook import keys
from expertbook.api import fields, service
from expertbook.auth import sessions
from expertbook.auth.models import User
from expertbook.errors import ServiceError, ValidationFailed
from expertbook.extensions import csrf, db

bp = Blueprint("api", __name__, url_prefix="/api")
csrf.exempt(bp)


@bp.errorhandler(ServiceError)
def _service_error(error: ServiceError):
    body: dict[str, Any] = {"error": error.message}
    if isinstance(error, ValidationFailed):
        body["fields"] = error.errors
    return jsonify(body), error.status


def json_body(*, optional: bool = False) -> fields.Reader:
    """The request's JSON object as a typed reader (strict JSON types; see :mod:`expertbook.api.fields`);
    422 if the body is not a JSON object. ``optional``: an empty body reads as ``{}``."""
    return fields.body(optional=optional)


def query_args() -> fields.Reader:
    """The query string as a typed reader: a parameter that is present must parse as its type."""
    return fields.args()


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


def api_session_hash() -> str:
    """The stored hash of the login session the bearer token stands for."""
    return g.api_session_hash


def token_required(view: Callable | None = None, *, check_session: bool = True) -> Callable:
    """Require a valid bearer token: 401 "No login token found", "Token expired" or "Invalid token".

    A token is valid while its signature and expiry hold (checked once per worker, then cached) and
    its login session is open: not logged out, not ended by a password change or reset, by "log out
    everywhere" or by the account's deletion (whose sessions go with it). That check is one indexed
    lookup by primary key, the one the account check used to be; the full user (with its hospital) is
    loaded only when the view asks for it with :func:`api_user`. A view whose write checks the session
    inside its own statement may pass ``check_session=False`` to save the lookup (the clinic booking,
    see ``api_session_hash``); it must then answer 401 "Invalid token" when that check fails.
    """
    if view is None:
        return partial(token_required, check_session=check_session)

    @wraps(view)
    def wrapped(*args, **kwargs):
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return jsonify(error="No login token found"), 401
        try:
            claims = service.token_claims(token.strip(), keys.accepted())
        except service.TokenError as error:
            return jsonify(error=str(error)), 401
        if check_session and not sessions.api_session_alive(claims.session_hash, claims.user_id):
            return jsonify(error="Invalid token"), 401
        g.api_user_id, g.api_session_hash = claims.user_id, claims.session_hash
        return view(*args, **kwargs)

    return wrapped


def user_json(user: User) -> dict[str, Any]:
    """The public JSON shape of an account."""
    return {
        "id": user.id,
        "name": user.name,
        "email": user.email,
        "emailVerified": user.email_verified,
        "role": "hospital" if user.is_staff else "patient",
        "isExpert": user.is_expert,
        "hospitalId": user.hospital_id,
    }


def new_token(user_id: int) -> tuple[str, int]:
    """Open an API login session for ``user_id`` and return its signed token and lifetime in seconds."""
    config = current_app.config
    expires_at = service.expiry(config["API_TOKEN_HOURS"])
    session_id = sessions.start_api_session(
        user_id, expires_at, user_agent=request.user_agent.string, ip=request.remote_addr
    )
    token = service.issue_token(user_id, session_id, keys.current(), expires_at)
    return token, int(config["API_TOKEN_HOURS"] * 3600)
