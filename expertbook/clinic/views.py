"""Clinic pages: hospital registration and staff, doctors' slots, booking with token numbers, live counts.

Patients search, book and manage their appointments; staff (always within their own hospital)
create slots, watch bookings arrive and run the waiting-room queue. Live parts poll small fragments.
"""
from __future__ import annotations

import re
from datetime import datetime
from functools import wraps

from flask import Blueprint, abort, current_app, flash, make_response, request, url_for
from flask_login import current_user, login_required
from markupsafe import Markup, escape

from expertbook.auth import limits
from expertbook.auth import service as accounts
from expertbook.auth.views import check_your_email
from expertbook.clinic import (
    appointments,
    booking,
    clock,
    doctors,
    hospitals,
    inputs,
    links,
    moves,
    queue,
    sessions,
    states,
    waitlist,
)
from expertbook.clinic.forms import (
    AddStaffForm,
    BookingForm,
    CapacityForm,
    DoctorForm,
    DoctorRowForm,
    HospitalRegisterForm,
    MoveForm,
    ReasonForm,
    SlotForm,
    WalkInForm,
)
from expertbook.clinic.models import Appointment, Slot
from expertbook.database import utcnow
from expertbook.errors import Conflict, ServiceError, ValidationFailed
from expertbook.web import EmptyForm, apply_errors, day_arg, external_url, id_arg, is_htmx, no_store, page_arg, redirect_to, render, wants_fragment

bp = Blueprint("clinic", __name__, url_prefix="/clinic")


@bp.record_once
def _connect(state) -> None:
    from expertbook.clinic import account_hooks, emails

    emails.connect()
    account_hooks.connect()


def staff_required(view):
    """Only hospital staff may use ``view``; others get 404, as if it were not there."""

    @wraps(view)
    @login_required
    def wrapped(*args, **kwargs):
        if not current_user.is_staff:
            abort(404)
        return view(*args, **kwargs)

    return wrapped


@bp.route("/register-hospital", methods=["GET", "POST"])
@limits.register_per_ip
def register_hospital():
    """A hospital registers itself with its name, location and first staff admin.

    Like ``/register`` it answers "check your email" whether or not the address already has an
    account (whose owner is then told by email, and no hospital is made); the admin verifies the
    address (which publishes the hospital's slots) and logs in.
    """
    form = HospitalRegisterForm()
    status = 200
    if form.validate_on_submit():
        try:
            with accounts.steady(current_app.config["ACCOUNT_ANSWER_SECONDS"]):
                hospitals.register_hospital(
                    form.hospital_name.data, form.location.data, form.name.data, form.email.data, form.password.data
                )
        except ValidationFailed as error:
            apply_errors(form, error)
        else:
            return check_your_email(form.email.data)
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
                added = hospitals.add_staff(current_user.id, form.email.data, bool(form.make_admin.data))
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
    members = hospitals.staff_of(current_user.hospital_id)
    return render("clinic/staff.html", "clinic/_staff_form.html", status=status, form=form, members=members)


# ---------------------------------------------------------------------------- template helpers


def zone_note(slot: Slot) -> Markup:
    """The note of the hospital's zone ("IST") after a session's time. app.js hides it where the browser
    keeps the same clock at that moment, so it shows exactly where the time could be misread."""
    return Markup(_zone_note_html(slot))


def _zone_note_html(slot: Slot) -> str:
    timezone = slot.hospital.timezone
    name = escape(timezone or current_app.config["CLINIC_TIMEZONE"])
    abbreviation = escape(clock.zone_abbreviation(timezone, slot.starts_at))
    offset = clock.utc_offset_minutes(timezone, slot.starts_at)  # an int: nothing to escape
    return (
        f'<abbr class="zone-note" title="{name} time, where the hospital is" data-utc-offset="{offset}" '
        f'data-at="{slot.starts_at.isoformat()}">{abbreviation}</abbr>'
    )


