"""Settings → Video: connect Zoom (OAuth with state and PKCE), test, re-authorize, disconnect; Zoom's webhook."""
from __future__ import annotations

import json
import logging
from functools import wraps

import click
from authlib.integrations.base_client import OAuthError
from flask import Blueprint, abort, current_app, flash, jsonify, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required
from requests import RequestException

from expertbook.extensions import csrf
from expertbook.video import meetings, oauth, service
from expertbook.video.models import MEETING_CREATED
from expertbook.video.errors import MeetingError, ReauthRequired, TransientMeetingError
from expertbook.web import external_url, is_htmx, redirect_to, render

log = logging.getLogger(__name__)

# cli_group=None: the command is ``flask rotate-token-keys``, not ``flask video rotate-token-keys``.
bp = Blueprint("video", __name__, url_prefix="/video", cli_group=None)


@bp.record_once
def _setup(state) -> None:
    from expertbook.video import emails, subscribers

    oauth.init_app(state.app)
    subscribers.connect()
    emails.connect()


def expert_required(view):
    """Only experts may use ``view``; others get 404, as if it were not there."""

    @wraps(view)
    @login_required
    def wrapped(*args, **kwargs):
        if not current_user.is_expert:
            abort(404)
        return view(*args, **kwargs)

    return wrapped


def _zoom_or_404() -> None:
    if not oauth.zoom_configured():
        abort(404)


@bp.get("/settings")
@expert_required
def settings():
    """The expert's video settings: which provider meetings use, and the Zoom connection."""
    return render(
        "video/settings.html",
        "video/_zoom_status.html",
        account=service.zoom_account(current_user.id),
        zoom_available=oauth.zoom_configured(),
    )


@bp.get("/zoom/connect")
@expert_required
def zoom_connect():
    """Send the expert to Zoom to authorize us (also "Re-authorize").

    A GET on purpose: the CSP's ``form-action 'self'`` would block a form POST that redirects to
    Zoom. It changes nothing in the database; only the OAuth ``state`` and PKCE verifier go into
    the (signed) session, where the callback checks them.
    """
    _zoom_or_404()
    # Only the latest attempt stays valid: repeated clicks must not pile states up in the session cookie.
    for key in [key for key in session if key.startswith("_state_zoom_")]:
        session.pop(key)
    redirect_uri = external_url("video.zoom_callback")
    return oauth.web_client().authorize_redirect(redirect_uri)


@bp.get("/zoom/callback")
@expert_required
def zoom_callback():
    """Zoom's redirect back: check ``state``, exchange the code with the PKCE verifier, store the grant.

    This GET writes to the database because OAuth's redirect is a GET; it is protected by the
    single-use ``state`` bound to this browser's session, which is what CSRF protection would give.
    """
    _zoom_or_404()
    if request.args.get("error"):
        flash("Zoom was not connected: the authorization was declined.", "warning")
        return redirect_to(url_for("video.settings"))
    try:
        token = oauth.web_client().authorize_access_token()
        profile = service.fetch_profile(token["access_token"])
    except OAuthError as error:
        # A missing or wrong state (MismatchingStateError) lands here too: nothing is stored.
        log.warning("Zoom authorization failed for user %s: %s", current_user.id, error.error)
        abort(400, description="This Zoom authorization could not be completed (it may be old or already used). "
                               "Please start again from Settings → Video.")
    except (TransientMeetingError, RequestException):
        flash("Zoom is not answering right now. Please try connecting again in a minute.", "error")
        return redirect_to(url_for("video.settings"))
    except MeetingError:
        flash("Zoom refused the connection. Please try again.", "error")
        return redirect_to(url_for("video.settings"))
    account = service.save_connection(current_user.id, token, profile)
    flash(f"Zoom is connected as {account.email}. New meetings will use Zoom.", "success")
    return redirect_to(url_for("video.settings"))


@bp.post("/zoom/test")
@expert_required
def zoom_test():
    """Check the Zoom connection by asking Zoom who the expert is; answers a fragment."""
    _zoom_or_404()
    ok, message = False, ""
    try:
        account = service.check_connection(current_user.id)
    except ReauthRequired:
        message = "Zoom refused our access. Please re-authorize Zoom."
    except TransientMeetingError:
        message = "Zoom is not answering right now. Please try again in a minute."
    except MeetingError:
        message = "Zoom refused the request. Please re-authorize Zoom."
    else:
        ok, message = True, f"Connection works: Zoom knows you as {account.email}."
    html = render_template("video/_test_result.html", ok=ok, message=message)
    if is_htmx():
        return html
    flash(message, "success" if ok else "error")
    return redirect_to(url_for("video.settings"))


