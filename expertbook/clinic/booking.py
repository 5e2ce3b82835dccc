"""Booking a place: a patient's online booking (the benchmarked hot path) and a walk-in at the desk.

The booking takes its place with :func:`expertbook.clinic.places.take_place`'s conditional UPDATE;
on PostgreSQL that UPDATE, the appointment's INSERT and the token confirmation's outbox row are one
statement (:func:`_both_in_one_statement`).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Row, bindparam, func, insert, literal, select, true
from sqlalchemy.exc import IntegrityError

from expertbook.auth.models import User
from expertbook.auth.sessions import api_session_alive
from expertbook.clinic import emails, signals
from expertbook.clinic.emails import TOKEN_CONFIRMATION
from expertbook.clinic.inputs import ACCOUNT_NOT_FOUND, SLOT_NOT_FOUND, clean_email, clean_key, clean_patient
from expertbook.clinic.models import Appointment, Doctor, Hospital, Slot
from expertbook.clinic.places import (
    FIRST_TOKEN,
    NOW,
    SlotSnapshot,
    insert_appointment,
    refusal,
    snapshot,
    take_place,
    take_place_update,
)
from expertbook.database import after_commit, single_statement, transaction, utcnow
from expertbook.errors import Conflict, NotFound, ValidationFailed
from expertbook.extensions import db
from expertbook.notifications.service import dispatch, dispatch_after_commit, named_email_insert, never_costs_the_change, queue_composed

_slots = Slot.__table__
_appointments = Appointment.__table__


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


def _by_key(user_id: int, key: str) -> Row | None:
    return db.session.connection().execute(_BY_KEY, {"user_id": user_id, "key": key}).one_or_none()


def _replay(existing: Row, slot_id: int) -> Booking:
    if existing.slot_id != slot_id:
        raise Conflict("This booking form was already used for another slot. Please refresh and try again.")
    left = db.session.scalar(select(Slot.capacity - Slot.booked_count).where(Slot.id == slot_id))
    return Booking(existing.id, existing.token_number, max(left or 0, 0), replayed=True)


def _both_in_one_statement(guarded: bool, parts: tuple[signals.BookedRows, ...] = ()):
    """PostgreSQL: the whole booking as one statement (data-modifying CTEs), one round trip instead
    of three: take the place, insert the appointment, write the patient's token confirmation to the
    outbox, and the rows other areas write with every booking (``parts``, see
    :class:`~expertbook.clinic.signals.BookedRows`; their new ids come back as arrays). Same rows, same
    locks, same constraints; the doctor and the hospital come by a join. SQLite, which has no
    data-modifying CTEs, runs the statements one by one."""
    taken = take_place_update(_slots.c.doctor_id, _slots.c.hospital_id, guarded=guarded).cte("taken")
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
    mailed = named_email_insert(TOKEN_CONFIRMATION, made.c.appointment_id, NOW).cte("mailed")
    # Scalar subqueries, not the CTEs' columns: a part's SELECT then has only its own tables in FROM.
    new_id, hospital_id = select(made.c.appointment_id).scalar_subquery(), select(taken.c.hospital_id).scalar_subquery()
    extra = [part.build(new_id, hospital_id, NOW).cte(f"booked_rows_{n}") for n, part in enumerate(parts)]
    doctors, hospitals = Doctor.__table__, Hospital.__table__
    return (
        select(
            *(c for c in taken.c if c.name not in ("doctor_id", "hospital_id")),
            *(column.label(f"doctors_{column.name}") for column in (doctors.c.name, doctors.c.specialization)),
            *(column.label(f"hospitals_{column.name}") for column in (hospitals.c.name, hospitals.c.location, hospitals.c.timezone)),
            made.c.appointment_id,
            mailed.c.id.label("email_id"),
            *(select(func.array_agg(rows.c.id)).scalar_subquery().label(f"booked_rows_{n}") for n, rows in enumerate(extra)),
        )
        .select_from(taken)
        .join(made, true())
        .join(mailed, true())
        .join(doctors, doctors.c.id == taken.c.doctor_id)
        .join(hospitals, hospitals.c.id == taken.c.hospital_id)
    )


# The guarded statement is the API's, which checks the bearer token's session in the same statement.
# Built once per set of registered booked rows (areas register theirs as the app starts).
_BOOK_IN_ONE: dict[tuple[bool, tuple[signals.BookedRows, ...]], object] = {}


def _book_in_one(guarded: bool):
    """The booking's one statement, with every registered part; and the parts, in its order."""
    parts = tuple(signals.booked_rows)
    statement = _BOOK_IN_ONE.get((guarded, parts))
    if statement is None:
        statement = _BOOK_IN_ONE.setdefault((guarded, parts), _both_in_one_statement(guarded, parts))
    return statement, parts


