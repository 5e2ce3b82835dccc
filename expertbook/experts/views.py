"""Expert pages: marketplace, public profiles, the booking page, my bookings, the expert dashboard
and the expert's settings.

The issue fixes ``/expert/<handle>``, ``/expert-dashboard`` and ``/my-bookings`` literally, so this
blueprint has no prefix; every other URL starts with ``/experts``.
"""
from __future__ import annotations

import calendar as month_calendar
import hashlib
import secrets
from datetime import date, datetime, timedelta
from functools import wraps
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, abort, flash, make_response, redirect, request, url_for
from flask_login import current_user, login_required

from expertbook.auth.views import register_profile_section, render_profile
from expertbook.database import utcnow
from expertbook.errors import Conflict, ValidationFailed
from expertbook.experts import service, zones
from expertbook.experts import limits
from expertbook.experts.calendar import booking_ics, feed_ics, meeting_links
from expertbook.experts.forms import (
    WEEKDAY_NAMES,
    ActionForm,
    BookingForm,
    CancelForm,
    ExpertProfileForm,
    OverrideForm,
    RescheduleForm,
    ServiceForm,
    WeeklyHoursForm,
)
from expertbook.experts.models import Booking, ExpertProfile, Service
from expertbook.web import apply_errors, day_arg, is_htmx, moment_arg, no_store, redirect_to, render, wants_fragment

bp = Blueprint("experts", __name__)


@bp.record_once
def _connect(state) -> None:
    from expertbook.auth import signals as account_signals
    from expertbook.experts import account_hooks, emails

    emails.connect()
    account_hooks.connect()
    register_profile_section("experts/_profile_section.html", _profile_section)
    # Guest bookings join an account whose verified address they were made with (see claim_guest_bookings).
    account_signals.email_verified.connect(_claim_guest_bookings)


def _claim_guest_bookings(sender, user_id: int, **extra) -> None:
    service.claim_guest_bookings(user_id)

POLL_SECONDS = 5


@bp.app_template_filter("localtime")
def localtime(value: datetime, timezone: str, fmt: str = "%a %d %b %Y, %H:%M") -> str:
    """Format an instant in a time zone (used by every page that shows a time)."""
    return value.astimezone(ZoneInfo(timezone)).strftime(fmt)


def _zone_options():
    """The zone pickers' datalist: readable names with each zone's offset this hour."""
    return zones.options(utcnow().replace(minute=0, second=0, microsecond=0))


@bp.app_context_processor
def _expert_nav():
    return {"all_timezones": service.all_timezones, "zone_options": _zone_options, "zone_label": zones.label}


def expert_required(view):
    """Only users with an expert profile may use ``view``; others get 404."""

    @wraps(view)
    @login_required
    def wrapped(*args, **kwargs):
        profile = service.profile_of(current_user.id)
        if profile is None:
            abort(404)
        return view(profile, *args, **kwargs)

    return wrapped


# ---------------------------------------------------------------------------- becoming an expert (on /profile)


def _become_expert_form(formdata=None) -> ExpertProfileForm:
    """The become-an-expert form: the posted one, or one prefilled from the account when first shown."""
    if formdata is not None:
        return ExpertProfileForm()
    form = ExpertProfileForm(formdata=None)
    form.display_name.data = current_user.name
    form.handle.data = service.suggest_handle(current_user.name)
    return form


def _profile_section() -> dict:
    """The experts' panel of /profile: the expert's links, or the form to become one."""
    profile = service.profile_of(current_user.id)
    return {"expert_profile": profile, "expert_form": None if profile else _become_expert_form()}