def slot_when(slot: Slot) -> Markup:
    """A session's date and hours with the note of its hospital's zone, as every clinic page shows it.

    Built here rather than in a macro: the search results show it a hundred times per render, and each
    Jinja macro call cost more than the rest of the row.
    """
    # Dates and clock times are digits and letters of our own formats: nothing to escape.
    return Markup(f"{slot.date:%a %d %b %Y}, {slot.start_time:%H:%M}–{slot.end_time:%H:%M} {_zone_note_html(slot)}")


@bp.context_processor
def _clinic_context():
    return {
        "slot_when": slot_when,
        "zone_note": zone_note,
        "poll_seconds": current_app.config["CLINIC_POLL_SECONDS"],
        "slot_badge": states.slot_badge,
        "availability_class": states.availability_class,
        "appointment_state": states.appointment_state,
        "now": utcnow(),
    }


@bp.app_template_filter("clinic_local")
def _clinic_local(value: datetime | None, timezone: str | None, fmt: str = "%d %b %Y, %H:%M") -> str:
    """A UTC timestamp shown in the hospital's zone."""
    if value is None:
        return ""
    return value.astimezone(clock.zone(timezone)).strftime(fmt)




# ---------------------------------------------------------------------------- patients: search and book


@bp.get("/search")
@no_store
def search():
    """Search bookable slots by date, location and specialization (each optional); htmx gets the results list.

    The results poll every few seconds while the page is visible and refresh at once after the
    patient's own booking (the ``slotBooked`` event).
    """
    filters = {
        "date": request.args.get("date", "").strip(),
        "location": request.args.get("location", "").strip()[:120],
        "specialization": request.args.get("specialization", "").strip()[:120],
    }
    slots = sessions.search_slots(day_arg(request.args.get("date")), filters["location"], filters["specialization"])
    query = {k: v for k, v in filters.items() if v}
    return render(
        "clinic/search.html",
        "clinic/_results.html",
        slots=slots,
        filters=filters,
        results_url=url_for("clinic.search", **query),
        specializations=sessions.specializations() if not wants_fragment() else [],
    )


def _validated(form, service_checks) -> bool:
    """Validate the form; when it is invalid, show the service's checks' problems too, every one at once."""
    if form.validate_on_submit():
        return True
    if "csrf_token" not in form.errors:
        try:
            service_checks()
        except ValidationFailed as error:
            for name, messages in error.errors.items():
                field = getattr(form, name)
                if not field.errors:
                    field.errors = list(field.errors) + messages
    return False


def _booking_form() -> BookingForm:
    form = BookingForm()
    if not form.booking_key.data:
        form.booking_key.data = inputs.new_idempotency_key()
    return form


@bp.get("/slots/<int:slot_id>")
@no_store
def slot_detail(slot_id: int):
    """A slot's details and the booking form (a panel on the search page under htmx).

    Swapped in, the panel scrolls into view and focuses its first field, so on a phone the form is
    where the patient looks rather than far below the results.
    """
    slot = sessions.slot_with_details(slot_id)
    form = _booking_form() if current_user.is_authenticated else None
    return render("clinic/slot.html", "clinic/_slot_panel.html", slot=slot, form=form, focus=wants_fragment())


@bp.post("/slots/<int:slot_id>/book")
@login_required
def book(slot_id: int):
    """Book a place for the patient; the confirmation shows the token number.

    The form's one-time key makes a double click or a re-sent POST return the first booking.
    """
    form = BookingForm()
    status = 422
    valid = _validated(form, lambda: inputs.clean_patient(form.patient_name.data, form.contact_number.data))
    if valid:
        try:
            made = booking.book(slot_id, current_user.id, form.patient_name.data, form.contact_number.data, form.booking_key.data or None)
        except ValidationFailed as error:
            apply_errors(form, error)
            if "idempotency_key" in error.errors:
                form.form_errors.append("This form has expired. Please reload the page and try again.")
        except Conflict as error:
            # The session filled (or closed) while the patient typed: no form to retry, but where else to go.
            slot = sessions.slot_with_details(slot_id)
            return render(
                "clinic/slot.html", "clinic/_slot_panel.html", status=409, slot=slot, form=form,
                conflict=error.message, others=sessions.other_sessions(slot),
            )
        else:
            # The confirmation has its own address (to reload, bookmark or screenshot); under htmx the
            # browser goes there too (HX-Redirect), so its heading, title and URL are the booking's.
            flash(f"Booked. Your token number is {made.token_number}.", "success")
            return redirect_to(url_for("clinic.appointment", appointment_id=made.appointment_id))
    slot = sessions.slot_with_details(slot_id)
    return render("clinic/slot.html", "clinic/_slot_panel.html", status=status, slot=slot, form=form, focus=True)


