"""Waiting lists of full sessions, and what happens to a freed place: it goes at once, in the same
transaction, to the first person waiting."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased, contains_eager

from expertbook.auth.models import User
from expertbook.clinic import emails
from expertbook.clinic.appointments import MY_LIST_LIMIT
from expertbook.clinic.inputs import ACCOUNT_NOT_FOUND, SLOT_NOT_FOUND, WAITLIST_NOT_FOUND, clean_patient
from expertbook.clinic.models import Appointment, Slot, WaitlistEntry
from expertbook.clinic.places import insert_appointment, lock_slots, not_taking_patients, take_place
from expertbook.database import transaction, utcnow
from expertbook.errors import Conflict, NotFound
from expertbook.extensions import db
from expertbook.notifications.service import never_costs_the_change, queue_composed

_slots = Slot.__table__
_waitlist = WaitlistEntry.__table__


def release_places(session, slot_id: int, now: datetime, count: int = 1) -> list[int]:
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
        appointment_id, _ = insert_appointment(
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
            if (closed := not_taking_patients(slot, now)) is not None:
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