@bp.post("/profile/become-expert")
@login_required
def become_expert():
    """Set up the current user's expert profile (name, headline, bio, handle, time zone) and give them the expert role."""
    form = _become_expert_form(request.form)
    if form.validate_on_submit():
        try:
            service.create_profile(
                current_user.id, form.display_name.data, form.headline.data, form.bio.data, form.handle.data, form.timezone.data
            )
        except ValidationFailed as error:
            apply_errors(form, error)
        except Conflict as error:
            form.form_errors.append(error.message)
        else:
            flash("You are now an expert. Add your services and check your weekly hours to start taking bookings.", "success")
            return redirect_to(url_for("experts.settings_services"))
    return render_profile("experts/_become_expert_form.html", status=422, expert_form=form)


def _viewer_id() -> int | None:
    """Who is looking (an expert sees their own pages before they are published)."""
    return current_user.id if current_user.is_authenticated else None


def _viewer_zone(default: str) -> tuple[str, bool]:
    """The zone the viewer asked for (``tz``: a name, an alias or a readable name), else ``default``; and
    whether they asked (then the page no longer switches to the browser's zone by itself)."""
    asked = request.values.get("tz")
    return service.timezone_or(asked, default), bool(asked and asked.strip())


# ---------------------------------------------------------------------------- marketplace and profiles


@bp.get("/experts")
def marketplace():
    """Find an expert by name, service or keyword."""
    query = request.args.get("q", "").strip()[:100]
    experts = service.search_experts(query)
    return render("experts/marketplace.html", "experts/_expert_list.html", experts=experts, q=query, services_of=service.visible_services)


@bp.get("/expert/<handle>")
@no_store
def public_profile(handle: str):
    """An expert's public page: who they are, their services and the next 14 available times."""
    profile = service.profile_by_handle(handle, _viewer_id())
    zone, explicit = _viewer_zone(profile.timezone)
    services = service.visible_services(profile.id)
    return render(
        "experts/profile.html",
        "experts/_next_times.html",
        profile=profile,
        published=service.is_published(profile),
        services=services,
        next_times=service.next_times(services, 14),
        zone=zone,
        zone_explicit=explicit,
    )


# ---------------------------------------------------------------------------- the booking page


def _month_arg(value: str | None, fallback: date) -> date:
    try:
        year, month = (int(part) for part in (value or "").split("-"))
        return date(year, month, 1)
    except (TypeError, ValueError):
        return fallback.replace(day=1)


def _booking_context(svc: Service, form: BookingForm | None = None, error: str | None = None, clear_start: bool = False,
                     picker=None, moving: Booking | None = None, default_zone: str | None = None) -> dict:
    """Everything the booking panel shows: zone, month calendar, the chosen day's times, the form.

    ``picker(**args)`` builds the panel's own links (default: the booking page); ``moving`` is the
    booking a reschedule panel moves (its form asks for a reason instead of contact details).
    """
    profile = svc.expert
    picker = picker or (lambda **args: url_for("experts.book", handle=profile.handle, slug=svc.slug, **args))
    zone, explicit = _viewer_zone(default_zone or profile.timezone)
    today = datetime.now(ZoneInfo(zone)).date()
    start = moment_arg(request.values.get("start"))
    day = day_arg(request.values.get("day"))
    if start is not None and day is None:
        day = start.astimezone(ZoneInfo(zone)).date()
    if clear_start:
        start = None
    first_month = today.replace(day=1)
    last_day = today + timedelta(days=svc.horizon_days + 1)
    if request.values.get("month"):
        month = _month_arg(request.values.get("month"), day or today)
    else:
        # Open on the month of the chosen day, else of the first free time (late in a month the current
        # one may have none left), else this month.
        month = (day or service.first_day_with_times(svc, today, last_day, zone) or today).replace(day=1)
    month = max(month, first_month)
    month = min(month, last_day.replace(day=1))
    weeks = month_calendar.Calendar(firstweekday=0).monthdatescalendar(month.year, month.month)
    moving_id = moving.id if moving is not None else None  # its own time must not hide the times next to it
    open_days = service.days_with_times(svc, weeks[0][0], weeks[-1][-1], zone, moving=moving_id)
    times = service.times_on(svc, day, zone, moving=moving_id) if day else []
    if start is not None and start not in times:
        start = None
    if form is None and moving is not None:
        form = RescheduleForm(formdata=None)
    elif form is None:
        form = BookingForm(formdata=None)
        if current_user.is_authenticated:
            form.name.data = current_user.name
            form.email.data = current_user.email
        form.idempotency_key.data = secrets.token_urlsafe(18)
    if start is not None:
        form.start.data = start.isoformat()
    form.tz.data = zone
    prev_month = (month - timedelta(days=1)).replace(day=1)
    next_month = (month + timedelta(days=32)).replace(day=1)
    return {
        "svc": svc,
        "profile": profile,
        "zone": zone,
        "zone_explicit": explicit,
        "month": month,
        "weeks": weeks,
        "open_days": open_days,
        "day": day,
        "times": times,
        "start": start,
        "form": form,
        "error": error,
        "prev_month": prev_month if prev_month >= first_month else None,
        "next_month": next_month if next_month <= last_day else None,
        "weekday_names": [name[:3] for name in WEEKDAY_NAMES],
        "picker_url": picker,
        "moving": moving,
    }


