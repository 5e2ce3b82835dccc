"""Expert rules: profiles, services, hours, availability and bookings.

Every write runs in one :func:`transaction`. Booking locks the expert's profile row (on SQLite the
``BEGIN IMMEDIATE`` write transaction already serialises writers), re-checks the requested time
against the availability rules and the expert's other bookings, and only then inserts. Accept,
decline and cancel are compare-and-swap updates, so each happens at most once.
"""
from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation

from flask import current_app
from flask_babel import gettext as _
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from expertbook import keys
from expertbook.auth.models import User
from expertbook.database import transaction, utcnow
from expertbook.errors import Conflict, NotFound, ValidationFailed
from expertbook.experts import availability, signals, zones
from expertbook.experts.availability import Hours, Interval, Rules
from expertbook.experts.models import (
    ACTIVE_STATUSES,
    LOCATION_KINDS,
    Booking,
    CalendarFeed,
    DateOverride,
    ExpertProfile,
    VIDEO_PROVIDERS,
    Service,
    WeeklyHours,
)
from expertbook.extensions import db

TAKEN = "That time was just taken. Please pick another."
NOT_OFFERED = "That time is not available. Please pick another."
DEFAULT_HOURS = [(weekday, time(8), time(17)) for weekday in range(5)]  # Monday-Friday 08:00-17:00 (seed 002)
HANDLE_RE = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,39}$")
SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){0,59}$")
# Handles share the URL space with pages; these would shadow them or mislead people.
RESERVED_HANDLES = frozenset(
    "admin administrator api app book bookings calendar clinic dashboard expert experts expert-dashboard help "
    "login logout me my-bookings new null profile register root search settings signup static staff support "
    "system www expertbook".split()
)
MAX_DURATION = 8 * 60
MAX_BUFFER = 4 * 60
MAX_NOTICE = 60 * 24 * 30
MAX_HORIZON = 366
MAX_IDEMPOTENCY_KEY = 80  # the column's length


# ---------------------------------------------------------------------------- small validators


def valid_timezone(name: str, field: str = "timezone") -> str:
    """The IANA name of the zone ``name`` gives, else ValidationFailed. Aliases browsers still report
    (Asia/Calcutta) become the canonical name (Asia/Kolkata); readable names ("India (Kolkata)") and
    cities with a zone of their own ("London") are understood too."""
    found = zones.canonical(name)
    if found is None:
        raise ValidationFailed({field: "Choose a time zone from the list (for example India (Kolkata) or London)."})
    return found


def timezone_or(name: str | None, default: str) -> str:
    """The zone ``name`` gives, else ``default`` (for viewer-chosen display zones)."""
    return zones.canonical(name) or default


def all_timezones() -> tuple[str, ...]:
    """Every zone a person picks from, as IANA names, in the order of their readable names."""
    return tuple(z.name for z in zones.zones())


def slugify(text: str) -> str:
    """A URL slug from free text: lower-case ASCII letters, digits and single hyphens."""
    slug = re.sub(r"[^a-z0-9]+", "-", (text or "").lower()).strip("-")
    return slug[:60].strip("-")


def clean_handle(handle: str) -> str:
    """A public handle: 3-40 lower-case letters, digits or single hyphens, not a reserved word."""
    handle = (handle or "").strip().lower()
    if not HANDLE_RE.match(handle):
        raise ValidationFailed({"handle": "Use 3-40 lower-case letters, digits and single hyphens (not at either end)."})
    if handle in RESERVED_HANDLES:
        raise ValidationFailed({"handle": "That handle is reserved. Please choose another."})
    return handle


def _text(value: str | None, field: str, limit: int, required: bool = False) -> str:
    value = (value or "").strip()
    if required and not value:
        raise ValidationFailed({field: "This field is required."})
    if len(value) > limit:
        raise ValidationFailed({field: f"Keep it under {limit} characters."})
    if any(ord(ch) < 0x20 and ch not in "\n\r\t" for ch in value):
        raise ValidationFailed({field: "Contains characters that are not allowed."})
    return value


def _int(value, field: str, low: int, high: int) -> int:
    # A float or a bool is refused rather than truncated: 30.9 minutes is not 30, and true is not 1.
    if isinstance(value, bool | float):
        raise ValidationFailed({field: "Enter a whole number."})
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValidationFailed({field: "Enter a whole number."}) from None
    if not low <= number <= high:
        raise ValidationFailed({field: f"Enter a number from {low} to {high}."})
    return number


# ---------------------------------------------------------------------------- profiles


def profile_of(user_id: int) -> ExpertProfile | None:
    """The expert profile of a user, if any."""
    return db.session.scalar(select(ExpertProfile).where(ExpertProfile.user_id == user_id))


def require_profile(user_id: int) -> ExpertProfile:
    """The expert profile of a user, or NotFound (non-experts never learn the pages exist)."""
    profile = profile_of(user_id)
    if profile is None:
        raise NotFound("Not found")
    return profile


def _locked_profile(user_id: int) -> ExpertProfile:
    """The user's profile, row-locked for the rest of the transaction (hours are replaced as a whole)."""
    profile = db.session.scalar(select(ExpertProfile).where(ExpertProfile.user_id == user_id).with_for_update(of=ExpertProfile))
    if profile is None:
        raise NotFound("Not found")
    return profile


def is_published(profile: ExpertProfile) -> bool:
    """Whether the public may see the expert: only once they have verified their email address."""
    return profile.user.email_verified_at is not None


def _shown(profile: ExpertProfile | None, viewer_id: int | None) -> ExpertProfile:
    # The expert sees their own page before it is published (with "Verify your email to publish").
    if profile is None or not (is_published(profile) or profile.user_id == viewer_id):
        raise NotFound("Expert not found")
    return profile


def profile_by_handle(handle: str, viewer_id: int | None = None) -> ExpertProfile:
    """The public profile with this handle, or NotFound (also while it is not published, but to its owner)."""
    return _shown(db.session.scalar(select(ExpertProfile).where(ExpertProfile.handle == (handle or "").lower())), viewer_id)