@bp.get("/slots/<int:slot_id>/availability")
def availability(slot_id: int):
    """``<span id="slot-<id>-availability">N of M left</span>``: the cheap fragment every open slot page polls.

    One indexed SELECT; it never loads the user or touches the session, and answers 304 when
    nothing changed (the ETag is the slot's version).
    """
    counts = sessions.availability(slot_id)
    body = f'<span id="slot-{counts.slot_id}-availability" class="{counts.css}">{counts.left} of {counts.capacity} left</span>'
    # Only integers are interpolated, so the markup needs no escaping.
    response = make_response(body)
    response.headers["Cache-Control"] = "no-cache"
    response.set_etag(f"{counts.slot_id}-{counts.version}-{int(counts.past)}")
    return response.make_conditional(request)


def qr_svg(url: str) -> Markup:
    """``url`` as a QR code in inline SVG (no style attributes, so the CSP allows it), drawn here on the server."""
    import segno

    svg = segno.make(url, error="m").svg_inline(scale=4, border=2, dark="#000", light="#fff", omitsize=True, svgclass="qr-code")
    return Markup(svg)


@bp.get("/appointments/<int:appointment_id>")
@login_required
@no_store
def appointment(appointment_id: int):
    """The patient's appointment page: for a live one the token number, details, places remaining, tokens ahead,
    a printable slip with a QR code of this page; a cancelled, no-show or past one says so first."""
    found = appointments.own_appointment(appointment_id, current_user.id)
    state = states.appointment_state(found.status, found.slot)
    context = {"appointment": found, "slot": found.slot, "state": state, "remaining": found.slot.places_left}
    context["ahead"] = queue.tokens_ahead(found, found.slot) if state.live else None
    if state.live and not wants_fragment():
        context["qr"] = qr_svg(external_url("clinic.appointment", appointment_id=found.id))
    return render("clinic/appointment.html", "clinic/_booked.html", **context)


@bp.get("/my-appointments")
@login_required
@no_store
def my_appointments():
    """The patient's places on waiting lists (with their position), upcoming appointments (move; cancel asks
    first), the cancelled or missed ones of sessions still to come, and past ones, each with its state."""
    upcoming, past = appointments.my_appointments(current_user.id)
    now = utcnow()
    live = [a for a in upcoming if states.appointment_state(a.status, a.slot, now).live]
    called_off = [a for a in upcoming if not states.appointment_state(a.status, a.slot, now).live]
    sections = [("Upcoming", live), ("Cancelled or missed", called_off), ("Past", past)]
    return render(
        "clinic/my_appointments.html", "clinic/_my_appointments.html", sections=sections,
        waiting=waitlist.my_waitlist(current_user.id), cancel_form=EmptyForm(),
    )


@bp.get("/appointments/<int:appointment_id>/cancel")
@login_required
@no_store
def cancel_question(appointment_id: int):
    """Ask before cancelling: cancelling cannot be undone and the token is never given out again."""
    found = appointments.own_appointment(appointment_id, current_user.id)
    state = states.appointment_state(found.status, found.slot)
    return render("clinic/cancel.html", "clinic/cancel.html", appointment=found, slot=found.slot, state=state, form=EmptyForm())


@bp.post("/appointments/<int:appointment_id>/cancel")
@login_required
def cancel(appointment_id: int):
    """Cancel the patient's own upcoming appointment; the place is freed, the token is not reused.
    The answer is the appointment's page, which now says it is cancelled."""
    form = EmptyForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        cancelled = queue.cancel(appointment_id, current_user.id)
    except Conflict as error:
        flash(error.message, "error")
    else:
        flash(f"Token {cancelled.token_number} is cancelled; the place is free for someone else.", "success")
    return redirect_to(url_for("clinic.appointment", appointment_id=appointment_id))