@bp.route("/expert/<handle>/<slug>", methods=["GET", "POST"])
@no_store
@limits.guest_per_ip
@limits.guest_per_email
def book(handle: str, slug: str):
    """Book a service: pick a date in the month calendar, a time, then fill in the form.

    Logged in, the booking is the account's; otherwise it is a guest booking (name, email, phone,
    notes), throttled per client address and per email, and the guest lands on its private manage page.
    """
    svc = service.bookable_service(handle, slug, _viewer_id())
    if request.method == "GET":
        return render("experts/book.html", "experts/_booking_panel.html", **_booking_context(svc))
    form = BookingForm()
    start = moment_arg(form.start.data)
    if not form.validate_on_submit() or start is None:
        if start is None:
            form.start.errors = ["Pick a time."]
        return render("experts/book.html", "experts/_booking_panel.html", status=422, **_booking_context(svc, form))
    try:
        booking = service.book(
            current_user.id if current_user.is_authenticated else None,
            svc.id,
            start,
            name=form.name.data,
            email=form.email.data,
            phone=form.phone.data or "",
            notes=form.notes.data or "",
            customer_timezone=form.tz.data or svc.expert.timezone,
            idempotency_key=form.idempotency_key.data,
        )
    except ValidationFailed as error:
        apply_errors(form, error)
        return render("experts/book.html", "experts/_booking_panel.html", status=422, **_booking_context(svc, form))
    except Conflict as error:
        # Show the fresh times of the same day, so the person can pick again at once.
        fresh = BookingForm(formdata=None, obj=None)
        for name in ("name", "email", "phone", "notes", "idempotency_key"):
            getattr(fresh, name).data = getattr(form, name).data
        return render("experts/book.html", "experts/_booking_panel.html", status=409, **_booking_context(svc, fresh, error.message, clear_start=True))
    if booking.customer_id is None:
        return redirect_to(url_for("experts.manage_booking", token=service.manage_token(booking)))
    return redirect_to(url_for("experts.booking_detail", booking_id=booking.id))


# ---------------------------------------------------------------------------- one booking


def _unchanged(stamp: str) -> bool:
    """Whether a polling fragment may skip its swap (204) because nothing changed since ``since``."""
    return wants_fragment() and request.args.get("since") == stamp


@bp.get("/experts/bookings/<int:booking_id>")
@login_required
@no_store
def booking_detail(booking_id: int):
    """One booking, for its customer or its expert: status (live), details, cancel, calendar file."""
    booking = service.booking_for(current_user.id, booking_id)
    if _unchanged(booking_stamp(booking)):
        return Response(status=204)
    return render("experts/booking.html", "experts/_booking_detail.html", **_detail_context(booking))


def booking_stamp(booking: Booking) -> str:
    """Changes whenever the booking changes, its meeting's state included (which touches ``updated_at``)."""
    return f"{booking.ics_sequence}-{int(booking.updated_at.timestamp() * 1000)}"


