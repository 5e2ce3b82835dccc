"""The API's plumbing, shared by every module of the package: the blueprint, bearer tokens, JSON bodies and errors.

The API authenticates only with ``Authorization: Bearer`` tokens, never with the session cookie,
which is why it is exempt from CSRF.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import partial, wraps
from typing import Any

from flask import Blueprint, abort, current_app, g, jsonify, request
from sqlalchemy import bindparam, select

from expertbook.api import service
from expertbook.auth.models import User
from expertbook.errors import ServiceError, ValidationFailed
from expertbook.extensions import csrf, db

bp = Blueprint("api", __name__, url_prefix="/api")
csrf.exempt(bp)

MISSING_FIELDS = "Please fill in all fields"


@bp.errorhandler(ServiceError)
def _service_error(error: ServiceError):
    body: dict[str, Any] = {"error": error.message}
    if isinstance(error, ValidationFailed):
        body["fields"] = error.errors
    return jsonify(body), error.status


def json_body(*required: str) -> dict[str, Any]:
    """The request's JSON object; raises 422 naming every required field that is missing or blank."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ValidationFailed({"body": "Send a JSON object."}, MISSING_FIELDS)
    missing = {
        name: "This field is required."
        for name in required
        if data.get(name) is None or (isinstance(data.get(name), str) and not data[name].strip())
    }
    if missing:
        raise ValidationFailed(missing, MISSING_FIELDS)
    return data


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
