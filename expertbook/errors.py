"""Domain errors raised by services and turned into HTTP answers by the views.

Services raise these with plain messages; they never know about requests or templates.
"""
from __future__ import annotations

from collections.abc import Mapping


class ServiceError(Exception):
    """Base of all expected, user-facing failures."""

    status = 400

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class ValidationFailed(ServiceError):
    """Input was invalid (422); ``errors`` maps each field to its messages."""

    status = 422

    def __init__(self, errors: Mapping[str, str | list[str]], message: str = "Please correct the errors below."):
        super().__init__(message)
        self.errors = {k: [v] if isinstance(v, str) else list(v) for k, v in errors.items()}


class Conflict(ServiceError):
    """The request clashes with the current state (409), e.g. a slot that just filled up."""

    status = 409


class NotFound(ServiceError):
    """The object does not exist, or is not the caller's (404: we never confirm it exists)."""

    status = 404
