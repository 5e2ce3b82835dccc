"""Helpers every blueprint's views share: htmx-aware rendering, redirects, error answers, and the
bounds every piece of input is held to (ids, dates, times, text) before it reaches a query."""
from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from flask import Response, abort, current_app, g, make_response, redirect, render_template, request
from flask_wtf import FlaskForm
from werkzeug.routing import IntegerConverter

from expertbook.errors import ValidationFailed

# Every id column is a 32-bit integer: a larger (or non-positive) id names nothing, and handing it to
# the database would be an error there (PostgreSQL: integer out of range), not "not found".
MAX_ID = 2**31 - 1
# Dates and times outside these are refused as input: nothing is booked in them, and date arithmetic
# near Python's own limits (year 1 and 9999) overflows.
FIRST_DAY = date(1900, 1, 1)
LAST_DAY = date(2999, 12, 31)
NOT_ALLOWED = "Contains characters that are not allowed."
TOO_EARLY = "That is too far in the past."
TOO_LATE = "That is too far in the future."
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# RFC 3339 (what OpenAPI's "date-time" means): a date, "T", a time with seconds, and an offset.
_MOMENT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})")
_NUMBER = re.compile(r"(-?)0*([0-9]+)")
_REFUSED = re.compile("[\x00\ud800-\udfff]")


def _up_to(limit: str) -> str:
    """A regular expression of the decimal numbers from 0 to ``limit`` with as many digits as it has
    (leading zeros included), built digit by digit."""
    if not limit:
        return ""
    first, rest = int(limit[0]), limit[1:]
    choices = [f"{limit[0]}{_up_to(rest)}" if rest else limit[0]]
    if first:
        lower = "0" if first == 1 else f"[0-{first - 1}]"
        choices.append(lower + (f"[0-9]{{{len(rest)}}}" if rest else ""))
    return "(?:" + "|".join(choices) + ")"


def _id_pattern(highest: int) -> str:
    """A regular expression of exactly the ids 1..``highest``, written without leading zeros."""
    digits = str(highest)
    shorter = f"[1-9][0-9]{{0,{len(digits) - 2}}}" if len(digits) > 1 else None
    longest = f"(?=[1-9]){_up_to(digits)}"
    return "|".join(part for part in (shorter, longest) if part)


class IdConverter(IntegerConverter):
    """The app's ``<int:...>``: only ids that can exist (1 to :data:`MAX_ID`); any other number is a 404.

    The bound is in the converter's regular expression, not only in its conversion: Werkzeug notes
    a rule whose path matched but whose method did not before it converts the values, so with the
    bound only in the conversion ``PATCH /api/bookings/<huge>`` answered 405 (a GET route of the same
    path matched) instead of 404.
    """

    regex = _id_pattern(MAX_ID)

    def __init__(self, map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("min", 1)
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)


def whole_number(text: str) -> int | None:
    """The whole number ``text`` spells in plain ASCII digits (an optional "-"), else None. Numbers of
    more than 18 digits come back as +-10**18: beyond every range we accept, and never converted
    (Python refuses to convert numbers of thousands of digits)."""
    match = _NUMBER.fullmatch(text)
    if match is None:
        return None
    sign = -1 if match.group(1) else 1
    digits = match.group(2)
    return sign * (int(digits) if len(digits) <= 18 else 10**18)


def valid_id(value: int) -> bool:
    """Whether ``value`` can be the id of a row."""
    return 1 <= value <= MAX_ID


def id_arg(name: str) -> int | None:
    """An id query parameter (``?doctor=3``): None when absent or empty, 404 when it names nothing
    (not a whole number, or outside 1 to :data:`MAX_ID`)."""
    value = request.args.get(name, "").strip()
    if not value:
        return None
    number = whole_number(value)
    if number is None or not valid_id(number):
        abort(404)
    return number


def page_arg(name: str = "page", last: int = 10_000) -> int:
    """A page number query parameter, 1 when absent or unreadable, at most ``last``."""
    number = whole_number(request.args.get(name, "").strip())
    return 1 if number is None else min(max(number, 1), last)


def parse_day(text: str) -> date:
    """A ``YYYY-MM-DD`` date between :data:`FIRST_DAY` and :data:`LAST_DAY`; ValueError with the
    reason otherwise."""
    if not _DAY.fullmatch(text):
        raise ValueError("Use a date like 2025-01-31.")
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise ValueError("That date does not exist.") from None
    if day < FIRST_DAY:
        raise ValueError(TOO_EARLY)
    if day > LAST_DAY:
        raise ValueError(TOO_LATE)
    return day


