"""Clinic pages. Hospital registration and staff management live here; slots and booking build on them."""
from __future__ import annotations

from functools import wraps

from flask import Blueprint, abort, flash, request, session, url_for
from flask_login import current_user, login_required, login_user

from expertbook.auth import service as accounts
from expertbook.auth.forms import AddStaffForm, HospitalRegisterForm
from expertbook.errors import Conflict, ValidationFailed
from expertbook.web import apply_errors, redirect_to, render

bp = Blueprint("clinic", __name__, url_prefix="/clinic")


def staff_required(view):
    """Only hospital staff may use ``view``; others get 404, as if it were not there."""

    @wraps(view)
    @login_required
    def wrapped(*args, **kwargs):
        if not current_user.is_staff:
            abort(404)
        return view(*args, **kwargs)

    return wrapped


def staff_admin_required(view):
    """Only a hospital's staff admins may use ``view``."""

    @wraps(view)
    @login_required
    def wrapped(*args, **kwargs):
        if not (current_user.is_staff and current_user.is_staff_admin):
            abort(404)
        return view(*args, **kwargs)

    return wrapped


@bp.route("/register-hospital", methods=["GET", "POST"])
def register_hospital():
    """A hospital registers itself with its name, location and first staff admin."""
    form = HospitalRegisterForm()
    status = 200
    if form.validate_on_submit():
        try:
            user = accounts.register_hospital(
                form.hospital_name.data, form.location.data, form.name.data, form.email.data, form.password.data
            )
        except ValidationFailed as error:
            apply_errors(form, error)
        else:
            session.clear()
            user.session_token = accounts.start_session(user.id)
            login_user(user)
            session.permanent = True
            flash(f"{user.hospital.name} is registered. You are its staff admin.", "success")
            return redirect_to(url_for("clinic.staff"))
    if request.method == "POST":
        status = 422
    return render("clinic/register_hospital.html", "clinic/_register_hospital_form.html", status=status, form=form)


@bp.route("/staff", methods=["GET", "POST"])
@staff_required
def staff():
    """The hospital's staff list; staff admins add colleagues by email here."""
    form = AddStaffForm()
    status = 200
    if request.method == "POST":
        if not current_user.is_staff_admin:
            abort(404)
        if form.validate_on_submit():
            try:
                added = accounts.add_staff(current_user.id, form.email.data, bool(form.make_admin.data))
            except ValidationFailed as error:
                apply_errors(form, error)
                status = 422
            except Conflict as error:
                form.form_errors.append(error.message)
                status = 409
            else:
                flash(f"{added.name} now works for {current_user.hospital.name}.", "success")
                return redirect_to(url_for("clinic.staff"))
        else:
            status = 422
    members = accounts.staff_of(current_user.hospital_id)
    return render("clinic/staff.html", "clinic/_staff_form.html", status=status, form=form, members=members)
