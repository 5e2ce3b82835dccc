"""Booking rules: no double booking (also under a 50-customer race), buffers and services of
different lengths, idempotent double submits, compare-and-swap accept/decline, cancel, access, signals."""
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from expertbook.errors import Conflict, NotFound, ValidationFailed
from expertbook.experts import service, signals
from expertbook.experts.models import Booking
from expertbook.extensions import db
from tests.experts.helpers import book_kwargs, next_weekday_at
from tests.factories import make_expert, make_service, make_user


@pytest.fixture
def expert(app):
    return make_expert("Ada Expert")


def test_booking_confirms_at_once_and_blocks_the_time(expert):
    consult = make_service(expert)
    customer, other = make_user(), make_user()
    start = next_weekday_at(10)
    booking = service.book(customer.id, consult.id, start, **book_kwargs(customer))
    assert booking.status == "confirmed"
    assert (booking.start_at, booking.end_at) == (start, start + timedelta(hours=1))
    assert start not in service.offered_times(consult, start - timedelta(hours=3), start + timedelta(hours=3))
    with pytest.raises(Conflict, match="That time was just taken"):
        service.book(other.id, consult.id, start, **book_kwargs(other))


def test_requires_acceptance_makes_a_pending_request_that_still_holds_the_time(expert):
    consult = make_service(expert, requires_acceptance=True)
    customer, other = make_user(), make_user()
    start = next_weekday_at(11)
    booking = service.book(customer.id, consult.id, start, **book_kwargs(customer))
    assert booking.status == "pending"
    with pytest.raises(Conflict):
        service.book(other.id, consult.id, start, **book_kwargs(other))


def test_times_outside_the_hours_or_off_grid_are_refused(expert):
    consult = make_service(expert)
    customer = make_user()
    for start in (next_weekday_at(7), next_weekday_at(10, 20), next_weekday_at(10, weekday=5), next_weekday_at(16, 30)):
        with pytest.raises(Conflict, match="not available"):
            service.book(customer.id, consult.id, start, **book_kwargs(customer))


def test_minimum_notice_and_horizon_are_enforced_on_booking(expert):
    consult = make_service(expert, min_notice_min=60 * 24 * 30, horizon_days=60)
    customer = make_user()
    with pytest.raises(Conflict):
        service.book(customer.id, consult.id, next_weekday_at(10), **book_kwargs(customer))
    with pytest.raises(Conflict):
        service.book(customer.id, consult.id, next_weekday_at(10, weeks_ahead=12), **book_kwargs(customer))
    assert service.book(customer.id, consult.id, next_weekday_at(10, weeks_ahead=6), **book_kwargs(customer)).status == "confirmed"


def test_overlap_with_buffers_and_services_of_different_lengths(expert):
    # Each service's grid steps by its duration plus buffers from 08:00: Hour+15 -> 08:00, 09:15, 10:30 ...
    hour = make_service(expert, "Hour", duration_min=60, buffer_after_min=15)
    half = make_service(expert, "Half", duration_min=30)
    two = make_service(expert, "Two hours", duration_min=120)
    a, b = make_user(), make_user()
    eight = next_weekday_at(8)
    service.book(a.id, hour.id, eight + timedelta(minutes=75), **book_kwargs(a))  # 09:15-10:15, blocks until 10:30
    # 09:30 and 10:00 (half hour) and 08:00-10:00 (two hours) all overlap 09:15-10:30.
    for svc, start in ((half, timedelta(minutes=90)), (half, timedelta(minutes=120)), (two, timedelta(0))):
        with pytest.raises(Conflict, match="just taken"):
            service.book(b.id, svc.id, eight + start, **book_kwargs(b))
    # Right after the buffer ends, a half-hour fits.
    assert service.book(b.id, half.id, eight + timedelta(minutes=150), **book_kwargs(b)).status == "confirmed"
    # A two-hour meeting 10:00-12:00 now overlaps both bookings.
    with pytest.raises(Conflict, match="just taken"):
        service.book(b.id, two.id, eight + timedelta(hours=2), **book_kwargs(b))
    # The buffer before a service also counts: 60 min with 30 min before, on a 90 min grid (08:00, 09:30, 11:00 ...).
    prepared = make_service(expert, "Prepared", duration_min=60, buffer_before_min=30)
    with pytest.raises(Conflict, match="just taken"):
        service.book(b.id, prepared.id, eight + timedelta(hours=3), **book_kwargs(b))  # its buffer 10:30-11:00 hits 10:30-11:00
    _assert_no_overlap(expert.id)


