"""Helpers every blueprint's views share: htmx-aware rendering, redirects and error answers."""
from __future__ import annotations

from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from flask import Response, current_app, make_response, redirect, render_template, request
from flask_wtf import FlaskForm

from expertbook.errors import ValidationFailed


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
