"""Clinic rules: hospitals and their staff, doctors' slots, token-numbered bookings, cancellations and the waiting-room queue.

Every write that touches a slot's counters is one conditional UPDATE, so two writers can never both
take the last place, on SQLite (where ``transaction()`` serialises writers with BEGIN IMMEDIATE) and
on PostgreSQL (where the UPDATE's row lock makes the second writer re-check the condition).
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from types import SimpleNamespace

from flask import current_app
from sqlalchemy import Row, Select, bindparam, func, insert, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased, contains_eager

from expertbook.auth.models import User
from expertbook.auth.service import clean_name, normalise_email, register_account
from expertbook.auth.sessions import api_session_alive, api_session_clause
from expertbook.clinic import emails, signals
from expertbook.clinic.clock import utc_offset_minutes, zone, zone_abbreviation  # noqa: F401 (templates and callers use them here)
from expertbook.clinic.emails import TOKEN_CONFIRMATION
from expertbook.clinic.models import Appointment, Doctor, Hospital, Slot, WaitlistEntry
from expertbook.database import autocommit_reads, single_statement, transaction, utcnow
from expertbook.errors import Conflict, NotFound, ValidationFailed
from expertbook.extensions import db
from expertbook.notifications.service import (
    check_address,
    dispatch,
    dispatch_after_commit,
    named_email_insert,
    never_costs_the_change,
    queue_composed,
)

FIRST_TOKEN = 101
MAX_CAPACITY = 500
MAX_REPEAT_DAYS = 92
MAX_DAYS_AHEAD = 731  # sessions are published at most two years ahead
MAX_DOCTORS_PER_FORM = 20
SEARCH_LIMIT = 100
STAFF_PAGE_SIZE = 50
MY_LIST_LIMIT = 100
# A session starts and ends on the same day, so one that has not ended started less than a day ago.
MAX_SESSION = timedelta(days=1)

SLOT_NOT_FOUND = "Slot not found"
SLOT_FULL = "This slot is fully booked"
SLOT_CHANGED = "Slot availability changed, please refresh"
SLOT_CANCELLED = "This session was cancelled"
APPOINTMENT_NOT_FOUND = "Appointment not found"
ACCOUNT_NOT_FOUND = "Account not found"
WAITLIST_NOT_FOUND = "Waiting-list entry not found"
DOCTOR_NOT_FOUND = "Doctor not found"
MAX_REASON = 300
MAX_BIO = 500
MOVE_OPTIONS_LIMIT = 50

_CONTACT = re.compile(r"[0-9]{10}")
MIN_IDEMPOTENCY_KEY, MAX_IDEMPOTENCY_KEY = 8, 64
_KEY = re.compile(rf"[A-Za-z0-9_\-:.]{{{MIN_IDEMPOTENCY_KEY},{MAX_IDEMPOTENCY_KEY}}}")
WAITING = (Appointment.BOOKED, Appointment.ARRIVED)


# ---------------------------------------------------------------------------- time and status


def local_today(timezone: str | None) -> date:
    """Today's date where the hospital is."""
    return utcnow().astimezone(zone(timezone)).date()


def to_utc(day: date, at: time, timezone: str | None) -> datetime:
    """A hospital wall-clock time on ``day`` as an aware UTC datetime."""
    return datetime.combine(day, at, tzinfo=zone(timezone)).astimezone(UTC)


@dataclass(frozen=True)
class Badge:
    label: str
    css: str


def slot_badge(slot: Slot, now: datetime | None = None) -> Badge:
    """The one place that decides a slot's status badge: Cancelled, Past, Closed, Fully booked, Almost full or Available."""
    now = now or utcnow()
    if getattr(slot, "cancelled_at", None) is not None:
        return Badge("Cancelled", "badge-cancelled")
    if slot.is_past(now):
        return Badge("Past", "badge-past")
    if slot.closed:
        return Badge("Closed", "badge-closed")
    left = slot.places_left
    if left <= 0:
        return Badge("Fully booked", "badge-fully-booked")
    if almost_full(left, slot.capacity):
        return Badge("Almost full", "badge-almost-full")
    return Badge("Available", "badge-available")


def almost_full(left: int, capacity: int) -> bool:
    """Whether a session with places still free is nearly taken: at least four in five of its places are booked.

    A share rather than a count, so a 2-place session with nobody booked is not "almost full" while
    a 100-place one with 15 left is.
    """
    return 0 < left and (capacity - left) * 5 >= capacity * 4


def availability_class(slot: Slot, now: datetime | None = None) -> str:
    """The colour of "N of M left": the same rule as the badge, in three shades."""
    css = slot_badge(slot, now).css
    if css == "badge-available":
        return "avail-ok"
    if css == "badge-almost-full":
        return "avail-warn"
    return "avail-full"


@dataclass(frozen=True)
class AppointmentState:
    """What an appointment's page says first. ``live`` ones (booked or arrived, session not over) show the
    token large, count the tokens ahead, refresh, print and can be cancelled (booked only)."""

    key: str  # "confirmed", "arrived", "cancelled", "no_show" or "past"
    live: bool


def appointment_state(status: str, slot: Slot, now: datetime | None = None) -> AppointmentState:
    """The one place that decides how an appointment reads: cancelled and no-show first, then a session
    that is over, then checked in (arrived) or confirmed."""
    if status == Appointment.CANCELLED:
        return AppointmentState("cancelled", False)
    if status == Appointment.NO_SHOW:
        return AppointmentState("no_show", False)
    if slot.is_past(now or utcnow()):
        return AppointmentState("past", False)
    if status == Appointment.ARRIVED:
        return AppointmentState("arrived", True)
    return AppointmentState("confirmed", True)


def is_bookable(slot: Slot, now: datetime | None = None) -> bool:
    """Whether the slot takes bookings right now (what search offers)."""
    return slot_badge(slot, now).css in {"badge-available", "badge-almost-full"}


# ---------------------------------------------------------------------------- input


def clean_text(value: str | None, field: str, label: str, max_length: int = 120) -> str:
    """A single-line text value, stripped; raises ValidationFailed naming ``field``."""
    text = " ".join(str(value or "").split())
    if not text:
        raise ValidationFailed({field: f"Please enter the {label}."})
    if len(text) > max_length:
        raise ValidationFailed({field: f"Keep the {label} under {max_length} characters."})
    return text


def clean_patient(patient_name: str | None, contact_number: str | None) -> tuple[str, str]:
    """The patient's name and 10-digit contact number; all problems are reported together."""
    errors: dict[str, str] = {}
    name = contact = ""
    try:
        name = clean_text(patient_name, "patient_name", "patient's name")
    except ValidationFailed as error:
        errors.update({k: v[0] for k, v in error.errors.items()})
    # Spaces and hyphens only (as the API's document says): "98765 43210", "98765-43210".
    contact = re.sub(r"[ \-]", "", str(contact_number or ""))
    if not contact:
        errors["contact_number"] = "Please enter a contact number."
    elif not _CONTACT.fullmatch(contact):
        errors["contact_number"] = "The contact number must be exactly 10 digits."
    if errors:
        raise ValidationFailed(errors)
    return name, contact


def new_idempotency_key() -> str:
    """A one-time key for a booking form, so a double click or a retried POST books once."""
    return secrets.token_urlsafe(18)


def _clean_key(key: str | None) -> str | None:
    if key is None or key == "":
        return None
    key = str(key).strip()
    if not _KEY.fullmatch(key):
        raise ValidationFailed({"idempotency_key": "Use 8 to 64 letters, digits, '-', '_', ':' or '.'."})
    return key


def _staff_hospital_id(user_id: int) -> int:
    hospital_id = db.session.scalar(select(User.hospital_id).where(User.id == user_id))
    if hospital_id is None:
        raise NotFound("Not found")
    return hospital_id


# ---------------------------------------------------------------------------- hospitals and their staff


def register_hospital(hospital_name: str, location: str, name: str, email: str, password: str, *, verified: bool = False) -> User | None:
    """Register a hospital together with its first staff admin, a new account (see
    ``auth.service.register_account``): returns the admin, or None when the address already had an
    account (its owner is told by email, and no hospital is made). The caller answers both alike.
    The hospital is published once its admin verifies their address (:mod:`expertbook.clinic.account_hooks`)."""
    hospital_name = clean_name(hospital_name, "hospital_name")
    location = clean_name(location, "location")

    def setup(user: User) -> None:
        hospital = Hospital(name=hospital_name, location=location)
        db.session.add(hospital)
        user.is_staff_admin = True
        hospital.staff.append(user)

    return register_account(name, email, password, setup=setup, verified=verified)


def add_staff(admin_id: int, email: str, make_admin: bool = False) -> User:
    """Let a staff admin add an existing account, by email, to the admin's hospital, or make a colleague
    already on the staff a staff admin (``make_admin``)."""
    email = normalise_email(email)
    with transaction():
        admin = db.session.get(User, admin_id)
        if admin is None or not admin.is_staff_admin or admin.hospital_id is None:
            raise NotFound("Not found")
        user = db.session.scalar(select(User).where(User.email == email).with_for_update(of=User))
        if user is None:
            raise ValidationFailed({"email": "No account uses this email yet. Ask them to register first, then add them."})
        if user.hospital_id == admin.hospital_id:
            if not make_admin or user.is_staff_admin:
                raise Conflict(f"{user.name} is already on your staff.")
            user.is_staff_admin = True  # a colleague on the staff becomes a staff admin
        elif user.hospital_id is not None:
            raise Conflict("This person already works for another hospital.")
        else:
            user.hospital_id = admin.hospital_id
            user.is_staff_admin = make_admin
        if user.is_staff_admin and user.email_verified_at is not None:
            # A verified staff admin publishes the hospital, as verifying their address would.
            db.session.execute(update(Hospital).where(Hospital.id == admin.hospital_id).values(published=True))
    return user


