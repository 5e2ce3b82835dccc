"""Account pages: register, log in, log out, forgotten passwords, email verification, profile, security
(sessions), "Download my data" and "Delete my account".

The issues fix these URLs (``/login``, ``/register``, ``/profile``, ``/forgot-password``,
``/reset-password/<token>``, ``/verify-email/<token>``), so this blueprint is not prefixed.

A one-time token arrives in a URL (``/reset-password/<token>``): that first request only moves it into
the session and redirects to the clean URL, so it does not stay in the address bar, the history or a
Referer; the request logs never show it (see :mod:`expertbook.auth.redact`).
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click
from flask import Blueprint, Response, abort, current_app, flash, make_response, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user

from expertbook.auth import limits, redact, service, sessions, tokens
from expertbook.auth.forms import (
    ChangePasswordForm,
    DeleteAccountForm,
    ForgotPasswordForm,
    LoginForm,
    RegisterForm,
    ResetPasswordForm,
)
from expertbook.auth.models import RESET, VERIFY
from expertbook.errors import Conflict, NotFound, ValidationFailed
from expertbook.web import EmptyForm, apply_errors, redirect_to, render, safe_next

# cli_group=None: the command is ``flask make-admin``, not ``flask auth make-admin``.
bp = Blueprint("auth", __name__, cli_group=None)

INVALID_LOGIN = "Invalid email or password."
RESET_KEY, VERIFY_KEY, CHECK_EMAIL_KEY = "reset_token", "verify_token", "check_email"


@bp.record_once
def _setup(state) -> None:
    from expertbook.notifications.service import register_relay_hook

    state.app.add_template_filter(tokens.unseal, "unseal")
    redact.install(state.app)
    register_relay_hook(service.purge_expired)


def _client() -> dict:
    """Where this request comes from, as the sessions page shows it."""
    return {"user_agent": request.user_agent.string, "ip": request.remote_addr}


def log_in(user) -> None:
    """Start a fresh session for ``user``: the old session (and any fixated id) is discarded."""
    session.clear()
    user.session_token = sessions.start_session(user.id, **_client())
    login_user(user)
    session.permanent = True


def _neutral():
    return service.steady(current_app.config["ACCOUNT_ANSWER_SECONDS"])


def check_your_email(address: str):
    """The answer to every registration, new address or not: go to "check your email"."""
    try:
        address = service.normalise_email(address)
    except ValidationFailed:
        address = address.strip()[:254]
    session[CHECK_EMAIL_KEY] = address
    return redirect_to(url_for("auth.check_email"))


@bp.route("/register", methods=["GET", "POST"])
@limits.register_per_ip
def register():
    """Create a patient/customer account.

    The answer is the same whether or not the address already has an account (whose owner is then
    told by email): "check your email". The new account's owner follows the verification link and logs in.
    """
    form = RegisterForm(next=request.args.get("next", ""))
    status = 200
    if form.validate_on_submit():
        try:
            with _neutral():
                service.register_user(form.name.data, form.email.data, form.password.data)
        except ValidationFailed as error:
            apply_errors(form, error)
        else:
            return check_your_email(form.email.data)
    if request.method == "POST":
        status = 422
    return render("auth/register.html", "auth/_register_form.html", status=status, form=form)


@bp.get("/check-email")
def check_email():
    """After registering: a link is on its way (to a new account's owner, or to an existing one's)."""
    return render("auth/check_email.html", "auth/_check_email.html", address=session.get(CHECK_EMAIL_KEY))


@bp.route("/login", methods=["GET", "POST"])
@limits.per_ip
@limits.per_account
def login():
    """Log in with email and password; ``next`` may only point back into this site."""
    form = LoginForm(next=request.args.get("next", ""))
    status = 200
    if form.validate_on_submit():
        user = service.authenticate(form.email.data, form.password.data)
        if user is not None:
            log_in(user)
            flash(f"Welcome back, {user.name}.", "success")
            return redirect_to(safe_next(form.next.data, url_for("main.index")))
        form.form_errors.append(INVALID_LOGIN)
    if request.method == "POST":
        status = 422
    return render("auth/login.html", "auth/_login_form.html", status=status, form=form)


@bp.post("/logout")
def logout():
    """End this login session on the server, so a copied cookie stops working too."""
    if current_user.is_authenticated:
        sessions.end_session(current_user.session_token)
        logout_user()
    session.clear()
    flash("You have been logged out.", "info")
    return redirect_to(url_for("main.index"))


# ---------------------------------------------------------------------------- forgotten password


@bp.route("/forgot-password", methods=["GET", "POST"])
@limits.reset_per_ip
@limits.reset_per_address
def forgot_password():
    """Ask for a password reset link; the answer is the same whether or not the address has an account."""
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        try:
            with _neutral():
                service.request_password_reset(form.email.data)
        except ValidationFailed as error:
            apply_errors(form, error)
        else:
            return render("auth/forgot_password.html", "auth/_forgot_sent.html", form=form, sent=True)
    status = 422 if request.method == "POST" else 200
    return render("auth/forgot_password.html", "auth/_forgot_form.html", status=status, form=form, sent=False)


@bp.get("/reset-password/<token>")
def reset_password_link(token: str):
    """The link from the email: keep the token in the session and continue at the clean URL."""
    session[RESET_KEY] = token[:200]
    return redirect_to(url_for("auth.reset_password"))


def _invalid_link(template: str, fragment: str, **context):
    return render(template, fragment, status=400, invalid=tokens.INVALID, **context)


def _token_form(purpose: str, token: str | None, template: str, fragment: str, form):
    """The GET of a token page: its form while the token is live, else the one "expired or used" answer."""
    if not service.token_is_valid(token, purpose):
        return _invalid_link(template, fragment, form=form)
    return render(template, fragment, form=form, invalid=None)


@bp.route("/reset-password", methods=["GET", "POST"])
@limits.reset_per_ip
def reset_password():
    """Choose a new password with the token the link left in the session; then you are logged in.

    Every other session and API token of the account ends. A wrong, expired or used link answers
    400 with one message, whichever it was.
    """
    token = session.get(RESET_KEY)
    form = ResetPasswordForm()
    if request.method == "GET":
        return _token_form(RESET, token, "auth/reset_password.html", "auth/_reset_form.html", form)
    if form.validate_on_submit():
        try:
            user_id = service.reset_password(token, form.password.data)
        except ValidationFailed as error:
            apply_errors(form, error)
        except service.InvalidToken:
            session.pop(RESET_KEY, None)
            return _invalid_link("auth/reset_password.html", "auth/_reset_form.html", form=form)
        else:
            user = service.user_by_id(user_id)
            log_in(user)
            flash("Your password was changed, and you are logged in. Every other device has been logged out.", "success")
            return redirect_to(url_for("auth.profile"))
    return render("auth/reset_password.html", "auth/_reset_form.html", status=422, form=form, invalid=None)


# ---------------------------------------------------------------------------- email verification


@bp.get("/verify-email/<token>")
def verify_email_link(token: str):
    """The link from the verification email: keep the token in the session and continue at the clean URL."""
    session[VERIFY_KEY] = token[:200]
    return redirect_to(url_for("auth.verify_email"))


@bp.route("/verify-email", methods=["GET", "POST"])
def verify_email():
    """Confirm the address with the token the link left in the session (a button: no change on GET,
    and a mail scanner that opens the link uses nothing up)."""
    token = session.get(VERIFY_KEY)
    form = EmptyForm()
    if request.method == "GET":
        return _token_form(VERIFY, token, "auth/verify_email.html", "auth/_verify_form.html", form)
    if not form.validate_on_submit():
        return render("auth/verify_email.html", "auth/_verify_form.html", status=422, form=form, invalid=None)
    try:
        service.verify_email(token)
    except service.InvalidToken:
        session.pop(VERIFY_KEY, None)
        return _invalid_link("auth/verify_email.html", "auth/_verify_form.html", form=form)
    session.pop(VERIFY_KEY, None)
    flash("Thank you: your email address is verified.", "success")
    return redirect_to(url_for("auth.profile") if current_user.is_authenticated else url_for("auth.login"))


@bp.post("/verify-email/resend")
@login_required
@limits.resend_per_account
def resend_verification():
    """Send a fresh verification link (the banner's and the profile's button)."""
    if service.resend_verification(current_user.id):
        flash(f"We sent a new link to {current_user.email}. It works for {current_app.config['EMAIL_VERIFICATION_DAYS']} days.", "success")
    else:
        flash("Your email address is already verified.", "info")
    return redirect_to(safe_next(request.form.get("next"), url_for("auth.profile")))


# ---------------------------------------------------------------------------- profile


@dataclass(frozen=True)
class ProfileSection:
    """A panel an area adds to the profile page: ``template`` is included with ``context()``'s values."""

    template: str
    context: Callable[[], dict[str, Any]]