def published_profile(expert_id: int, viewer_id: int | None = None) -> ExpertProfile:
    """The profile with this id, as :func:`profile_by_handle` shows it."""
    return _shown(db.session.get(ExpertProfile, expert_id), viewer_id)


def suggest_handle(name: str) -> str:
    """A free handle derived from a name, for defaults."""
    base = slugify(name)[:30].strip("-") or "expert"
    if len(base) < 3 or base in RESERVED_HANDLES:
        base = f"{base}-expert".strip("-")
    candidate = base
    while db.session.scalar(select(ExpertProfile.id).where(ExpertProfile.handle == candidate)) is not None:
        candidate = f"{base}-{secrets.randbelow(9000) + 1000}"
    return candidate


def _profile_fields(display_name: str, headline: str, bio: str, handle: str, timezone: str) -> dict:
    from expertbook.auth.service import clean_person_name

    return {
        "display_name": clean_person_name(display_name, "display_name"),
        "headline": _text(headline, "headline", 160),
        "bio": _text(bio, "bio", 4000),
        "handle": clean_handle(handle),
        "timezone": valid_timezone(timezone),
    }


def _handle_taken(handle: str, except_id: int | None = None) -> bool:
    query = select(ExpertProfile.id).where(ExpertProfile.handle == handle)
    if except_id is not None:
        query = query.where(ExpertProfile.id != except_id)
    return db.session.scalar(query) is not None


def create_profile(user_id: int, display_name: str, headline: str, bio: str, handle: str, timezone: str) -> ExpertProfile:
    """Make a user an expert: the role flag, a public profile and default hours (Mon-Fri 08:00-17:00)."""
    fields = _profile_fields(display_name, headline, bio, handle, timezone)
    with transaction():
        user = db.session.scalar(select(User).where(User.id == user_id).with_for_update(of=User))
        if user is None:
            raise NotFound("User not found")
        if profile_of(user_id) is not None:
            raise Conflict("You are already an expert.")
        if _handle_taken(fields["handle"]):
            raise ValidationFailed({"handle": "That handle is taken. Please choose another."})
        profile = ExpertProfile(user_id=user_id, **fields)
        db.session.add(profile)
        user.is_expert = True
        db.session.flush()
        for weekday, start, end in DEFAULT_HOURS:
            db.session.add(WeeklyHours(expert_id=profile.id, weekday=weekday, start_time=start, end_time=end))
        try:
            db.session.flush()
        except IntegrityError:  # a concurrent request took the handle between our check and insert
            raise ValidationFailed({"handle": "That handle is taken. Please choose another."}) from None
    return profile


def update_profile(user_id: int, display_name: str, headline: str, bio: str, handle: str, timezone: str) -> ExpertProfile:
    """Change an expert's public profile. Hours stay wall-clock times in the (new) zone."""
    fields = _profile_fields(display_name, headline, bio, handle, timezone)
    with transaction():
        profile = require_profile(user_id)
        if _handle_taken(fields["handle"], profile.id):
            raise ValidationFailed({"handle": "That handle is taken. Please choose another."})
        for name, value in fields.items():
            setattr(profile, name, value)
        try:
            db.session.flush()
        except IntegrityError:
            raise ValidationFailed({"handle": "That handle is taken. Please choose another."}) from None
    return profile


def search_experts(query: str = "", limit: int = 50) -> list[ExpertProfile]:
    """Experts whose name, handle, headline, bio or a visible service matches every word of ``query``."""
    statement = (
        select(ExpertProfile)
        .where(ExpertProfile.user.has(User.email_verified_at.is_not(None)))  # published experts only
        .order_by(ExpertProfile.display_name)
        .limit(limit)
    )
    for word in (query or "").split()[:8]:
        pattern = "%" + word.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        in_services = select(Service.id).where(
            Service.expert_id == ExpertProfile.id,
            Service.hidden.is_(False),
            Service.deleted_at.is_(None),
            or_(func.lower(Service.title).like(pattern, escape="\\"), func.lower(Service.description).like(pattern, escape="\\")),
        )
        statement = statement.where(
            or_(
                func.lower(ExpertProfile.display_name).like(pattern, escape="\\"),
                func.lower(ExpertProfile.handle).like(pattern, escape="\\"),
                func.lower(ExpertProfile.headline).like(pattern, escape="\\"),
                func.lower(ExpertProfile.bio).like(pattern, escape="\\"),
                in_services.exists(),
            )
        )
    return list(db.session.scalars(statement).unique())


# ---------------------------------------------------------------------------- services


def visible_services(expert_id: int) -> list[Service]:
    """The services customers can book, in creation order."""
    return list(
        db.session.scalars(
            select(Service)
            .where(Service.expert_id == expert_id, Service.hidden.is_(False), Service.deleted_at.is_(None))
            .order_by(Service.id)
        )
    )


def own_services(user_id: int) -> list[Service]:
    """An expert's services that are not deleted, hidden ones included."""
    profile = require_profile(user_id)
    return list(db.session.scalars(select(Service).where(Service.expert_id == profile.id, Service.deleted_at.is_(None)).order_by(Service.id)))


def own_service(user_id: int, service_id: int) -> Service:
    """One of the expert's own (not deleted) services, or NotFound."""
    profile = require_profile(user_id)
    service = db.session.get(Service, service_id)
    if service is None or service.expert_id != profile.id or service.deleted_at is not None:
        raise NotFound("Service not found")
    return service


def bookable_service(handle: str, slug: str, viewer_id: int | None = None) -> Service:
    """A visible service of the expert with this handle, by slug, or NotFound (see :func:`profile_by_handle`)."""
    profile = profile_by_handle(handle, viewer_id)
    service = db.session.scalar(select(Service).where(Service.expert_id == profile.id, Service.slug == slug))
    if service is None or not service.bookable:
        raise NotFound("Service not found")
    return service