def _detail_context(booking: Booking, error: str | None = None) -> dict:
    as_expert = booking.expert.user_id == current_user.id
    zone = booking.expert.timezone if as_expert else booking.customer_timezone
    return {"booking": booking, "stamp": booking_stamp(booking), "as_expert": as_expert, "zone": zone, "cancel_form": CancelForm(formdata=None), "action_form": ActionForm(formdata=None), "error": error, "poll": POLL_SECONDS, "now": utcnow()}


@bp.get("/experts/bookings/<int:booking_id>/booking.ics")
@login_required
def booking_calendar_file(booking_id: int):
    """The booking as an .ics file ("Add to calendar")."""
    booking = service.booking_for(current_user.id, booking_id)
    return _ics_download(booking, for_expert=booking.expert.user_id == current_user.id)


def _ics_download(booking: Booking, *, for_expert: bool = False) -> Response:
    response = make_response(booking_ics(booking, meeting_links(booking), for_expert=for_expert))
    response.headers["Content-Type"] = "text/calendar; charset=utf-8"
    response.headers["Content-Disposition"] = f'attachment; filename="expertbook-booking-{booking.id}.ics"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


# ---------------------------------------------------------------------------- reschedule


def _reschedule_context(booking: Booking, picker, back_url: str, form: RescheduleForm | None = None, error: str | None = None,
                        clear_start: bool = False) -> dict:
    as_expert = current_user.is_authenticated and booking.expert.user_id == current_user.id
    context = _booking_context(booking.service, form, error, clear_start, picker=picker, moving=booking,
                               default_zone=booking.expert.timezone if as_expert else booking.customer_timezone)
    return context | {"booking": booking, "as_expert": as_expert, "back_url": back_url}


def _reschedule(booking: Booking, picker, move, done_url: str):
    """The reschedule page (GET) and its form (POST), for a logged-in party or a guest's manage link.

    ``move(start, reason)`` makes the change; ``done_url`` is where a successful move lands.
    """
    if request.method == "GET":
        return render("experts/reschedule.html", "experts/_booking_panel.html", **_reschedule_context(booking, picker, done_url))
    form = RescheduleForm()
    start = moment_arg(form.start.data)
    if not form.validate_on_submit() or start is None:
        if start is None:
            form.start.errors = ["Pick a time."]
        return render("experts/reschedule.html", "experts/_booking_panel.html", status=422, **_reschedule_context(booking, picker, done_url, form))
    try:
        move(start, form.reason.data or "")
    except ValidationFailed as error:
        apply_errors(form, error)
        return render("experts/reschedule.html", "experts/_booking_panel.html", status=422, **_reschedule_context(booking, picker, done_url, form))
    except Conflict as error:
        fresh = RescheduleForm(formdata=None)
        fresh.reason.data = form.reason.data
        return render("experts/reschedule.html", "experts/_booking_panel.html", status=409,
                      **_reschedule_context(booking, picker, done_url, fresh, error.message, clear_start=True))
    if not is_htmx():
        flash("The booking was moved.", "success")
    return redirect_to(done_url)


@bp.route("/experts/bookings/<int:booking_id>/reschedule", methods=["GET", "POST"])
@login_required
@no_store
def reschedule_booking(booking_id: int):
    """Move a booking to another free time of its service (its customer or its expert), with an optional reason."""
    booking = service.booking_for(current_user.id, booking_id)
    user_id = current_user.id
    return _reschedule(
        booking,
        lambda **args: url_for("experts.reschedule_booking", booking_id=booking_id, **args),
        lambda start, reason: service.reschedule(user_id, booking_id, start, reason),
        url_for("experts.booking_detail", booking_id=booking_id),
    )


# ---------------------------------------------------------------------------- a guest's manage link


def _guest_booking(token: str) -> Booking:
    return service.booking_by_manage_token(token)