@bp.post("/zoom/disconnect")
@expert_required
def zoom_disconnect():
    """Revoke the grant at Zoom and delete the tokens; new meetings then use Jitsi."""
    revoked = service.disconnect(current_user.id)
    if revoked:
        flash("Zoom is disconnected and our access is revoked. New meetings will use Jitsi.", "success")
    else:
        flash("Zoom is disconnected and your tokens are deleted here, but Zoom did not confirm the revocation. "
              "You can also remove ExpertBook under Zoom Marketplace → Manage → Added Apps.", "warning")
    return redirect_to(url_for("video.settings"))


@bp.app_template_global("meeting_of")
def meeting_of(booking):
    """The booking's video meeting (or None), for ``templates/experts/_meeting_actions.html``."""
    if booking.service.location_kind != "video":
        return None
    return meetings.meeting_for(booking.id)


@bp.get("/meetings/<int:booking_id>/start")
@login_required
def start_meeting(booking_id: int):
    """The host's "Start meeting": only the booking's expert; a fresh Zoom start URL fetched now (303).

    Zoom's start URL carries host rights and expires after two hours, so it is never stored or
    emailed; this route is what the expert's button and email link point at. A Jitsi room has no
    separate host link: the expert goes to the room.
    """
    from expertbook.experts.models import Booking
    from expertbook.extensions import db

    booking = db.session.get(Booking, booking_id)
    if booking is None or booking.expert.user_id != current_user.id:
        abort(404)
    if booking.status != "confirmed":
        flash(f"This booking is {booking.status}: there is no meeting to start.", "warning")
        return redirect(url_for("experts.booking_detail", booking_id=booking_id), 303)
    meeting = meetings.meeting_for(booking_id)
    if meeting is None or meeting.status != MEETING_CREATED:
        flash("The meeting link is not ready yet (meeting link pending). This page updates by itself.", "warning")
        return redirect(url_for("experts.booking_detail", booking_id=booking_id), 303)
    if meeting.provider != service.ZOOM or meeting.external_id is None:
        return redirect(meeting.join_url, 303)
    try:
        start_url = service.fresh_start_url(current_user.id, meeting.external_id)
    except ReauthRequired:
        flash("Zoom refused our access to your account. Please re-authorize Zoom, then start the meeting again.", "error")
        return redirect(url_for("video.settings"), 303)
    except TransientMeetingError:
        abort(503, description="Zoom is not answering right now. Please try again in a moment.")
    except MeetingError as error:
        log.warning("could not fetch the start URL of meeting %s: %s", meeting.external_id, error)
        abort(502, description="Zoom could not start this meeting. Please open it from your Zoom account.")
    response = redirect(start_url, 303)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.post("/zoom/webhook")
@csrf.exempt
def zoom_webhook():
    """Zoom's event notifications: the URL validation challenge and ``app_deauthorized``.

    Every request must carry a valid, fresh ``x-zm-signature``; anything else answers 401.
    """
    secret = current_app.config.get("ZOOM_WEBHOOK_SECRET")
    if not secret:
        abort(404)
    body = request.get_data(cache=True)
    if not service.verify_webhook_signature(
        secret, request.headers.get("x-zm-request-timestamp"), body, request.headers.get("x-zm-signature")
    ):
        return jsonify(error="invalid signature"), 401
    try:
        event = json.loads(body)
    except ValueError:
        return jsonify(error="invalid JSON"), 400
    if not isinstance(event, dict):
        return jsonify(error="invalid event"), 400
    payload = event.get("payload") if isinstance(event.get("payload"), dict) else {}
    kind = event.get("event")
    if kind == "endpoint.url_validation":
        plain = payload.get("plainToken")
        if not isinstance(plain, str) or not plain:
            return jsonify(error="missing plainToken"), 400
        return jsonify(service.url_validation_answer(secret, plain))
    if kind == "app_deauthorized":
        service.handle_deauthorization(str(payload.get("user_id") or ""))
    return "", 204


# ---------------------------------------------------------------------------- commands


@bp.cli.command("rotate-token-keys")
def rotate_token_keys() -> None:
    """Re-encrypt stored Zoom and calendar credentials with the first key of TOKEN_ENCRYPTION_KEYS."""
    from expertbook.calendars.service import rotate_keys as rotate_calendar_keys

    count = service.rotate_keys()
    calendars = rotate_calendar_keys()
    click.echo(f"Re-encrypted {count} Zoom connection(s) and {calendars} calendar connection(s) with the first key. "
               "Old keys can now be removed.")
