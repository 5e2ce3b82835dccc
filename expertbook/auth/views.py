"""Account pages: register, log in, log out, profile.

The issues fix these URLs (``/login``, ``/register``, ``/profile``), so this blueprint is not prefixed.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click
from flask import Blueprint, Response, flash, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user

from expertbook.auth import limits, service
from expertbook.auth.forms import ChangePasswordForm, LoginForm, RegisterForm
from expertbook.errors import NotFound, ValidationFailed
from expertbook.web import apply_errors, redirect_to, render, safe_next

# cli_group=None: the command is ``flask make-admin``, not ``flask auth make-admin``.
bp = Blueprint("auth", __name__, cli_group=None)

INVALID_LOGIN = "Invalid email or password."


def log_in(user) -> None:
    """Start a fresh session for ``user``: the old session (and any fixated id) is discarded."""
    session.clear()
    user.session_token = service.start_session(user.id)
    login_user(user)
    session.permanent = True


@bp.route("/register", methods=["GET", "POST"])
def register():
    """Create a patient/customer account and log it in."""
    form = RegisterForm(next=request.args.get("next", ""))
    status = 200
    if form.validate_on_submit():
        try:
            user = service.register_user(form.name.data, form.email.data, form.password.data)
        except ValidationFailed as error:
            apply_errors(form, error)
        else:
            log_in(user)
            flash(f"Welcome to ExpertBook, {user.name}!", "success")
            return redirect_to(safe_next(form.next.data, url_for("auth.profile")))
    if request.method == "POST":
        status = 422
    return render("auth/register.html", "auth/_register_form.html", status=status, form=form)


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
        service.end_session(current_user.session_token)
        logout_user()
    session.clear()
    flash("You have been logged out.", "info")
    return redirect_to(url_for("main.index"))


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
    """The user's account page: roles, password change, and each area's section (e.g. becoming an expert)."""
    return render_profile()


@bp.post("/profile/password")
@login_required
def change_password():
    """Change the password; every other session of this user ends."""
    form = ChangePasswordForm()
    if form.validate_on_submit():
        try:
            token = service.change_password(current_user.id, form.current_password.data, form.new_password.data)
        except ValidationFailed as error:
            apply_errors(form, error)
        else:
            user = service.user_for_session(token)
            session.clear()
            login_user(user)
            session.permanent = True
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