def staff_of(hospital_id: int) -> list[User]:
    """The staff of one hospital, admins first."""
    return list(
        db.session.scalars(
            select(User).where(User.hospital_id == hospital_id).order_by(User.is_staff_admin.desc(), User.name)
        )
    )


# ---------------------------------------------------------------------------- staff: creating slots


@dataclass
class CreatedSlots:
    slots: list[Slot]
    skipped: int


def slot_dates(first: date, repeat_until: date | None, weekdays: list[int] | None) -> list[date]:
    """The dates a (possibly repeated) session falls on: ``first`` alone, or each chosen weekday up to ``repeat_until``."""
    if repeat_until is None:
        return [first]
    chosen = set(weekdays or range(7))
    days = (repeat_until - first).days
    return [first + timedelta(days=i) for i in range(days + 1) if (first + timedelta(days=i)).weekday() in chosen]


def create_slots(
    staff_user_id: int,
    doctors: list[tuple[str | None, str | None] | int],
    day: date | None,
    start: time | None,
    end: time | None,
    capacity: int | None = 10,
    repeat_until: date | None = None,
    weekdays: list[int] | None = None,
) -> CreatedSlots:
    """Create one session per doctor and date for the staff member's hospital.

    Each doctor is a directory id (an active doctor of this hospital) or a (name, specialization)
    pair, matched against the directory (a new pair adds the doctor to it). A session that already
    exists for a doctor at that date and start time is skipped and counted, so submitting the same
    form twice creates nothing twice.
    """
    hospital_id = _staff_hospital_id(staff_user_id)
    hospital = db.session.get(Hospital, hospital_id)
    errors: dict[str, str] = {}
    cleaned: list[tuple[str, str] | int] = []
    if not doctors:
        errors["doctors"] = "Add at least one doctor."
    if len(doctors) > MAX_DOCTORS_PER_FORM:
        errors["doctors"] = f"Add at most {MAX_DOCTORS_PER_FORM} doctors at a time."
    for index, doctor in enumerate(doctors):
        if isinstance(doctor, int):
            cleaned.append(doctor)
            continue
        name, specialization = doctor
        try:
            cleaned.append(
                (clean_text(name, f"doctors-{index}-name", "doctor's name"), clean_text(specialization, f"doctors-{index}-specialization", "specialization"))
            )
        except ValidationFailed as error:
            errors.update({k: v[0] for k, v in error.errors.items()})
    if day is None:
        errors["date"] = "Please choose a date."
    if start is None:
        errors["start_time"] = "Please enter a start time."
    if end is None:
        errors["end_time"] = "Please enter an end time."
    elif start is not None and end <= start:
        errors["end_time"] = "The session must end after it starts."
    if capacity is None:
        errors["capacity"] = "Please enter how many patients can book."
    elif not 1 <= capacity <= MAX_CAPACITY:
        errors["capacity"] = f"Choose between 1 and {MAX_CAPACITY} places."
    today = local_today(hospital.timezone)
    if day is not None and day < today:
        errors["date"] = "Choose today or a later date."
    elif day is not None and (day - today).days > MAX_DAYS_AHEAD:
        errors["date"] = "Choose a date within the next two years."
    if repeat_until is not None and day is not None:
        if repeat_until < day:
            errors["repeat_until"] = "Repeat until a date on or after the first date."
        elif (repeat_until - day).days > MAX_REPEAT_DAYS:
            errors["repeat_until"] = f"Repeat over at most {MAX_REPEAT_DAYS} days at a time."
    if weekdays and any(d not in range(7) for d in weekdays):
        errors["weekdays"] = "Choose days of the week."
    if errors:
        raise ValidationFailed(errors)

    now = utcnow()
    # Only today's session can already be over; skip it rather than publish a slot nobody can book.
    dates = [d for d in slot_dates(day, repeat_until, weekdays) if to_utc(d, end, hospital.timezone) > now]
    if not dates:
        raise ValidationFailed({"end_time" if repeat_until is None else "repeat_until": "That session has already ended; choose a later time or date."})

    try:
        with transaction() as session:
            doctor_rows = []
            inactive: dict[str, str] = {}
            for index, choice in enumerate(cleaned):
                if isinstance(choice, int):
                    doctor = session.scalar(select(Doctor).where(Doctor.hospital_id == hospital_id, Doctor.id == choice))
                    if doctor is None:
                        inactive[f"doctors-{index}-doctor_id"] = "Choose a doctor from the directory."
                        continue
                else:
                    name, specialization = choice
                    doctor = session.scalar(
                        select(Doctor).where(Doctor.hospital_id == hospital_id, Doctor.name == name, Doctor.specialization == specialization)
                    )
                    if doctor is None:
                        doctor = Doctor(hospital_id=hospital_id, name=name, specialization=specialization, bio="", active=True)
                        session.add(doctor)
                        session.flush()
                if not doctor.active:
                    inactive[f"doctors-{index}-{'doctor_id' if isinstance(choice, int) else 'name'}"] = (
                        f"{doctor.name} is marked inactive in the doctors directory; make them active there first."
                    )
                if doctor not in doctor_rows:  # a doctor listed twice in the same form counts once
                    doctor_rows.append(doctor)
            if inactive:
                raise ValidationFailed(inactive)
            existing = {
                tuple(row)
                for row in session.execute(
                    select(Slot.doctor_id, Slot.date).where(
                        Slot.doctor_id.in_([d.id for d in doctor_rows]), Slot.date.in_(dates), Slot.start_time == start
                    )
                )
            }
            created = []
            for d in dates:
                for doctor in doctor_rows:
                    if (doctor.id, d) in existing:
                        continue
                    slot = Slot(
                        hospital_id=hospital_id,
                        doctor=doctor,
                        date=d,
                        start_time=start,
                        end_time=end,
                        starts_at=to_utc(d, start, hospital.timezone),
                        ends_at=to_utc(d, end, hospital.timezone),
                        capacity=capacity,
                        booked_count=0,
                        tokens_issued=0,
                        closed=False,
                        version=1,
                    )
                    session.add(slot)
                    created.append(slot)
            session.flush()
    except IntegrityError:
        # Another staff member created the same session at the same moment.
        raise Conflict("Some of these slots were just created by someone else. Please check the slot list.") from None
    return CreatedSlots(created, len(dates) * len(doctor_rows) - len(created))


# ---------------------------------------------------------------------------- booking


@dataclass(frozen=True)
class SlotSnapshot:
    """A slot as a booking's UPDATE left it, with its doctor and hospital: what a booking's answer shows.

    It reads like a loaded :class:`Slot` (``slot.hospital.name``, ``places_left``, ``is_past()``), so
    the same badge and JSON code serve both, but it is plain data that no commit can expire.
    """

    id: int
    date: date
    start_time: time
    end_time: time
    starts_at: datetime
    ends_at: datetime
    capacity: int
    booked_count: int
    closed: bool
    now_serving: int | None
    hospital: SimpleNamespace
    doctor: SimpleNamespace
    cancelled_at: datetime | None = None  # a session that just gave a place is never a cancelled one

    @property
    def places_left(self) -> int:
        return max(self.capacity - self.booked_count, 0)

    def is_past(self, now: datetime | None = None) -> bool:
        return self.ends_at <= (now or utcnow())


@dataclass(frozen=True)
class Booking:
    """The outcome of :func:`book`. A new booking carries everything its confirmation shows (``slot``,
    the patient's details), so answering it needs no further query; a replay carries only the ids."""

    appointment_id: int
    token_number: int
    remaining: int
    replayed: bool = False
    patient_name: str = ""
    contact_number: str = ""
    booked_at: datetime | None = None
    slot: SlotSnapshot | None = None

    @property
    def appointment(self) -> Appointment:
        """The appointment row itself (one query; the hot paths use the fields above instead)."""
        return db.session.get(Appointment, self.appointment_id)


def _send(signal, appointment_id: int) -> None:
    signal.send(current_app._get_current_object(), appointment_id=appointment_id)


def _by_key(user_id: int, key: str) -> Row | None:
    return db.session.connection().execute(_BY_KEY, {"user_id": user_id, "key": key}).one_or_none()


def _replay(existing: Row, slot_id: int) -> Booking:
    if existing.slot_id != slot_id:
        raise Conflict("This booking form was already used for another slot. Please refresh and try again.")
    left = db.session.scalar(select(Slot.capacity - Slot.booked_count).where(Slot.id == slot_id))
    return Booking(existing.id, existing.token_number, max(left or 0, 0), replayed=True)


def _not_taking_patients(slot: Slot, now: datetime) -> Conflict | None:
    """Why a slot takes no patient at all (cancelled, closed or over), or None if it does."""
    if slot.cancelled_at is not None:
        return Conflict(SLOT_CANCELLED)
    if slot.closed or slot.is_past(now):
        return Conflict(SLOT_CHANGED)
    return None