def _service_fields(data: Mapping) -> dict:
    errors: dict[str, str] = {}
    fields: dict = {}

    def take(name: str, fn: Callable):
        try:
            fields[name] = fn()
        except ValidationFailed as error:
            errors.update({k: v[0] for k, v in error.errors.items()})

    take("title", lambda: _text(data.get("title"), "title", 120, required=True))
    take("slug", lambda: _clean_slug(data.get("slug") or slugify(data.get("title") or "")))
    take("description", lambda: _text(data.get("description"), "description", 4000))
    take("duration_min", lambda: _int(data.get("duration_min"), "duration_min", 5, MAX_DURATION))
    take("price_cents", lambda: _price_cents(data.get("price")))
    take("currency", lambda: _currency(data.get("currency") or "USD"))
    take("location_kind", lambda: _location_kind(data.get("location_kind") or "video"))
    take("location_detail", lambda: _text(data.get("location_detail"), "location_detail", 255))
    take("buffer_before_min", lambda: _int(_given(data, "buffer_before_min", 0), "buffer_before_min", 0, MAX_BUFFER))
    take("buffer_after_min", lambda: _int(_given(data, "buffer_after_min", 0), "buffer_after_min", 0, MAX_BUFFER))
    take("min_notice_min", lambda: _int(_given(data, "min_notice_min", 60), "min_notice_min", 0, MAX_NOTICE))
    take("horizon_days", lambda: _int(_given(data, "horizon_days", 60), "horizon_days", 1, MAX_HORIZON))
    take("video_provider", lambda: _video_provider(data.get("video_provider") or "auto"))
    fields["record_meetings"] = bool(data.get("record_meetings"))
    fields["requires_acceptance"] = bool(data.get("requires_acceptance"))
    fields["hidden"] = bool(data.get("hidden"))
    kind = fields.get("location_kind")
    if kind in ("in_person", "phone") and not fields.get("location_detail"):
        errors["location_detail"] = "Give the address." if kind == "in_person" else "Give the phone number to call."
    if errors:
        raise ValidationFailed(errors)
    return fields


def _given(data: Mapping, name: str, default):
    """``data[name]``, or ``default`` when it was left out (None or empty): 0 is a value, and out of range
    where the range starts at 1, not a request for the default."""
    value = data.get(name)
    return default if value in (None, "") else value


def _clean_slug(slug: str) -> str:
    slug = (slug or "").strip().lower()
    if not SLUG_RE.match(slug):
        raise ValidationFailed({"slug": "Use lower-case letters, digits and single hyphens."})
    return slug


MAX_PRICE = Decimal(1_000_000)


def _price_cents(price) -> int:
    """Whole cents, as the price is stored: 0 to 1,000,000 with at most two decimals, exactly."""
    if price in (None, ""):
        return 0
    try:
        amount = Decimal(str(price).replace(",", "").strip())
    except InvalidOperation:
        raise ValidationFailed({"price": "Enter an amount like 100 or 49.50."}) from None
    if not amount.is_finite() or not 0 <= amount <= MAX_PRICE:
        raise ValidationFailed({"price": "Enter an amount from 0 to 1,000,000."})
    cents = amount * 100
    if cents != cents.to_integral_value():
        raise ValidationFailed({"price": "Use at most two decimals (whole cents)."})
    return int(cents)


def _currency(code: str) -> str:
    code = (code or "").strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", code):
        raise ValidationFailed({"currency": "Use a three-letter ISO 4217 code such as USD, EUR or INR."})
    return code


def _location_kind(kind: str) -> str:
    if kind not in LOCATION_KINDS:
        raise ValidationFailed({"location_kind": "Choose video, in person or phone."})
    return kind


def _video_provider(choice: str) -> str:
    if choice not in VIDEO_PROVIDERS:
        raise ValidationFailed({"video_provider": "Choose Zoom, Jitsi, Google Meet or automatic."})
    return choice


def _slug_taken(expert_id: int, slug: str, except_id: int | None = None) -> bool:
    query = select(Service.id).where(Service.expert_id == expert_id, Service.slug == slug)
    if except_id is not None:
        query = query.where(Service.id != except_id)
    return db.session.scalar(query) is not None


def create_service(user_id: int, data: Mapping) -> Service:
    """Add a service to an expert. ``data`` holds the form's plain values (price as a decimal string)."""
    fields = _service_fields(data)
    with transaction():
        profile = require_profile(user_id)
        if _slug_taken(profile.id, fields["slug"]):
            raise ValidationFailed({"slug": "You already have a service with this URL slug."})
        service = Service(expert_id=profile.id, **fields)
        db.session.add(service)
        db.session.flush()
    return service


def update_service(user_id: int, service_id: int, data: Mapping) -> Service:
    """Change a service. Existing bookings keep their times; new rules apply to new bookings."""
    fields = _service_fields(data)
    with transaction():
        service = own_service(user_id, service_id)
        if _slug_taken(service.expert_id, fields["slug"], service.id):
            raise ValidationFailed({"slug": "You already have a service with this URL slug."})
        for name, value in fields.items():
            setattr(service, name, value)
    return service


def set_service_hidden(user_id: int, service_id: int, hidden: bool) -> Service:
    """Hide a service from customers (or show it again); its bookings stay."""
    with transaction():
        service = own_service(user_id, service_id)
        service.hidden = hidden
    return service


def delete_service(user_id: int, service_id: int) -> None:
    """Delete a service: it disappears everywhere but its bookings (past and upcoming) are kept.

    The slug is freed for reuse by renaming the deleted row's slug.
    """
    with transaction():
        service = own_service(user_id, service_id)
        service.deleted_at = utcnow()
        service.hidden = True
        service.slug = f"deleted-{service.id}-{uuid.uuid4().hex[:8]}"


# ---------------------------------------------------------------------------- hours


TIME_RANGE_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*[-\u2013]\s*(\d{1,2}):(\d{2})\s*$")


