"""Typed reading of API input, used by every API handler: JSON bodies with strict types, and query
parameters parsed from text.

A JSON integer field takes only an integer (not 1.5, not ``true``), a boolean only ``true`` or
``false``, a string only a string, and no string may hold a character the database refuses
(:func:`expertbook.web.refused_character`). A query parameter that is present must parse as its
type (an empty ``?date=`` is not a date). Ids outside 1..2^31-1 name nothing: 404.

Problems are gathered per field and raised together when the handler calls :meth:`Reader.check`
(422 ``{"error": ..., "fields": {name: [message]}}``), before anything is written. Content rules
(lengths, formats, dates in the past) stay in the services, which the web forms share.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from flask import request

from expertbook import web
from expertbook.errors import NotFound, ValidationFailed

MISSING_FIELDS = "Please fill in all fields"
INVALID_FIELDS = "Some fields are not valid; see fields."
REQUIRED = "This field is required."

_ABSENT = object()


class Reader:
    """Reads named fields of one source (a JSON object, or the query string) into Python values.

    Each method returns the value, or ``default`` when the field is absent or invalid; invalid fields
    are remembered until :meth:`check`. JSON ``null`` is not a value of any type: for a required field
    it counts as missing, for an optional one it is invalid (leave the field out instead).
    """

    def __init__(self, values: Mapping[str, Any], *, text: bool = False, prefix: str = "") -> None:
        self._values = values
        self._text = text  # query parameters: every value is a string to parse
        self._prefix = prefix
        self.errors: dict[str, str] = {}
        self.missing = False
        self._not_found: str | None = None

    # ------------------------------------------------------------------ plumbing

    def _fail(self, name: str, message: str) -> None:
        self.errors.setdefault(self._prefix + name, message)

    def _get(self, name: str, required: bool) -> Any:
        value = self._values.get(name, _ABSENT)
        if value is None and required:
            value = _ABSENT  # JSON null for a required field: missing (for any other, the wrong type)
        if value is _ABSENT and required:
            self._fail(name, REQUIRED)
            self.missing = True
        return value

    def check(self) -> None:
        """Raise what was found: 422 naming every invalid field, else 404 for an id that cannot exist."""
        if self.errors:
            raise ValidationFailed(self.errors, MISSING_FIELDS if self.missing else INVALID_FIELDS)
        if self._not_found is not None:
            raise NotFound(self._not_found)

    def nested(self, values: Mapping[str, Any], prefix: str) -> Reader:
        """A reader of an object inside this one whose problems are reported as ``prefix`` + name."""
        child = Reader(values, prefix=self._prefix + prefix)
        child.errors = self.errors
        return child

    # ------------------------------------------------------------------ types

    def string(self, name: str, *, required: bool = False, default: str | None = "", max_length: int | None = None) -> str | None:
        """A string (a blank one counts as missing when required). ``default=None`` tells a field left
        out from one sent empty."""
        value = self._get(name, required)
        if value is _ABSENT:
            return default
        if not isinstance(value, str):
            self._fail(name, "Must be a string.")
            return default
        if web.refused_character(value):
            self._fail(name, web.NOT_ALLOWED)
            return default
        if required and not value.strip():
            self._fail(name, REQUIRED)
            self.missing = True
            return default
        if max_length is not None and len(value) > max_length:
            self._fail(name, f"Use at most {max_length} characters.")
            return default
        return value

    def integer(self, name: str, *, required: bool = False, default: int | None = None, low: int | None = None, high: int | None = None) -> int | None:
        """A whole number (JSON: an integer, never a float or a boolean), within ``low``..``high`` when
        given (otherwise the service that takes it holds it to its bounds)."""
        number = self._whole_field(name, required)
        if number is None:
            return default
        if low is not None and high is not None and not low <= number <= high:
            self._fail(name, f"Must be from {low} to {high}.")
            return default
        return number

    def id(self, name: str, *, not_found: str, required: bool = False) -> int | None:
        """The id of a row: a whole number; one outside 1..2^31-1 names nothing (404 ``not_found``)."""
        number = self._whole_field(name, required)
        if number is not None and not web.valid_id(number):
            self._not_found = self._not_found or not_found
            return None
        return number

    def _whole_field(self, name: str, required: bool) -> int | None:
        value = self._get(name, required)
        if value is _ABSENT:
            return None
        number = self._whole(value)
        if number is None:
            self._fail(name, "Must be a whole number.")
        return number

    def boolean(self, name: str, *, default: bool = False) -> bool:
        """``true`` or ``false`` (JSON booleans only: not ``"false"``, not 0)."""
        value = self._get(name, False)
        if value is _ABSENT:
            return default
        if not isinstance(value, bool):
            self._fail(name, "Must be true or false.")
            return default
        return value

    def number(self, name: str) -> Decimal | None:
        """A finite JSON number (an integer or a decimal, not a boolean) as the Decimal it was written as."""
        value = self._get(name, False)
        if value is _ABSENT:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or (isinstance(value, float) and not math.isfinite(value)):
            self._fail(name, "Must be a number.")
            return None
        # repr() is the shortest text that reads back as this float, i.e. what the client wrote.
        return Decimal(value) if isinstance(value, int) else Decimal(repr(value))

    def choice(self, name: str, options: Mapping[str, Any] | tuple[str, ...], *, default: str | None = None, required: bool = False) -> str | None:
        """One of ``options``."""
        value = self._get(name, required)
        if value is _ABSENT:
            return default
        if not isinstance(value, str) or value not in options:
            self._fail(name, "Use one of: " + ", ".join(f'"{option}"' for option in options) + ".")
            return default
        return value

    def day(self, name: str, *, required: bool = False) -> date | None:
        """A ``YYYY-MM-DD`` date (see :func:`expertbook.web.parse_day` for the range)."""
        return self._parsed(name, required, web.parse_day, "Use a date like 2025-01-31.")

    def moment(self, name: str, *, required: bool = False) -> datetime | None:
        """An RFC 3339 time with an offset, as aware UTC (see :func:`expertbook.web.parse_moment`)."""
        return self._parsed(name, required, web.parse_moment, "Use an ISO 8601 time with an offset, e.g. 2026-03-02T09:00:00Z.")

    def _parsed(self, name: str, required: bool, parse: Callable[[str], Any], wrong_type: str) -> Any:
        value = self._get(name, required)
        if value is _ABSENT:
            return None
        if not isinstance(value, str):
            self._fail(name, wrong_type)
            return None
        try:
            return parse(value)
        except ValueError as error:
            self._fail(name, str(error))
            return None

    def objects(self, name: str, *, required: bool = False, max_items: int | None = None) -> list[Reader]:
        """A list of JSON objects, each as a reader whose fields are reported as ``name[i].field``."""
        value = self._get(name, required)
        if value is _ABSENT:
            return []
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            self._fail(name, "Must be a list of objects.")
            return []
        if max_items is not None and len(value) > max_items:
            self._fail(name, f"Send at most {max_items}.")
            return []
        return [self.nested(item, f"{name}[{index}].") for index, item in enumerate(value)]

    def integers(self, name: str, *, low: int, high: int) -> list[int] | None:
        """A list of whole numbers, each within ``low``..``high``."""
        value = self._get(name, False)
        if value is _ABSENT:
            return None
        if not isinstance(value, list) or not all(self._whole(item) is not None and low <= item <= high for item in value):
            self._fail(name, f"Must be a list of whole numbers from {low} to {high}.")
            return None
        return list(value)

    def _whole(self, value: Any) -> int | None:
        if self._text:
            return web.whole_number(value) if isinstance(value, str) else None
        return value if type(value) is int else None  # bool is a subclass of int; 1.5 and 1.0 are floats


def body(*, optional: bool = False) -> Reader:
    """A reader of the request's JSON object body; 422 if the body is not one.

    ``optional``: an empty body reads as ``{}`` (an operation whose every field has a default).
    """
    data = web.json_object()
    if data is None:
        if optional and not request.get_data(cache=True).strip():
            return Reader({})
        raise ValidationFailed({"body": "Send a JSON object."}, MISSING_FIELDS)
    return Reader(data)


def args() -> Reader:
    """A reader of the query string."""
    return Reader(request.args, text=True)


def header(name: str, *, max_length: int, min_length: int = 0) -> str | None:
    """An optional request header of printable ASCII, stripped: None when absent (or empty, if
    ``min_length`` allows it), else 422 naming the header unless it is ``min_length``..``max_length`` long."""
    value = request.headers.get(name)
    if value is None:
        return None
    value = value.strip()
    if not value and not min_length:
        return None
    if not min_length <= len(value) <= max_length or not value.isascii() or not value.isprintable():
        raise ValidationFailed({name: f"Use {min_length} to {max_length} printable ASCII characters."}, INVALID_FIELDS)
    return value