def _refusal(slot_id: int, now: datetime) -> Exception:
    """Why the conditional UPDATE matched nothing, as the error to raise."""
    slot = db.session.get(Slot, slot_id, populate_existing=True)
    if slot is None or not slot.hospital.published:
        return NotFound(SLOT_NOT_FOUND)
    if (closed := _not_taking_patients(slot, now)) is not None:
        return closed
    if slot.booked_count >= slot.capacity:
        return Conflict(SLOT_FULL)
    return Conflict(SLOT_CHANGED)


# Taking a place is the hot path of a rush. Its statements are Core, built once (no per-request
# statement building, no unit of work): a conditional UPDATE that issues the token and returns
# everything the confirmation shows, the appointment's INSERT and the confirmation email's; on
# PostgreSQL the three are one statement (see _both_in_one_statement).
_slots = Slot.__table__
_appointments = Appointment.__table__
_NOW = bindparam("now", type_=_slots.c.ends_at.type)


def _detail(column, key):
    # A correlated scalar subquery: SQLite's RETURNING may not name UPDATE ... FROM tables, but may hold these.
    return select(column).where(column.table.c.id == key).scalar_subquery().label(f"{column.table.name}_{column.name}")


# A hospital's slots take bookings only once it is published (a staff admin verified their email).
_PUBLISHED = select(Hospital.__table__.c.id).where(Hospital.__table__.c.id == _slots.c.hospital_id, Hospital.__table__.c.published.is_(True)).exists()


def _take_place(*details, guarded: bool = False):
    """The conditional UPDATE that takes a place. ``guarded``: only while the API token's login session
    (bind parameters ``session_hash`` and ``user_id``) is open, checked in this same statement."""
    conditions = [
        _slots.c.id == bindparam("slot_id"),
        _slots.c.booked_count < _slots.c.capacity,
        _slots.c.closed.is_(False),
        _slots.c.ends_at > _NOW,
        _PUBLISHED,
    ]
    if guarded:
        conditions.append(api_session_clause())
    return (
        update(_slots)
        .where(*conditions)
        .values(booked_count=_slots.c.booked_count + 1, tokens_issued=_slots.c.tokens_issued + 1, version=_slots.c.version + 1)
        .returning(
            _slots.c.tokens_issued,
            _slots.c.booked_count,
            _slots.c.capacity,
            _slots.c.date,
            _slots.c.start_time,
            _slots.c.end_time,
            _slots.c.starts_at,
            _slots.c.ends_at,
            _slots.c.closed,
            _slots.c.now_serving,
            *details,
        )
    )


_DOCTOR_DETAILS = (Doctor.__table__.c.name, Doctor.__table__.c.specialization)
_HOSPITAL_DETAILS = (Hospital.__table__.c.name, Hospital.__table__.c.location, Hospital.__table__.c.timezone)
_DETAILS = (
    *(_detail(column, _slots.c.doctor_id) for column in _DOCTOR_DETAILS),
    *(_detail(column, _slots.c.hospital_id) for column in _HOSPITAL_DETAILS),
)
_TAKE_PLACE = {guarded: _take_place(*_DETAILS, guarded=guarded) for guarded in (False, True)}
_INSERT_APPOINTMENT = insert(_appointments).returning(_appointments.c.id)


def take_place(connection, slot_id: int, now: datetime, *, guard: dict | None = None) -> Row | None:
    """Take one place in the slot and issue its next token, or None if it is full, closed or over.

    The one conditional UPDATE every way into a session shares (a booking on SQLite, a walk-in, a
    move, a waiting-list promotion), so together they can never exceed the capacity and tokens stay
    one sequence. (PostgreSQL's online booking runs the same UPDATE as the first part of its one
    statement, see :func:`_both_in_one_statement`.) Run it inside the caller's transaction; the row
    has the slot's new counters and what a confirmation shows. ``guard`` (``session_hash`` and
    ``user_id``): only while that API token's login session is open, checked in the same statement.
    """
    return connection.execute(_TAKE_PLACE[guard is not None], {"slot_id": slot_id, "now": now, **(guard or {})}).one_or_none()


def _insert_appointment(connection, taken: Row, values: dict) -> tuple[int, int]:
    """Insert the appointment for a place :func:`take_place` took; returns its id and token number."""
    token = FIRST_TOKEN - 1 + taken.tokens_issued
    return connection.execute(_INSERT_APPOINTMENT, {**values, "token_number": token}).scalar_one(), token


def _both_in_one_statement(guarded: bool):
    """PostgreSQL: the whole booking as one statement (data-modifying CTEs), one round trip instead
    of three: take the place, insert the appointment, write the patient's token confirmation to the
    outbox. Same rows, same locks, same constraints; the doctor and the hospital come by a join.
    SQLite, which has no data-modifying CTEs, runs the statements one by one."""
    taken = _take_place(_slots.c.doctor_id, _slots.c.hospital_id, guarded=guarded).cte("taken")
    typed = {name: bindparam(name, type_=_appointments.c[name].type) for name in ("user_id", "patient_name", "contact_number", "status", "booked_at", "idempotency_key")}
    made = (
        insert(_appointments)
        .from_select(
            ["slot_id", "user_id", "patient_name", "contact_number", "token_number", "status", "booked_at", "idempotency_key"],
            select(
                bindparam("slot_id", type_=_appointments.c.slot_id.type),
                typed["user_id"],
                typed["patient_name"],
                typed["contact_number"],
                taken.c.tokens_issued + (FIRST_TOKEN - 1),
                typed["status"],
                typed["booked_at"],
                typed["idempotency_key"],
            ).select_from(taken),
        )
        .returning(_appointments.c.id.label("appointment_id"))
        .cte("made")
    )
    mailed = named_email_insert(TOKEN_CONFIRMATION, made.c.appointment_id, _NOW).cte("mailed")
    doctors, hospitals = Doctor.__table__, Hospital.__table__
    return (
        select(
            *(c for c in taken.c if c.name not in ("doctor_id", "hospital_id")),
            *(column.label(f"doctors_{column.name}") for column in (doctors.c.name, doctors.c.specialization)),
            *(column.label(f"hospitals_{column.name}") for column in (hospitals.c.name, hospitals.c.location, hospitals.c.timezone)),
            made.c.appointment_id,
            mailed.c.id.label("email_id"),
        )
        .select_from(taken)
        .join(made, true())
        .join(mailed, true())
        .join(doctors, doctors.c.id == taken.c.doctor_id)
        .join(hospitals, hospitals.c.id == taken.c.hospital_id)
    )


# The guarded statement is the API's, which checks the bearer token's session in the same statement.
_BOOK_IN_ONE = {guarded: _both_in_one_statement(guarded) for guarded in (False, True)}
_BY_KEY = select(_appointments.c.id, _appointments.c.slot_id, _appointments.c.token_number).where(
    _appointments.c.user_id == bindparam("user_id"), _appointments.c.idempotency_key == bindparam("key")
)


def _alone() -> bool:
    """Whether the booking's one PostgreSQL statement may run on its own, outside any transaction.

    Not when a receiver of appointment_booked is connected (its writes must share the booking's
    fate), not inside a caller's transaction (the booking must share that one's), and not when the
    request's session already holds a connection in a transaction (a page that read the user): that
    transaction only needs its COMMIT, and a second pooled connection would cost more.
    """
    session = db.session()
    return (
        db.engine.dialect.name == "postgresql"
        and not signals.appointment_booked.receivers
        and not session.in_transaction()
    )


def _book_in_transaction(connection, values: dict) -> tuple[Row | None, int | None]:
    """Take the place, insert the appointment and queue its confirmation inside the caller's transaction,
    then tell appointment_booked's receivers; (None, None) if the place could not be taken."""
    guarded = "session_hash" in values
    if connection.dialect.name == "postgresql":
        taken = connection.execute(_BOOK_IN_ONE[guarded], values).one_or_none()
        if taken is None:
            return None, None
        appointment_id = taken.appointment_id
        dispatch_after_commit(taken.email_id)
    else:
        guard = {name: values[name] for name in ("session_hash", "user_id")} if guarded else None
        taken = take_place(connection, values["slot_id"], values["now"], guard=guard)
        if taken is None:
            return None, None
        row = {name: value for name, value in values.items() if name not in ("now", "session_hash")}
        appointment_id, _ = _insert_appointment(connection, taken, row)
        with never_costs_the_change(f"the token confirmation of appointment {appointment_id}"):
            queue_composed(TOKEN_CONFIRMATION, appointment_id)
    _send(signals.appointment_booked, appointment_id)
    return taken, appointment_id


