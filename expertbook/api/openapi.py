"""The OpenAPI description served at ``/api/openapi.json``.

Each API module registers its own paths and schemas next to its routes, so the document
cannot drift far from the code; a test checks that every API route is described, and
schemathesis (``tests/api/test_schemathesis.py``) checks that the app refuses what the document
forbids and answers only what it documents. So the document states every type, bound and required
field the handlers enforce (:mod:`expertbook.api.fields`), and no constraint they do not.
"""
from __future__ import annotations

import copy
from typing import Any

from expertbook.web import FIRST_DAY, LAST_DAY, MAX_ID

_paths: dict[str, dict[str, Any]] = {}
# OpenAPI 3.1's ``webhooks``: the requests ExpertBook sends to its subscribers (expertbook/webhooks registers them).
_webhooks: dict[str, dict[str, Any]] = {}
_schemas: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {
            "error": {"type": "string", "example": "Slot not found"},
            "fields": {
                "type": "object",
                "description": "For 400 and 422: each invalid field and its messages.",
                "additionalProperties": {"type": "array", "items": {"type": "string"}},
            },
        },
    },
}

ID = {"type": "integer", "format": "int32", "minimum": 1, "maximum": MAX_ID}
# The dates the API takes: YYYY-MM-DD from FIRST_DAY's year (1900) to LAST_DAY's (2999); a test
# holds the pattern to those bounds.
DATE = {
    "type": "string",
    "format": "date",
    "pattern": "^(19|2[0-9])[0-9]{2}-[0-9]{2}-[0-9]{2}$",
    "description": f"YYYY-MM-DD, {FIRST_DAY.year} to {LAST_DAY.year}",
}
DATE_TIME = {"type": "string", "format": "date-time"}
BOOLEAN = {"type": "boolean"}
NULLABLE_ID = {"type": ["integer", "null"]}


def text(max_length: int | None = None, **extra: Any) -> dict[str, Any]:
    """A string schema of at most ``max_length`` characters. (No string may hold NUL, as the document's
    description says; a pattern saying so would make generating examples from the document slow.)"""
    schema: dict[str, Any] = {"type": "string"}
    if max_length is not None:
        schema["maxLength"] = max_length
    schema.update(extra)
    return schema


def integer(low: int, high: int, **extra: Any) -> dict[str, Any]:
    """A whole number within ``low``..``high`` (JSON: an integer; 1.0 and true are refused)."""
    return {"type": "integer", "minimum": low, "maximum": high, **extra}


def obj(properties: dict[str, Any], required: list[str] | tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:
    """An object schema; ``required`` lists the properties always present (in answers) or needed (in requests)."""
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    schema.update(extra)
    return schema


def answer(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """An answer's object: every property always present, nothing else."""
    return obj(properties, list(properties), additionalProperties=False, **extra)


def register(paths: dict[str, dict[str, Any]], schemas: dict[str, Any] | None = None) -> None:
    """Add an API module's paths (merged per URL) and schemas to the document."""
    for url, operations in paths.items():
        _paths.setdefault(url, {}).update(operations)
    _schemas.update(schemas or {})


def register_webhooks(webhooks: dict[str, dict[str, Any]], schemas: dict[str, Any] | None = None) -> None:
    """Add outgoing requests (OpenAPI 3.1 ``webhooks``: name -> path item) and their schemas to the document."""
    _webhooks.update(webhooks)
    _schemas.update(schemas or {})


def error_response(description: str) -> dict[str, Any]:
    """An OpenAPI response object for a JSON error."""
    return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def json_body(schema_ref: str, required: bool = True) -> dict[str, Any]:
    """An OpenAPI request body of the named schema."""
    return {"required": required, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}}}


def json_response(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI JSON response object."""
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def ref(name: str) -> dict[str, str]:
    """A reference to a component schema."""
    return {"$ref": f"#/components/schemas/{name}"}


def path_id(name: str) -> dict[str, Any]:
    """A path parameter that is an id (any other number is a 404)."""
    return {"name": name, "in": "path", "required": True, "schema": ID}


def query(name: str, schema: dict[str, Any], description: str = "", required: bool = False) -> dict[str, Any]:
    """A query parameter; a typed one that is present must parse (``?date=`` is not a date)."""
    parameter = {"name": name, "in": "query", "required": required, "schema": schema}
    if description:
        parameter["description"] = description
    return parameter


UNAUTHORIZED = error_response(
    '"No login token found", "Token expired" or "Invalid token" (also a token whose session ended: logged out, '
    "password changed or reset, logged out everywhere, account deleted)"
)
INVALID = error_response("Missing or invalid fields; `fields` says which")
BAD_CHARACTERS = error_response("The query string holds characters that are not allowed (NUL); `fields` says which")
TOO_LARGE = error_response("The body is larger than the server takes (MAX_CONTENT_LENGTH, 1 MB by default)")
BEARER = [{"bearer": []}]


def operation(
    summary: str,
    responses: dict[str, Any],
    *,
    secured: bool = True,
    optional_bearer: bool = False,
    body: dict[str, Any] | None = None,
    parameters: list[dict[str, Any]] | None = None,
    description: str = "",
) -> dict[str, Any]:
    """One operation with the answers every operation can give: 400 (NUL in the query string), 401
    without a valid bearer token when ``secured`` (or a wrong one when ``optional_bearer``), 413 and 422
    when it takes a body."""
    op: dict[str, Any] = {"summary": summary, "responses": dict(responses)}
    if description:
        op["description"] = description
    op["responses"].setdefault("400", BAD_CHARACTERS)
    if secured or optional_bearer:
        # optional_bearer: with a token the caller acts as its account, without one as a guest.
        op["security"] = BEARER + [{}] if optional_bearer else BEARER
        op["responses"].setdefault("401", UNAUTHORIZED)
    if body is not None:
        op["requestBody"] = body
        op["responses"].setdefault("413", TOO_LARGE)
        op["responses"].setdefault("422", INVALID)
    if parameters:
        op["parameters"] = parameters
        if any(p["in"] == "query" for p in parameters):
            op["responses"].setdefault("422", INVALID)
    return op


def document(server_url: str) -> dict[str, Any]:
    """The whole OpenAPI 3.1 document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ExpertBook API",
            "version": "1",
            "description": "Clinic slots with token numbers, and expert bookings. "
            "Authenticate with `POST /api/auth/login` and send `Authorization: Bearer <token>`. "
            "A token stands for one login session: it stops working at its expiry, at `POST /api/auth/logout`, "
            "and when the password is changed or reset or the account logs out everywhere. "
            "Registration (`/auth/register`, `/auth/signup`) answers 202 whether or not the address already has "
            "an account and never returns a token: log in afterwards. "
            'Errors are JSON: `{"error": "<message>"}`, with `fields` naming each invalid field on 422. '
            "JSON types are strict: an integer field takes only integers (not 1.5, not true), a boolean only "
            "true or false, a string only a string, and no string may contain NUL (U+0000). "
            "Ids are 1 to 2147483647; any other is a 404. Dates and times are from 1900 to 2999. "
            "Bodies over 1 MB are refused with 413.",
        },
        "servers": [{"url": server_url}],
        "paths": copy.deepcopy(_paths),
        "webhooks": copy.deepcopy(_webhooks),
        "components": {
            "schemas": copy.deepcopy(_schemas),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }
