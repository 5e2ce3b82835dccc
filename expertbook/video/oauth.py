"""The Authlib clients for Zoom: the Flask client for the browser flow, a requests session for refresh and revoke.

Each application gets its own :class:`~authlib.integrations.flask_client.OAuth` registry (stored in
``app.extensions``), because Authlib caches clients per registry and tests build many apps with
different Zoom URLs.
"""
from __future__ import annotations

from authlib.integrations.flask_client import OAuth
from authlib.integrations.requests_client import OAuth2Session
from flask import Flask, current_app

from expertbook.video.errors import TransientMeetingError
from expertbook.video.zoom import retry_after_seconds

EXTENSION = "expertbook.video.oauth"


def _token_response_guard(response):
    """Authlib reads any JSON object as a token; a 429 or 5xx from the token endpoint is a transient failure."""
    if response.status_code == 429 or response.status_code >= 500:
        raise TransientMeetingError(
            f"Zoom's token endpoint answered {response.status_code}", retry_after_seconds(response.headers.get("Retry-After"))
        )
    return response


def _compliance_fix(session: OAuth2Session) -> None:
    session.register_compliance_hook("access_token_response", _token_response_guard)
    session.register_compliance_hook("refresh_token_response", _token_response_guard)


def init_app(app: Flask) -> None:
    """Register the Zoom client on ``app`` (called when the video blueprint is registered)."""
    oauth = OAuth(app)
    config = app.config
    oauth.register(
        "zoom",
        client_id=config.get("ZOOM_CLIENT_ID"),
        client_secret=config.get("ZOOM_CLIENT_SECRET"),
        authorize_url=config["ZOOM_AUTHORIZE_URL"],
        access_token_url=config["ZOOM_TOKEN_URL"],
        api_base_url=config["ZOOM_API_URL"] + "/",
        client_kwargs={
            "code_challenge_method": "S256",
            "token_endpoint_auth_method": "client_secret_basic",
            "default_timeout": config["ZOOM_TIMEOUT"],
        },
        compliance_fix=_compliance_fix,
    )
    app.extensions[EXTENSION] = oauth


def zoom_configured() -> bool:
    """Whether this server has Zoom OAuth credentials (otherwise only Jitsi is offered)."""
    return bool(current_app.config.get("ZOOM_CLIENT_ID") and current_app.config.get("ZOOM_CLIENT_SECRET"))


def web_client():
    """The Flask OAuth client that runs the browser's authorization-code flow with state and PKCE."""
    return current_app.extensions[EXTENSION].zoom


def token_session() -> OAuth2Session:
    """A fresh Authlib session for the token endpoint (refresh) and the revocation endpoint."""
    config = current_app.config
    session = OAuth2Session(
        client_id=config.get("ZOOM_CLIENT_ID"),
        client_secret=config.get("ZOOM_CLIENT_SECRET"),
        token_endpoint_auth_method="client_secret_basic",
        revocation_endpoint_auth_method="client_secret_basic",
        default_timeout=config["ZOOM_TIMEOUT"],
    )
    _compliance_fix(session)
    return session
