"""Clinic rules: doctors' slots, token-numbered bookings, cancellations and the waiting-room queue.

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
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import current_app
from sqlalchemy import Row, Select, bindparam, func, insert, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import contains_eager

from expertbook.auth.models import User
from expertbook.clinic import signals
from expertbook.clinic.models import Appointment, Doctor, Hospital, Slot
from expertbook.database import DirectStatement, autocommit_reads, single_statement, transaction, utcnow
from expertbook.errors import Conflict, NotFound, ValidationFailed
from expertbook.extensions import db
from expertbook.notifications.clinic import TOKEN_CONFIRMATION
from expertbook.notifications.service import (
    dispatch,
    dispatch_after_commit,
    named_email_insert,
    never_costs_the_change,
    queue_composed,
)

FIRST_TOKEN = 101
MAX_CAPACITY = 500
MAX_REPEAT_DAYS = 92
MAX_DOCTORS_PER_FORM = 20
SEARCH_LIMIT = 100
STAFF_PAGE_SIZE = 50
MY_LIST_LIMIT = 100
# A session starts and ends on the same day, so one that has not ended started less than a day ago.
MAX_SESSION = timedelta(days=1)

SLOT_NOT_FOUND = "Slot not found"
SLOT_FULL = "This slot is fully booked"
SLOT_CHANGED = "Slot availability changed, please refresh"
APPOINTMENT_NOT_FOUND = "Appointment not found"
ACCOUNT_NOT_FOUND = "Account not found"

_CONTACT = re.compile(r"[0-9]{10}")
_KEY = re.compile(r"[A-Za-z0-9_\-:.]{8,64}")
WAITING = (Appointment.BOOKED, Appointment.ARRIVED)


# ---------------------------------------------------------------------------- time and status


def zone(name: str | None) -> ZoneInfo:
    """The hospital's zone; an unknown name falls back to the configured default rather than failing a page."""
    try:
        return ZoneInfo(name or current_app.config["CLINIC_TIMEZONE"])
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(current_app.config["CLINIC_TIMEZONE"])