def test_two_hour_service_fits_exactly_before_a_booking(expert):
    two = make_service(expert, "Two hours", duration_min=120)
    hour = make_service(expert, "Hour", duration_min=60)
    a, b = make_user(), make_user()
    ten = next_weekday_at(10)
    service.book(a.id, hour.id, ten, **book_kwargs(a))
    booking = service.book(b.id, two.id, ten - timedelta(hours=2), **book_kwargs(b))
    assert booking.end_at == ten
    _assert_no_overlap(expert.id)


def _assert_no_overlap(expert_id):
    rows = db.session.scalars(select(Booking).where(Booking.expert_id == expert_id, Booking.status.in_(["pending", "confirmed"])).order_by(Booking.blocked_start)).all()
    for first, second in zip(rows, rows[1:]):
        assert first.blocked_end <= second.blocked_start, (first.id, second.id)


def test_declined_and_cancelled_bookings_free_the_time(expert):
    consult = make_service(expert, requires_acceptance=True)
    a, b, c = make_user(), make_user(), make_user()
    start = next_weekday_at(13)
    first = service.book(a.id, consult.id, start, **book_kwargs(a))
    service.respond(expert.user_id, first.id, accept=False)
    second = service.book(b.id, consult.id, start, **book_kwargs(b))
    service.cancel(b.id, second.id, "Changed plans")
    assert service.book(c.id, consult.id, start, **book_kwargs(c)).status == "pending"


def test_idempotent_double_submit_returns_the_same_booking(expert):
    consult = make_service(expert)
    customer = make_user()
    start = next_weekday_at(14)
    first = service.book(customer.id, consult.id, start, idempotency_key="k-1", **book_kwargs(customer))
    assert not first.replayed  # the API answers 201...
    again = service.book(customer.id, consult.id, start, idempotency_key="k-1", **book_kwargs(customer))
    assert again.id == first.id and again.replayed  # ...then 200
    assert db.session.scalar(select(func.count(Booking.id))) == 1


def test_racing_retries_with_one_key_make_one_booking_and_one_new_answer(app, expert):
    consult = make_service(expert)
    customer = make_user()
    customer_id, consult_id, kwargs = customer.id, consult.id, book_kwargs(customer)
    start = next_weekday_at(15)
    replayed = []

    def attempt():
        replayed.append(service.book(customer_id, consult_id, start, idempotency_key="k-race", **kwargs).replayed)

    assert _race(app, [attempt] * 4) == ["ok"] * 4
    assert sorted(replayed) == [False, True, True, True]
    assert db.session.scalar(select(func.count(Booking.id))) == 1


def test_contact_details_are_validated(expert):
    consult = make_service(expert)
    customer = make_user()
    with pytest.raises(ValidationFailed) as error:
        service.book(customer.id, consult.id, next_weekday_at(10), **book_kwargs(customer, name="", email="nope", phone="call me", customer_timezone="Mars/Base"))
    assert set(error.value.errors) == {"name", "email", "phone", "customer_timezone"}


def test_hidden_deleted_and_own_services_cannot_be_booked(expert):
    hidden = make_service(expert, hidden=True)
    gone = make_service(expert)
    service.delete_service(expert.user_id, gone.id)
    customer = make_user()
    for svc in (hidden, gone):
        with pytest.raises(NotFound):
            service.book(customer.id, svc.id, next_weekday_at(10), **book_kwargs(customer))
    own = make_service(expert)
    with pytest.raises(Conflict):
        service.book(expert.user_id, own.id, next_weekday_at(10), **book_kwargs(expert.user))