def _manage_context(booking: Booking, token: str, error: str | None = None) -> dict:
    return {"booking": booking, "token": token, "zone": booking.customer_timezone, "stamp": booking_stamp(booking),
            "cancel_form": CancelForm(formdata=None), "error": error, "poll": POLL_SECONDS, "now": utcnow()}


def _private(response):
    # The token is in the URL: keep the page out of shared caches and out of other sites' Referer.
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.get("/experts/manage/<token>")
@limits.manage_link
@limits.manage_link_prefix
def manage_booking(token: str):
    """A guest's booking, through its private link: as it is now (an old link shows a moved or cancelled
    booking's current state), with move, cancel and "Add to calendar". 404 once the booking has ended."""
    booking = _guest_booking(token)
    if _unchanged(booking_stamp(booking)):
        return Response(status=204)
    return _private(render("experts/manage.html", "experts/_manage_detail.html", **_manage_context(booking, token)))


@bp.post("/experts/manage/<token>/cancel")
@limits.manage_link
@limits.manage_link_prefix
def manage_cancel(token: str):
    """Cancel a guest booking through its private link, with an optional reason."""
    form = CancelForm()
    status, error = 200, None
    if not form.validate_on_submit():
        status, error = 422, "Please reload the page and try again."
    else:
        try:
            service.guest_cancel(token, form.reason.data or "")
        except ValidationFailed as failure:
            status, error = 422, " ".join(m for msgs in failure.errors.values() for m in msgs)
        except Conflict as failure:
            status, error = 409, failure.message
    if not is_htmx():
        flash(error or "The booking was cancelled.", "error" if error else "success")
        return redirect(url_for("experts.manage_booking", token=token), 303)
    booking = _guest_booking(token)
    return _private(render("experts/manage.html", "experts/_manage_detail.html", status=status, **_manage_context(booking, token, error)))


@bp.route("/experts/manage/<token>/reschedule", methods=["GET", "POST"])
@limits.manage_link
@limits.manage_link_prefix
@limits.manage_moves
def manage_reschedule(token: str):
    """Move a guest booking through its private link: the same rules as for a customer with an account."""
    booking = _guest_booking(token)
    response = _reschedule(
        booking,
        lambda **args: url_for("experts.manage_reschedule", token=token, **args),
        lambda start, reason: service.guest_reschedule(token, start, reason),
        url_for("experts.manage_booking", token=token),
    )
    return _private(response)


@bp.get("/experts/manage/<token>/booking.ics")
@limits.manage_link
@limits.manage_link_prefix
def manage_calendar_file(token: str):
    """A guest booking as an .ics file, through its private link."""
    return _private(_ics_download(_guest_booking(token)))


# ---------------------------------------------------------------------------- the calendar feed


@bp.get("/experts/calendar-feed")
@login_required
def calendar_feed_settings():
    """The user's private calendar subscription: its address (https and webcal), get a new one, turn it off."""
    return render("experts/calendar_feed.html", "experts/_calendar_feed.html", **_feed_context())


def _feed_context() -> dict:
    url, webcal_url = service.calendar_feed_urls(current_user.id)
    return {"url": url, "webcal_url": webcal_url, "action_form": ActionForm(formdata=None), "profile": service.profile_of(current_user.id)}


@bp.post("/experts/calendar-feed/reset")
@login_required
def calendar_feed_reset():
    """Turn the feed on, or replace its address (calendars subscribed to the old one stop updating)."""
    if ActionForm().validate_on_submit():
        service.reset_calendar_feed(current_user.id)
        status = 200
    else:
        status = 422
    return render("experts/calendar_feed.html", "experts/_calendar_feed.html", status=status, **_feed_context())


@bp.post("/experts/calendar-feed/revoke")
@login_required
def calendar_feed_revoke():
    """Turn the feed off: its address answers 404 from now on."""
    if ActionForm().validate_on_submit():
        service.revoke_calendar_feed(current_user.id)
        status = 200
    else:
        status = 422
    return render("experts/calendar_feed.html", "experts/_calendar_feed.html", status=status, **_feed_context())


