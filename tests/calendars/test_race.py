"""The race: two customers book the expert's last free time while the expert's own calendar gains a busy event
for it. At most one booking survives, and none overlaps an external busy interval known at its commit.

"Known at commit" is made exact by the lock both sides take: a booking checks the busy times under the
expert's booking lock, and a read of the calendar stores its busy times under the same lock. The order in
which the lock was taken is the order of the commits, so the test records it (wrapping the lock function,
which both paths call) and checks every surviving booking took the lock before the busy time was stored.
"""
from __future__ import annotations

import threading
import time as clock
from datetime import time, timedelta

from sqlalchemy import select

from expertbook.calendars import service as calendars
from expertbook.calendars.models import BusyInterval
from expertbook.errors import Conflict
from expertbook.experts import service as experts
from expertbook.experts.models import Booking
from expertbook.extensions import db
from tests.calendars.helpers import connect_caldav, connection
from tests.experts.helpers import book_kwargs, next_weekday_at, race
from tests.factories import login, make_expert, make_service, make_user


def test_two_customers_and_a_new_busy_event_race_for_the_last_free_time(app, client, radicale, monkeypatch):
    # One free hour a week: Wednesday 10:00-11:00 London.
    profile = make_expert("Ada Expert", handle="ada", timezone="Europe/London", hours={2: [(time(10), time(11))]})
    svc = make_service(profile, "Consultation", slug="consult")
    radicale.calendar("Work")
    login(client, profile.user)
    assert connect_caldav(client, radicale).status_code == 303
    connection_id = connection().id
    customers = [make_user(f"Customer {n}") for n in range(2)]
    customer_kwargs = [book_kwargs(customer) for customer in customers]
    customer_ids = [customer.id for customer in customers]
    service_id = svc.id  # plain values only in the threads: the test's ORM objects belong to its own session

    order: list[str] = []
    who = threading.local()
    original = experts._lock_expert

    def recording_lock(session, expert_id):
        original(session, expert_id)
        order.append(getattr(who, "name", "?"))  # the lock is held from here to the commit

    monkeypatch.setattr(experts, "_lock_expert", recording_lock)

    outcomes_seen = set()
    for week in range(1, 7):
        start = next_weekday_at(10, weeks_ahead=week)
        radicale.add_event("Work", f"busy-{week}", start, start + timedelta(hours=1))
        order.clear()
        head_start = 0.3 if week % 2 == 0 else 0.0  # even weeks: the calendar's read usually commits first

        def book(n: int, start=start, head_start=head_start):
            who.name = f"booking-{n}"
            clock.sleep(head_start)
            experts.book(customer_ids[n], service_id, start, **customer_kwargs[n])

        def read():
            who.name = "refresh"
            assert calendars.refresh(connection_id) == "read"

        outcomes = race(app, [lambda: book(0), lambda: book(1), read])
        assert outcomes[2] == "ok", outcomes
        assert all(outcome == "ok" or isinstance(outcome, Conflict) for outcome in outcomes[:2]), outcomes
        db.session.rollback()
        survivors = db.session.scalars(select(Booking).where(Booking.start_at == start, Booking.status.in_(("pending", "confirmed")))).all()
        assert len(survivors) <= 1
        busy = db.session.scalars(select(BusyInterval).where(BusyInterval.start_at == start)).all()
        assert len(busy) == 1  # the read stored the new busy time
        for booking in survivors:
            name = f"booking-{customer_ids.index(booking.customer_id)}"
            # Its lock came before the one under which the busy time was stored: at its commit the busy time was unknown.
            assert order.index(name) < order.index("refresh"), order
        db.session.rollback()
        outcomes_seen.add(len(survivors))
    # Both ends of the race happened: a booking that got there first, and a busy time that did.
    assert outcomes_seen == {0, 1}, outcomes_seen