def test_deleting_a_service_keeps_its_bookings(expert):
    consult = make_service(expert)
    customer = make_user()
    booking = service.book(customer.id, consult.id, next_weekday_at(10), **book_kwargs(customer))
    service.delete_service(expert.user_id, consult.id)
    db.session.rollback()
    assert db.session.get(Booking, booking.id).service.title == "Consultation"
    assert service.bookings_as_customer(customer.id)[0].id == booking.id


def test_accept_is_compare_and_swap(expert):
    consult = make_service(expert, requires_acceptance=True)
    customer = make_user()
    booking = service.book(customer.id, consult.id, next_weekday_at(10), **book_kwargs(customer))
    accepted = service.respond(expert.user_id, booking.id, accept=True)
    assert (accepted.status, accepted.ics_sequence) == ("confirmed", 1)
    with pytest.raises(Conflict, match="already confirmed"):
        service.respond(expert.user_id, booking.id, accept=True)
    with pytest.raises(Conflict):
        service.respond(expert.user_id, booking.id, accept=False)
    # The customer cannot answer their own request.
    other = service.book(customer.id, consult.id, next_weekday_at(12), **book_kwargs(customer))
    with pytest.raises(NotFound):
        service.respond(customer.id, other.id, accept=True)


def test_concurrent_accept_and_decline_have_one_winner(app, expert):
    consult = make_service(expert, requires_acceptance=True)
    customer = make_user()
    booking_id = service.book(customer.id, consult.id, next_weekday_at(10), **book_kwargs(customer)).id
    expert_user_id = expert.user_id
    outcomes = _race(app, [lambda i=i: service.respond(expert_user_id, booking_id, accept=i % 2 == 0) for i in range(10)])
    assert sum(1 for o in outcomes if o == "ok") == 1
    assert all(o == "ok" or isinstance(o, Conflict) for o in outcomes)


def test_cancel_by_either_party_once(expert):
    consult = make_service(expert)
    customer = make_user()
    one = service.book(customer.id, consult.id, next_weekday_at(10), **book_kwargs(customer))
    two = service.book(customer.id, consult.id, next_weekday_at(12), **book_kwargs(customer))
    cancelled = service.cancel(customer.id, one.id, "Ill")
    assert (cancelled.status, cancelled.cancel_reason, cancelled.cancelled_by, cancelled.ics_sequence) == ("cancelled", "Ill", customer.id, 1)
    with pytest.raises(Conflict):
        service.cancel(expert.user_id, one.id)
    by_expert = service.cancel(expert.user_id, two.id)
    assert by_expert.cancelled_by == expert.user_id


def test_only_the_customer_and_the_expert_see_a_booking(expert):
    consult = make_service(expert)
    customer, stranger = make_user(), make_user()
    booking = service.book(customer.id, consult.id, next_weekday_at(10), **book_kwargs(customer))
    assert service.booking_for(customer.id, booking.id).id == booking.id
    assert service.booking_for(expert.user_id, booking.id).id == booking.id
    for call in (
        lambda: service.booking_for(stranger.id, booking.id),
        lambda: service.cancel(stranger.id, booking.id),
        lambda: service.respond(stranger.id, booking.id, True),
    ):
        with pytest.raises(NotFound):
            call()


def _committed_status(booking_id: int) -> str | None:
    """The booking's status as another connection sees it: only what has been committed."""
    from sqlalchemy import text

    with db.engine.connect() as other:
        return other.execute(text("SELECT status FROM bookings WHERE id = :id"), {"id": booking_id}).scalar()