def zone_abbreviation(timezone: str | None, at: datetime) -> str:
    """The hospital zone's abbreviation at the instant ``at`` ("IST", "BST"); zones without a lettered one
    give their offset ("UTC+04", "UTC+05:45"), which cannot be mistaken for anything else."""
    local = at.astimezone(zone(timezone))
    name = local.tzname() or ""
    if name and name[0] not in "+-":
        return name
    minutes = int(local.utcoffset().total_seconds() // 60)
    sign, minutes = ("+" if minutes >= 0 else "-"), abs(minutes)
    return f"UTC{sign}{minutes // 60:02d}" + (f":{minutes % 60:02d}" if minutes % 60 else "")


def utc_offset_minutes(timezone: str | None, at: datetime) -> int:
    """The hospital zone's offset from UTC at ``at``, in minutes (app.js compares it with the browser's)."""
    return int(at.astimezone(zone(timezone)).utcoffset().total_seconds() // 60)


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
    """The one place that decides a slot's status badge: Past, Closed, Fully booked, Almost full or Available."""
    now = now or utcnow()
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
    contact = re.sub(r"[\s\-]", "", str(contact_number or ""))
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
    doctors: list[tuple[str | None, str | None]],
    day: date | None,
    start: time | None,
    end: time | None,
    capacity: int | None = 10,
    repeat_until: date | None = None,
    weekdays: list[int] | None = None,
) -> CreatedSlots:
    """Create one session per doctor and date for the staff member's hospital.

    Doctors are matched by name and specialization (a new pair adds the doctor). A session that
    already exists for a doctor at that date and start time is skipped and counted, so submitting
    the same form twice creates nothing twice.
    """
    hospital_id = _staff_hospital_id(staff_user_id)
    hospital = db.session.get(Hospital, hospital_id)
    errors: dict[str, str] = {}
    cleaned: list[tuple[str, str]] = []
    if not doctors:
        errors["doctors"] = "Add at least one doctor."
    if len(doctors) > MAX_DOCTORS_PER_FORM:
        errors["doctors"] = f"Add at most {MAX_DOCTORS_PER_FORM} doctors at a time."
    for index, (name, specialization) in enumerate(doctors):
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
    # Drop a doctor listed twice in the same form.
    cleaned = list(dict.fromkeys(cleaned))

    try:
        with transaction() as session:
            doctor_rows = []
            for name, specialization in cleaned:
                doctor = session.scalar(
                    select(Doctor).where(Doctor.hospital_id == hospital_id, Doctor.name == name, Doctor.specialization == specialization)
                )
                if doctor is None:
                    doctor = Doctor(hospital_id=hospital_id, name=name, specialization=specialization)
                    session.add(doctor)
                    session.flush()
                doctor_rows.append(doctor)
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


def _refusal(slot_id: int, now: datetime) -> Exception:
    """Why the conditional UPDATE matched nothing, as the error to raise."""
    slot = db.session.get(Slot, slot_id, populate_existing=True)
    if slot is None:
        return NotFound(SLOT_NOT_FOUND)
    if slot.closed or slot.is_past(now):
        return Conflict(SLOT_CHANGED)
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


def _take_place(*details):
    return (
        update(_slots)
        .where(
            _slots.c.id == bindparam("slot_id"),
            _slots.c.booked_count < _slots.c.capacity,
            _slots.c.closed.is_(False),
            _slots.c.ends_at > _NOW,
        )
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
_TAKE_PLACE = _take_place(
    *(_detail(column, _slots.c.doctor_id) for column in _DOCTOR_DETAILS),
    *(_detail(column, _slots.c.hospital_id) for column in _HOSPITAL_DETAILS),
)
_INSERT_APPOINTMENT = insert(_appointments).returning(_appointments.c.id)


def _both_in_one_statement():
    """PostgreSQL: the whole booking as one statement (data-modifying CTEs), one round trip instead
    of three: take the place, insert the appointment, write the patient's token confirmation to the
    outbox. Same rows, same locks, same constraints; the doctor and the hospital come by a join.
    SQLite, which has no data-modifying CTEs, runs the statements one by one."""
    taken = _take_place(_slots.c.doctor_id, _slots.c.hospital_id).cte("taken")
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


# The hottest statement of the site, run on the driver directly (see DirectStatement).
_BOOK_IN_ONE = DirectStatement(_both_in_one_statement())
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
    if connection.dialect.name == "postgresql":
        taken = _BOOK_IN_ONE.one_or_none(connection, values)
        if taken is None:
            return None, None
        appointment_id = taken.appointment_id
        dispatch_after_commit(taken.email_id)
    else:
        taken = connection.execute(_TAKE_PLACE, {"slot_id": values["slot_id"], "now": values["now"]}).one_or_none()
        if taken is None:
            return None, None
        token = FIRST_TOKEN - 1 + taken.tokens_issued
        row = {name: value for name, value in values.items() if name != "now"}
        appointment_id = connection.execute(_INSERT_APPOINTMENT, {**row, "token_number": token}).scalar_one()
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
) -> Booking:
    """Book a place in a slot and give it the slot's next token number (101, 102, ...).

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
    try:
        if _alone():
            # The whole booking is one statement, atomic by itself: no BEGIN, no COMMIT.
            with single_statement() as connection:
                taken = _BOOK_IN_ONE.one_or_none(connection, values)
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
        # A retry of a booking that took the last place must still get its booking back.
        existing = _by_key(user_id, key) if key else None
        if existing is not None:
            return _replay(existing, slot_id)
        raise _refusal(slot_id, now)
    token = FIRST_TOKEN - 1 + taken.tokens_issued
    slot = SlotSnapshot(
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
    return Booking(appointment_id, token, taken.capacity - taken.booked_count, False, patient_name, contact_number, now, slot)


def cancel(appointment_id: int, user_id: int) -> Appointment:
    """The patient cancels their own upcoming appointment; the place is freed, the token is not reused."""
    with transaction() as session:
        appointment = _own_appointment(appointment_id, user_id)
        if appointment.status == Appointment.CANCELLED:
            return appointment
        if appointment.status != Appointment.BOOKED:
            raise Conflict("This appointment can no longer be cancelled.")
        now = utcnow()
        if appointment.slot.is_past(now):
            raise Conflict("This appointment has already taken place.")
        changed = session.execute(
            update(Appointment)
            .where(Appointment.id == appointment_id, Appointment.status == Appointment.BOOKED)
            .values(status=Appointment.CANCELLED, cancelled_at=now),
            execution_options={"synchronize_session": False},
        ).rowcount
        if changed:
            session.execute(
                update(Slot)
                .where(Slot.id == appointment.slot_id)
                .values(booked_count=Slot.booked_count - 1, version=Slot.version + 1),
                execution_options={"synchronize_session": False},
            )
            _send(signals.appointment_cancelled, appointment_id)
    session.expire_all()
    return appointment


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
    """Stop taking bookings for a slot (existing appointments stay)."""
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
    """Take bookings again for a slot that was closed."""
    with transaction() as session:
        session.execute(
            update(Slot)
            .where(Slot.id == slot_id, Slot.hospital_id == hospital_id, Slot.closed.is_(True))
            .values(closed=False, closed_at=None, version=Slot.version + 1),
            execution_options={"synchronize_session": False},
        )
        slot = _staff_slot(session, slot_id, hospital_id)
    return slot


def change_capacity(slot_id: int, hospital_id: int, capacity: int | None) -> Slot:
    """Set a slot's capacity; it can never go below the places already booked."""
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
        changed = session.execute(
            update(Appointment)
            .where(Appointment.id == appointment_id, Appointment.status != Appointment.CANCELLED)
            .values(status=status),
            execution_options={"synchronize_session": False},
        ).rowcount
        if not changed:
            raise Conflict("The patient cancelled this appointment.")
        session.execute(update(Slot).where(Slot.id == appointment.slot_id).values(version=Slot.version + 1), execution_options={"synchronize_session": False})
    session.expire_all()
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
    """Slots (with doctor and hospital) that take bookings at ``now``: open, not full, not over."""
    return _with_doctor_and_hospital(select(Slot)).where(
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

    Full, closed and past slots are not offered.
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
    """A slot with its doctor and hospital, for anyone to look at; NotFound if there is none."""
    slot = db.session.scalar(_with_doctor_and_hospital(select(Slot)).where(Slot.id == slot_id))
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


def doctors_of(hospital_id: int) -> list[Doctor]:
    """The hospital's doctors, by name."""
    return list(db.session.scalars(select(Doctor).where(Doctor.hospital_id == hospital_id).order_by(Doctor.name, Doctor.specialization)))


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
    query = (
        select(Appointment)
        .join(Appointment.slot)
        .join(Slot.doctor)
        .join(Slot.hospital)
        .options(contains_eager(Appointment.slot).contains_eager(Slot.doctor), contains_eager(Appointment.slot).contains_eager(Slot.hospital))
        .where(Slot.hospital_id == hospital_id)
    )
    if slot_id is not None:
        query = query.where(Slot.id == slot_id)
    if day is not None:
        query = query.where(Slot.date == day)
    query = query.order_by(Slot.starts_at.desc(), Appointment.token_number).limit(limit)
    return list(db.session.scalars(query))


def _own_query(user_id: int) -> Select:
    return (
        select(Appointment)
        .join(Appointment.slot)
        .join(Slot.doctor)
        .join(Slot.hospital)
        .options(contains_eager(Appointment.slot).contains_eager(Slot.doctor), contains_eager(Appointment.slot).contains_eager(Slot.hospital))
        .where(Appointment.user_id == user_id)
    )


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
