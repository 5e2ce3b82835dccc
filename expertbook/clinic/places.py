"""Taking a place in a session: the one conditional UPDATE every way into a session shares (an online
booking, a walk-in, a move, a waiting-list promotion), the appointment's INSERT, the slots' locks, and
why a place could not be taken.

Every write that touches a slot's counters is one conditional UPDATE, so two writers can never both
take the last place, on SQLite (where ``transaction()`` serialises writers with BEGIN IMMEDIATE) and
on PostgreSQL (where the UPDATE's row lock makes the second writer re-check the condition).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from types import SimpleNamespace

from sqlalchemy import Row, bindparam, insert, select, update

from expertbook.auth.sessions import api_session_clause
from expertbook.clinic.inputs import SLOT_CANCELLED, SLOT_CHANGED, SLOT_FULL, SLOT_NOT_FOUND
from expertbook.clinic.models import Appointment, Doctor, Hospital, Slot
from expertbook.database import utcnow
from expertbook.errors import Conflict, NotFound
from expertbook.extensions import db

FIRST_TOKEN = 101


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


def not_taking_patients(slot: Slot, now: datetime) -> Conflict | None:
    """Why a slot takes no patient at all (cancelled, closed or over), or None if it does."""
    if slot.cancelled_at is not None:
        return Conflict(SLOT_CANCELLED)
    if slot.closed or slot.is_past(now):
        return Conflict(SLOT_CHANGED)
    return None


def refusal(slot_id: int, now: datetime) -> Exception:
    """Why the conditional UPDATE matched nothing, as the error to raise."""
    slot = db.session.get(Slot, slot_id, populate_existing=True)
    if slot is None or not slot.hospital.published:
        return NotFound(SLOT_NOT_FOUND)
    if (closed := not_taking_patients(slot, now)) is not None:
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
NOW = bindparam("now", type_=_slots.c.ends_at.type)


def _detail(column, key):
    # A correlated scalar subquery: SQLite's RETURNING may not name UPDATE ... FROM tables, but may hold these.
    return select(column).where(column.table.c.id == key).scalar_subquery().label(f"{column.table.name}_{column.name}")


# A hospital's slots take bookings only once it is published (a staff admin verified their email).
_PUBLISHED = select(Hospital.__table__.c.id).where(Hospital.__table__.c.id == _slots.c.hospital_id, Hospital.__table__.c.published.is_(True)).exists()


def take_place_update(*details, guarded: bool = False):
    """The conditional UPDATE that takes a place. ``guarded``: only while the API token's login session
    (bind parameters ``session_hash`` and ``user_id``) is open, checked in this same statement."""
    conditions = [
        _slots.c.id == bindparam("slot_id"),
        _slots.c.booked_count < _slots.c.capacity,
        _slots.c.closed.is_(False),
        _slots.c.ends_at > NOW,
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
_TAKE_PLACE = {guarded: take_place_update(*_DETAILS, guarded=guarded) for guarded in (False, True)}
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


def insert_appointment(connection, taken: Row, values: dict) -> tuple[int, int]:
    """Insert the appointment for a place :func:`take_place` took; returns its id and token number."""
    token = FIRST_TOKEN - 1 + taken.tokens_issued
    return connection.execute(_INSERT_APPOINTMENT, {**values, "token_number": token}).scalar_one(), token


def snapshot(slot_id: int, taken: Row) -> SlotSnapshot:
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