def book(
    slot_id: int,
    user_id: int,
    patient_name: str | None,
    contact_number: str | None,
    idempotency_key: str | None = None,
    *,
    api_session: str | None = None,
) -> Booking:
    """Book a place in a slot and give it the slot's next token number (101, 102, ...).

    ``api_session`` (the API's bookings) is the stored hash of the bearer token's login session: the
    place is taken only while that session is open, checked inside the booking's own statement, so a
    logged-out or revoked token (or a deleted account) books nothing and raises NotFound(ACCOUNT_NOT_FOUND).

    The place is taken by a single conditional UPDATE that also issues the token, so there is no
    moment between checking and taking in which another booking could slip in. A repeated request
    with the same idempotency key returns the first booking instead of making a second one: the
    unique (user, key) constraint refuses its INSERT, which rolls its UPDATE back too, and the first
    booking is the answer. (A new booking, the common case, so costs no lookup of the key.)

    On PostgreSQL the whole booking, the patient's token confirmation in the outbox included, is one
    statement and runs on its own (atomic by itself: no BEGIN, no COMMIT), unless a receiver of
    ``appointment_booked`` is connected: then it runs in a transaction the receiver's writes share.
    """
    patient_name, contact_number = clean_patient(patient_name, contact_number)
    key = _clean_key(idempotency_key)
    now = utcnow()
    values = {
        "slot_id": slot_id,
        "user_id": user_id,
        "patient_name": patient_name,
        "contact_number": contact_number,
        "status": Appointment.BOOKED,
        "booked_at": now,
        "idempotency_key": key,
        "now": now,
    }
    if api_session is not None:
        values["session_hash"] = api_session
    try:
        if _alone():
            # The whole booking is one statement, atomic by itself: no BEGIN, no COMMIT.
            with single_statement() as connection:
                taken = connection.execute(_BOOK_IN_ONE[api_session is not None], values).one_or_none()
            if taken is not None:
                dispatch(taken.email_id, fresh=True)  # committed already
            appointment_id = taken.appointment_id if taken is not None else None
        else:
            with transaction() as session:
                taken, appointment_id = _book_in_transaction(session.connection(), values)
    except IntegrityError:
        # The key was used before (a retry, a double click, two tabs racing): the booking was
        # refused as a whole, counters included, and the first booking is the answer.
        existing = _by_key(user_id, key) if key else None
        if existing is not None:
            return _replay(existing, slot_id)
        # Or the patient's account is gone (the appointment's foreign key refused it).
        if db.session.connection().scalar(select(User.__table__.c.id).where(User.__table__.c.id == user_id)) is None:
            raise NotFound(ACCOUNT_NOT_FOUND) from None
        raise
    if taken is None:
        if api_session is not None and not api_session_alive(api_session, user_id):
            raise NotFound(ACCOUNT_NOT_FOUND)
        # A retry of a booking that took the last place must still get its booking back.
        existing = _by_key(user_id, key) if key else None
        if existing is not None:
            return _replay(existing, slot_id)
        raise _refusal(slot_id, now)
    token = FIRST_TOKEN - 1 + taken.tokens_issued
    return Booking(appointment_id, token, taken.capacity - taken.booked_count, False, patient_name, contact_number, now, _snapshot(slot_id, taken))


def _snapshot(slot_id: int, taken: Row) -> SlotSnapshot:
    """The slot as the place-taking statement returned it (the booking's and ``_TAKE_PLACE``'s rows agree)."""
    return SlotSnapshot(
        slot_id,
        taken.date,
        taken.start_time,
        taken.end_time,
        taken.starts_at,
        taken.ends_at,
        taken.capacity,
        taken.booked_count,
        taken.closed,
        taken.now_serving,
        SimpleNamespace(name=taken.hospitals_name, location=taken.hospitals_location, timezone=taken.hospitals_timezone),
        SimpleNamespace(name=taken.doctors_name, specialization=taken.doctors_specialization),
    )


def cancel(appointment_id: int, user_id: int) -> Appointment:
    """The patient cancels their own upcoming appointment; the place is freed, the token is not reused.

    The freed place goes at once, in the same transaction, to the first person on the session's
    waiting list, if anyone waits.
    """
    with transaction() as session:
        appointment = _own_appointment(appointment_id, user_id)
        if appointment.status == Appointment.CANCELLED:
            return appointment
        if appointment.status != Appointment.BOOKED:
            raise Conflict("This appointment can no longer be cancelled.")
        now = utcnow()
        if appointment.slot.is_past(now):
            raise Conflict("This appointment has already taken place.")
        lock_slots(session, appointment.slot_id)
        changed = session.execute(
            update(Appointment)
            .where(Appointment.id == appointment_id, Appointment.status == Appointment.BOOKED)
            .values(status=Appointment.CANCELLED, cancelled_at=now, cancelled_by=Appointment.BY_PATIENT),
            execution_options={"synchronize_session": False},
        ).rowcount
        if changed:
            _release_places(session, appointment.slot_id, now)
            _send(signals.appointment_cancelled, appointment_id)
    session.expire_all()
    return appointment


# ---------------------------------------------------------------------------- freeing places: the waiting list

_waitlist = WaitlistEntry.__table__


def lock_slots(session, *slot_ids: int) -> None:
    """Lock the slots' rows until the transaction ends, lowest id first (PostgreSQL).

    Every change that frees a place, moves a patient or joins a waiting list takes its slots' locks
    first, before any appointment's, always in the same order, so two of them never wait for each
    other in a circle; and while a place is being freed and given to the first person waiting, no
    other change to that session can slip in between. ``FOR NO KEY UPDATE`` is the lock an UPDATE
    takes: it does not block a booking's INSERT that merely references the slot. On SQLite the
    transaction's BEGIN IMMEDIATE already serialises every writer.
    """
    if session.connection().dialect.name != "postgresql":
        return
    ids = sorted(set(slot_ids))
    session.execute(select(_slots.c.id).where(_slots.c.id.in_(ids)).order_by(_slots.c.id).with_for_update(key_share=True))


def _release_places(session, slot_id: int, now: datetime, count: int = 1) -> list[int]:
    """Give back ``count`` places of a slot (the tokens stay used) and hand them to the waiting list.

    The caller holds the slot's lock (:func:`lock_slots`) and has already ended the appointments.
    Returns the ids of the appointments the waiting list got.
    """
    session.execute(
        update(Slot).where(Slot.id == slot_id).values(booked_count=Slot.booked_count - count, version=Slot.version + 1),
        execution_options={"synchronize_session": False},
    )
    return promote_waiting(session, slot_id, now)


_NEXT_WAITING = (
    select(_waitlist.c.id)
    .where(_waitlist.c.slot_id == bindparam("waiting_for"), _waitlist.c.status == WaitlistEntry.WAITING)
    .order_by(_waitlist.c.id)
    .limit(1)
)
# Claim the first person waiting. The status condition is checked again on the row itself, so a
# person who left the list at this moment is never given a place (PostgreSQL re-checks the row
# after waiting for the leaver's lock; then the next one is claimed).
_CLAIM_FIRST_WAITING = (
    update(_waitlist)
    .where(_waitlist.c.id == _NEXT_WAITING.scalar_subquery(), _waitlist.c.status == WaitlistEntry.WAITING)
    .values(status=WaitlistEntry.PROMOTED, ended_at=bindparam("promoted_at", type_=_waitlist.c.ended_at.type))
    .returning(_waitlist.c.id, _waitlist.c.user_id, _waitlist.c.patient_name, _waitlist.c.contact_number)
)
_FREE_PLACES = select(_slots.c.capacity - _slots.c.booked_count, _slots.c.closed, _slots.c.ends_at).where(_slots.c.id == bindparam("slot_id"))


def promote_waiting(session, slot_id: int, now: datetime) -> list[int]:
    """Give a slot's free places to the people waiting, first come first served, in the caller's transaction.

    Runs only where a place has just been freed (a cancellation, a move away, a capacity increase,
    a reopening), never on the booking path. The caller holds the slot's lock, so the places it sees
    free are its to give: each promotion takes the place and the next token through
    :func:`take_place`, like any booking, and queues the patient's email. Returns the new
    appointments' ids, in the order they were given.
    """
    connection = session.connection()
    free, closed, ends_at = connection.execute(_FREE_PLACES, {"slot_id": slot_id}).one()
    promoted: list[int] = []
    if closed or ends_at <= now:
        return promoted
    # Bounded: each round either gives a place or finds that someone left the list meanwhile.
    for _ in range(max(free, 0) * 2 + 10):
        if len(promoted) >= free:
            break
        entry = connection.execute(_CLAIM_FIRST_WAITING, {"waiting_for": slot_id, "promoted_at": now}).one_or_none()
        if entry is None:
            if connection.execute(_NEXT_WAITING, {"waiting_for": slot_id}).scalar() is None:
                break
            continue
        taken = take_place(connection, slot_id, now)
        if taken is None:  # cannot happen under the caller's lock; keep the person waiting rather than lose them
            connection.execute(update(_waitlist).where(_waitlist.c.id == entry.id).values(status=WaitlistEntry.WAITING, ended_at=None))
            break
        appointment_id, _ = _insert_appointment(
            connection,
            taken,
            {
                "slot_id": slot_id,
                "user_id": entry.user_id,
                "patient_name": entry.patient_name,
                "contact_number": entry.contact_number,
                "status": Appointment.BOOKED,
                "booked_at": now,
            },
        )
        connection.execute(update(_waitlist).where(_waitlist.c.id == entry.id).values(appointment_id=appointment_id))
        with never_costs_the_change(f"the waiting-list promotion email of appointment {appointment_id}"):
            queue_composed(emails.WAITLIST_PROMOTED, appointment_id)
        promoted.append(appointment_id)
    return promoted


