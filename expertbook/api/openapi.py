"""The OpenAPI description served at ``/api/openapi.json``.

Each API module registers its own paths and schemas next to its routes, so the document
cannot drift far from the code; a test checks that every API route is described.
"""
from __future__ import annotations

import copy
from typing import Any

_paths: dict[str, dict[str, Any]] = {}
_schemas: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {"type": "string", "example": "Slot not found"},
            "fields": {
                "type": "object",
                "description": "For 422: each invalid field and its messages.",
                "additionalProperties": {"type": "array", "items": {"type": "string"}},
            },
        },
    },
}


def register(paths: dict[str, dict[str, Any]], schemas: dict[str, Any] | None = None) -> None:
    """Add an API module's paths (merged per URL) and schemas to the document."""
    for url, operations in paths.items():
        _paths.setdefault(url, {}).update(operations)
    _schemas.update(schemas or {})


def error_response(description: str) -> dict[str, Any]:
    """An OpenAPI response object for a JSON error."""
    return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def json_body(schema_ref: str) -> dict[str, Any]:
    """An OpenAPI request body of the named schema."""
    return {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}}}


def json_response(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI JSON response object."""
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def ref(name: str) -> dict[str, str]:
    """A reference to a component schema."""
    return {"$ref": f"#/components/schemas/{name}"}


UNAUTHORIZED = error_response(
    '"No login token found", "Token expired" or "Invalid token" (also a token whose session ended: logged out, '
    "password changed or reset, logged out everywhere, account deleted)"
)
INVALID = error_response("Missing or invalid fields; `fields` says which")


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
            'Errors are JSON: `{"error": "<message>"}`.',
        },
        "servers": [{"url": server_url}],
        "paths": copy.deepcopy(_paths),
        "components": {
            "schemas": copy.deepcopy(_schemas),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }
