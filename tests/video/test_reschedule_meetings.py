"""A rescheduled video booking's meeting is moved at Zoom (PATCH), never re-created: the real
Zoom stand-in over HTTP, jobs in-process."""
from __future__ import annotations

from expertbook.experts import service as experts
from expertbook.devtools.zoom_standin import MEETING_CREATE, MEETING_DELETE, MEETING_PATCH
from tests.experts.helpers import book_kwargs, next_weekday_at
from tests.factories import make_service, make_user
from tests.video.test_booking_meetings import app_config, book, meeting_of, profile  # noqa: F401 - fixtures
from tests.notifications.conftest import smtp  # noqa: F401 - the SMTP server fixture


def test_a_moved_booking_moves_its_zoom_meeting_with_the_same_link(profile, zoom):
    booking = book(make_service(profile))
    before = meeting_of(booking.id)
    external_id, join_url = before.external_id, before.join_url
    new = next_weekday_at(15, tz=profile.timezone)
    experts.reschedule(booking.customer_id, booking.id, new, "Clash")
    after = meeting_of(booking.id)
    assert zoom.standin.calls[MEETING_CREATE] == 1 and zoom.standin.calls[MEETING_PATCH] == 1
    assert (after.external_id, after.join_url) == (external_id, join_url)
    assert after.scheduled_start == new and after.status == "created" and after.next_attempt_at is None
    assert zoom.standin.meetings[after.external_id]["start_time"] == new.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_the_expert_moving_it_twice_patches_twice(profile, zoom):
    booking = book(make_service(profile))
    experts.reschedule(profile.user_id, booking.id, next_weekday_at(13, tz=profile.timezone))
    experts.reschedule(profile.user_id, booking.id, next_weekday_at(16, tz=profile.timezone))
    meeting = meeting_of(booking.id)
    assert zoom.standin.calls[MEETING_CREATE] == 1 and zoom.standin.calls[MEETING_PATCH] == 2
    assert zoom.standin.meetings[meeting.external_id]["start_time"] == next_weekday_at(16, tz=profile.timezone).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_request_moved_back_to_pending_keeps_its_meeting_moved_and_accepting_creates_none(profile, zoom):
    svc = make_service(profile, "Tax advice", requires_acceptance=True)
    customer = make_user("Ana Customer")
    booking = experts.book(customer.id, svc.id, next_weekday_at(10, tz=profile.timezone), **book_kwargs(customer))
    experts.respond(profile.user_id, booking.id, accept=True)
    join_url = meeting_of(booking.id).join_url
    new = next_weekday_at(11, tz=profile.timezone)
    assert experts.reschedule(customer.id, booking.id, new).status == "pending"
    moved = meeting_of(booking.id)
    assert moved.join_url == join_url and moved.scheduled_start == new  # moved at once, not left at the old time
    assert zoom.standin.calls[MEETING_PATCH] == 1
    experts.respond(profile.user_id, booking.id, accept=True)
    assert zoom.standin.calls[MEETING_CREATE] == 1 and zoom.standin.calls[MEETING_DELETE] == 0
    assert meeting_of(booking.id).join_url == join_url


def test_a_meeting_that_vanished_at_zoom_is_created_again_on_the_move(profile, zoom):
    booking = book(make_service(profile))
    gone = meeting_of(booking.id).external_id
    del zoom.standin.meetings[gone]
    experts.reschedule(booking.customer_id, booking.id, next_weekday_at(14, tz=profile.timezone))
    again = meeting_of(booking.id)
    assert zoom.standin.calls[MEETING_CREATE] == 2 and again.status == "created" and again.external_id != gone
    assert again.scheduled_start == next_weekday_at(14, tz=profile.timezone)


def test_meetings_waiting_to_be_created_all_wait_on_one_refused_grant(profile, zoom, smtp):  # noqa: F811
    from datetime import timedelta

    from expertbook.database import utcnow
    from expertbook.video import meetings
    from expertbook.devtools.zoom_standin import TOKEN_REFRESH
    from tests.video.conftest import expire_stored_token

    zoom.standin.fail(MEETING_CREATE, "500", times=None)  # Zoom is down: three meetings wait for a retry
    svc = make_service(profile, "Technology Consulting Session")
    bookings = [book(svc, make_user(f"Customer {n}", f"c{n}@example.com"), hour=10 + 2 * n) for n in range(3)]
    assert {meeting_of(b.id).status for b in bookings} == {"pending"}
    zoom.standin.clear_faults()
    expire_stored_token(profile.user_id, zoom.standin)
    zoom.standin.revoke_all()
    refreshes = zoom.standin.calls[TOKEN_REFRESH]
    meetings.relay(now=utcnow() + timedelta(hours=2))
    # The first refusal parks the others: one refresh attempt, not one per booking, and all three wait.
    assert zoom.standin.calls[TOKEN_REFRESH] == refreshes + 1
    assert [meeting_of(b.id).status for b in bookings] == ["reauth_needed"] * 3
    assert [b.id for b in meetings.waiting_on_reauth(profile.user_id)] == [b.id for b in bookings]
    assert all(meeting_of(b.id).next_attempt_at is None for b in bookings)