@dataclass(frozen=True)
class Waiting:
    """A place on a waiting list: the entry and how many wait before it, plus one."""

    entry_id: int
    position: int


def _position(entry_id: int, slot_id: int) -> int:
    return db.session.scalar(
        select(func.count()).where(_waitlist.c.slot_id == slot_id, _waitlist.c.status == WaitlistEntry.WAITING, _waitlist.c.id <= entry_id)
    ) or 0


def join_waitlist(slot_id: int, user_id: int, patient_name: str | None, contact_number: str | None) -> Waiting:
    """Put the patient on a full session's waiting list (name and number, like a booking).

    Only a full session that still takes bookings has a waiting list; with a place free the patient
    books instead. The slot's lock makes joining and freeing a place take turns, so nobody can join
    behind a place that is free at that very moment. The same patient name waits once per account.
    """
    patient_name, contact_number = clean_patient(patient_name, contact_number)
    now = utcnow()
    try:
        with transaction() as session:
            lock_slots(session, slot_id)
            slot = session.get(Slot, slot_id, populate_existing=True)
            if slot is None or not slot.hospital.published:  # an unpublished hospital's sessions are not public
                raise NotFound(SLOT_NOT_FOUND)
            if (closed := _not_taking_patients(slot, now)) is not None:
                raise closed
            if slot.booked_count < slot.capacity:
                raise Conflict("This session has free places: book one instead of waiting.")
            already = session.scalar(
                select(_waitlist.c.id).where(
                    _waitlist.c.slot_id == slot_id,
                    _waitlist.c.user_id == user_id,
                    _waitlist.c.patient_name == patient_name,
                    _waitlist.c.status == WaitlistEntry.WAITING,
                )
            )
            if already is not None:
                raise Conflict(f"{patient_name} is already on the waiting list for this session.")
            entry_id = session.execute(
                insert(_waitlist).returning(_waitlist.c.id),
                {"slot_id": slot_id, "user_id": user_id, "patient_name": patient_name, "contact_number": contact_number,
                 "status": WaitlistEntry.WAITING, "joined_at": now},
            ).scalar_one()
            position = _position(entry_id, slot_id)
    except IntegrityError:
        # The account went away meanwhile (the entry's foreign key), or the same join raced itself past the check.
        if db.session.scalar(select(User.id).where(User.id == user_id)) is None:
            raise NotFound(ACCOUNT_NOT_FOUND) from None
        raise Conflict(f"{patient_name} is already on the waiting list for this session.") from None
    return Waiting(entry_id, position)


def leave_waitlist(entry_id: int, user_id: int) -> WaitlistEntry:
    """The patient leaves a waiting list. Leaving twice is harmless; once promoted, the place is an
    appointment (cancel that instead), which the answer says."""
    with transaction() as session:
        changed = session.execute(
            update(WaitlistEntry)
            .where(WaitlistEntry.id == entry_id, WaitlistEntry.user_id == user_id, WaitlistEntry.status == WaitlistEntry.WAITING)
            .values(status=WaitlistEntry.LEFT, ended_at=utcnow()),
            execution_options={"synchronize_session": False},
        ).rowcount
        entry = session.scalar(
            select(WaitlistEntry).where(WaitlistEntry.id == entry_id, WaitlistEntry.user_id == user_id).execution_options(populate_existing=True)
        )
        if entry is None:
            raise NotFound(WAITLIST_NOT_FOUND)
        if not changed and entry.status == WaitlistEntry.PROMOTED:
            token = session.scalar(select(Appointment.token_number).where(Appointment.id == entry.appointment_id))
            raise Conflict(f"A place already freed up for you: token {token}. Cancel the appointment instead if you cannot come.")
    return entry


def my_waitlist(user_id: int, limit: int = MY_LIST_LIMIT) -> list[tuple[WaitlistEntry, int]]:
    """The patient's places on waiting lists of sessions not yet over, soonest first, each with its position."""
    earlier = aliased(WaitlistEntry)
    position = (
        select(func.count())
        .where(earlier.slot_id == WaitlistEntry.slot_id, earlier.status == WaitlistEntry.WAITING, earlier.id <= WaitlistEntry.id)
        .scalar_subquery()
    )
    rows = db.session.execute(
        select(WaitlistEntry, position)
        .join(WaitlistEntry.slot)
        .join(Slot.doctor)
        .join(Slot.hospital)
        .options(contains_eager(WaitlistEntry.slot).contains_eager(Slot.doctor), contains_eager(WaitlistEntry.slot).contains_eager(Slot.hospital))
        .where(WaitlistEntry.user_id == user_id, WaitlistEntry.status == WaitlistEntry.WAITING, Slot.ends_at > utcnow())
        .order_by(Slot.starts_at, WaitlistEntry.id)
        .limit(limit)
    ).all()
    return [(entry, pos) for entry, pos in rows]


def slot_waitlist(slot_id: int) -> list[WaitlistEntry]:
    """The people waiting for a slot, first come first."""
    return list(
        db.session.scalars(
            select(WaitlistEntry).where(WaitlistEntry.slot_id == slot_id, WaitlistEntry.status == WaitlistEntry.WAITING).order_by(WaitlistEntry.id)
        )
    )


# ---------------------------------------------------------------------------- staff: running a slot


def _staff_slot(session, slot_id: int, hospital_id: int, lock: bool = False) -> Slot:
    query = select(Slot).where(Slot.id == slot_id, Slot.hospital_id == hospital_id)
    if lock:
        query = query.with_for_update(of=Slot)
    slot = session.scalar(query.execution_options(populate_existing=True))
    if slot is None:
        raise NotFound(SLOT_NOT_FOUND)
    return slot


def close_slot(slot_id: int, hospital_id: int) -> Slot:
    """Stop taking bookings for a slot (existing appointments and the waiting list stay)."""
    with transaction() as session:
        session.execute(
            update(Slot)
            .where(Slot.id == slot_id, Slot.hospital_id == hospital_id, Slot.closed.is_(False))
            .values(closed=True, closed_at=utcnow(), version=Slot.version + 1),
            execution_options={"synchronize_session": False},
        )
        slot = _staff_slot(session, slot_id, hospital_id)
    return slot


def reopen_slot(slot_id: int, hospital_id: int) -> Slot:
    """Take bookings again for a slot that was closed; places freed meanwhile go to the waiting list first.

    A cancelled session cannot be reopened: its patients were told it will not take place.
    """
    with transaction() as session:
        changed = session.execute(
            update(Slot)
            .where(Slot.id == slot_id, Slot.hospital_id == hospital_id, Slot.closed.is_(True), Slot.cancelled_at.is_(None))
            .values(closed=False, closed_at=None, version=Slot.version + 1),
            execution_options={"synchronize_session": False},
        ).rowcount
        slot = _staff_slot(session, slot_id, hospital_id)
        if slot.cancelled_at is not None:
            raise Conflict("A cancelled session cannot be reopened. Create a new session instead.")
        if changed:
            promote_waiting(session, slot_id, utcnow())
    return _staff_slot(db.session, slot_id, hospital_id)


def change_capacity(slot_id: int, hospital_id: int, capacity: int | None) -> Slot:
    """Set a slot's capacity; it can never go below the places already booked. Places a larger
    capacity adds go to the people waiting first, in the same transaction."""
    if capacity is None:
        raise ValidationFailed({"capacity": "Please enter the number of places."})
    if not 1 <= capacity <= MAX_CAPACITY:
        raise ValidationFailed({"capacity": f"Choose between 1 and {MAX_CAPACITY} places."})
    with transaction() as session:
        changed = session.execute(
            update(Slot)
            .where(Slot.id == slot_id, Slot.hospital_id == hospital_id, Slot.booked_count <= capacity)
            .values(capacity=capacity, version=Slot.version + 1),
            execution_options={"synchronize_session": False},
        ).rowcount
        slot = _staff_slot(session, slot_id, hospital_id)
        if not changed:
            raise ValidationFailed(
                {"capacity": f"{slot.booked_count} places are already booked, so the capacity cannot be less than {slot.booked_count}."}
            )
        if promote_waiting(session, slot_id, utcnow()):
            slot = _staff_slot(session, slot_id, hospital_id)
    return slot


def set_appointment_status(appointment_id: int, hospital_id: int, status: str) -> Appointment:
    """Staff mark a patient arrived or no-show (or back to booked); cancelled appointments stay cancelled."""
    if status not in (Appointment.BOOKED, Appointment.ARRIVED, Appointment.NO_SHOW):
        raise ValidationFailed({"status": "Choose arrived, no-show or booked."})
    with transaction() as session:
        appointment = session.scalar(
            select(Appointment)
            .join(Slot)
            .where(Appointment.id == appointment_id, Slot.hospital_id == hospital_id)
            .execution_options(populate_existing=True)
        )
        if appointment is None:
            raise NotFound(APPOINTMENT_NOT_FOUND)
        # The slot first, as every change that touches a slot and its appointments does (see lock_slots).
        session.execute(update(Slot).where(Slot.id == appointment.slot_id).values(version=Slot.version + 1), execution_options={"synchronize_session": False})
        changed = session.execute(
            update(Appointment)
            .where(Appointment.id == appointment_id, Appointment.status != Appointment.CANCELLED)
            .values(status=status),
            execution_options={"synchronize_session": False},
        ).rowcount
        if not changed:
            raise Conflict("The patient cancelled this appointment.")
    session.expire_all()
    return appointment