_profile_sections: dict[str, ProfileSection] = {}


def register_profile_section(template: str, context: Callable[[], dict[str, Any]]) -> None:
    """Show ``template`` on /profile, e.g. the experts' "become an expert" panel (idempotent, per template).

    Areas call it when their blueprint is registered, so accounts never import them.
    """
    _profile_sections[template] = ProfileSection(template, context)


def render_profile(fragment: str = "auth/_password_form.html", status: int = 200, **context: Any) -> Response:
    """The profile page (``fragment`` for an htmx swap) with every area's section; ``context`` overrides their values."""
    values: dict[str, Any] = {"password_form": ChangePasswordForm()}
    sections = list(_profile_sections.values())
    for section in sections:
        values.update(section.context())
    values.update(context)
    return render("auth/profile.html", fragment, status=status, profile_sections=[s.template for s in sections], **values)


@bp.get("/profile")
@login_required
def profile():
    """The user's account page: roles, password change, security and your data, and each area's section
    (e.g. becoming an expert)."""
    return render_profile()


@bp.post("/profile/password")
@login_required
def change_password():
    """Change the password; every other session and API token of this user ends."""
    form = ChangePasswordForm()
    if form.validate_on_submit():
        try:
            service.change_password(current_user.id, form.current_password.data, form.new_password.data)
        except ValidationFailed as error:
            apply_errors(form, error)
        else:
            log_in(service.user_by_id(current_user.id))
            flash("Your password was changed. Other devices have been logged out.", "success")
            return redirect_to(url_for("auth.profile"))
    return render_profile(status=422, password_form=form)


@bp.cli.command("make-admin")
@click.argument("email")
def make_admin_command(email: str) -> None:
    """Make the account with EMAIL a site administrator (it sees /notifications)."""
    try:
        service.make_admin(email)
    except NotFound as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"{email} is now a site administrator.")


# ---------------------------------------------------------------------------- security: sessions


def _current_hash() -> str | None:
    return tokens.digest(current_user.session_token) if current_user.session_token else None


def _security_page(status: int = 200):
    return render(
        "auth/security.html",
        "auth/_sessions.html",
        status=status,
        sessions=sessions.sessions_of(current_user.id),
        current_hash=_current_hash(),
        device_label=sessions.device_label,
        form=EmptyForm(),
    )


@bp.get("/profile/security")
@login_required
def security():
    """The account's open sessions (browsers and API tokens): device, first and last seen, network."""
    return _security_page()


@bp.post("/profile/security/sessions/<session_hash>/end")
@login_required
def end_one_session(session_hash: str):
    """Log one session out (one of the user's own; any other answers 404)."""
    form = EmptyForm()
    if not form.validate_on_submit():
        return _security_page(422)
    if session_hash == _current_hash():
        return logout()
    if not sessions.end_by_hash(session_hash, current_user.id):
        abort(404)
    flash("That session has been logged out.", "success")
    return redirect_to(url_for("auth.security"))


@bp.post("/profile/security/logout-others")
@login_required
def logout_others():
    """Log out everywhere else: every other browser and every API token of the account."""
    form = EmptyForm()
    if not form.validate_on_submit():
        return _security_page(422)
    ended = sessions.end_all(current_user.id, keep_token_hash=_current_hash())
    flash(f"Logged out everywhere else ({ended} session{'s' if ended != 1 else ''}).", "success")
    return redirect_to(url_for("auth.security"))


# ---------------------------------------------------------------------------- your data


@bp.get("/profile/data")
@login_required
def download_data():
    """"Download my data": a JSON file of the account, its appointments, bookings, services and emails."""
    data = service.account_data(current_user.id)
    response = make_response(json.dumps(data, indent=2, ensure_ascii=False))
    response.headers["Content-Type"] = "application/json; charset=utf-8"
    response.headers["Content-Disposition"] = 'attachment; filename="expertbook-my-data.json"'
    response.headers["Cache-Control"] = "no-store"
    return response


def _delete_page(form, status: int = 200, problem: str | None = None):
    return render(
        "auth/delete_account.html",
        "auth/_delete_form.html",
        status=status,
        form=form,
        blockers=service.deletion_blockers(current_user.id),
        problem=problem,
    )


@bp.route("/profile/delete", methods=["GET", "POST"])
@login_required
def delete_account():
    """"Delete my account": asks for the password; what must happen first (a hospital's last staff admin,
    an expert's upcoming bookings) is said instead, and nothing is deleted."""
    form = DeleteAccountForm()
    if request.method == "GET":
        return _delete_page(form)
    if not form.validate_on_submit():
        return _delete_page(form, 422)
    try:
        service.delete_account(current_user.id, form.password.data)
    except ValidationFailed as error:
        apply_errors(form, error)
        return _delete_page(form, 422)
    except Conflict as error:
        return _delete_page(form, 409, error.message)
    logout_user()
    session.clear()
    flash("Your account and its data were deleted. Hospitals and experts keep only anonymous records of past visits.", "info")
    return redirect_to(url_for("main.index"))