@bp.get("/experts/feed/<token>.ics")
def calendar_feed(token: str):
    """The iCalendar feed calendar apps poll: no login (the token is the key), ETag and Last-Modified with 304s."""
    user_id = service.calendar_feed_owner(token)
    bookings = service.feed_bookings(user_id)
    body = feed_ics(user_id, bookings, "ExpertBook")
    response = make_response(body)
    response.headers["Content-Type"] = "text/calendar; charset=utf-8"
    response.headers["Cache-Control"] = "private, no-cache"  # may be kept, but revalidated on every poll
    response.headers["Referrer-Policy"] = "no-referrer"
    response.set_etag(hashlib.sha256(body).hexdigest()[:32])
    last_changed = service.feed_last_changed(user_id, bookings)
    if last_changed is not None:
        response.last_modified = last_changed
    return response.make_conditional(request)


def _after_action(booking_id: int, view: str, error: str | None = None, status: int = 200):
    """Answer an accept/decline/cancel with the fragment of the page it was made on."""
    if not is_htmx():
        if error:
            flash(error, "error")
        target = {"dashboard": url_for("experts.dashboard"), "mine": url_for("experts.my_bookings")}.get(
            view, url_for("experts.booking_detail", booking_id=booking_id)
        )
        return redirect(target, 303)
    if view == "dashboard":
        return render("experts/dashboard.html", "experts/_dashboard.html", status=status, **_dashboard_context(error))
    if view == "mine":
        return render("experts/my_bookings.html", "experts/_my_bookings.html", status=status, **_mine_context(error))
    booking = service.booking_for(current_user.id, booking_id)
    return render("experts/booking.html", "experts/_booking_detail.html", status=status, **_detail_context(booking, error))


@bp.post("/experts/bookings/<int:booking_id>/cancel")
@login_required
def cancel_booking(booking_id: int):
    """Cancel a booking (customer or expert), with an optional reason."""
    form = CancelForm()
    if not form.validate_on_submit():
        return _after_action(booking_id, form.view.data, "Please reload the page and try again.", 422)
    try:
        service.cancel(current_user.id, booking_id, form.reason.data or "")
    except ValidationFailed as error:
        return _after_action(booking_id, form.view.data, " ".join(m for msgs in error.errors.values() for m in msgs), 422)
    except Conflict as error:
        return _after_action(booking_id, form.view.data, error.message, 409)
    if not is_htmx():
        flash("The booking was cancelled.", "success")
    return _after_action(booking_id, form.view.data)


def _respond(booking_id: int, accept: bool):
    form = ActionForm()
    if not form.validate_on_submit():
        return _after_action(booking_id, form.view.data, "Please reload the page and try again.", 422)
    try:
        service.respond(current_user.id, booking_id, accept)
    except Conflict as error:
        return _after_action(booking_id, form.view.data, error.message, 409)
    return _after_action(booking_id, form.view.data)


@bp.post("/experts/bookings/<int:booking_id>/accept")
@login_required
def accept_booking(booking_id: int):
    """The expert accepts a pending request; it becomes confirmed (once)."""
    return _respond(booking_id, True)


@bp.post("/experts/bookings/<int:booking_id>/decline")
@login_required
def decline_booking(booking_id: int):
    """The expert declines a pending request; the time becomes free again."""
    return _respond(booking_id, False)


# ---------------------------------------------------------------------------- my bookings and the dashboard


def _mine_context(error: str | None = None) -> dict:
    upcoming, past = service.split_upcoming(service.bookings_as_customer(current_user.id))
    return {
        # Cancelled and declined bookings of times still to come are listed apart, never as upcoming.
        "upcoming": [b for b in upcoming if b.is_active],
        "called_off": [b for b in upcoming if not b.is_active],
        "past": past,
        "stamp": service.change_stamp(current_user.id, as_expert=False),
        "cancel_form": CancelForm(formdata=None),
        "error": error,
        "poll": POLL_SECONDS,
        "now": utcnow(),
    }


