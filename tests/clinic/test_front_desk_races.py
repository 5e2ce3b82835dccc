"""The front desk under concurrency, in-process (threads, each with its own session), on SQLite and PostgreSQL.

The same three races run over HTTP against gunicorn in tests/api/test_front_desk_api.py.
"""
from __future__ import annotations

import itertools
import random
import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from expertbook.clinic import booking, moves, queue, sessions, waitlist
from expertbook.clinic.models import Appointment, Slot, WaitlistEntry
from expertbook.errors import Conflict
from expertbook.extensions import db
from tests.factories import make_appointment, make_move_race, make_slot, make_users


def _race(app, jobs: list, workers: int = 24) -> list:
    """Run the jobs at once (a barrier releases the first ``workers`` together, the rest follow as
    threads free up); each returns its outcome or the Conflict's message."""
    parties = min(workers, len(jobs))
    barrier = threading.Barrier(parties, timeout=60)
    started = itertools.count()

    def run(job):
        with app.app_context():
            try:
                if next(started) < parties:
                    barrier.wait()
                return job()
            except Conflict as error:
                return error.message
            finally:
                db.session.remove()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(run, jobs, timeout=300))


def holding(slot_id: int) -> tuple[int, int]:
    """(the slot's place count, the appointments holding a place) as committed: they must always agree."""
    db.session.rollback()
    booked = db.session.get(Slot, slot_id, populate_existing=True).booked_count
    rows = db.session.scalar(select(func.count()).where(Appointment.slot_id == slot_id, Appointment.status != Appointment.CANCELLED))
    return booked, rows


def test_100_online_bookings_and_20_walk_ins_racing_for_10_places(app):
    slot = make_slot(capacity=10)
    slot_id, hospital_id = slot.id, slot.hospital_id
    online = [lambda u=u.id: ("online", booking.book(slot_id, u, "Online", "9876543210").token_number) for u in make_users(100)]
    desk = [lambda n=n: ("walk-in", booking.walk_in(slot_id, hospital_id, f"Walk-in {n}", "9876543210").token_number) for n in range(20)]
    jobs = online + desk
    random.Random(15).shuffle(jobs)
    outcomes = _race(app, jobs)
    tokens = sorted(o[1] for o in outcomes if isinstance(o, tuple))
    assert tokens == list(range(101, 111))
    assert [o for o in outcomes if not isinstance(o, tuple)] == ["This slot is fully booked"] * 110
    assert holding(slot_id) == (10, 10)
    assert db.session.get(Slot, slot_id).tokens_issued == 10


def test_5_cancellations_racing_promote_exactly_the_first_5_waiting_in_order(app):
    slot = make_slot(capacity=5)
    holders = [make_appointment(slot, u) for u in make_users(5)]
    slot_id = slot.id
    waiters = make_users(7)
    entries = [waitlist.join_waitlist(slot_id, u.id, f"Waiter {i}", "9876543210").entry_id for i, u in enumerate(waiters)]
    cancellations = [lambda a=a.id, u=a.user_id: queue.cancel(a, u).status for a in holders]
    assert _race(app, cancellations) == ["cancelled"] * 5

    db.session.rollback()
    rows = {e.id: e for e in db.session.scalars(select(WaitlistEntry).where(WaitlistEntry.slot_id == slot_id))}
    assert [rows[e].status for e in entries] == ["promoted"] * 5 + ["waiting"] * 2
    given = [db.session.get(Appointment, rows[e].appointment_id) for e in entries[:5]]
    # In order (the first to wait gets the first freed place's token), each once.
    assert [a.token_number for a in given] == [106, 107, 108, 109, 110]
    assert [a.user_id for a in given] == [u.id for u in waiters[:5]]
    assert db.session.scalar(select(func.count()).where(Appointment.slot_id == slot_id, Appointment.user_id.in_([u.id for u in waiters]))) == 5
    assert holding(slot_id) == (5, 5)
    assert [pos for _, pos in waitlist.my_waitlist(waiters[5].id)] == [1]