def test_signals_are_sent_inside_the_booking_transaction(expert):
    consult = make_service(expert, requires_acceptance=True)
    instant = make_service(expert)
    customer = make_user()
    seen = []

    def recorder(name):
        def receive(sender, **kwargs):
            # Inside the transaction: the change is flushed (this session sees it), not yet committed.
            booking = db.session.get(Booking, kwargs["booking_id"])
            seen.append((name, kwargs, bool(db.session.info.get("uow_depth")), booking.status, _committed_status(booking.id)))
        return receive

    receivers = {sig: recorder(name) for sig, name in [
        (signals.booking_requested, "requested"), (signals.booking_confirmed, "confirmed"),
        (signals.booking_declined, "declined"), (signals.booking_cancelled, "cancelled")]}
    for sig, receiver in receivers.items():
        sig.connect(receiver)
    try:
        a = service.book(customer.id, consult.id, next_weekday_at(10), **book_kwargs(customer))
        b = service.book(customer.id, consult.id, next_weekday_at(12), **book_kwargs(customer))
        c = service.book(customer.id, instant.id, next_weekday_at(14), **book_kwargs(customer))
        service.respond(expert.user_id, a.id, True)
        service.respond(expert.user_id, b.id, False)
        service.cancel(expert.user_id, c.id, "sorry")
        with pytest.raises(Conflict):
            service.book(customer.id, instant.id, next_weekday_at(10), **book_kwargs(customer))  # refused: no signal
    finally:
        for sig, receiver in receivers.items():
            sig.disconnect(receiver)
    assert seen == [
        ("requested", {"booking_id": a.id}, True, "pending", None),
        ("requested", {"booking_id": b.id}, True, "pending", None),
        ("confirmed", {"booking_id": c.id, "accepted": False}, True, "confirmed", None),
        ("confirmed", {"booking_id": a.id, "accepted": True}, True, "confirmed", "pending"),
        ("declined", {"booking_id": b.id}, True, "declined", "pending"),
        ("cancelled", {"booking_id": c.id, "cancelled_by": expert.user_id}, True, "cancelled", "confirmed"),
    ]


def test_a_failure_after_the_receivers_rolls_back_the_booking_with_every_row_written_for_it(expert, monkeypatch):
    """The outbox rule: rows written by receivers (emails, the meeting) commit with the booking, or not at all."""
    from expertbook.notifications.models import OutboxEmail
    from expertbook.video.models import Meeting

    video = make_service(expert)  # a video service: the meeting row and (for non-video) emails are written by receivers
    in_person = make_service(expert, location_kind="in_person", location_detail="1 High Street")
    customer = make_user()
    written = []
    send = signals.booking_confirmed.send

    def send_then_fail(*args, **kwargs):
        send(*args, **kwargs)
        # Every receiver has written its rows into this very transaction; now a later step fails.
        written.append((db.session.scalar(select(func.count()).select_from(Meeting)),
                        db.session.scalar(select(func.count()).select_from(OutboxEmail))))
        raise RuntimeError("a later step of the booking failed")

    monkeypatch.setattr(signals.booking_confirmed, "send", send_then_fail)
    for svc in (video, in_person):
        with pytest.raises(RuntimeError):
            service.book(customer.id, svc.id, next_weekday_at(10), **book_kwargs(customer))
    monkeypatch.undo()
    assert written == [(1, 0), (0, 2)]  # the video booking's meeting row; the in-person booking's two emails
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Booking)) == 0
    assert db.session.scalar(select(func.count()).select_from(OutboxEmail)) == 0
    assert db.session.scalar(select(func.count()).select_from(Meeting)) == 0
    # Without the failing step the same bookings write their rows.
    service.book(customer.id, video.id, next_weekday_at(10), **book_kwargs(customer))
    service.book(customer.id, in_person.id, next_weekday_at(12), **book_kwargs(customer))
    assert db.session.scalar(select(Meeting.status)) == "created"  # a Jitsi room, made in-process after the commit
    # Two confirmations each: the in-person booking's at once, the video booking's with its meeting links.
    assert db.session.scalar(select(func.count()).select_from(OutboxEmail)) == 4


# ---------------------------------------------------------------------------- races


def _race(app, calls):
    """Run each call in its own thread (and app context, so its own DB session), all released together."""
    barrier = threading.Barrier(len(calls))
    outcomes = [None] * len(calls)

    def run(index, call):
        with app.app_context():
            barrier.wait()
            try:
                call()
                outcomes[index] = "ok"
            except Exception as exc:  # noqa: BLE001 - the test inspects it
                outcomes[index] = exc
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    db.session.rollback()  # end the test's own read snapshot, so it sees what the threads committed
    return outcomes


