"""Account pages: register, log in, log out, profile.

The issues fix these URLs (``/login``, ``/register``, ``/profile``), so this blueprint is not prefixed.
"""
from __future__ import annotations

from flask import Blueprint, current_app, flash, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user

from expertbook.auth import service
from expertbook.auth.forms import ChangePasswordForm, EmptyForm, LoginForm, RegisterForm
from expertbook.errors import ValidationFailed
from expertbook.extensions import limiter
from expertbook.web import apply_errors, redirect_to, render, safe_next

bp = Blueprint("auth", __name__)

INVALID_LOGIN = "Invalid email or password."


def _failed(response) -> bool:
    # Only failed attempts count, so a user who logs in successfully is never throttled.
    return response.status_code >= 400


def _account_key() -> str:
    return "login-account:" + request.form.get("email", "").strip().lower()


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
@limiter.limit(lambda: current_app.config["LOGIN_LIMIT_PER_IP"], methods=["POST"], deduct_when=_failed)
@limiter.limit(
    lambda: current_app.config["LOGIN_LIMIT_PER_ACCOUNT"], methods=["POST"], deduct_when=_failed, key_func=_account_key
)
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


@bp.get("/profile")
@login_required
def profile():
    """The user's account page: roles, password change, and the way to become an expert."""
    return render(
        "auth/profile.html",
        "auth/_password_form.html",
        password_form=ChangePasswordForm(),
        expert_form=EmptyForm(),
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
    return render("auth/profile.html", "auth/_password_form.html", status=422, password_form=form, expert_form=EmptyForm())


@bp.post("/profile/become-expert")
@login_required
def become_expert():
    """Give the current user the expert role."""
    form = EmptyForm()
    if not form.validate_on_submit():
        return render("auth/profile.html", "auth/_password_form.html", status=422, password_form=ChangePasswordForm(), expert_form=form)
    service.become_expert(current_user.id)
    flash("You are now an expert. Set up your profile and services to start taking bookings.", "success")
    return redirect_to(url_for("auth.profile"))