def parse_ranges(text: str, field: str) -> list[tuple[time, time]]:
    """Parse "08:00-12:00, 13:00-17:00" into sorted, non-overlapping ranges; "24:00" means midnight."""
    ranges = []
    for part in [p for p in re.split(r"[,;\n]+", text or "") if p.strip()]:
        match = TIME_RANGE_RE.match(part)
        if not match:
            raise ValidationFailed({field: f'"{part.strip()}" is not a range like 08:00-17:00.'})
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2):
            raise ValidationFailed({field: f'"{part.strip()}" is not a valid time.'})
        start, end = time(h1, m1), (time(0) if h2 == 24 else time(h2, m2))
        if end != time(0) and end <= start:
            raise ValidationFailed({field: f'"{part.strip()}" ends before it starts.'})
        ranges.append((start, end))
    ranges.sort()
    for (_, end), (start, _) in zip(ranges, ranges[1:]):
        if end == time(0) or start < end:
            raise ValidationFailed({field: "The ranges overlap."})
    return ranges


def format_ranges(ranges: Iterable[tuple[time, time]]) -> str:
    """The inverse of :func:`parse_ranges`."""
    return ", ".join(f"{s:%H:%M}-{'24:00' if e == time(0) else format(e, '%H:%M')}" for s, e in ranges)


END_OF_DAY = time(23, 59, 59)


def _end(stored: time) -> time:
    # A range "until 24:00" is stored as 23:59:59 (a time column cannot hold 24:00); the engine reads 00:00 as midnight.
    return time(0) if stored == END_OF_DAY else stored


def weekly_ranges(expert_id: int) -> dict[int, list[tuple[time, time]]]:
    """The expert's weekly hours by weekday."""
    week: dict[int, list[tuple[time, time]]] = {}
    rows = db.session.scalars(select(WeeklyHours).where(WeeklyHours.expert_id == expert_id).order_by(WeeklyHours.weekday, WeeklyHours.start_time))
    for row in rows:
        week.setdefault(row.weekday, []).append((row.start_time, _end(row.end_time)))
    return week


def set_weekly_hours(user_id: int, week: Mapping[int, Sequence[tuple[time, time]]]) -> None:
    """Replace the expert's weekly hours. Existing bookings are kept even if now outside the hours."""
    with transaction():
        profile = _locked_profile(user_id)
        db.session.query(WeeklyHours).filter(WeeklyHours.expert_id == profile.id).delete()
        for weekday, ranges in week.items():
            if not 0 <= weekday <= 6:
                raise ValidationFailed({"weekday": "Weekdays are 0 (Monday) to 6 (Sunday)."})
            for start, end in ranges:
                if end == time(0):
                    end = END_OF_DAY
                db.session.add(WeeklyHours(expert_id=profile.id, weekday=weekday, start_time=start, end_time=end))


def overrides_of(expert_id: int, since: date | None = None) -> dict[date, list[tuple[time, time]]]:
    """The expert's date overrides (from ``since`` on); an empty list means a day off."""
    query = select(DateOverride).where(DateOverride.expert_id == expert_id).order_by(DateOverride.day, DateOverride.start_time)
    if since is not None:
        query = query.where(DateOverride.day >= since)
    days: dict[date, list[tuple[time, time]]] = {}
    for row in db.session.scalars(query):
        ranges = days.setdefault(row.day, [])
        if row.start_time is not None and row.end_time is not None:
            ranges.append((row.start_time, _end(row.end_time)))
    return days


def set_override(user_id: int, day: date, ranges: Sequence[tuple[time, time]]) -> None:
    """Give one date its own hours; no ranges means a day off. Replaces an earlier override of that date."""
    with transaction():
        profile = _locked_profile(user_id)
        db.session.query(DateOverride).filter(DateOverride.expert_id == profile.id, DateOverride.day == day).delete()
        if not ranges:
            db.session.add(DateOverride(expert_id=profile.id, day=day))
        for start, end in ranges:
            db.session.add(DateOverride(expert_id=profile.id, day=day, start_time=start, end_time=END_OF_DAY if end == time(0) else end))


def delete_override(user_id: int, day: date) -> None:
    """Remove the override of one date: the weekly hours apply again."""
    with transaction():
        profile = require_profile(user_id)
        db.session.query(DateOverride).filter(DateOverride.expert_id == profile.id, DateOverride.day == day).delete()


# ---------------------------------------------------------------------------- availability


def hours_of(profile: ExpertProfile) -> Hours:
    """The expert's hours as the availability engine's value."""
    return Hours(profile.timezone, weekly_ranges(profile.id), overrides_of(profile.id))


def rules_of(service: Service) -> Rules:
    """A service's booking rules as the availability engine's value."""
    return Rules(service.duration_min, service.buffer_before_min, service.buffer_after_min, service.min_notice_min, service.horizon_days)


def busy_intervals(expert_id: int, start: datetime, end: datetime, exclude_id: int | None = None) -> list[Interval]:
    """Blocked intervals of the expert's pending/confirmed bookings that touch ``[start, end)``."""
    query = select(Booking.blocked_start, Booking.blocked_end).where(
        Booking.expert_id == expert_id,
        Booking.status.in_(ACTIVE_STATUSES),
        Booking.blocked_start < end,
        Booking.blocked_end > start,
    )
    if exclude_id is not None:
        query = query.where(Booking.id != exclude_id)
    # And the busy times of the expert's own calendars (external_busy): every offered time and every booking
    # check (under the expert's lock) honours them too.
    return [(row.blocked_start, row.blocked_end) for row in db.session.execute(query)] + external_busy(expert_id, start, end)


# Bookings can block at most this far around a candidate (longest service plus buffers).
_REACH = timedelta(minutes=MAX_DURATION + 2 * MAX_BUFFER)

# Busy times from outside ExpertBook (the expert's own calendars), given by the calendars area, which
# registers a source here (experts never imports it). A source answers from the database only, never
# from a remote server: it is called inside the booking's transaction, under the expert's lock.
BusySource = Callable[[int, datetime, datetime], list[Interval]]
_busy_sources: list[BusySource] = []


def register_busy_source(source: BusySource) -> BusySource:
    """Have :func:`external_busy` also ask ``source(expert_id, start, end)`` (idempotent)."""
    if source not in _busy_sources:
        _busy_sources.append(source)
    return source


def external_busy(expert_id: int, start: datetime, end: datetime) -> list[Interval]:
    """The expert's busy intervals from outside ExpertBook that touch ``[start, end)``."""
    return [interval for source in _busy_sources for interval in source(expert_id, start, end)]