def _written_in_one(taken: Row, parts: tuple[signals.BookedRows, ...], committed: bool) -> None:
    """Hand each part the ids of the rows the booking's statement wrote for it (after the commit)."""
    for n, part in enumerate(parts):
        ids = list(getattr(taken, f"booked_rows_{n}") or ())
        if ids:
            if committed:
                part.written(ids)
            else:
                after_commit(lambda part=part, ids=ids: part.written(ids))


def _write_booked_rows(connection, appointment_id: int, hospital_id, now: datetime) -> None:
    """The registered parts' rows for a new appointment, inside the caller's transaction (SQLite, walk-ins)."""
    for part in signals.booked_rows:
        ids = list(connection.execute(
            part.build(literal(appointment_id), hospital_id, literal(now, type_=_appointments.c.booked_at.type))
        ).scalars())
        if ids:
            after_commit(lambda part=part, ids=ids: part.written(ids))
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
        statement, parts = _book_in_one(guarded)
        taken = connection.execute(statement, values).one_or_none()
        if taken is None:
            return None, None
        appointment_id = taken.appointment_id
        dispatch_after_commit(taken.email_id)
        _written_in_one(taken, parts, committed=False)
    else:
        guard = {name: values[name] for name in ("session_hash", "user_id")} if guarded else None
        taken = take_place(connection, values["slot_id"], values["now"], guard=guard)
        if taken is None:
            return None, None
        row = {name: value for name, value in values.items() if name not in ("now", "session_hash")}
        appointment_id, _ = insert_appointment(connection, taken, row)
        with never_costs_the_change(f"the token confirmation of appointment {appointment_id}"):
            queue_composed(TOKEN_CONFIRMATION, appointment_id)
        hospital_id = select(_slots.c.hospital_id).where(_slots.c.id == values["slot_id"]).scalar_subquery()
        _write_booked_rows(connection, appointment_id, hospital_id, values["now"])
    signals.send(signals.appointment_booked, appointment_id=appointment_id)
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
    key = clean_key(idempotency_key)
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
            statement, parts = _book_in_one(api_session is not None)
            with single_statement() as connection:
                taken = connection.execute(statement, values).one_or_none()
            if taken is not None:
                dispatch(taken.email_id, fresh=True)  # committed already
                _written_in_one(taken, parts, committed=True)
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
        raise refusal(slot_id, now)
    token = FIRST_TOKEN - 1 + taken.tokens_issued
    return Booking(appointment_id, token, taken.capacity - taken.booked_count, False, patient_name, contact_number, now, snapshot(slot_id, taken))


def _own_slot_id(session, slot_id: int, hospital_id: int) -> None:
    if session.scalar(select(Slot.id).where(Slot.id == slot_id, Slot.hospital_id == hospital_id)) is None:
        raise NotFound(SLOT_NOT_FOUND)


def walk_in(slot_id: int, hospital_id: int, patient_name: str | None, contact_number: str | None, email: str | None = None) -> Booking:
    """Give a patient at the desk (no account) a place and the next token.

    The place is taken by the same conditional UPDATE as an online booking (:func:`take_place`), so
    walk-ins and online bookings together never exceed the capacity and share one token sequence.
    With an email address the patient also gets the token in writing, and later any cancellation.
    """
    errors: dict[str, list[str]] = {}
    for check in (lambda: clean_patient(patient_name, contact_number), lambda: clean_email(email)):
        try:
            check()
        except ValidationFailed as error:
            errors.update(error.errors)
    if errors:  # every problem at once
        raise ValidationFailed(errors)
    (patient_name, contact_number), email = clean_patient(patient_name, contact_number), clean_email(email)
    now = utcnow()
    with transaction() as session:
        _own_slot_id(session, slot_id, hospital_id)
        connection = session.connection()
        taken = take_place(connection, slot_id, now)
        if taken is None:
            raise refusal(slot_id, now)
        appointment_id, token = insert_appointment(
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
        _write_booked_rows(connection, appointment_id, literal(hospital_id), now)
    return Booking(appointment_id, token, taken.capacity - taken.booked_count, False, patient_name, contact_number, now, snapshot(slot_id, taken))
