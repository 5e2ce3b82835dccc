"""Doctors' sessions (slots): creating them, finding them (search, a session's page, the staff list,
the live counts), and running them (close, reopen, capacity, cancelling a whole session)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import Select, bindparam, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import contains_eager

from expertbook.clinic import emails
from expertbook.clinic.hospitals import staff_hospital_id
from expertbook.clinic.inputs import SLOT_NOT_FOUND, clean_reason, clean_text
from expertbook.clinic.models import Appointment, Doctor, Hospital, Slot, WaitlistEntry
from expertbook.clinic.states import WAITING, almost_full, local_today, to_utc
from expertbook.clinic.waitlist import promote_waiting
from expertbook.database import autocommit_reads, transaction, utcnow
from expertbook.errors import Conflict, NotFound, ValidationFailed
from expertbook.extensions import db
from expertbook.notifications.service import never_costs_the_change, queue_composed

MAX_CAPACITY = 500
MAX_REPEAT_DAYS = 92
MAX_DAYS_AHEAD = 731  # sessions are published at most two years ahead
MAX_DOCTORS_PER_FORM = 20
SEARCH_LIMIT = 100
STAFF_PAGE_SIZE = 50
# A session starts and ends on the same day, so one that has not ended started less than a day ago.
MAX_SESSION = timedelta(days=1)

_slots = Slot.__table__
_appointments = Appointment.__table__
_waitlist = WaitlistEntry.__table__


# ---------------------------------------------------------------------------- creating sessions


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
    hospital_id = staff_hospital_id(staff_user_id)
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


# ---------------------------------------------------------------------------- finding sessions


def with_doctor_and_hospital(query: Select) -> Select:
    return query.join(Slot.doctor).join(Slot.hospital).options(contains_eager(Slot.doctor), contains_eager(Slot.hospital))


def _contains(column, text: str):
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return column.ilike(f"%{escaped}%", escape="\\")


def _bookable(now: datetime) -> Select:
    """Slots (with doctor and hospital) that take bookings at ``now``: open, not full, not over, of a published
    hospital."""
    return with_doctor_and_hospital(select(Slot)).where(
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
    slot = db.session.scalar(with_doctor_and_hospital(select(Slot)).where(Slot.id == slot_id, Hospital.published.is_(True)))
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
        with_doctor_and_hospital(select(Slot)).where(Slot.id == slot_id, Slot.hospital_id == hospital_id).execution_options(populate_existing=True)
    )
    if slot is None:
        raise NotFound(SLOT_NOT_FOUND)
    return slot


# ---------------------------------------------------------------------------- running a session


def staff_slot_in(session, slot_id: int, hospital_id: int, lock: bool = False) -> Slot:
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
        slot = staff_slot_in(session, slot_id, hospital_id)
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
        slot = staff_slot_in(session, slot_id, hospital_id)
        if slot.cancelled_at is not None:
            raise Conflict("A cancelled session cannot be reopened. Create a new session instead.")
        if changed:
            promote_waiting(session, slot_id, utcnow())
    return staff_slot_in(db.session, slot_id, hospital_id)


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
        slot = staff_slot_in(session, slot_id, hospital_id)
        if not changed:
            raise ValidationFailed(
                {"capacity": f"{slot.booked_count} places are already booked, so the capacity cannot be less than {slot.booked_count}."}
            )
        if promote_waiting(session, slot_id, utcnow()):
            slot = staff_slot_in(session, slot_id, hospital_id)
    return slot


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
    reason = clean_reason(reason)
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