def test_fifty_customers_race_for_one_time_exactly_one_wins(app, backend, expert):
    consult = make_service(expert)
    customers = [make_user() for _ in range(50)]
    start = next_weekday_at(10)
    # Threads get plain values: ORM objects belong to the test's session.
    service_id = consult.id
    plain = [(c.id, book_kwargs(c)) for c in customers]
    calls = [lambda c=c: service.book(c[0], service_id, start, **c[1]) for c in plain]
    outcomes = _race(app, calls)
    winners = [o for o in outcomes if o == "ok"]
    losers = [o for o in outcomes if o != "ok"]
    assert len(winners) == 1, outcomes
    assert all(isinstance(o, Conflict) and o.message == service.TAKEN for o in losers), {repr(o) for o in losers}
    assert db.session.scalar(select(func.count(Booking.id))) == 1


def test_racing_services_of_different_lengths_never_overlap(app, backend, expert):
    hour = make_service(expert, "Hour", duration_min=60, buffer_after_min=30)
    half = make_service(expert, "Half", duration_min=30)
    customers = [make_user() for _ in range(20)]
    ten = next_weekday_at(10)
    # Every candidate overlaps the 60+30 minute block at 10:00 or one of the half-hours inside it.
    starts = [(hour, ten), (half, ten), (half, ten + timedelta(minutes=30)), (half, ten + timedelta(hours=1)), (half, ten + timedelta(minutes=90))]
    starts = [(svc.id, at) for svc, at in starts]
    plain = [(c.id, book_kwargs(c)) for c in customers]
    calls = [lambda c=c, i=i: service.book(c[0], starts[i % 5][0], starts[i % 5][1], **c[1]) for i, c in enumerate(plain)]
    outcomes = _race(app, calls)
    assert all(o == "ok" or isinstance(o, Conflict) for o in outcomes), outcomes
    _assert_no_overlap(expert.id)
    assert 1 <= sum(o == "ok" for o in outcomes) <= 4


def test_same_idempotency_key_racing_makes_one_booking(app, backend, expert):
    consult = make_service(expert)
    customer = make_user()
    start = next_weekday_at(15)
    ids = []
    customer_id, service_id, kwargs = customer.id, consult.id, book_kwargs(customer)

    def call():
        ids.append(service.book(customer_id, service_id, start, idempotency_key="double-click", **kwargs).id)

    outcomes = _race(app, [call] * 8)
    assert outcomes == ["ok"] * 8
    assert len(set(ids)) == 1


def test_a_booking_that_is_over_cannot_be_cancelled(expert):
    consult = make_service(expert)
    customer = make_user()
    booking = service.book(customer.id, consult.id, next_weekday_at(10), **book_kwargs(customer))
    with pytest.raises(Conflict, match="over"):
        service.cancel(customer.id, booking.id, now=booking.end_at + timedelta(minutes=1))


def test_an_email_problem_never_costs_an_expert_booking(app, monkeypatch):
    """The expert emails go through the same guard as the clinic's: a failing email is logged, the booking stays."""
    from expertbook.experts import emails
    from expertbook.notifications.models import OutboxEmail

    def broken(*args, **kwargs):
        raise RuntimeError("template engine on fire")

    monkeypatch.setattr(emails, "queue_email", broken)
    profile = make_expert()
    svc = make_service(profile, "Office visit", location_kind="in_person", location_detail="1 High Street")
    customer = make_user()
    booking = service.book(customer.id, svc.id, next_weekday_at(10, tz=profile.timezone), **book_kwargs(customer))
    db.session.rollback()
    assert db.session.get(Booking, booking.id).status == "confirmed"
    assert db.session.scalar(select(func.count()).select_from(OutboxEmail)) == 0


def test_a_customer_name_our_emails_could_not_carry_is_refused(expert):
    customer = make_user()
    svc = make_service(expert)
    kwargs = {**book_kwargs(customer), "name": "ann@example.com"}
    with pytest.raises(ValidationFailed) as caught:
        service.book(customer.id, svc.id, next_weekday_at(10), **kwargs)
    assert "name" in caught.value.errors
    assert db.session.scalar(select(func.count(Booking.id))) == 0