# ---------------------------------------------------------------------------- staff: the front desk


def _own_slot_id(session, slot_id: int, hospital_id: int) -> None:
    if session.scalar(select(Slot.id).where(Slot.id == slot_id, Slot.hospital_id == hospital_id)) is None:
        raise NotFound(SLOT_NOT_FOUND)


def _clean_email(email: str | None) -> str | None:
    email = (email or "").strip()
    return check_address(email, "email") if email else None


def walk_in(slot_id: int, hospital_id: int, patient_name: str | None, contact_number: str | None, email: str | None = None) -> Booking:
    """Give a patient at the desk (no account) a place and the next token.

    The place is taken by the same conditional UPDATE as an online booking (:func:`take_place`), so
    walk-ins and online bookings together never exceed the capacity and share one token sequence.
    With an email address the patient also gets the token in writing, and later any cancellation.
    """
    errors: dict[str, list[str]] = {}
    for check in (lambda: clean_patient(patient_name, contact_number), lambda: _clean_email(email)):
        try:
            check()
        except ValidationFailed as error:
            errors.update(error.errors)
    if errors:  # every problem at once
        raise ValidationFailed(errors)
    (patient_name, contact_number), email = clean_patient(patient_name, contact_number), _clean_email(email)
    now = utcnow()
    with transaction() as session:
        _own_slot_id(session, slot_id, hospital_id)
        connection = session.connection()
        taken = take_place(connection, slot_id, now)
        if taken is None:
            raise _refusal(slot_id, now)
        appointment_id, token = _insert_appointment(
            connection,
            taken,
            {
                "slot_id": slot_id, "user_id": None, "patient_name": patient_name, "contact_number": contact_number,
                "status": Appointment.BOOKED, "booked_at": now, "walk_in": True, "email": email,
            },
        )
        if email:
            with never_costs_the_change(f"the walk-in token email of appointment {appointment_id}"):
                queue_composed(emails.WALK_IN_TOKEN, appointment_id)
    return Booking(appointment_id, token, taken.capacity - taken.booked_count, False, patient_name, contact_number, now, _snapshot(slot_id, taken))


def _clean_reason(reason: str | None) -> str:
    return clean_text(reason, "reason", "reason", MAX_REASON)


def staff_cancel(appointment_id: int, hospital_id: int, reason: str | None) -> Appointment:
    """Staff cancel one appointment of their hospital, with a reason the patient is emailed (with a
    link to book again). The place is freed (and given to the first person waiting); the token is
    never given out again."""
    reason = _clean_reason(reason)
    with transaction() as session:
        found = session.execute(
            select(Appointment.slot_id, Appointment.user_id, Appointment.email, Slot.ends_at)
            .join(Slot, Slot.id == Appointment.slot_id)
            .where(Appointment.id == appointment_id, Slot.hospital_id == hospital_id)
        ).one_or_none()
        if found is None:
            raise NotFound(APPOINTMENT_NOT_FOUND)
        now = utcnow()
        if found.ends_at <= now:
            raise Conflict("This session is over; its appointments can no longer be cancelled.")
        lock_slots(session, found.slot_id)
        changed = session.execute(
            update(Appointment)
            .where(Appointment.id == appointment_id, Appointment.status != Appointment.CANCELLED)
            .values(status=Appointment.CANCELLED, cancelled_at=now, cancelled_by=Appointment.BY_STAFF, cancel_reason=reason),
            execution_options={"synchronize_session": False},
        ).rowcount
        if not changed:
            raise Conflict("This appointment is already cancelled.")
        _release_places(session, found.slot_id, now)
        if emails.has_address(found.user_id, found.email):
            with never_costs_the_change(f"the cancellation email of appointment {appointment_id}"):
                queue_composed(emails.CANCELLED_BY_HOSPITAL, appointment_id)
    return session.get(Appointment, appointment_id, populate_existing=True)


@dataclass(frozen=True)
class SessionCancelled:
    """What cancelling a session did: appointments cancelled, of them emailed, waiting-list people emailed,
    and the patients to phone (no email address)."""

    cancelled: int
    notified: int
    waitlist_notified: int
    to_phone: list[tuple[int, str, str]]


def cancel_session(slot_id: int, hospital_id: int, reason: str | None) -> SessionCancelled:
    """Cancel a whole session (the doctor is unavailable), with a reason.

    In one transaction: the session is closed and marked cancelled (so it leaves search and takes no
    booking, walk-in, move or waiting-list place from this moment on), every booked or arrived
    appointment is cancelled and its place given back, every patient with an email address is
    emailed the reason with a one-click link to move to another session, and everyone on the waiting
    list is emailed too. Closing a session (no new bookings) is a different, reversible thing.
    """
    reason = _clean_reason(reason)
    now = utcnow()
    with transaction() as session:
        slot = session.scalar(select(Slot).where(Slot.id == slot_id, Slot.hospital_id == hospital_id).execution_options(populate_existing=True))
        if slot is None:
            raise NotFound(SLOT_NOT_FOUND)
        if slot.is_past(now):
            raise Conflict("This session is over; it can no longer be cancelled.")
        # The slot's row first (it is this UPDATE's lock), then its appointments: the order lock_slots keeps.
        changed = session.execute(
            update(Slot)
            .where(Slot.id == slot_id, Slot.cancelled_at.is_(None))
            .values(closed=True, closed_at=func.coalesce(Slot.closed_at, now), cancelled_at=now, cancel_reason=reason, version=Slot.version + 1),
            execution_options={"synchronize_session": False},
        ).rowcount
        if not changed:
            raise Conflict("This session is already cancelled.")
        connection = session.connection()
        ended = connection.execute(
            update(_appointments)
            .where(_appointments.c.slot_id == slot_id, _appointments.c.status.in_(WAITING))
            .values(status=Appointment.CANCELLED, cancelled_at=now, cancelled_by=Appointment.BY_SESSION, cancel_reason=reason)
            .returning(_appointments.c.id, _appointments.c.user_id, _appointments.c.email, _appointments.c.patient_name,
                       _appointments.c.contact_number, _appointments.c.token_number)
        ).all()
        if ended:
            connection.execute(
                update(_slots).where(_slots.c.id == slot_id).values(booked_count=_slots.c.booked_count - len(ended))
            )
        waiting = connection.execute(
            update(_waitlist)
            .where(_waitlist.c.slot_id == slot_id, _waitlist.c.status == WaitlistEntry.WAITING)
            .values(status=WaitlistEntry.CANCELLED, ended_at=now)
            .returning(_waitlist.c.id)
        ).scalars().all()
        notified = 0
        to_phone = []
        for row in sorted(ended, key=lambda r: r.token_number):
            if emails.has_address(row.user_id, row.email):
                with never_costs_the_change(f"the session cancellation email of appointment {row.id}"):
                    queue_composed(emails.SESSION_CANCELLED, row.id)
                notified += 1
            else:
                to_phone.append((row.token_number, row.patient_name, row.contact_number))
        for entry_id in waiting:
            with never_costs_the_change(f"the session cancellation email of waiting-list entry {entry_id}"):
                queue_composed(emails.WAITLIST_CANCELLED, entry_id)
    return SessionCancelled(len(ended), notified, len(waiting), to_phone)


# ---------------------------------------------------------------------------- patients: moving to another session


@dataclass(frozen=True)
class Moved:
    """The outcome of a move: the new appointment and its token."""

    appointment_id: int
    token_number: int
    slot_id: int
    released: bool  # False when the old place was already given back (its session was cancelled)


def _movable(appointment: Appointment, now: datetime) -> bool:
    """Whether the appointment holds a place that can move (True), or is a place the hospital took
    away by cancelling the session and may be replaced once (False); Conflict otherwise."""
    if appointment.status == Appointment.BOOKED and not appointment.slot.is_past(now):
        return True
    if appointment.status == Appointment.CANCELLED and appointment.cancelled_by == Appointment.BY_SESSION and appointment.moved_to_id is None:
        return False
    if appointment.moved_to_id is not None:
        raise Conflict("This appointment has already been moved.")
    raise Conflict("This appointment can no longer be moved.")


def _check_target(appointment: Appointment, target: Slot | None) -> Slot:
    if target is None:
        raise NotFound(SLOT_NOT_FOUND)
    if target.id == appointment.slot_id:
        raise ValidationFailed({"slot_id": "That is the session you already have. Choose another one."})
    here = appointment.slot
    same_doctor = target.doctor_id == here.doctor_id
    same_kind = target.hospital_id == here.hospital_id and target.doctor.specialization == here.doctor.specialization
    if not (same_doctor or same_kind):
        raise ValidationFailed({"slot_id": "Choose a session with the same doctor, or the same specialization at the same hospital."})
    return target


