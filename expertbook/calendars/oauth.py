"""The Authlib clients for Google: the Flask client for the browser flow, a requests session for refresh and revoke.

As for Zoom (:mod:`expertbook.video.oauth`), each application gets its own registry, because Authlib caches
clients per registry and tests build many apps with different Google URLs.
"""
from __future__ import annotations

from authlib.integrations.flask_client import OAuth
from authlib.integrations.requests_client import OAuth2Session
from flask import Flask, current_app

from expertbook.calendars.errors import CalendarUnavailable

EXTENSION = "expertbook.calendars.oauth"
# Read the calendars and their busy times, write the bookings' events; who the account is (its email).
SCOPES = "openid email https://www.googleapis.com/auth/calendar.readonly https://www.googleapis.com/auth/calendar.events"


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds, when it is a number (Google sends seconds)."""
    value = (value or "").strip()
    return float(value) if value.isdigit() else None


def _token_response_guard(response):
    """Authlib reads any JSON object as a token; a 429 or 5xx from the token endpoint is a transient failure."""
    if response.status_code == 429 or response.status_code >= 500:
        raise CalendarUnavailable(
            f"Google's token endpoint answered {response.status_code}", retry_after_seconds(response.headers.get("Retry-After"))
        )
    return response


def _compliance_fix(session: OAuth2Session) -> None:
    session.register_compliance_hook("access_token_response", _token_response_guard)
    session.register_compliance_hook("refresh_token_response", _token_response_guard)


def init_app(app: Flask) -> None:
    """Register the Google client on ``app`` (called when the calendars blueprint is registered)."""
    oauth = OAuth(app)
    config = app.config
    oauth.register(
        "google",
        client_id=config.get("GOOGLE_CLIENT_ID"),
        client_secret=config.get("GOOGLE_CLIENT_SECRET"),
        authorize_url=config["GOOGLE_AUTHORIZE_URL"],
        access_token_url=config["GOOGLE_TOKEN_URL"],
        # offline: a refresh token; consent: Google gives one again on a re-authorization too.
        authorize_params={"access_type": "offline", "prompt": "consent", "include_granted_scopes": "true"},
        client_kwargs={
            "scope": SCOPES,
            "code_challenge_method": "S256",
            "token_endpoint_auth_method": "client_secret_post",
            "default_timeout": config["CALENDAR_TIMEOUT"],
        },
        compliance_fix=_compliance_fix,
    )
    app.extensions[EXTENSION] = oauth


def google_configured() -> bool:
    """Whether this server has Google OAuth credentials (otherwise Google Calendar and Meet are not offered)."""
    return bool(current_app.config.get("GOOGLE_CLIENT_ID") and current_app.config.get("GOOGLE_CLIENT_SECRET"))


def web_client():
    """The Flask OAuth client that runs the browser's authorization-code flow with state and PKCE."""
    return current_app.extensions[EXTENSION].google


def token_session() -> OAuth2Session:
    """A fresh Authlib session for the token endpoint (refresh) and the revocation endpoint."""
    config = current_app.config
    session = OAuth2Session(
        client_id=config.get("GOOGLE_CLIENT_ID"),
        client_secret=config.get("GOOGLE_CLIENT_SECRET"),
        token_endpoint_auth_method="client_secret_post",
        revocation_endpoint_auth_method="client_secret_post",
        default_timeout=config["CALENDAR_TIMEOUT"],
    )
    _compliance_fix(session)
    return session