def test_20_moves_into_a_3_place_session_while_others_book_it(app):
    target, old, before = make_move_race()
    target_id = target.id
    sources = {slot_id for slot_id, _ in before.values()}
    movers = [lambda a=a.id, u=a.user_id: ("moved", a, moves.move_appointment(a, target_id, u)) for a in old]
    bookings = [lambda u=u.id: ("booked", u, booking.book(target_id, u, "Booker", "9876543210")) for u in make_users(20)]
    jobs = movers + bookings
    random.Random(16).shuffle(jobs)
    outcomes = _race(app, jobs)

    won = [o for o in outcomes if isinstance(o, tuple)]
    assert len(won) == 3 and sorted(o[2].token_number for o in won) == [101, 102, 103]
    assert set(o for o in outcomes if not isinstance(o, tuple)) == {"This slot is fully booked"}
    assert holding(target_id) == (3, 3)
    moved = {o[1]: o[2] for o in won if o[0] == "moved"}
    for appointment_id, (slot_id, token) in before.items():
        row = db.session.get(Appointment, appointment_id, populate_existing=True)
        if appointment_id in moved:
            assert (row.status, row.moved_to_id) == ("cancelled", moved[appointment_id].appointment_id)
        else:  # every patient whose move failed still holds the old appointment, as it was
            assert (row.status, row.slot_id, row.token_number, row.moved_to_id) == ("booked", slot_id, token, None)
    for source in sources:
        assert holding(source)[0] == holding(source)[1]
    assert sum(holding(s)[0] for s in sources) == 20 - len(moved)


def test_cancelling_a_session_while_its_patients_cancel_move_and_arrive_never_deadlocks(app):
    """Every change to a session and its appointments takes the session's lock first (lock_slots):
    without that order, a patient's cancel (appointment, then session) and the session's cancel
    (session, then appointments) wait for each other, and PostgreSQL kills one of them."""
    slot = make_slot(capacity=30)
    later = make_slot(doctor=slot.doctor, capacity=30, days_ahead=2)
    slot_id, hospital_id, later_id = slot.id, slot.hospital_id, later.id
    appointments = [make_appointment(slot, u) for u in make_users(30)]
    patient_cancels = [lambda a=a.id, u=a.user_id: queue.cancel(a, u).status for a in appointments[:10]]
    # Plain ids only in the threads: the test's ORM objects belong to its own session, and reading an
    # expired attribute from several threads at once trips SQLAlchemy (seen as a flaky AssertionError).
    movers = [lambda a=a.id, u=a.user_id: ("moved to", moves.move_appointment(a, later_id, u).slot_id) for a in appointments[10:20]]
    arrivals = [lambda a=a.id: queue.set_appointment_status(a, hospital_id, "arrived").status for a in appointments[20:]]
    session_cancel = [lambda: ("session cancelled", sessions.cancel_session(slot_id, hospital_id, "Doctor unwell").cancelled)] * 3
    jobs = patient_cancels + movers + arrivals + session_cancel
    random.Random(17).shuffle(jobs)
    outcomes = _race(app, jobs, workers=len(jobs))
    # Only the expected answers: no deadlock, no error. One session cancel wins; the others are told so.
    assert sum(1 for o in outcomes if o == "This session is already cancelled.") == 2
    winner = [o for o in outcomes if isinstance(o, tuple) and o[0] == "session cancelled"]
    assert len(winner) == 1
    expected = {"cancelled", "arrived", "The patient cancelled this appointment.", "This session is already cancelled.", ("moved to", later_id)}
    assert set(outcomes) - set(winner) <= expected
    # A move either takes its place along or, once the session is cancelled, replaces the cancelled one: all succeed.
    assert outcomes.count(("moved to", later_id)) == 10
    db.session.rollback()
    statuses = db.session.scalars(select(Appointment.status).where(Appointment.slot_id == slot_id)).all()
    assert set(statuses) == {"cancelled"} and len(statuses) == 30
    assert holding(slot_id) == (0, 0)
    assert holding(later_id) == (10, 10)