@bp.get("/my-bookings")
@login_required
@no_store
def my_bookings():
    """The customer's upcoming and past bookings; status changes appear live (polling)."""
    if _unchanged(service.change_stamp(current_user.id, as_expert=False)):
        return Response(status=204)
    return render("experts/my_bookings.html", "experts/_my_bookings.html", **_mine_context())


def _dashboard_context(error: str | None = None) -> dict:
    profile = service.require_profile(current_user.id)
    zone = ZoneInfo(profile.timezone)
    bookings = service.bookings_as_expert(current_user.id)
    now = utcnow()
    upcoming, past = service.split_upcoming(bookings, now)
    today = now.astimezone(zone).date()
    return {
        "profile": profile,
        "pending": [b for b in upcoming if b.status == "pending"],
        "agenda": [b for b in upcoming if b.is_active and b.start_at.astimezone(zone).date() == today],
        "upcoming": [b for b in upcoming if b.status != "pending"],
        "past": past[:50],
        "stamp": service.change_stamp(current_user.id, as_expert=True),
        "action_form": ActionForm(formdata=None),
        "cancel_form": CancelForm(formdata=None),
        "error": error,
        "poll": POLL_SECONDS,
        "now": now,
    }


@bp.get("/expert-dashboard")
@expert_required
@no_store
def dashboard(profile: ExpertProfile):
    """The expert's bookings: pending requests to answer, today's agenda, upcoming and past; live."""
    if _unchanged(service.change_stamp(current_user.id, as_expert=True)):
        return Response(status=204)
    return render("experts/dashboard.html", "experts/_dashboard.html", **_dashboard_context())


# ---------------------------------------------------------------------------- settings


@bp.route("/experts/settings/profile", methods=["GET", "POST"])
@expert_required
def settings_profile(profile: ExpertProfile):
    """Edit the public profile: name, headline, bio, handle and time zone."""
    form = ExpertProfileForm(obj=profile)
    status = 200
    if form.validate_on_submit():
        try:
            service.update_profile(current_user.id, form.display_name.data, form.headline.data, form.bio.data, form.handle.data, form.timezone.data)
        except ValidationFailed as error:
            apply_errors(form, error)
        else:
            flash("Your profile was saved.", "success")
            return redirect_to(url_for("experts.settings_profile"))
    if request.method == "POST":
        status = 422
    return render("experts/settings_profile.html", "experts/_profile_form.html", status=status, form=form, profile=profile)


@bp.get("/experts/settings/services")
@expert_required
def settings_services(profile: ExpertProfile):
    """The expert's services, with edit, hide/show and delete."""
    return render("experts/settings_services.html", "experts/_service_list.html", profile=profile, services=service.own_services(current_user.id), action_form=ActionForm(formdata=None))


@bp.route("/experts/settings/services/new", methods=["GET", "POST"])
@expert_required
def new_service(profile: ExpertProfile):
    """Create a service."""
    form = ServiceForm()
    if form.validate_on_submit():
        try:
            service.create_service(current_user.id, form.values())
        except ValidationFailed as error:
            apply_errors(form, error)
        else:
            flash(f"“{form.title.data}” was created.", "success")
            return redirect_to(url_for("experts.settings_services"))
    status = 422 if request.method == "POST" else 200
    return render("experts/service_edit.html", "experts/_service_form.html", status=status, form=form, svc=None, profile=profile)


@bp.route("/experts/settings/services/<int:service_id>", methods=["GET", "POST"])
@expert_required
def edit_service(profile: ExpertProfile, service_id: int):
    """Edit a service; existing bookings keep their times."""
    svc = service.own_service(current_user.id, service_id)
    form = ServiceForm(obj=svc)
    if request.method == "GET":
        form.price.data = svc.price_cents / 100
    if form.validate_on_submit():
        try:
            service.update_service(current_user.id, service_id, form.values())
        except ValidationFailed as error:
            apply_errors(form, error)
        else:
            flash("The service was saved.", "success")
            return redirect_to(url_for("experts.settings_services"))
    status = 422 if request.method == "POST" else 200
    return render("experts/service_edit.html", "experts/_service_form.html", status=status, form=form, svc=svc, profile=profile)