NEXT_TOKENS_SHOWN = 3


@bp.get("/slots/<int:slot_id>/now-serving")
@no_store
def now_serving(slot_id: int):
    """The waiting-room wall screen: the token being seen, the next ones, the doctor and session, and when it
    last heard from the server. No names, no site navigation. htmx replaces one small fragment per poll
    (nothing accumulates, so it can run all day) and keeps polling through errors, so it reconnects by
    itself after a restart. ``?theme=dark`` gives light text on a dark background."""
    slot = sessions.slot_with_details(slot_id)
    return render(
        "clinic/now_serving.html",
        "clinic/_now_serving.html",
        slot=slot,
        following=queue.next_tokens(slot, NEXT_TOKENS_SHOWN),
        dark=request.args.get("theme") == "dark",
    )


# ---------------------------------------------------------------------------- staff: slots


def _doctor_row_index() -> int:
    indices = [int(m.group(1)) for key in request.args for m in [re.fullmatch(r"doctors-(\d+)-name", key)] if m]
    return max(indices, default=-1) + 1


@bp.route("/staff/slots/new", methods=["GET", "POST"])
@staff_required
def new_slots():
    """Create sessions: one or several doctors, a date and time window, capacity, optionally repeated."""
    form = SlotForm()
    status = 200
    hospital = current_user.hospital
    if request.method == "GET" and not form.date.data:
        form.date.data = states.local_today(hospital.timezone)
    if form.validate_on_submit():
        try:
            created = sessions.create_slots(
                current_user.id,
                [row.form.choice() for row in form.doctors],
                form.date.data,
                form.start_time.data,
                form.end_time.data,
                form.capacity.data,
                form.repeat_until.data,
                [int(d) for d in form.weekdays.data or []],
            )
        except ValidationFailed as error:
            _apply_slot_errors(form, error)
            status = 422
        except Conflict as error:
            form.form_errors.append(error.message)
            status = 409
        else:
            count = len(created.slots)
            message = f"Created {count} slot{'s' if count != 1 else ''}."
            if created.skipped:
                message += f" {created.skipped} already existed and {'was' if created.skipped == 1 else 'were'} left as they were."
            flash(message, "success")
            return redirect_to(url_for("clinic.staff_slots"))
    elif request.method == "POST":
        status = 422
    return render(
        "clinic/slot_form.html", "clinic/_slot_form.html", status=status, form=form, hospital=hospital,
        doctors=doctors.doctors_of(hospital.id, active_only=True),
    )


def _apply_slot_errors(form: SlotForm, error: ValidationFailed) -> None:
    for name, messages in error.errors.items():
        match = re.fullmatch(r"doctors-(\d+)-(doctor_id|name|specialization)", name)
        if match and int(match.group(1)) < len(form.doctors.entries):
            field = getattr(form.doctors.entries[int(match.group(1))].form, match.group(2))
            field.errors = list(field.errors) + messages
        elif name == "doctors":
            form.form_errors.extend(messages)
        elif hasattr(form, name):
            field = getattr(form, name)
            field.errors = list(field.errors) + messages


@bp.get("/staff/slots/doctor-row")
@staff_required
def doctor_row():
    """One more doctor row for the slot form (htmx appends it); its index follows the rows already there."""
    index = _doctor_row_index()
    row = DoctorRowForm(prefix=f"doctors-{index}-")
    choices = doctors.doctors_of(current_user.hospital_id, active_only=True)
    return render("clinic/_doctor_row.html", "clinic/_doctor_row.html", row=row, index=index, doctors=choices)


@bp.get("/staff/slots")
@staff_required
@no_store
def staff_slots():
    """The hospital's slots with live booked/total counts and badges; filter by date and doctor."""
    day = day_arg(request.args.get("date"))
    doctor_id = id_arg("doctor")
    page = page_arg()
    slots, more = sessions.staff_slots(current_user.hospital_id, day, doctor_id, page)
    query = {k: v for k, v in {"date": day.isoformat() if day else None, "doctor": doctor_id, "page": page if page > 1 else None}.items() if v}
    return render(
        "clinic/staff_slots.html",
        "clinic/_staff_slots.html",
        slots=slots,
        more=more,
        page_number=page,
        day=day,
        doctor_id=doctor_id,
        query=query,
        doctors=doctors.doctors_of(current_user.hospital_id) if not wants_fragment() else [],
        list_url=url_for("clinic.staff_slots", **query),
    )


def _own_slot(slot_id: int) -> Slot:
    return sessions.staff_slot(slot_id, current_user.hospital_id)


def _staff_slot_page(
    slot: Slot,
    status: int = 200,
    capacity_form: CapacityForm | None = None,
    message: str | None = None,
    fragment: str = "clinic/_slot_controls.html",
    walk_in_form: WalkInForm | None = None,
    given: booking.Booking | None = None,
    notice: str | None = None,
):
    capacity_form = capacity_form or CapacityForm(formdata=None, capacity=slot.capacity)
    return render(
        "clinic/staff_slot.html",
        fragment,
        status=status,
        slot=slot,
        capacity_form=capacity_form,
        action_form=EmptyForm(),
        reason_form=ReasonForm(formdata=None),
        form=walk_in_form or WalkInForm(formdata=None),
        booking=given,
        appointments=appointments.slot_appointments(slot.id),
        waiting=waitlist.slot_waitlist(slot.id),
        following=queue.next_token(slot),
        message=message,
        notice=notice,
    )


@bp.get("/staff/slots/<int:slot_id>")
@staff_required
@no_store
def staff_slot(slot_id: int):
    """One slot for staff: its appointments (live), close, capacity, arrived/no-show and "call next"."""
    return _staff_slot_page(_own_slot(slot_id))


@bp.get("/staff/slots/<int:slot_id>/appointments")
@staff_required
def staff_slot_appointments(slot_id: int, status: int = 200, message: str | None = None, notice: str | None = None):
    """The live part of the staff slot page: counts, now serving and the appointments table."""
    return _staff_slot_page(_own_slot(slot_id), status=status, message=message, notice=notice, fragment="clinic/_staff_appointments.html")


def _checked_action_form() -> None:
    if not EmptyForm().validate_on_submit():
        abort(400)


def _after_staff_action(slot_id: int, fragment_view, error: ServiceError | None = None, done: str | None = None):
    """htmx gets the refreshed fragment (409/422 with the message, or what was done); a plain form post goes back to the page."""
    if is_htmx():
        if error:
            return fragment_view(slot_id, status=error.status, message=error.message)
        return fragment_view(slot_id, notice=done)
    if error:
        flash(error.message, "error")
    elif done:
        flash(done, "success")
    return redirect_to(url_for("clinic.staff_slot", slot_id=slot_id))


def _controls_fragment(slot_id: int, status: int = 200, message: str | None = None, notice: str | None = None):
    return _staff_slot_page(_own_slot(slot_id), status=status, message=message, notice=notice)


@bp.post("/staff/slots/<int:slot_id>/capacity")
@staff_required
def change_capacity(slot_id: int):
    """Change a slot's capacity; below the places already booked is a clear 422.

    Under htmx the answer also fires ``slotChanged``, on which the appointments part of the page (with
    its "booked/capacity" header) refreshes at once rather than at its next poll.
    """
    form = CapacityForm()
    if form.validate_on_submit():
        try:
            slot = sessions.change_capacity(slot_id, current_user.hospital_id, form.capacity.data)
        except ValidationFailed as error:
            apply_errors(form, error)
        else:
            places = f"{slot.capacity} place{'s' if slot.capacity != 1 else ''}"
            response = _after_staff_action(slot_id, _controls_fragment, done=f"Capacity changed to {places} ({slot.booked_count} booked).")
            response.headers["HX-Trigger"] = "slotChanged"
            return response
    return _staff_slot_page(_own_slot(slot_id), status=422, capacity_form=form)


@bp.post("/staff/slots/<int:slot_id>/close")
@staff_required
def close_slot(slot_id: int):
    """Stop taking bookings for the slot."""
    _checked_action_form()
    sessions.close_slot(slot_id, current_user.hospital_id)
    return _after_staff_action(slot_id, _controls_fragment, done="The slot is closed: no more bookings are taken.")


@bp.post("/staff/slots/<int:slot_id>/reopen")
@staff_required
def reopen_slot(slot_id: int):
    """Take bookings again."""
    _checked_action_form()
    sessions.reopen_slot(slot_id, current_user.hospital_id)
    return _after_staff_action(slot_id, _controls_fragment, done="The slot is open for bookings again.")


@bp.post("/staff/slots/<int:slot_id>/call-next")
@staff_required
def call_next(slot_id: int):
    """Call the next waiting token to the doctor (shown on the "now serving" screen)."""
    _checked_action_form()
    try:
        slot = queue.call_next(slot_id, current_user.hospital_id)
    except Conflict as error:
        return _after_staff_action(slot_id, staff_slot_appointments, error)
    return _after_staff_action(slot_id, staff_slot_appointments, done=f"Now serving token {slot.now_serving}.")


@bp.post("/staff/appointments/<int:appointment_id>/status")
@staff_required
def appointment_status(appointment_id: int):
    """Mark a patient arrived or no-show (or back to booked)."""
    _checked_action_form()
    try:
        changed = queue.set_appointment_status(appointment_id, current_user.hospital_id, request.form.get("status", ""))
    except (Conflict, ValidationFailed) as error:
        slot_id = appointments.staff_appointment_slot_id(appointment_id, current_user.hospital_id)
        return _after_staff_action(slot_id, staff_slot_appointments, error)
    return _after_staff_action(changed.slot_id, staff_slot_appointments, done=f"Token {changed.token_number} updated.")


# ---------------------------------------------------------------------------- the front desk: walk-ins and cancellations


@bp.post("/staff/slots/<int:slot_id>/walk-in")
@staff_required
def walk_in(slot_id: int):
    """Give a walk-in patient the next token; the answer shows it large, with "Print slip"."""
    form = WalkInForm()
    status = 422
    if _validated(form, lambda: inputs.clean_patient(form.patient_name.data, form.contact_number.data)):
        try:
            given = booking.walk_in(slot_id, current_user.hospital_id, form.patient_name.data, form.contact_number.data, form.email.data)
        except ValidationFailed as error:
            apply_errors(form, error)
        except Conflict as error:
            form.form_errors.append(error.message)
            status = 409
        else:
            if not wants_fragment():
                flash(f"Walk-in token {given.token_number} for {given.patient_name}.", "success")
                return redirect_to(url_for("clinic.walk_in_slip", appointment_id=given.appointment_id))
            response = _staff_slot_page(_own_slot(slot_id), fragment="clinic/_walk_in.html", given=given)
            response.headers["HX-Trigger"] = "clinicRefresh"  # the appointments table shows the new token at once
            return response
    return _staff_slot_page(_own_slot(slot_id), status=status, fragment="clinic/_walk_in.html", walk_in_form=form)


@bp.get("/staff/appointments/<int:appointment_id>/slip")
@staff_required
def walk_in_slip(appointment_id: int):
    """A printable slip for one appointment: the token large, the patient, the doctor, the session, and a QR code
    of the session's "now serving" screen (a walk-in has no account to open the appointment's own page with)."""
    slot_id = appointments.staff_appointment_slot_id(appointment_id, current_user.hospital_id)
    queue_url = external_url("clinic.now_serving", slot_id=slot_id)
    return render(
        "clinic/slip.html", "clinic/slip.html",
        appointment=appointments.staff_appointment(appointment_id, current_user.hospital_id), slot=_own_slot(slot_id),
        qr=qr_svg(queue_url), queue_url=queue_url,
    )


@bp.post("/staff/appointments/<int:appointment_id>/cancel")
@staff_required
def staff_cancel(appointment_id: int):
    """Cancel one appointment with a reason (the patient is emailed it with a link to book again)."""
    form = ReasonForm()
    slot_id = appointments.staff_appointment_slot_id(appointment_id, current_user.hospital_id)
    if not form.validate_on_submit():
        if "csrf_token" in form.errors:
            abort(400)
        return _after_staff_action(slot_id, staff_slot_appointments, ValidationFailed(form.errors, "Please give a reason; the patient is told it."))
    try:
        cancelled = queue.staff_cancel(appointment_id, current_user.hospital_id, form.reason.data)
    except (Conflict, ValidationFailed) as error:
        return _after_staff_action(slot_id, staff_slot_appointments, error)
    return _after_staff_action(slot_id, staff_slot_appointments, done=f"Token {cancelled.token_number} is cancelled; the patient is told why.")


@bp.post("/staff/slots/<int:slot_id>/cancel")
@staff_required
def cancel_session(slot_id: int):
    """Cancel the whole session with a reason: patients and the waiting list are emailed, the session leaves search."""
    form = ReasonForm()
    if not form.validate_on_submit():
        if "csrf_token" in form.errors:
            abort(400)
        return _after_staff_action(slot_id, _controls_fragment, ValidationFailed(form.errors, "Please give a reason; the patients are told it."))
    try:
        result = sessions.cancel_session(slot_id, current_user.hospital_id, form.reason.data)
    except (Conflict, ValidationFailed) as error:
        return _after_staff_action(slot_id, _controls_fragment, error)
    done = f"The session is cancelled: {result.cancelled} appointment(s) cancelled, {result.notified} patient(s) emailed"
    if result.waitlist_notified:
        done += f", {result.waitlist_notified} on the waiting list emailed"
    done += "."
    if result.to_phone:
        done += " Please phone: " + "; ".join(f"token {token} {name}, {contact}" for token, name, contact in result.to_phone) + "."
    if is_htmx():
        response = _staff_slot_page(_own_slot(slot_id), message=done)
        response.headers["HX-Trigger"] = "clinicRefresh"
        return response
    flash(done, "success")
    return redirect_to(url_for("clinic.staff_slot", slot_id=slot_id))


# ---------------------------------------------------------------------------- patients: moving and waiting


def _move_page(appointment: Appointment, action: str, status: int = 200, form: MoveForm | None = None):
    return render(
        "clinic/move.html",
        "clinic/_move_options.html",
        status=status,
        appointment=appointment,
        options=moves.move_options(appointment),
        action=action,
        form=form or MoveForm(formdata=None),
    )


def _move(appointment: Appointment, user_id: int | None, action: str, done_url):
    form = MoveForm()
    if not form.validate_on_submit():
        if "csrf_token" in form.errors:
            abort(400)
        # The session is a hidden field of each "Move here" button: its message goes above the list.
        form.form_errors.extend(form.slot_id.errors)
        return _move_page(appointment, action, 422, form)
    try:
        moved = moves.move_appointment(appointment.id, form.slot_id.data, user_id)
    except ValidationFailed as error:
        form.form_errors.extend(m for messages in error.errors.values() for m in messages)
        return _move_page(appointment, action, 422, form)
    except Conflict as error:
        form.form_errors.append(error.message)
        return _move_page(appointment, action, 409, form)
    flash(f"Moved. Your new token number is {moved.token_number}.", "success")
    return redirect_to(done_url(moved))


@bp.route("/appointments/<int:appointment_id>/move", methods=["GET", "POST"])
@login_required
@no_store
def move(appointment_id: int):
    """Move the patient's own appointment to another session (same doctor, or same specialization and hospital)."""
    found = appointments.own_appointment(appointment_id, current_user.id)
    action = url_for("clinic.move", appointment_id=appointment_id)
    if request.method == "GET":
        return _move_page(found, action)
    return _move(found, current_user.id, action, lambda moved: url_for("clinic.appointment", appointment_id=moved.appointment_id))


@bp.route("/move/<token>", methods=["GET", "POST"])
@no_store
def move_by_link(token: str):
    """The one-click link of a "session cancelled" email: the sessions to move to, no login needed
    (walk-ins have no account). The link is signed and expires; the move itself is a POST. Once
    moved, the same link shows the new token."""
    appointment_id = links.appointment_of_move_token(token)
    if appointment_id is None:
        abort(404, description="This link is not valid any more. Please find another session.")
    found = moves.appointment_for_move_link(appointment_id)
    replacement = moves.appointment_for_move_link(found.moved_to_id) if found.moved_to_id else None
    action = url_for("clinic.move_by_link", token=token)
    if request.method == "GET":
        if replacement is not None:
            return render("clinic/moved.html", "clinic/moved.html", appointment=replacement, slot=replacement.slot, earlier=found)
        return _move_page(found, action)
    return _move(found, None, action, lambda moved: action)


@bp.post("/slots/<int:slot_id>/waitlist")
@login_required
def join_waitlist(slot_id: int):
    """Join a full session's waiting list (name and number, like a booking)."""
    form = BookingForm()
    status = 422
    if _validated(form, lambda: inputs.clean_patient(form.patient_name.data, form.contact_number.data)):
        try:
            waiting = waitlist.join_waitlist(slot_id, current_user.id, form.patient_name.data, form.contact_number.data)
        except ValidationFailed as error:
            apply_errors(form, error)
        except Conflict as error:
            form.form_errors.append(error.message)
            status = 409
        else:
            flash(f"{form.patient_name.data} is number {waiting.position} on the waiting list. We will email you if a place frees up.", "success")
            return redirect_to(url_for("clinic.my_appointments"))
    slot = sessions.slot_with_details(slot_id)
    return render("clinic/slot.html", "clinic/_slot_panel.html", status=status, slot=slot, form=form)


@bp.post("/waitlist/<int:entry_id>/leave")
@login_required
def leave_waitlist(entry_id: int):
    """Leave a waiting list."""
    _checked_action_form()
    try:
        waitlist.leave_waitlist(entry_id, current_user.id)
    except Conflict as error:
        flash(error.message, "error")
    else:
        flash("You have left the waiting list.", "success")
    return redirect_to(url_for("clinic.my_appointments"))


# ---------------------------------------------------------------------------- staff: the doctors directory


def _doctors_page(form: DoctorForm, status: int = 200):
    return render(
        "clinic/doctors.html", "clinic/_doctors.html", status=status, form=form, doctors=doctors.doctors_of(current_user.hospital_id)
    )


@bp.route("/staff/doctors", methods=["GET", "POST"])
@staff_required
def staff_doctors():
    """The hospital's doctors directory (name, specialization, short bio, active); add a doctor here."""
    form = DoctorForm() if request.method == "POST" else DoctorForm(formdata=None)
    if request.method == "GET":
        return _doctors_page(form)
    if form.validate_on_submit():
        try:
            added = doctors.add_doctor(current_user.hospital_id, form.name.data, form.specialization.data, form.bio.data)
        except ValidationFailed as error:
            apply_errors(form, error)
        else:
            if wants_fragment():
                return _doctors_page(DoctorForm(formdata=None))
            flash(f"{added.name} is in the directory.", "success")
            return redirect_to(url_for("clinic.staff_doctors"))
    elif "csrf_token" in form.errors:
        abort(400)
    return _doctors_page(form, 422)


@bp.route("/staff/doctors/<int:doctor_id>", methods=["GET", "POST"])
@staff_required
def edit_doctor(doctor_id: int):
    """Edit one doctor: a rename shows on every session, search and page at once (they read the directory)."""
    doctor = doctors.staff_doctor(doctor_id, current_user.hospital_id)
    form = DoctorForm(obj=doctor) if request.method == "GET" else DoctorForm()
    status = 200
    if request.method == "POST":
        status = 422
        if form.validate_on_submit():
            try:
                doctors.update_doctor(doctor_id, current_user.hospital_id, form.name.data, form.specialization.data, form.bio.data, form.active.data)
            except ValidationFailed as error:
                apply_errors(form, error)
            else:
                flash("Saved. Every session of this doctor shows the change.", "success")
                return redirect_to(url_for("clinic.staff_doctors"))
        elif "csrf_token" in form.errors:
            abort(400)
    return render("clinic/doctor.html", "clinic/_doctor_form.html", status=status, form=form, doctor=doctor)
