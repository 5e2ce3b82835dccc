"""Account pages: register, log in, log out, profile.

The issues fix these URLs (``/login``, ``/register``, ``/profile``), so this blueprint is not prefixed.
"""
from __future__ import annotations

import click
from flask import Blueprint, flash, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user

from expertbook.auth import limits, service
from expertbook.auth.forms import ChangePasswordForm, LoginForm, RegisterForm
from expertbook.errors import Conflict, NotFound, ValidationFailed
from expertbook.web import apply_errors, redirect_to, render, safe_next

# cli_group=None: the command is ``flask make-admin``, not ``flask auth make-admin``.
bp = Blueprint("auth", __name__, cli_group=None)

INVALID_LOGIN = "Invalid email or password."


def _log_in(user) -> None:
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
            _log_in(user)
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
            _log_in(user)
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


def _expert_form(formdata=None):
    """The become-an-expert form, prefilled from the account when first shown."""
    from expertbook.experts import service as experts
    from expertbook.experts.forms import ExpertProfileForm

    if formdata is not None:
        return ExpertProfileForm()
    form = ExpertProfileForm(formdata=None)
    form.display_name.data = current_user.name
    form.handle.data = experts.suggest_handle(current_user.name)
    return form


def _expert_profile():
    from expertbook.experts import service as experts

    return experts.profile_of(current_user.id)


@bp.get("/profile")
@login_required
def profile():
    """The user's account page: roles, password change, and the way to become an expert."""
    return render(
        "auth/profile.html",
        "auth/_password_form.html",
        password_form=ChangePasswordForm(),
        expert_form=_expert_form(),
        expert_profile=_expert_profile(),
    )


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
    return render(
        "auth/profile.html", "auth/_password_form.html", status=422, password_form=form, expert_form=_expert_form(), expert_profile=_expert_profile()
    )


@bp.post("/profile/become-expert")
@login_required
def become_expert():
    """Set up the current user's expert profile (name, headline, bio, handle, time zone) and give them the expert role."""
    form = _expert_form(request.form)
    if form.validate_on_submit():
        try:
            service.become_expert(
                current_user.id, form.display_name.data, form.headline.data, form.bio.data, form.handle.data, form.timezone.data
            )
        except ValidationFailed as error:
            apply_errors(form, error)
        except Conflict as error:
            form.form_errors.append(error.message)
        else:
            flash("You are now an expert. Add your services and check your weekly hours to start taking bookings.", "success")
            return redirect_to(url_for("experts.settings_services"))
    return render(
        "auth/profile.html",
        "experts/_become_expert_form.html",
        status=422,
        password_form=ChangePasswordForm(),
        expert_form=form,
        expert_profile=_expert_profile(),
    )


@bp.cli.command("make-admin")
@click.argument("email")
def make_admin_command(email: str) -> None:
    """Make the account with EMAIL a site administrator (it sees /notifications)."""
    try:
        service.make_admin(email)
    except NotFound as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"{email} is now a site administrator.")