@bp.post("/experts/settings/services/<int:service_id>/visibility")
@expert_required
def toggle_service(profile: ExpertProfile, service_id: int):
    """Hide a service from customers, or show it again."""
    form = ActionForm()
    if form.validate_on_submit():
        svc = service.own_service(current_user.id, service_id)
        service.set_service_hidden(current_user.id, service_id, not svc.hidden)
    return render("experts/settings_services.html", "experts/_service_list.html", profile=profile, services=service.own_services(current_user.id), action_form=ActionForm(formdata=None))


@bp.post("/experts/settings/services/<int:service_id>/delete")
@expert_required
def delete_service(profile: ExpertProfile, service_id: int):
    """Delete a service; its bookings are kept."""
    form = ActionForm()
    if form.validate_on_submit():
        service.delete_service(current_user.id, service_id)
    return render("experts/settings_services.html", "experts/_service_list.html", profile=profile, services=service.own_services(current_user.id), action_form=ActionForm(formdata=None))


def _hours_context(profile: ExpertProfile, hours_form=None, override_form=None) -> dict:
    if hours_form is None:
        hours_form = WeeklyHoursForm(formdata=None)
        week = service.weekly_ranges(profile.id)
        for weekday in range(7):
            getattr(hours_form, f"day{weekday}").data = service.format_ranges(week.get(weekday, []))
    today = datetime.now(ZoneInfo(profile.timezone)).date()
    return {
        "profile": profile,
        "hours_form": hours_form,
        "override_form": override_form or OverrideForm(formdata=None),
        "overrides": service.overrides_of(profile.id, since=today),
        "format_ranges": service.format_ranges,
        "action_form": ActionForm(formdata=None),
    }


@bp.route("/experts/settings/hours", methods=["GET", "POST"])
@expert_required
def settings_hours(profile: ExpertProfile):
    """Weekly hours (several ranges a day) in the expert's zone, and date overrides."""
    if request.method == "GET":
        return render("experts/settings_hours.html", "experts/_hours_form.html", **_hours_context(profile))
    form = WeeklyHoursForm()
    if form.validate_on_submit():
        try:
            week = {d: service.parse_ranges(getattr(form, f"day{d}").data, f"day{d}") for d in range(7)}
            service.set_weekly_hours(current_user.id, week)
        except ValidationFailed as error:
            apply_errors(form, error)
        else:
            flash("Your weekly hours were saved.", "success")
            return redirect_to(url_for("experts.settings_hours"))
    return render("experts/settings_hours.html", "experts/_hours_form.html", status=422, **_hours_context(profile, hours_form=form))


@bp.post("/experts/settings/overrides")
@expert_required
def add_override(profile: ExpertProfile):
    """Give one date different hours, or make it a day off."""
    form = OverrideForm()
    if form.validate_on_submit():
        try:
            service.set_override(current_user.id, form.day.data, service.parse_ranges(form.ranges.data, "ranges"))
        except ValidationFailed as error:
            apply_errors(form, error)
        else:
            flash("The date was saved.", "success")
            return redirect_to(url_for("experts.settings_hours"))
    return render("experts/settings_hours.html", "experts/settings_hours.html", status=422, **_hours_context(profile, override_form=form))


@bp.post("/experts/settings/overrides/<day>/delete")
@expert_required
def delete_override(profile: ExpertProfile, day: str):
    """Remove a date override; the weekly hours apply again."""
    form = ActionForm()
    parsed = day_arg(day)
    if parsed is None:
        abort(404)
    if form.validate_on_submit():
        service.delete_override(current_user.id, parsed)
        flash("The date override was removed.", "success")
    return redirect_to(url_for("experts.settings_hours"))
