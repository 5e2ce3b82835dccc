"""Reschedule rules: the same checks as booking under the expert's lock, back to pending when the
customer moves a request, same UID with SEQUENCE + 1, only the two parties, and races."""
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from expertbook.errors import Conflict, NotFound, ValidationFailed
from expertbook.experts import service, signals
from expertbook.experts.models import Booking
from expertbook.extensions import db
from tests.experts.helpers import book_kwargs, next_weekday_at, race
from tests.factories import make_expert, make_service, make_user


@pytest.fixture
def expert(app):
    return make_expert("Ada Expert")


def _book(svc, customer, start):
    return service.book(customer.id, svc.id, start, **book_kwargs(customer))


def test_the_customer_moves_a_booking_to_a_free_time(expert):
    consult = make_service(expert)
    customer = make_user()
    ten, two = next_weekday_at(10), next_weekday_at(14)
    booking = _book(consult, customer, ten)
    uid, sequence = booking.ics_uid, booking.ics_sequence
    moved = service.reschedule(customer.id, booking.id, two, "Train delayed")
    assert (moved.start_at, moved.end_at, moved.status) == (two, two + timedelta(hours=1), "confirmed")
    assert (moved.ics_uid, moved.ics_sequence) == (uid, sequence + 1)
    assert (moved.rescheduled_from, moved.reschedule_reason) == (ten, "Train delayed")
    assert (moved.blocked_start, moved.blocked_end) == (two, two + timedelta(hours=1))
    # The old time is free again, the new one is held.
    other = make_user()
    assert _book(consult, other, ten).status == "confirmed"
    with pytest.raises(Conflict, match="just taken"):
        _book(consult, other, two)


def test_the_expert_moves_a_booking_and_its_status_stays(expert):
    consult = make_service(expert, requires_acceptance=True)
    customer = make_user()
    booking = _book(consult, customer, next_weekday_at(10))
    service.respond(expert.user_id, booking.id, accept=True)
    moved = service.reschedule(expert.user_id, booking.id, next_weekday_at(15))
    assert moved.status == "confirmed" and moved.ics_sequence == 2


def test_a_request_the_customer_moves_goes_back_to_pending(expert):
    consult = make_service(expert, requires_acceptance=True)
    customer = make_user()
    booking = _book(consult, customer, next_weekday_at(10))
    service.respond(expert.user_id, booking.id, accept=True)
    seen = []

    def receiver(sender, **kwargs):
        seen.append(kwargs)

    signals.booking_rescheduled.connect(receiver)
    try:
        moved = service.reschedule(customer.id, booking.id, next_weekday_at(11))
    finally:
        signals.booking_rescheduled.disconnect(receiver)
    assert moved.status == "pending"
    [sent] = seen
    assert sent["booking_id"] == booking.id and sent["by_customer"] is True and sent["back_to_pending"] is True
    assert sent["previous_start"] == next_weekday_at(10) and sent["previous_end"] == next_weekday_at(11)
    # It still holds its time while pending, and the expert can accept it again.
    with pytest.raises(Conflict):
        _book(consult, make_user(), next_weekday_at(11))
    assert service.respond(expert.user_id, booking.id, accept=True).status == "confirmed"


def test_the_same_rules_as_booking_apply(expert):
    # 60 minutes and a 30-minute buffer: the times are 08:00, 09:30, 11:00, 12:30, 14:00, 15:30.
    consult = make_service(expert, buffer_after_min=30, horizon_days=60)
    customer, other = make_user(), make_user()
    booking = _book(consult, customer, next_weekday_at(9, 30))
    _book(consult, other, next_weekday_at(14))  # blocks 14:00-15:30
    for start in (
        next_weekday_at(7),  # before the hours
        next_weekday_at(10),  # off the grid
        next_weekday_at(9, 30, weekday=5),  # a Saturday
        next_weekday_at(9, 30, weeks_ahead=12),  # past the horizon
    ):
        with pytest.raises(Conflict, match="not available"):
            service.reschedule(customer.id, booking.id, start)
    with pytest.raises(Conflict, match="just taken"):
        service.reschedule(customer.id, booking.id, next_weekday_at(14))
    with pytest.raises(ValidationFailed):
        service.reschedule(customer.id, booking.id, next_weekday_at(9, 30))  # where it already is
    with pytest.raises(ValidationFailed):
        service.reschedule(customer.id, booking.id, next_weekday_at(12, 30).replace(tzinfo=None))
    assert service.reschedule(customer.id, booking.id, next_weekday_at(12, 30)).start_at == next_weekday_at(12, 30)


def test_a_booking_never_collides_with_its_own_old_time(expert):
    consult = make_service(expert)
    customer = make_user()
    booking = _book(consult, customer, next_weekday_at(10))  # 10:00-11:00
    service.update_service(expert.user_id, consult.id, {**_fields(consult), "duration_min": 30})
    moved = service.reschedule(customer.id, booking.id, next_weekday_at(10, 30))  # inside its own old block
    assert (moved.start_at, moved.end_at) == (next_weekday_at(10, 30), next_weekday_at(11))


