"""A rescheduled video booking's meeting is moved at Zoom (PATCH), never re-created: the real
Zoom stand-in over HTTP, jobs in-process."""
from __future__ import annotations

from expertbook.experts import service as experts
from expertbook.video.standin import MEETING_CREATE, MEETING_DELETE, MEETING_PATCH
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
