"""The expert's calendar page (/calendars): connect CalDAV or Google, choose which calendars block bookings
and which one receives them, see each connection's state and last error, check now, disconnect."""
from __future__ import annotations

import logging
from functools import wraps

from authlib.integrations.base_client import OAuthError
from flask import Blueprint, abort, flash, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from requests import RequestException

from expertbook.calendars import oauth, service
from expertbook.calendars.errors import CalendarError, CalendarUnavailable
from expertbook.calendars.forms import CalDAVForm
from expertbook.errors import ValidationFailed
from expertbook.web import external_url, redirect_to, render

log = logging.getLogger(__name__)

bp = Blueprint("calendars", __name__, url_prefix="/calendars")


@bp.record_once
def _setup(state) -> None:
    from expertbook.calendars import subscribers

    oauth.init_app(state.app)
    subscribers.connect()


def expert_required(view):
    """Only experts may use ``view``; others get 404, as if it were not there."""

    @wraps(view)
    @login_required
    def wrapped(*args, **kwargs):
        if not current_user.is_expert or service.expert_profile(current_user.id) is None:
            abort(404)
        return view(*args, **kwargs)

    return wrapped


def _page(form: CalDAVForm | None = None, status: int = 200, fragment: str = "calendars/_connections.html"):
    return render(
        "calendars/index.html", fragment, status,
        connections=service.connections_of(current_user.id),
        form=form or CalDAVForm(formdata=None),
        google_available=oauth.google_configured(),
    )


@bp.get("/")
@expert_required
def index():
    """The expert's calendars: each connection with its state, its calendars and the choices; the forms to connect."""
    return _page()


@bp.post("/caldav")
@expert_required
def caldav_connect():
    """Connect a CalDAV account (URL, user name, app password); the server is asked while the expert waits."""
    form = CalDAVForm()
    if form.validate_on_submit():
        try:
            service.connect_caldav(current_user.id, form.url.data, form.username.data, form.password.data)
        except ValidationFailed as error:
            for field, messages in error.errors.items():
                getattr(form, field, form.url).errors = list(messages)
        else:
            flash(_("Your CalDAV calendars are connected. Choose which ones block bookings and where bookings go."), "success")
            return redirect_to(url_for("calendars.index"))
    form.password.data = ""  # never sent back to the browser
    return _page(form, 422, "calendars/_caldav_form.html")


def _connection_fragment(connection_id: int, status: int = 200, message: str | None = None, ok: bool = True):
    found = next((c for c in service.connections_of(current_user.id) if c.id == connection_id), None)
    if found is None:
        abort(404)
    return render("calendars/index.html", "calendars/_connection.html", status,
                  connections=service.connections_of(current_user.id), form=CalDAVForm(formdata=None),
                  google_available=oauth.google_configured(), connection=found, message=message, ok=ok)


@bp.post("/<int:connection_id>/choices")
@expert_required
def choices(connection_id: int):
    """Save which calendars block bookings and which one receives them; answers the connection's fragment."""
    try:
        checked = [int(value) for value in request.form.getlist("check")]
        write = request.form.get("write", "")
        write_to = int(write) if write else None
    except ValueError:
        return _connection_fragment(connection_id, 422, _("Choose calendars from the list."), ok=False)
    try:
        service.set_choices(current_user.id, connection_id, checked, write_to)
    except ValidationFailed:
        return _connection_fragment(connection_id, 422, _("Choose calendars from the list."), ok=False)
    return _connection_fragment(connection_id, message=_("Saved."))


@bp.post("/<int:connection_id>/check")
@expert_required
def check(connection_id: int):
    """Read the connection's calendars and busy times now (the expert waits); answers the connection's fragment."""
    outcome = service.check_now(current_user.id, connection_id)
    if outcome == "read":
        return _connection_fragment(connection_id, message=_("Checked: the busy times are up to date."))
    return _connection_fragment(connection_id, message=_("The calendar could not be read. See the error below."), ok=False)


@bp.post("/<int:connection_id>/disconnect")
@expert_required
def disconnect(connection_id: int):
    """Forget a connection (a Google grant is revoked first); events already written stay in the calendar."""
    revoked = service.disconnect(current_user.id, connection_id)
    if revoked:
        flash(_("The calendar is disconnected. Its busy times no longer block bookings."), "success")
    else:
        flash(_("The calendar is disconnected and your tokens are deleted here, but Google did not confirm the revocation. "
                "You can also remove ExpertBook in your Google Account's security settings."), "warning")
    return redirect_to(url_for("calendars.index"))


def _google_or_404() -> None:
    if not oauth.google_configured():
        abort(404)


@bp.get("/google/connect")
@expert_required
def google_connect():
    """Send the expert to Google to authorize us (also "Re-authorize").

    A GET on purpose, as for Zoom: the CSP's ``form-action 'self'`` would block a form POST that redirects
    to Google. It changes nothing in the database; only the OAuth ``state`` and PKCE verifier go into the
    (signed) session, where the callback checks them.
    """
    _google_or_404()
    for key in [key for key in session if key.startswith("_state_google_")]:
        session.pop(key)
    return oauth.web_client().authorize_redirect(external_url("calendars.google_callback"))


@bp.get("/google/callback")
@expert_required
def google_callback():
    """Google's redirect back: check ``state``, exchange the code with the PKCE verifier, store the grant.

    A GET that writes, because OAuth's redirect is a GET; the single-use ``state`` bound to this browser's
    session protects it as a CSRF token would.
    """
    _google_or_404()
    if request.args.get("error"):
        flash(_("Google Calendar was not connected: the authorization was declined."), "warning")
        return redirect_to(url_for("calendars.index"))
    try:
        token = oauth.web_client().authorize_access_token()
        profile = service.google.fetch_profile(token["access_token"])
    except OAuthError as error:
        log.warning("Google authorization failed for user %s: %s", current_user.id, error.error)
        abort(400, description=_("This Google authorization could not be completed (it may be old or already used). "
                                 "Please start again from your calendars page."))
    except (CalendarUnavailable, RequestException):
        flash(_("Google is not answering right now. Please try connecting again in a minute."), "error")
        return redirect_to(url_for("calendars.index"))
    except CalendarError:
        flash(_("Google refused the connection. Please try again."), "error")
        return redirect_to(url_for("calendars.index"))
    if not token.get("refresh_token"):
        flash(_("Google did not give ExpertBook lasting access. Please connect again and allow access."), "error")
        return redirect_to(url_for("calendars.index"))
    service.save_google(current_user.id, token, profile)
    flash(_("Google Calendar is connected as %(email)s.", email=profile.get("email") or "?"), "success")
    return redirect_to(url_for("calendars.index"))