def _fields(svc) -> dict:
    return {
        "title": svc.title, "slug": svc.slug, "description": "", "duration_min": svc.duration_min, "price": "0",
        "currency": "USD", "location_kind": svc.location_kind, "location_detail": "", "requires_acceptance": False,
        "video_provider": "auto", "record_meetings": False, "buffer_before_min": 0, "buffer_after_min": 0,
        "min_notice_min": 0, "horizon_days": 365, "hidden": False,
    }


def test_minimum_notice_applies_to_the_new_time(expert):
    consult = make_service(expert, min_notice_min=60 * 24 * 14)
    customer = make_user()
    booking = _book(consult, customer, next_weekday_at(10, weeks_ahead=4))
    with pytest.raises(Conflict, match="not available"):
        service.reschedule(customer.id, booking.id, next_weekday_at(10, weeks_ahead=1))


def test_only_the_two_parties_and_only_active_future_bookings(expert):
    consult = make_service(expert)
    customer, stranger = make_user(), make_user()
    booking = _book(consult, customer, next_weekday_at(10))
    with pytest.raises(NotFound):
        service.reschedule(stranger.id, booking.id, next_weekday_at(12))
    with pytest.raises(NotFound):
        service.reschedule(customer.id, booking.id + 1000, next_weekday_at(12))
    service.cancel(customer.id, booking.id)
    with pytest.raises(Conflict, match="already cancelled"):
        service.reschedule(customer.id, booking.id, next_weekday_at(12))
    started = _book(consult, customer, next_weekday_at(14))
    with pytest.raises(Conflict, match="already started"):
        service.reschedule(customer.id, started.id, next_weekday_at(15), now=started.start_at + timedelta(minutes=5))


def test_a_deleted_service_cannot_be_moved_but_a_hidden_one_can(expert):
    consult = make_service(expert)
    customer = make_user()
    booking = _book(consult, customer, next_weekday_at(10))
    service.set_service_hidden(expert.user_id, consult.id, True)
    assert service.reschedule(customer.id, booking.id, next_weekday_at(11)).start_at == next_weekday_at(11)
    service.delete_service(expert.user_id, consult.id)
    with pytest.raises(Conflict, match="no longer offered"):
        service.reschedule(customer.id, booking.id, next_weekday_at(12))


def test_two_customers_moving_to_the_same_time_exactly_one_wins(app, backend, expert):
    consult = make_service(expert)
    customers = [make_user() for _ in range(8)]
    bookings = [_book(consult, c, next_weekday_at(8 + i, weekday=1 + i // 8)) for i, c in enumerate(customers)]
    target = next_weekday_at(16, weekday=3)
    plain = [(c.id, b.id) for c, b in zip(customers, bookings)]
    outcomes = race(app, [lambda p=p: service.reschedule(p[0], p[1], target) for p in plain])
    assert sum(o == "ok" for o in outcomes) == 1, outcomes
    assert all(o == "ok" or (isinstance(o, Conflict) and o.message == service.TAKEN) for o in outcomes), outcomes
    at_target = db.session.scalar(select(func.count(Booking.id)).where(Booking.start_at == target))
    assert at_target == 1


def test_a_move_racing_a_new_booking_for_the_same_time_never_overlaps(app, backend, expert):
    consult = make_service(expert)
    movers = [make_user() for _ in range(4)]
    newcomers = [make_user() for _ in range(4)]
    bookings = [_book(consult, c, next_weekday_at(9 + i)) for i, c in enumerate(movers)]
    target = next_weekday_at(15)
    service_id = consult.id
    calls = [lambda c=c.id, b=b.id: service.reschedule(c, b, target) for c, b in zip(movers, bookings)]
    calls += [lambda c=c.id, kw=book_kwargs(c): service.book(c, service_id, target, **kw) for c in newcomers]
    outcomes = race(app, calls)
    assert sum(o == "ok" for o in outcomes) == 1, outcomes
    assert db.session.scalar(select(func.count(Booking.id)).where(Booking.start_at == target)) == 1


def test_two_moves_of_one_booking_racing_both_land_in_order(app, backend, expert):
    consult = make_service(expert)
    customer = make_user()
    booking = _book(consult, customer, next_weekday_at(9))
    starts = [next_weekday_at(11), next_weekday_at(13)]
    ids = (customer.id, expert.user_id)
    outcomes = race(app, [lambda i=i: service.reschedule(ids[i], booking.id, starts[i]) for i in range(2)])
    assert all(o == "ok" for o in outcomes), outcomes  # serialised by the lock: the second moves it again
    final = db.session.get(Booking, booking.id)
    assert final.start_at in starts and final.ics_sequence == 2
    assert final.rescheduled_from in [next_weekday_at(9), *starts]