def offered_times(
    service: Service, window_start: datetime, window_end: datetime, now: datetime | None = None, moving: int | None = None
) -> list[datetime]:
    """The start times (UTC) the service offers in ``[window_start, window_end)``; ``moving`` is a booking
    being rescheduled: its own time blocks none of the times around it, and is not offered itself."""
    now = now or utcnow()
    busy = busy_intervals(service.expert_id, window_start - _REACH, window_end + _REACH, exclude_id=moving)
    starts = availability.offered_starts(hours_of(service.expert), rules_of(service), busy, now=now, window_start=window_start, window_end=window_end)
    if moving is not None:
        current = db.session.get(Booking, moving)
        starts = [start for start in starts if current is None or start != current.start_at]
    return starts


def times_on(service: Service, day: date, timezone: str, now: datetime | None = None, moving: int | None = None) -> list[datetime]:
    """The offered start times on one date of the viewer's ``timezone`` (for ``moving``, see offered_times)."""
    start, end = availability.local_day_window(day, timezone)
    return offered_times(service, start, end, now, moving)


def days_with_times(
    service: Service, first: date, last: date, timezone: str, now: datetime | None = None, moving: int | None = None
) -> set[date]:
    """The dates (in the viewer's zone) between ``first`` and ``last`` with at least one offered time."""
    start, _ = availability.local_day_window(first, timezone)
    _, end = availability.local_day_window(last, timezone)
    return set(availability.group_by_local_day(offered_times(service, start, end, now, moving), timezone))


def first_day_with_times(service: Service, first: date, last: date, timezone: str, now: datetime | None = None) -> date | None:
    """The first date from ``first`` to ``last`` (in ``timezone``) with an offered time, or None."""
    return min(days_with_times(service, first, last, timezone, now), default=None)


def next_times(services: Sequence[Service], count: int = 14, now: datetime | None = None) -> list[tuple[datetime, Service]]:
    """The next ``count`` offered times over several services, soonest first."""
    now = now or utcnow()
    found: list[tuple[datetime, Service]] = []
    for service in services:
        horizon = now + timedelta(days=service.horizon_days, minutes=1)
        window = now
        # Look ahead a fortnight at a time so a busy expert does not cost a whole horizon's work.
        picked: list[datetime] = []
        while window < horizon and len(picked) < count:
            window_end = min(window + timedelta(days=14), horizon)
            picked.extend(offered_times(service, window, window_end, now))
            window = window_end
        found.extend((start, service) for start in picked[:count])
    found.sort(key=lambda pair: (pair[0], pair[1].id))
    return found[:count]


# ---------------------------------------------------------------------------- bookings


def _send(signal, booking_id: int, **kwargs) -> None:
    """Send a booking signal inside the current transaction, once the change is flushed.

    Receivers write their rows (emails, meetings) into this same transaction, so they exist
    exactly when the booking change commits (see :mod:`expertbook.experts.signals`). The receivers
    read the booking from the identity map; :func:`_swap`, whose compare-and-swap UPDATE bypasses
    it, expires the row so they see the new state.
    """
    db.session.flush()
    signal.send(current_app._get_current_object(), booking_id=booking_id, **kwargs)


def book(
    customer_id: int | None,
    service_id: int,
    start_at: datetime,
    *,
    name: str,
    email: str,
    phone: str = "",
    notes: str = "",
    customer_timezone: str = "UTC",
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> Booking:
    """Book ``start_at`` (aware) of a service for a customer; ``customer_id=None`` books as a guest
    (no account: the contact details are all we have, and the manage link is their key).

    Returns the existing booking when the same customer (a guest: the same email) repeats an
    ``idempotency_key``. Raises
    Conflict (409) with :data:`TAKEN` when another booking got there first, NotFound for a service
    that cannot be booked, ValidationFailed for bad contact details.
    """
    from expertbook.auth.service import clean_person_name, normalise_email

    if start_at.tzinfo is None:
        raise ValidationFailed({"start": "The time needs a time zone."})
    errors: dict[str, str] = {}
    cleaned: dict[str, str] = {}
    for field, fn in (
        ("name", lambda: clean_person_name(name)),
        ("email", lambda: normalise_email(email)),
        ("phone", lambda: _phone(phone)),
        ("notes", lambda: _text(notes, "notes", 2000)),
        ("customer_timezone", lambda: valid_timezone(customer_timezone, "customer_timezone")),
    ):
        try:
            cleaned[field] = fn()
        except ValidationFailed as error:
            errors.update({k: v[0] for k, v in error.errors.items()})
    if errors:
        raise ValidationFailed(errors)
    name, email, phone, notes, customer_timezone = (cleaned[f] for f in ("name", "email", "phone", "notes", "customer_timezone"))
    key = (idempotency_key or "").strip()[:MAX_IDEMPOTENCY_KEY] or None
    now = now or utcnow()

    with transaction() as session:
        service = db.session.get(Service, service_id)
        if service is None or not service.bookable or not is_published(service.expert):
            raise NotFound("Service not found")
        # The lock every booking of this expert queues on: checks and insert below happen one at a time.
        _lock_expert(session, service.expert_id)
        if key is not None:
            existing = _by_key(session, customer_id, email, key, service.id, start_at)
            if existing is not None:
                existing.replayed = True  # found under the expert's lock, so two racing retries cannot both be "new"
                return existing
        if service.expert.user_id == customer_id or (customer_id is None and service.expert.user.email == email):
            raise Conflict("You cannot book your own service.")
        rules = rules_of(service)
        blocked = _free(service, rules, start_at, now)
        status = "pending" if service.requires_acceptance else "confirmed"
        booking = Booking(
            expert_id=service.expert_id,
            service_id=service.id,
            customer_id=customer_id,
            is_guest=customer_id is None,
            customer_name=name,
            customer_email=email,
            customer_phone=phone,
            notes=notes,
            start_at=start_at,
            end_at=start_at + rules.duration,
            blocked_start=blocked[0],
            blocked_end=blocked[1],
            customer_timezone=customer_timezone,
            status=status,
            ics_uid=uuid.uuid4().hex,
            ics_sequence=0,
            idempotency_key=key,
            created_at=now,
            updated_at=now,
        )
        session.add(booking)
        session.flush()
        if status == "pending":
            _send(signals.booking_requested, booking.id)
        else:
            _send(signals.booking_confirmed, booking.id, accepted=False)
    return booking


def _by_key(session: Session, customer_id: int | None, email: str, key: str, service_id: int, start_at: datetime) -> Booking | None:
    if customer_id is None:
        # A guest is known only by the address they typed, which others may know too: a replay must
        # also repeat the booking's service and time, or a guessed key would hand out their booking.
        who = (
            Booking.customer_id.is_(None), Booking.is_guest, Booking.customer_email == email,
            Booking.service_id == service_id, Booking.start_at == start_at,
        )
    else:
        who = (Booking.customer_id == customer_id,)
    return session.scalar(select(Booking).where(*who, Booking.idempotency_key == key))


def _free(service: Service, rules: Rules, start_at: datetime, now: datetime, moving: int | None = None) -> Interval:
    """The interval a booking at ``start_at`` would block, if the service offers that time and nothing
    else of the expert's (but the booking ``moving``) holds it; else Conflict. Call under the expert's lock."""
    blocked = rules.blocked(start_at)
    if not availability.is_offered(hours_of(service.expert), rules, [], start_at, now=now):
        raise Conflict(NOT_OFFERED)
    if busy_intervals(service.expert_id, *blocked, exclude_id=moving):
        raise Conflict(TAKEN)
    return blocked


def _lock_expert(session: Session, expert_id: int) -> None:
    """Take the lock every booking change of this expert queues on (see :func:`book`)."""
    session.execute(select(ExpertProfile.id).where(ExpertProfile.id == expert_id).with_for_update(of=ExpertProfile))


def lock_expert(expert_id: int) -> None:
    """Inside a transaction: take the lock the expert's bookings queue on, so that what the caller then
    writes (new external busy times) and any booking of this expert happen one after the other."""
    _lock_expert(db.session, expert_id)


def _phone(phone: str) -> str:
    phone = (phone or "").strip()
    if phone and not re.fullmatch(r"\+?[0-9 ()./-]{5,40}", phone):
        raise ValidationFailed({"phone": "Enter a phone number with digits, spaces and + ( ) - only."})
    return phone


def booking_for(user_id: int, booking_id: int) -> Booking:
    """A booking the user is the customer or the expert of; NotFound for anyone else."""
    booking = db.session.get(Booking, booking_id)
    if booking is None or user_id is None or user_id not in (booking.customer_id, booking.expert.user_id):
        raise NotFound("Booking not found")
    return booking


def _swap(booking_id: int, where, values: dict) -> bool:
    """Compare-and-swap one booking; True if this call made the change."""
    values = {**values, "updated_at": utcnow(), "ics_sequence": Booking.ics_sequence + 1}
    result = db.session.execute(update(Booking).where(Booking.id == booking_id, where).values(**values).execution_options(synchronize_session=False))
    booking = db.session.identity_map.get(db.session.identity_key(Booking, booking_id))
    if booking is not None:
        db.session.expire(booking)  # the UPDATE bypassed it: the next read (a receiver's, a conflict's) is fresh
    return result.rowcount == 1


def respond(expert_user_id: int, booking_id: int, accept: bool) -> Booking:
    """Accept or decline a pending request, once. Accepting never overlaps: the request already held its time."""
    with transaction():
        booking = booking_for(expert_user_id, booking_id)
        if booking.expert.user_id != expert_user_id:
            raise NotFound("Booking not found")
        status = "confirmed" if accept else "declined"
        if not _swap(booking_id, Booking.status == "pending", {"status": status}):
            db.session.refresh(booking)
            raise Conflict(f"This request was already {booking.status}.")
        if accept:
            _send(signals.booking_confirmed, booking_id, accepted=True)
        else:
            _send(signals.booking_declined, booking_id)
    db.session.expire_all()
    return db.session.get(Booking, booking_id)


def cancel(user_id: int, booking_id: int, reason: str = "", now: datetime | None = None) -> Booking:
    """Cancel a pending or confirmed booking, by its customer or its expert; frees the time."""
    reason = _text(reason, "reason", 1000)
    with transaction():
        _cancel(booking_for(user_id, booking_id), user_id, reason, now or utcnow())
    db.session.expire_all()
    return db.session.get(Booking, booking_id)


def _cancel(booking: Booking, by_user_id: int | None, reason: str, now: datetime) -> None:
    # ``by_user_id`` None: the guest who made the booking, through its manage link.
    if booking.end_at <= now:
        raise Conflict("This booking is over and can no longer be cancelled.")
    changed = _swap(
        booking.id,
        Booking.status.in_(ACTIVE_STATUSES),
        {"status": "cancelled", "cancel_reason": reason, "cancelled_by": by_user_id},
    )
    if not changed:
        db.session.refresh(booking)
        raise Conflict(f"This booking was already {booking.status}.")
    _send(signals.booking_cancelled, booking.id, cancelled_by=by_user_id)


# ---------------------------------------------------------------------------- reschedule


def reschedule(user_id: int, booking_id: int, start_at: datetime, reason: str = "", now: datetime | None = None) -> Booking:
    """Move a booking to another free time of the same service, by its customer or its expert.

    The same rules as booking (hours, notice, horizon, buffers, no overlap) are checked under the
    expert's lock, ignoring the booking's own current time. A request that needs acceptance goes back
    to pending when the customer moves it; the expert's move keeps its status. The UID stays and
    SEQUENCE goes up, so calendars move the event. Conflict (409) with :data:`TAKEN` when the time was
    just taken, NotFound for anyone but the two parties.
    """
    booking = booking_for(user_id, booking_id)
    by_customer = booking.expert.user_id != user_id
    return _reschedule(booking_id, start_at, reason, by_customer=by_customer, now=now)


def _reschedule(booking_id: int, start_at: datetime, reason: str, *, by_customer: bool, now: datetime | None) -> Booking:
    if start_at.tzinfo is None:
        raise ValidationFailed({"start": "The time needs a time zone."})
    start_at = start_at.astimezone(UTC)
    reason = _text(reason, "reason", 1000)
    now = now or utcnow()
    with transaction() as session:
        expert_id = session.scalar(select(Booking.expert_id).where(Booking.id == booking_id))
        if expert_id is None:
            raise NotFound("Booking not found")
        _lock_expert(session, expert_id)
        booking = session.get(Booking, booking_id, populate_existing=True)  # as it is now that we hold the lock
        if not booking.is_active:
            raise Conflict(f"This booking was already {booking.status}.")
        if booking.start_at <= now:
            raise Conflict("This booking has already started and can no longer be moved.")
        service = booking.service
        if service.deleted_at is not None:
            raise Conflict("This service is no longer offered. Cancel the booking and book another.")
        if start_at == booking.start_at:
            raise ValidationFailed({"start": "That is the booking's current time. Pick another."})
        rules = rules_of(service)
        blocked = _free(service, rules, start_at, now, moving=booking.id)
        old_start, old_end, old_status = booking.start_at, booking.end_at, booking.status
        status = "pending" if by_customer and service.requires_acceptance else old_status
        changed = _swap(
            booking.id,
            (Booking.status == old_status) & (Booking.start_at == old_start),
            {
                "start_at": start_at, "end_at": start_at + rules.duration, "blocked_start": blocked[0], "blocked_end": blocked[1],
                "status": status, "rescheduled_from": old_start, "reschedule_reason": reason,
            },
        )
        if not changed:  # cannot happen under the lock; refuse rather than report a move that did not happen
            raise Conflict("This booking changed meanwhile. Please reload and try again.")
        _send(
            signals.booking_rescheduled, booking.id, previous_start=old_start, previous_end=old_end,
            by_customer=by_customer, back_to_pending=old_status != status,
        )
    db.session.expire_all()
    return db.session.get(Booking, booking_id)


# ---------------------------------------------------------------------------- guests: the manage link


_MANAGE_SALT = "expertbook-guest-booking-manage"


def _manage_serializer() -> URLSafeSerializer:
    # Signs with the current SECRET_KEY, accepts a fallback's signature too (expertbook.keys).
    return URLSafeSerializer(keys.for_itsdangerous(), salt=_MANAGE_SALT)


def manage_token(booking: Booking) -> str:
    """The signed token of a booking's private manage link (view, reschedule, cancel, .ics).

    It names the booking and its calendar UID, which never change, so an old link (from before a
    reschedule or a cancellation) still opens the booking and shows it as it is now.
    """
    return _manage_serializer().dumps([booking.id, booking.ics_uid])


def manage_url(booking: Booking) -> str:
    """The absolute private manage link of a booking (a guest's emails and the API answer carry it)."""
    from expertbook.web import external_url

    return external_url("experts.manage_booking", token=manage_token(booking))


def _issued(token: str) -> tuple[int, str] | None:
    """The booking id and UID of ``token`` if it is exactly a token :func:`manage_token` issued (with
    the current key or a fallback), else None.

    itsdangerous accepts more than it issues (its base64 decoder skips characters it does not expect,
    so one link can be spelled many ways): the token is signed again and must come out identical, so
    each booking has one link per key, and what counts per link (moves, failures) counts per booking.
    """
    token = token or ""
    if not 20 <= len(token) <= 200:
        return None
    try:
        booking_id, uid = _manage_serializer().loads(token)
    except (BadSignature, TypeError, ValueError):
        return None
    if type(booking_id) is not int or type(uid) is not str:
        return None
    for key in keys.accepted():
        issued = URLSafeSerializer(key, salt=_MANAGE_SALT).dumps([booking_id, uid])
        if secrets.compare_digest(issued.encode(), token.encode()):
            return booking_id, uid
    return None


def manage_link_booking_id(token: str) -> int | None:
    """The id of the booking ``token`` names, if it is a manage token as issued (no database lookup:
    for keying per-booking throttles)."""
    issued = _issued(token)
    return issued[0] if issued is not None else None


def manage_link_expiry(booking: Booking) -> datetime:
    """When the booking's manage link stops working: ``MANAGE_LINK_HOURS_AFTER_END`` after its current end."""
    return booking.end_at + timedelta(hours=current_app.config["MANAGE_LINK_HOURS_AFTER_END"])


def booking_by_manage_token(token: str, now: datetime | None = None) -> Booking:
    """The booking a manage link opens, checked on every use. NotFound for a token that is not exactly
    one we issued or an unknown booking; once the link has expired (:func:`manage_link_expiry`, from the
    booking's current end); and once the booking is attached to an account (its owner manages it from
    My bookings, logged in: the link in the guest's emails is revoked)."""
    issued = _issued(token)
    if issued is None:
        raise NotFound("Booking not found")
    booking_id, uid = issued
    booking = db.session.get(Booking, booking_id)
    if booking is None or not secrets.compare_digest(booking.ics_uid, uid) or manage_link_expiry(booking) <= (now or utcnow()):
        raise NotFound("Booking not found")
    if booking.customer_id is not None or not booking.is_guest:
        # Only the holder of the exact link gets here, and it is their own booking: say where it went.
        raise NotFound(_("This booking is now in your account: log in and find it under My bookings."))
    return booking


def guest_cancel(token: str, reason: str = "", now: datetime | None = None) -> Booking:
    """Cancel through a manage link (the guest who booked)."""
    reason = _text(reason, "reason", 1000)
    now = now or utcnow()
    with transaction():
        booking = booking_by_manage_token(token, now)
        _cancel(booking, None, reason, now)
        booking_id = booking.id
    db.session.expire_all()
    return db.session.get(Booking, booking_id)


def guest_reschedule(token: str, start_at: datetime, reason: str = "", now: datetime | None = None) -> Booking:
    """Move a booking through its manage link; the same rules as :func:`reschedule` by the customer."""
    booking = booking_by_manage_token(token, now)
    return _reschedule(booking.id, start_at, reason, by_customer=True, now=now)


def claim_guest_bookings(user_id: int, email: str | None = None) -> int:
    """Attach the guest bookings made with ``email`` (default: the account's own) to the account
    ``user_id``; returns how many.

    Only for the account's own, verified address: whoever proves they own the address the bookings
    were made with gets them in My bookings. Called when an address becomes verified
    (``auth.signals.email_verified``; it joins the caller's transaction, or runs in its own);
    registering someone else's address must not reveal their bookings.
    """
    from expertbook.auth.service import normalise_email

    if email is None:
        user = db.session.get(User, user_id)
        if user is None:
            return 0
        email = user.email
    try:
        email = normalise_email(email)
    except ValidationFailed:
        return 0
    with transaction():
        user = db.session.get(User, user_id)
        if user is None or user.email != email or not user.email_verified:
            return 0
        result = db.session.execute(
            update(Booking)
            .where(Booking.customer_id.is_(None), Booking.is_guest, Booking.customer_email == email)
            .values(customer_id=user_id, is_guest=False, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
    return result.rowcount


# ---------------------------------------------------------------------------- the calendar feed


FEED_PAST_DAYS = 90  # a subscribed calendar keeps showing the last three months of bookings


def calendar_feed_of(user_id: int) -> CalendarFeed | None:
    """The user's calendar feed, if they turned it on."""
    return db.session.scalar(select(CalendarFeed).where(CalendarFeed.user_id == user_id))


def calendar_feed_urls(user_id: int) -> tuple[str | None, str | None]:
    """The user's feed address as https and as ``webcal://`` (which calendar apps open as a subscription);
    (None, None) while the feed is off."""
    from expertbook.web import external_url

    feed = calendar_feed_of(user_id)
    if feed is None:
        return None, None
    url = external_url("experts.calendar_feed", token=feed.token)
    return url, "webcal://" + url.split("://", 1)[1]


def reset_calendar_feed(user_id: int) -> CalendarFeed:
    """Turn the user's feed on, or give it a new address: whoever had the old one stops getting updates."""
    for attempt in (1, 2):
        try:
            with transaction():
                feed = db.session.scalar(select(CalendarFeed).where(CalendarFeed.user_id == user_id).with_for_update())
                if feed is None:
                    feed = CalendarFeed(user_id=user_id, created_at=utcnow())
                    db.session.add(feed)
                feed.token = secrets.token_urlsafe(32)  # 256 bits: the address is the only key
                feed.created_at = utcnow()
                db.session.flush()
            return feed
        except IntegrityError:
            # Two first resets at once (two tabs): no row existed to lock, so both inserted and one lost.
            # Its row is there now: the second attempt locks it and gives it a new address.
            db.session.rollback()
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def revoke_calendar_feed(user_id: int) -> None:
    """Turn the user's feed off: its address answers 404 from now on."""
    with transaction():
        db.session.query(CalendarFeed).filter(CalendarFeed.user_id == user_id).delete()


def calendar_feed_owner(token: str) -> int:
    """The user whose feed this token opens; NotFound for any other string."""
    token = (token or "").strip()
    user_id = db.session.scalar(select(CalendarFeed.user_id).where(CalendarFeed.token == token)) if 20 <= len(token) <= 64 else None
    if user_id is None:
        raise NotFound("Not found")
    return user_id


def feed_bookings(user_id: int, now: datetime | None = None) -> list[Booking]:
    """What a user's feed lists: their bookings as customer and as expert, from ``FEED_PAST_DAYS`` ago on,
    cancelled and declined ones included (a subscribed calendar must learn that they are off)."""
    since = (now or utcnow()) - timedelta(days=FEED_PAST_DAYS)
    return list(db.session.scalars(select(Booking).where(_feed_owner(user_id), Booking.end_at >= since).order_by(Booking.start_at, Booking.id)))


def _feed_owner(user_id: int):
    """The bookings a user's feed is about: theirs as customer, and as expert if they are one."""
    profile = profile_of(user_id)
    mine = Booking.customer_id == user_id
    return or_(mine, Booking.expert_id == profile.id) if profile is not None else mine


def feed_last_changed(user_id: int, bookings: Sequence[Booking], now: datetime | None = None) -> datetime | None:
    """When the feed's content last changed: the latest change of a booking in it, or the moment the
    latest booking left its window (which changes the feed though no booking did)."""
    since = (now or utcnow()) - timedelta(days=FEED_PAST_DAYS)
    left = db.session.scalar(select(func.max(Booking.end_at)).where(_feed_owner(user_id), Booking.end_at < since))
    moments = [b.updated_at for b in bookings] + ([left + timedelta(days=FEED_PAST_DAYS)] if left is not None else [])
    return max(moments, default=None)


def bookings_as_customer(user_id: int) -> list[Booking]:
    """All bookings a user made, soonest first."""
    return list(db.session.scalars(select(Booking).where(Booking.customer_id == user_id).order_by(Booking.start_at)))


def bookings_as_expert(user_id: int) -> list[Booking]:
    """All bookings of an expert's services, soonest first."""
    profile = require_profile(user_id)
    return list(db.session.scalars(select(Booking).where(Booking.expert_id == profile.id).order_by(Booking.start_at)))


def change_stamp(user_id: int, as_expert: bool) -> str:
    """A short value that changes whenever one of the user's bookings changes (for cheap polling)."""
    if as_expert:
        profile = require_profile(user_id)
        where = Booking.expert_id == profile.id
    else:
        where = Booking.customer_id == user_id
    count, latest, sequences = db.session.execute(
        select(func.count(Booking.id), func.max(Booking.updated_at), func.coalesce(func.sum(Booking.ics_sequence), 0)).where(where)
    ).one()
    return f"{count}-{sequences}-{latest.timestamp() if latest else 0}"


def split_upcoming(bookings: Iterable[Booking], now: datetime | None = None) -> tuple[list[Booking], list[Booking]]:
    """(upcoming, past): upcoming soonest first, past most recent first."""
    now = now or utcnow()
    bookings = list(bookings)
    upcoming = [b for b in bookings if b.end_at > now]
    past = [b for b in bookings if b.end_at <= now]
    past.reverse()
    return upcoming, past