def move_appointment(appointment_id: int, new_slot_id: int, user_id: int | None = None) -> Moved:
    """Move an appointment to another session (the same doctor, or the same specialization at the same hospital).

    One transaction: the place in the new session is taken (a new token there, by :func:`take_place`,
    the same conditional UPDATE as a booking) and the old one released, or nothing changes. The patient
    never holds both or neither, and the old token is not given out again. A full new session is a
    Conflict and leaves the old appointment exactly as it was. The place freed in the old session goes
    to its waiting list. An appointment whose session the hospital cancelled can be replaced this way
    once (its place was given back already).

    ``user_id`` is the patient's account (their own appointments only); None is the signed link of a
    session-cancelled email, which the caller has checked.
    """
    now = utcnow()
    query = _with_appointment_details(select(Appointment)).where(Appointment.id == appointment_id).execution_options(populate_existing=True)
    if user_id is not None:
        query = query.where(Appointment.user_id == user_id)
    with transaction() as session:
        appointment = session.scalar(query)
        if appointment is None:
            raise NotFound(APPOINTMENT_NOT_FOUND)
        target = _check_target(appointment, session.scalar(_with_doctor_and_hospital(select(Slot)).where(Slot.id == new_slot_id)))
        lock_slots(session, appointment.slot_id, target.id)
        # Read again under the locks: a cancellation of the session, say, may have just committed.
        appointment = session.scalar(query)
        holds_place = _movable(appointment, now)
        if user_id is None and holds_place:
            # The signed link is only ever minted for a place the hospital took away; it must not move a live one.
            raise NotFound(APPOINTMENT_NOT_FOUND)
        connection = session.connection()
        taken = take_place(connection, target.id, now)
        if taken is None:
            raise _refusal(target.id, now)  # rolls back: the old appointment is untouched
        # A held place moves with its calendar event (same UID, next SEQUENCE); a replaced cancelled one starts afresh.
        calendar = {"calendar_id": appointment.calendar_uid_id, "calendar_sequence": appointment.calendar_sequence + 1} if holds_place else {}
        new_id, token = _insert_appointment(
            connection,
            taken,
            {
                "slot_id": target.id, "user_id": appointment.user_id, "patient_name": appointment.patient_name,
                "contact_number": appointment.contact_number, "status": Appointment.BOOKED, "booked_at": now,
                "walk_in": appointment.walk_in, "email": appointment.email, "moved_from_id": appointment.id, **calendar,
            },
        )
        if holds_place:
            ended = update(Appointment).where(Appointment.id == appointment.id, Appointment.status == Appointment.BOOKED).values(
                status=Appointment.CANCELLED, cancelled_at=now, cancelled_by=Appointment.BY_MOVE, moved_to_id=new_id
            )
        else:
            ended = update(Appointment).where(
                Appointment.id == appointment.id, Appointment.status == Appointment.CANCELLED, Appointment.moved_to_id.is_(None)
            ).values(moved_to_id=new_id)
        if not session.execute(ended, execution_options={"synchronize_session": False}).rowcount:
            # Cancelled or moved by another request since it was read: undo the new place too.
            raise Conflict("This appointment changed meanwhile. Please look at it again.")
        if holds_place:
            _release_places(session, appointment.slot_id, now)
        if emails.has_address(appointment.user_id, appointment.email):
            with never_costs_the_change(f"the move email of appointment {new_id}"):
                queue_composed(emails.MOVED, new_id)
    session.expire_all()
    return Moved(new_id, token, target.id, holds_place)


def move_options(appointment: Appointment, limit: int = MOVE_OPTIONS_LIMIT) -> list[Slot]:
    """The sessions an appointment can move to: bookable now, the same doctor, or the same
    specialization at the same hospital; soonest first."""
    here = appointment.slot
    now = utcnow()
    query = _with_doctor_and_hospital(select(Slot)).where(
        Slot.id != here.id,
        Slot.closed.is_(False),
        Slot.booked_count < Slot.capacity,
        Slot.ends_at > now,
        Slot.starts_at > now - MAX_SESSION,
        (Slot.doctor_id == here.doctor_id) | ((Slot.hospital_id == here.hospital_id) & (Doctor.specialization == here.doctor.specialization)),
    )
    return list(db.session.scalars(query.order_by(Slot.starts_at, Doctor.name, Slot.id).limit(limit)))


def appointment_for_move_link(appointment_id: int) -> Appointment:
    """The appointment a valid move link names, with its session's details; NotFound if it is gone."""
    appointment = db.session.scalar(_with_appointment_details(select(Appointment)).where(Appointment.id == appointment_id))
    if appointment is None:
        raise NotFound(APPOINTMENT_NOT_FOUND)
    return appointment


# ---------------------------------------------------------------------------- staff: the doctors directory


def _clean_doctor(name: str | None, specialization: str | None, bio: str | None) -> tuple[str, str, str]:
    errors: dict[str, str] = {}
    cleaned = []
    for field, label, value in (("name", "doctor's name", name), ("specialization", "specialization", specialization)):
        try:
            cleaned.append(clean_text(value, field, label))
        except ValidationFailed as error:
            errors.update({k: v[0] for k, v in error.errors.items()})
    bio = " ".join(str(bio or "").split())
    if len(bio) > MAX_BIO:
        errors["bio"] = f"Keep the bio under {MAX_BIO} characters."
    if errors:
        raise ValidationFailed(errors)
    return cleaned[0], cleaned[1], bio


def _duplicate_doctor(name: str, specialization: str) -> ValidationFailed:
    return ValidationFailed({"name": f"{name} ({specialization}) is already in the directory."})


def add_doctor(hospital_id: int, name: str | None, specialization: str | None, bio: str | None = "") -> Doctor:
    """Add a doctor to the hospital's directory (active)."""
    name, specialization, bio = _clean_doctor(name, specialization, bio)
    try:
        with transaction() as session:
            doctor = Doctor(hospital_id=hospital_id, name=name, specialization=specialization, bio=bio, active=True)
            session.add(doctor)
            session.flush()
    except IntegrityError:
        raise _duplicate_doctor(name, specialization) from None
    return doctor


def update_doctor(doctor_id: int, hospital_id: int, name: str | None, specialization: str | None, bio: str | None, active: bool) -> Doctor:
    """Rename, re-describe or (de)activate one of the hospital's doctors. Every session, search and
    page reads the doctor from here, so the change shows everywhere at once. An inactive doctor keeps
    their sessions but is not offered for new ones."""
    name, specialization, bio = _clean_doctor(name, specialization, bio)
    try:
        with transaction() as session:
            changed = session.execute(
                update(Doctor)
                .where(Doctor.id == doctor_id, Doctor.hospital_id == hospital_id)
                .values(name=name, specialization=specialization, bio=bio, active=bool(active)),
                execution_options={"synchronize_session": False},
            ).rowcount
            if not changed:
                raise NotFound(DOCTOR_NOT_FOUND)
            # Pages cache by the slot's version: make them show the new name.
            session.execute(update(Slot).where(Slot.doctor_id == doctor_id).values(version=Slot.version + 1), execution_options={"synchronize_session": False})
    except IntegrityError:
        raise _duplicate_doctor(name, specialization) from None
    return staff_doctor(doctor_id, hospital_id)


def staff_doctor(doctor_id: int, hospital_id: int) -> Doctor:
    """One of the hospital's doctors; NotFound for any other hospital's."""
    doctor = db.session.scalar(
        select(Doctor).where(Doctor.id == doctor_id, Doctor.hospital_id == hospital_id).execution_options(populate_existing=True)
    )
    if doctor is None:
        raise NotFound(DOCTOR_NOT_FOUND)
    return doctor


def staff_appointment(appointment_id: int, hospital_id: int) -> Appointment:
    """One of the hospital's appointments; NotFound for any other hospital's."""
    appointment = db.session.scalar(select(Appointment).join(Slot).where(Appointment.id == appointment_id, Slot.hospital_id == hospital_id))
    if appointment is None:
        raise NotFound(APPOINTMENT_NOT_FOUND)
    return appointment


def staff_appointment_slot_id(appointment_id: int, hospital_id: int) -> int:
    """The slot of one of the hospital's appointments; NotFound for any other hospital's."""
    slot_id = db.session.scalar(
        select(Appointment.slot_id).join(Slot).where(Appointment.id == appointment_id, Slot.hospital_id == hospital_id)
    )
    if slot_id is None:
        raise NotFound(APPOINTMENT_NOT_FOUND)
    return slot_id


def call_next(slot_id: int, hospital_id: int) -> Slot:
    """Show the next waiting token on the "now serving" screen (cancelled and no-show tokens are skipped)."""
    with transaction() as session:
        # The row lock keeps two desks from calling the same patient at once.
        slot = _staff_slot(session, slot_id, hospital_id, lock=True)
        following = _next_waiting(slot.id, slot.now_serving)
        if following is None:
            raise Conflict("No more patients are waiting for this slot.")
        slot.now_serving = following
        slot.version = slot.version + 1
    return slot


def _next_waiting(slot_id: int, after: int | None) -> int | None:
    return db.session.scalar(
        select(func.min(Appointment.token_number)).where(
            Appointment.slot_id == slot_id,
            Appointment.token_number > (after or FIRST_TOKEN - 1),
            Appointment.status.in_(WAITING),
        )
    )


def next_token(slot: Slot) -> int | None:
    """The token that will be called after the one now being served."""
    return _next_waiting(slot.id, slot.now_serving)


def next_tokens(slot: Slot, count: int = 3) -> list[int]:
    """The next ``count`` tokens to be called after the one now being served, in order (the wall screen)."""
    return list(
        db.session.scalars(
            select(Appointment.token_number)
            .where(
                Appointment.slot_id == slot.id,
                Appointment.token_number > (slot.now_serving or FIRST_TOKEN - 1),
                Appointment.status.in_(WAITING),
            )
            .order_by(Appointment.token_number)
            .limit(count)
        )
    )