def parse_moment(text: str) -> datetime:
    """An RFC 3339 time with an offset (``2026-03-02T09:00:00Z``) as aware UTC, within the dates of
    :func:`parse_day`; ValueError with the reason otherwise (a time without an offset included)."""
    if not _MOMENT.fullmatch(text):
        raise ValueError("Use an ISO 8601 time with an offset, e.g. 2026-03-02T09:00:00Z.")
    try:
        moment = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("That time does not exist.") from None
    if moment.date() < FIRST_DAY:
        raise ValueError(TOO_EARLY)
    if moment.date() > LAST_DAY:
        raise ValueError(TOO_LATE)
    return moment.astimezone(UTC)


def day_arg(value: str | None) -> date | None:
    """A date from a page's query string or form: None when empty, malformed or out of range
    (pages then show their default, as for any hand-edited address)."""
    try:
        return parse_day(value.strip()) if value else None
    except ValueError:
        return None


def moment_arg(value: str | None) -> datetime | None:
    """An aware time from a page's query string or form (see :func:`parse_moment`), else None.
    A "+" in a hand-typed query string arrives as a space."""
    try:
        return parse_moment(value.strip().replace(" ", "+")) if value else None
    except ValueError:
        return None


def refused_character(text: str) -> bool:
    """Whether ``text`` holds a character no database text column takes: NUL (PostgreSQL refuses
    it) or half of a UTF-16 surrogate pair (which cannot be encoded as UTF-8 at all)."""
    return _REFUSED.search(text) is not None


_NOT_JSON = object()


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def json_object() -> dict[str, Any] | None:
    """The request's body as a JSON object, or None if it is not one (not JSON, not an object, or
    using what JSON does not have: NaN, Infinity, nesting deeper than Python recurses). Parsed once
    per request."""
    parsed = g.get("_json_object", _NOT_JSON)
    if parsed is _NOT_JSON:
        parsed = None
        if request.is_json:
            try:
                data = json.loads(request.get_data(cache=True), parse_constant=_refuse_constant)
            except (ValueError, RecursionError):
                data = None
            parsed = data if isinstance(data, dict) else None
        g._json_object = parsed
    return parsed


def is_htmx() -> bool:
    """Whether this request came from htmx (any kind, boosted ones included)."""
    return request.headers.get("HX-Request") == "true"


def wants_fragment() -> bool:
    """Whether to answer with a fragment rather than the full page.

    Boosted navigation and history restores replace the whole body, so they get the page.
    """
    return (
        is_htmx()
        and request.headers.get("HX-Boosted") != "true"
        and request.headers.get("HX-History-Restore-Request") != "true"
    )


def render(page: str, fragment: str, status: int = 200, **context: Any) -> Response:
    """Render ``page`` for a normal request or ``fragment`` for an htmx swap, with ``Vary: HX-Request``."""
    template = fragment if wants_fragment() else page
    response = make_response(render_template(template, **context), status)
    response.vary.add("HX-Request")
    return response


def no_store(view):
    """Send ``Cache-Control: no-store`` with ``view``'s answers: pages that show live booking state (places
    left, a token, a booking form) must be asked for again on Back or reload, never shown from a cache."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        response = make_response(view(*args, **kwargs))
        response.headers["Cache-Control"] = "no-store"
        return response

    return wrapped


def is_safe_next(target: str | None) -> bool:
    """Whether ``target`` is a same-site path we may redirect to after login.

    Browsers treat backslashes as slashes and ignore tabs and newlines, so anything
    other than a plain absolute path is refused.
    """
    if not target or not target.startswith("/") or target.startswith("//"):
        return False
    if "\\" in target or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in target):
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc


def safe_next(target: str | None, default: str) -> str:
    """``target`` if it is a safe same-site path, else ``default``."""
    return target if is_safe_next(target) else default


def redirect_to(location: str, status: int = 303) -> Response:
    """Redirect after a write; under htmx use ``HX-Location``-free ``HX-Redirect`` so the page really changes."""
    if is_htmx() and not request.headers.get("HX-Boosted"):
        response = make_response("", 204)
        response.headers["HX-Redirect"] = location
        return response
    return redirect(location, status)


def apply_errors(form, error: ValidationFailed) -> None:
    """Copy a service's field errors onto a WTForms form so the template shows them."""
    for name, messages in error.errors.items():
        field = getattr(form, name, None)
        if field is not None:
            field.errors = list(field.errors) + messages


def external_url(endpoint: str, **values: Any) -> str:
    """An absolute link under ``BASE_URL``, for emails and jobs: it works outside a request and never
    trusts the request's Host header."""
    path = current_app.url_map.bind("localhost", script_name=current_app.config.get("APPLICATION_ROOT") or "/").build(endpoint, values)
    return current_app.config["BASE_URL"] + path


class EmptyForm(FlaskForm):
    """A form with only the CSRF token, for buttons that change state."""