def tokens_ahead(appointment: Appointment, slot: Slot) -> int:
    """How many waiting tokens will be called before this appointment's."""
    return db.session.scalar(
        select(func.count()).where(
            Appointment.slot_id == slot.id,
            Appointment.token_number < appointment.token_number,
            Appointment.token_number > (slot.now_serving or FIRST_TOKEN - 1),
            Appointment.status.in_(WAITING),
        )
    ) or 0


# ---------------------------------------------------------------------------- reading


def _with_doctor_and_hospital(query: Select) -> Select:
    return query.join(Slot.doctor).join(Slot.hospital).options(contains_eager(Slot.doctor), contains_eager(Slot.hospital))


def _contains(column, text: str):
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return column.ilike(f"%{escaped}%", escape="\\")


def _bookable(now: datetime) -> Select:
    """Slots (with doctor and hospital) that take bookings at ``now``: open, not full, not over, of a published
    hospital."""
    return _with_doctor_and_hospital(select(Slot)).where(
        Hospital.published.is_(True),
        Slot.closed.is_(False),
        Slot.booked_count < Slot.capacity,
        Slot.ends_at > now,
        # Redundant with the line above, but lets the database walk ix_slots_starts_at in order.
        Slot.starts_at > now - MAX_SESSION,
    )


@dataclass(frozen=True)
class OtherSessions:
    same_doctor: list[Slot]
    same_day: list[Slot]


def other_sessions(slot: Slot, limit: int = 5) -> OtherSessions:
    """What to offer when ``slot`` has just filled (or closed): the same doctor's next bookable sessions,
    and other doctors of the same specialization with a bookable session that day."""
    now = utcnow()
    order = (Slot.starts_at, Hospital.name, Doctor.name, Slot.id)
    same_doctor = db.session.scalars(
        _bookable(now).where(Slot.doctor_id == slot.doctor_id, Slot.id != slot.id).order_by(*order).limit(limit)
    )
    same_day = db.session.scalars(
        _bookable(now)
        .where(Slot.date == slot.date, Doctor.specialization == slot.doctor.specialization, Slot.doctor_id != slot.doctor_id)
        .order_by(*order)
        .limit(limit)
    )
    return OtherSessions(list(same_doctor), list(same_day))


def search_slots(
    day: date | None = None, location: str | None = None, specialization: str | None = None, limit: int = SEARCH_LIMIT
) -> list[Slot]:
    """Slots a patient can book now, soonest first; each filter may be left empty.

    Full, closed and past slots are not offered, nor those of a hospital that is not published yet.
    """
    query = _bookable(utcnow())
    if day is not None:
        query = query.where(Slot.date == day)
    if location and location.strip():
        query = query.where(_contains(Hospital.location, location.strip()))
    if specialization and specialization.strip():
        query = query.where(_contains(Doctor.specialization, specialization.strip()))
    query = query.order_by(Slot.starts_at, Hospital.name, Doctor.name, Slot.id).limit(limit)
    return list(db.session.scalars(query))


def specializations() -> list[str]:
    """Every specialization some doctor has, for the search form's suggestions."""
    return list(db.session.scalars(select(Doctor.specialization).distinct().order_by(Doctor.specialization).limit(200)))


def slot_with_details(slot_id: int) -> Slot:
    """A published hospital's slot with its doctor and hospital, for anyone to look at; NotFound otherwise."""
    slot = db.session.scalar(_with_doctor_and_hospital(select(Slot)).where(Slot.id == slot_id, Hospital.published.is_(True)))
    if slot is None:
        raise NotFound(SLOT_NOT_FOUND)
    return slot


@dataclass(frozen=True)
class Availability:
    slot_id: int
    capacity: int
    booked_count: int
    closed: bool
    past: bool
    version: int

    @property
    def left(self) -> int:
        return 0 if self.closed or self.past else max(self.capacity - self.booked_count, 0)

    @property
    def css(self) -> str:
        if self.closed or self.past or self.left <= 0:
            return "avail-full"
        return "avail-warn" if almost_full(self.left, self.capacity) else "avail-ok"


_AVAILABILITY = select(_slots.c.capacity, _slots.c.booked_count, _slots.c.closed, _slots.c.ends_at, _slots.c.version).where(
    _slots.c.id == bindparam("slot_id")
)


def availability(slot_id: int) -> Availability:
    """A slot's live counts in one indexed SELECT (polled by every open slot page), in autocommit:
    one round trip, where a session would add a BEGIN and a ROLLBACK."""
    with autocommit_reads() as connection:
        row = connection.execute(_AVAILABILITY, {"slot_id": slot_id}).one_or_none()
    if row is None:
        raise NotFound(SLOT_NOT_FOUND)
    return Availability(slot_id, row.capacity, row.booked_count, row.closed, row.ends_at <= utcnow(), row.version)


def doctors_of(hospital_id: int, active_only: bool = False) -> list[Doctor]:
    """The hospital's doctors (the directory), by name; ``active_only`` for the ones new sessions may use."""
    query = select(Doctor).where(Doctor.hospital_id == hospital_id)
    if active_only:
        query = query.where(Doctor.active.is_(True))
    return list(db.session.scalars(query.order_by(Doctor.name, Doctor.specialization)))


def staff_slots(
    hospital_id: int, day: date | None = None, doctor_id: int | None = None, page: int = 1, page_size: int = STAFF_PAGE_SIZE, upcoming_only: bool = True
) -> tuple[list[Slot], bool]:
    """One page of the hospital's slots (from today on unless a date is chosen) and whether there is another page."""
    query = select(Slot).join(Slot.doctor).options(contains_eager(Slot.doctor)).where(Slot.hospital_id == hospital_id)
    if day is not None:
        query = query.where(Slot.date == day)
    elif upcoming_only:
        hospital_zone = db.session.scalar(select(Hospital.timezone).where(Hospital.id == hospital_id))
        query = query.where(Slot.date >= local_today(hospital_zone))
    if doctor_id is not None:
        query = query.where(Slot.doctor_id == doctor_id)
    page = max(page, 1)
    query = query.order_by(Slot.date, Slot.start_time, Doctor.name, Slot.id).offset((page - 1) * page_size).limit(page_size + 1)
    rows = list(db.session.scalars(query))
    return rows[:page_size], len(rows) > page_size


def staff_slot(slot_id: int, hospital_id: int) -> Slot:
    """One of the hospital's own slots with its doctor; NotFound for any other hospital's."""
    slot = db.session.scalar(
        _with_doctor_and_hospital(select(Slot)).where(Slot.id == slot_id, Slot.hospital_id == hospital_id).execution_options(populate_existing=True)
    )
    if slot is None:
        raise NotFound(SLOT_NOT_FOUND)
    return slot


def slot_appointments(slot_id: int) -> list[Appointment]:
    """A slot's appointments in token order."""
    return list(db.session.scalars(select(Appointment).where(Appointment.slot_id == slot_id).order_by(Appointment.token_number)))


def hospital_appointments(hospital_id: int, slot_id: int | None = None, day: date | None = None, limit: int = 500) -> list[Appointment]:
    """The hospital's appointments (optionally of one slot or date), newest sessions first."""
    query = _with_appointment_details(select(Appointment)).where(Slot.hospital_id == hospital_id)
    if slot_id is not None:
        query = query.where(Slot.id == slot_id)
    if day is not None:
        query = query.where(Slot.date == day)
    query = query.order_by(Slot.starts_at.desc(), Appointment.token_number).limit(limit)
    return list(db.session.scalars(query))


def _with_appointment_details(query: Select) -> Select:
    return (
        query.join(Appointment.slot)
        .join(Slot.doctor)
        .join(Slot.hospital)
        .options(contains_eager(Appointment.slot).contains_eager(Slot.doctor), contains_eager(Appointment.slot).contains_eager(Slot.hospital))
    )


def _own_query(user_id: int) -> Select:
    return _with_appointment_details(select(Appointment)).where(Appointment.user_id == user_id)


def _own_appointment(appointment_id: int, user_id: int) -> Appointment:
    appointment = db.session.scalar(_own_query(user_id).where(Appointment.id == appointment_id).execution_options(populate_existing=True))
    if appointment is None:
        raise NotFound(APPOINTMENT_NOT_FOUND)
    return appointment


def own_appointment(appointment_id: int, user_id: int) -> Appointment:
    """The patient's own appointment with its slot, doctor and hospital; NotFound for anyone else's."""
    return _own_appointment(appointment_id, user_id)


def my_appointments(user_id: int, limit: int = MY_LIST_LIMIT) -> tuple[list[Appointment], list[Appointment]]:
    """The patient's upcoming appointments (soonest first) and past ones (latest first)."""
    now = utcnow()
    upcoming = list(db.session.scalars(_own_query(user_id).where(Slot.ends_at > now).order_by(Slot.starts_at, Appointment.id).limit(limit)))
    past = list(db.session.scalars(_own_query(user_id).where(Slot.ends_at <= now).order_by(Slot.starts_at.desc(), Appointment.id).limit(limit)))
    return upcoming, past
