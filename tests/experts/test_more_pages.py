"""Pages of issue 16: reschedule (customer and expert), booking as a guest and its private manage
link, and the calendar feed with its settings page."""
import re
from datetime import timedelta

import pytest
from icalendar import Calendar
from sqlalchemy import select, update

from expertbook.database import transaction
from expertbook.experts import service
from expertbook.experts.models import Booking
from expertbook.extensions import db
from tests.experts.helpers import book_kwargs, next_weekday_at
from tests.factories import login, make_expert, make_service, make_user


@pytest.fixture
def svc(app):
    return make_service(make_expert("Ada Expert", handle="ada"), "Consultation", slug="consult")


def _key(page: str) -> str:
    return re.search(r'name="idempotency_key" type="hidden" value="([^"]+)"', page).group(1)


def _guest_post(client, start, email="gita@example.com", ip="10.1.0.1", **extra):
    return client.post_form("/expert/ada/consult", {
        "start": start.isoformat(), "tz": "America/New_York", "idempotency_key": extra.pop("key", "k-" + email + start.isoformat()),
        "name": "Gita Guest", "email": email, "phone": "+1 212 555 0100", "notes": "Hello", **extra,
    }, environ_base={"REMOTE_ADDR": ip})


# ---------------------------------------------------------------------------- reschedule


def test_the_customer_reschedules_from_the_booking_page(client, svc):
    customer = make_user("Cara Customer")
    booking = service.book(customer.id, svc.id, next_weekday_at(10), **book_kwargs(customer))
    login(client, customer)
    detail = client.get(f"/experts/bookings/{booking.id}").get_data(as_text=True)
    url = f"/experts/bookings/{booking.id}/reschedule"
    assert f'href="{url}"' in detail
    new = next_weekday_at(14)
    page = client.get(f"{url}?tz=Europe/London&day={new.date().isoformat()}&start={new.isoformat()}")
    body = page.get_data(as_text=True)
    assert page.status_code == 200 and 'id="reschedule-form"' in body and f'data-start="{new.isoformat()}"' in body
    assert 'name="idempotency_key"' not in body  # the move asks for a reason, not contact details
    moved = client.post_form(url, {"start": new.isoformat(), "tz": "Europe/London", "reason": "Clash"})
    assert moved.status_code == 303 and moved.headers["Location"].endswith(f"/experts/bookings/{booking.id}")
    db.session.rollback()
    row = db.session.get(Booking, booking.id)
    assert (row.start_at, row.reschedule_reason) == (new, "Clash")
    shown = client.get(f"/experts/bookings/{booking.id}").get_data(as_text=True)
    assert "Moved" in shown and "Clash" in shown


def test_the_reschedule_picker_offers_the_times_the_booking_itself_overlaps(client, svc):
    """Hours changed since the booking (the grid now starts at 08:30): 09:30 and 10:30 overlap the 10:00
    booking only, which is the one being moved, so they are offered for the move (and nobody else)."""
    from datetime import time

    customer = make_user("Cara Customer")
    booking = service.book(customer.id, svc.id, next_weekday_at(10), **book_kwargs(customer))
    service.set_weekly_hours(svc.expert.user_id, {d: [(time(8, 30), time(17))] for d in range(5)})
    day = next_weekday_at(10).date()
    neighbours = {next_weekday_at(9, 30), next_weekday_at(10, 30)}
    assert not neighbours & set(service.times_on(svc, day, "Europe/London"))
    offered_for_the_move = set(service.times_on(svc, day, "Europe/London", moving=booking.id))
    assert neighbours <= offered_for_the_move and booking.start_at not in offered_for_the_move  # not its own time
    login(client, customer)
    page = client.get(f"/experts/bookings/{booking.id}/reschedule?tz=Europe/London&day={day.isoformat()}").get_data(as_text=True)
    assert all(f'data-start="{start.isoformat()}"' in page for start in neighbours)
    moved = client.post_form(f"/experts/bookings/{booking.id}/reschedule", {"start": next_weekday_at(10, 30).isoformat(), "tz": "Europe/London"})
    assert moved.status_code == 303


def test_a_time_just_taken_answers_409_with_the_fresh_times(client, svc, make_client):
    customer, other = make_user(), make_user()
    booking = service.book(customer.id, svc.id, next_weekday_at(10), **book_kwargs(customer))
    wanted = next_weekday_at(15)
    service.book(other.id, svc.id, wanted, **book_kwargs(other))
    login(client, customer)
    taken = client.post_form(f"/experts/bookings/{booking.id}/reschedule", {"start": wanted.isoformat(), "tz": "Europe/London", "reason": "x"}, htmx=True)
    body = taken.get_data(as_text=True)
    assert taken.status_code == 409 and "That time was just taken" in body
    assert body.lstrip().startswith('<section id="booking-panel"') and f'data-start="{wanted.isoformat()}"' not in body
    # Anyone else: 404, whatever they try.
    stranger = make_client()
    login(stranger, make_user())
    assert stranger.get(f"/experts/bookings/{booking.id}/reschedule").status_code == 404
    assert stranger.post_form(f"/experts/bookings/{booking.id}/reschedule", {"start": next_weekday_at(16).isoformat()}).status_code == 404


def test_the_expert_reschedules_from_the_dashboard(client, svc):
    customer = make_user()
    booking = service.book(customer.id, svc.id, next_weekday_at(10), **book_kwargs(customer))
    login(client, svc.expert.user)
    dashboard = client.get("/expert-dashboard").get_data(as_text=True)
    assert f'href="/experts/bookings/{booking.id}/reschedule"' in dashboard
    new = next_weekday_at(9)
    assert client.post_form(f"/experts/bookings/{booking.id}/reschedule", {"start": new.isoformat(), "tz": "Europe/London"}).status_code == 303
    db.session.rollback()
    assert db.session.get(Booking, booking.id).start_at == new


def test_reschedule_needs_csrf(client, svc):
    customer = make_user()
    booking = service.book(customer.id, svc.id, next_weekday_at(10), **book_kwargs(customer))
    login(client, customer)
    response = client.post(f"/experts/bookings/{booking.id}/reschedule", data={"start": next_weekday_at(14).isoformat()})
    assert response.status_code in (400, 403)
    db.session.rollback()
    assert db.session.get(Booking, booking.id).start_at == next_weekday_at(10)


# ---------------------------------------------------------------------------- guests


def test_a_guest_books_on_the_page_and_manages_it_through_the_private_link(client, svc):
    start = next_weekday_at(10)
    response = _guest_post(client, start)
    assert response.status_code == 303
    location = response.headers["Location"]
    assert "/experts/manage/" in location
    db.session.rollback()
    booking = db.session.scalar(select(Booking))
    assert (booking.customer_id, booking.is_guest, booking.customer_timezone) == (None, True, "America/New_York")
    page = client.get(location)
    body = page.get_data(as_text=True)
    assert page.status_code == 200 and "Gita Guest" in body and "Confirmed" in body
    assert page.headers["Cache-Control"] == "private, no-store" and page.headers["Referrer-Policy"] == "no-referrer"
    ics = client.get(location + "/booking.ics")
    assert ics.status_code == 200 and ics.headers["Content-Type"].startswith("text/calendar")
    assert str(Calendar.from_ical(ics.data).walk("VEVENT")[0]["UID"]) == f"{booking.ics_uid}@expertbook"
    # Move it, then cancel it; the same link shows each new state.
    new = next_weekday_at(13)
    moved = client.post_form(location + "/reschedule", {"start": new.isoformat(), "tz": "America/New_York", "reason": "Later"})
    assert moved.status_code == 303 and moved.headers["Location"] == location
    assert "Later" in client.get(location).get_data(as_text=True)
    cancelled = client.post_form(location + "/cancel", {"reason": "Sorry"}, htmx=True)
    assert cancelled.status_code == 200 and 'id="manage-detail"' in cancelled.get_data(as_text=True)
    body = client.get(location).get_data(as_text=True)
    assert "Cancelled" in body and "by you" in body and "Sorry" in body and 'data-action="reschedule"' not in body
    again = client.post_form(location + "/cancel", {"reason": ""}, htmx=True)
    assert again.status_code == 409


def test_wrong_and_expired_manage_links_are_404(client, svc):
    assert _guest_post(client, next_weekday_at(10)).status_code == 303
    db.session.rollback()
    booking = db.session.scalar(select(Booking))
    token = service.manage_token(booking)
    for bad in (token[:-2] + "xx", "x" * 40, token + "A"):
        for path in (f"/experts/manage/{bad}", f"/experts/manage/{bad}/booking.ics", f"/experts/manage/{bad}/reschedule"):
            assert client.get(path).status_code == 404, path
        assert client.post_form(f"/experts/manage/{bad}/cancel", {"reason": ""}).status_code == 404
    # Once the booking has ended the link is dead, whatever it is used for.
    with transaction():
        db.session.execute(update(Booking).where(Booking.id == booking.id).values(
            start_at=booking.start_at - timedelta(days=30), end_at=booking.end_at - timedelta(days=30)))
    for path in (f"/experts/manage/{token}", f"/experts/manage/{token}/booking.ics", f"/experts/manage/{token}/reschedule"):
        assert client.get(path).status_code == 404, path
    assert client.post_form(f"/experts/manage/{token}/cancel", {"reason": ""}).status_code == 404
    db.session.rollback()
    assert db.session.get(Booking, booking.id).status == "confirmed"


def test_a_manage_link_is_revoked_when_its_booking_joins_an_account_and_says_so(app, client, svc):
    booking = service.book(None, svc.id, next_weekday_at(9), name="Gita Guest", email="gita@example.com", phone="", notes="", customer_timezone="Europe/London")
    token = service.manage_token(booking)
    assert client.get(f"/experts/manage/{token}").status_code == 200
    owner = make_user("Gita Guest", "gita@example.com")
    assert service.claim_guest_bookings(owner.id) == 1
    page = client.get(f"/experts/manage/{token}")
    assert page.status_code == 404 and "now in your account" in page.get_data(as_text=True)
    assert client.post_form(f"/experts/manage/{token}/cancel", {"reason": ""}).status_code == 404
    login(client, owner)
    assert client.get(f"/experts/bookings/{booking.id}").status_code == 200


def test_failed_manage_links_are_throttled_per_client_address(app, client, svc):
    app.config["MANAGE_LINK_LIMIT_PER_IP"] = "3 per minute"
    for _ in range(3):
        assert client.get("/experts/manage/guess-" + "a" * 30, environ_base={"REMOTE_ADDR": "10.2.0.1"}).status_code == 404
    assert client.get("/experts/manage/guess-" + "b" * 30, environ_base={"REMOTE_ADDR": "10.2.0.1"}).status_code == 429
    assert client.get("/experts/manage/guess-" + "b" * 30, environ_base={"REMOTE_ADDR": "10.2.0.2"}).status_code == 404


def test_guessing_behind_a_shared_address_never_locks_out_a_working_link(app, client, svc):
    """30 bad lookups from one NAT address (the default limit per minute) refuse further bad lookups from
    there, but every guest behind it keeps their own link: a working link is neither counted nor refused."""
    booking = service.book(None, svc.id, next_weekday_at(9), name="Gita Guest", email="gita@example.com", phone="", notes="", customer_timezone="Europe/London")
    token = service.manage_token(booking)
    nat = {"REMOTE_ADDR": "10.2.0.9"}
    for _ in range(5):  # the guest's own visits do not count towards the limit
        assert client.get(f"/experts/manage/{token}", environ_base=nat).status_code == 200
    for n in range(30):
        assert client.get(f"/experts/manage/guess-{n:04d}" + "a" * 30, environ_base=nat).status_code == 404, n
    assert client.get("/experts/manage/guess-x" + "a" * 30, environ_base=nat).status_code == 429
    for path in (f"/experts/manage/{token}", f"/experts/manage/{token}/booking.ics", f"/experts/manage/{token}/reschedule"):
        assert client.get(path, environ_base=nat).status_code == 200, path
    cancelled = client.post_form(f"/experts/manage/{token}/cancel", {"reason": ""}, environ_base=nat)
    assert cancelled.status_code == 303
    db.session.rollback()
    assert db.session.get(Booking, booking.id).status == "cancelled"


def test_failed_lookups_of_one_bookings_link_are_throttled_across_addresses(app, client, svc):
    """Guesses at one booking's signature from many addresses share one bucket (the token's prefix, the
    part that names the booking); the link itself keeps working, and other bookings' links are not affected."""
    app.config["MANAGE_LINK_LIMIT_PER_PREFIX"] = "2 per hour"
    booking = service.book(None, svc.id, next_weekday_at(9), name="Gita Guest", email="gita@example.com", phone="", notes="", customer_timezone="Europe/London")
    token = service.manage_token(booking)
    payload, _, signature = token.rpartition(".")
    for n, address in enumerate(("10.4.0.1", "10.4.0.2")):
        guess = f"{payload}.{'A' * (len(signature) - 1)}{n}"
        assert client.get(f"/experts/manage/{guess}", environ_base={"REMOTE_ADDR": address}).status_code == 404
    refused = client.get(f"/experts/manage/{payload}.{'B' * len(signature)}", environ_base={"REMOTE_ADDR": "10.4.0.3"})
    assert refused.status_code == 429
    assert client.get(f"/experts/manage/{token}", environ_base={"REMOTE_ADDR": "10.4.0.3"}).status_code == 200
    assert client.get("/experts/manage/guess-" + "c" * 30, environ_base={"REMOTE_ADDR": "10.4.0.3"}).status_code == 404


def test_moves_through_one_manage_link_are_throttled(app, client, svc):
    """Each move emails the expert: one link moves its booking a few times, then answers 429; refused
    moves (a time just taken) do not count, and another guest's link is not affected."""
    app.config["MANAGE_MOVES_LIMIT_PER_LINK"] = "2 per hour"
    mine = service.book(None, svc.id, next_weekday_at(9), name="Gita Guest", email="gita@example.com", phone="", notes="", customer_timezone="Europe/London")
    theirs = service.book(None, svc.id, next_weekday_at(9, weeks_ahead=2), name="Hari Guest", email="hari@example.com", phone="", notes="", customer_timezone="Europe/London")
    url = f"/experts/manage/{service.manage_token(mine)}/reschedule"
    taken = next_weekday_at(9, weeks_ahead=2)  # theirs: a refused move, not counted
    assert client.post_form(url, {"start": taken.isoformat(), "tz": "Europe/London"}).status_code == 409
    for hour in (11, 13):
        assert client.post_form(url, {"start": next_weekday_at(hour).isoformat(), "tz": "Europe/London"}).status_code == 303
    assert client.post_form(url, {"start": next_weekday_at(15).isoformat(), "tz": "Europe/London"}).status_code == 429
    assert client.get(url).status_code == 200  # looking is not moving
    other = f"/experts/manage/{service.manage_token(theirs)}/reschedule"
    assert client.post_form(other, {"start": next_weekday_at(14, weeks_ahead=2).isoformat(), "tz": "Europe/London"}).status_code == 303


def test_the_move_limit_counts_per_booking_whichever_way_its_link_is_spelled(app, client, svc):
    """Today's decoder would take other spellings of one link (padding, the signature's unused bits):
    each would have had a move limit of its own. Only the exact link opens the booking, so its moves
    (and the expert's emails) stop at the limit."""
    from tests.experts.test_guests import other_spellings

    app.config["MANAGE_MOVES_LIMIT_PER_LINK"] = "2 per hour"
    mine = service.book(None, svc.id, next_weekday_at(9), name="Gita Guest", email="gita@example.com", phone="", notes="", customer_timezone="Europe/London")
    token = service.manage_token(mine)
    for hour in (11, 13):
        assert client.post_form(f"/experts/manage/{token}/reschedule", {"start": next_weekday_at(hour).isoformat(), "tz": "Europe/London"}).status_code == 303
    for spelling in other_spellings(token):
        moved = client.post_form(f"/experts/manage/{spelling}/reschedule", {"start": next_weekday_at(15).isoformat(), "tz": "Europe/London"})
        assert moved.status_code == 404, spelling
        assert client.get(f"/experts/manage/{spelling}").status_code == 404
    assert client.post_form(f"/experts/manage/{token}/reschedule", {"start": next_weekday_at(15).isoformat(), "tz": "Europe/London"}).status_code == 429
    db.session.rollback()
    assert db.session.get(Booking, mine.id).start_at == next_weekday_at(13)


def test_the_page_and_the_api_share_the_guest_throttle(app, client, svc):
    app.config["GUEST_BOOKING_LIMIT_PER_EMAIL"] = "2 per hour"
    service_id = svc.id
    db.session.rollback()
    assert _guest_post(client, next_weekday_at(8), email="flood@example.com", ip="10.3.0.1").status_code == 303
    api = client.post("/api/bookings", environ_base={"REMOTE_ADDR": "10.3.0.2"},
                      json={"serviceId": service_id, "start": next_weekday_at(9).isoformat(), "name": "F", "email": "Flood@example.com"})
    assert api.status_code == 201
    assert _guest_post(client, next_weekday_at(10), email="flood@example.com", ip="10.3.0.3").status_code == 429
    # Invalid input (422) does not use up the allowance.
    for _ in range(3):
        assert _guest_post(client, next_weekday_at(11), email="typo@example.com", ip="10.3.0.4", phone="call me").status_code == 422
    assert _guest_post(client, next_weekday_at(11), email="typo@example.com", ip="10.3.0.4").status_code == 303
    # A logged-in customer is not a guest and not throttled by it.
    customer = make_user(email="flood@example.com")
    login(client, customer)
    assert _guest_post(client, next_weekday_at(12), email="flood@example.com", ip="10.3.0.1").status_code == 303


# ---------------------------------------------------------------------------- the calendar feed


def _feed_path(client) -> str:
    page = client.get("/experts/calendar-feed").get_data(as_text=True)
    return re.search(r'id="feed-url" value="http://testserver.example([^"]+)"', page).group(1)


def test_the_feed_settings_page_turns_on_renews_and_turns_off(client, svc):
    customer = make_user()
    login(client, customer)
    page = client.get("/experts/calendar-feed").get_data(as_text=True)
    assert 'id="feed-on"' in page and "feed-url" not in page
    assert 'id="calendar-feed-link"' in client.get("/my-bookings").get_data(as_text=True)
    on = client.post_form("/experts/calendar-feed/reset", {}, htmx=True)
    assert on.status_code == 200 and on.get_data(as_text=True).lstrip().startswith('<section id="calendar-feed"')
    path = _feed_path(client)
    assert re.fullmatch(r"/experts/feed/[A-Za-z0-9_-]{43}\.ics", path)
    assert 'href="webcal://testserver.example' + path + '"' in client.get("/experts/calendar-feed").get_data(as_text=True)
    assert client.get(path).status_code == 200
    client.post_form("/experts/calendar-feed/reset", {})
    renewed = _feed_path(client)
    assert renewed != path and client.get(path).status_code == 404 and client.get(renewed).status_code == 200
    client.post_form("/experts/calendar-feed/revoke", {})
    assert client.get(renewed).status_code == 404
    assert client.post("/experts/calendar-feed/reset").status_code in (400, 403)  # CSRF


def test_two_first_feed_resets_at_once_both_succeed_and_leave_one_address(app):
    """Two tabs turn the feed on at the same moment: no row exists yet to lock, so both insert; the loser
    tries again on the winner's row instead of answering 500."""
    from expertbook.experts.models import CalendarFeed
    from tests.experts.helpers import race

    for _ in range(5):
        user_id = make_user().id  # read here: the threads must not touch the test's own session
        outcomes = race(app, [lambda: service.reset_calendar_feed(user_id)] * 4)
        assert outcomes == ["ok"] * 4
        assert len(db.session.scalars(select(CalendarFeed).where(CalendarFeed.user_id == user_id)).all()) == 1


def test_the_feed_lists_both_roles_in_their_zones_with_cancelled_ones_and_answers_304(client, svc, make_client):
    expert_user = svc.expert.user
    other_expert = make_expert("Bo Expert", timezone="Asia/Tokyo")
    other = make_service(other_expert, "Tax")
    customer = make_user()
    # The expert's clients book with them, and the expert books someone else as a customer.
    mine = service.book(customer.id, svc.id, next_weekday_at(10), **book_kwargs(customer, customer_timezone="America/New_York"))
    gone = service.book(customer.id, svc.id, next_weekday_at(12), **book_kwargs(customer))
    service.cancel(customer.id, gone.id, "Ill")
    as_customer = service.book(expert_user.id, other.id, next_weekday_at(9, tz="Asia/Tokyo"),
                               **book_kwargs(expert_user, customer_timezone="Europe/Paris"))
    service.book(make_user().id, other.id, next_weekday_at(11, tz="Asia/Tokyo"), **book_kwargs(customer))  # not theirs
    login(client, expert_user)
    client.post_form("/experts/calendar-feed/reset", {})
    path = _feed_path(client)
    response = client.get(path)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/calendar")
    calendar = Calendar.from_ical(response.data)
    events = {str(e["UID"]).split("@")[0]: e for e in calendar.walk("VEVENT")}
    assert set(events) == {mine.ics_uid, gone.ics_uid, as_customer.ics_uid}
    assert str(events[gone.ics_uid]["STATUS"]) == "CANCELLED"
    assert str(events[mine.ics_uid]["STATUS"]) == "CONFIRMED"
    assert events[mine.ics_uid]["DTSTART"].params["TZID"] == "Europe/London"  # the expert's own zone for their clients
    assert events[as_customer.ics_uid]["DTSTART"].params["TZID"] == "Europe/Paris"  # the zone they booked in
    assert events[mine.ics_uid].decoded("DTSTART") == mine.start_at
    assert {str(tz["TZID"]) for tz in calendar.walk("VTIMEZONE")} == {"Europe/London", "Europe/Paris"}
    # Calendar apps poll: unchanged answers 304, by ETag or by date.
    etag, modified = response.headers["ETag"], response.headers["Last-Modified"]
    assert client.get(path, headers={"If-None-Match": etag}).status_code == 304
    assert client.get(path, headers={"If-Modified-Since": modified}).status_code == 304
    # Any change to a booking in it changes the ETag.
    service.reschedule(customer.id, mine.id, next_weekday_at(14))
    changed = client.get(path, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    # A booking leaving the 90-day window changes the feed though no booking changed: so does Last-Modified.
    db.session.rollback()
    left_at = max(b.end_at for b in service.feed_bookings(expert_user.id)) + timedelta(days=service.FEED_PAST_DAYS)
    later = left_at + timedelta(hours=1)
    assert service.feed_last_changed(expert_user.id, service.feed_bookings(expert_user.id, now=later), now=later) == left_at
    # The feed needs no login (the token is the key), and others' tokens open nothing.
    calendar_app = make_client()
    assert calendar_app.get(path).status_code == 200
    assert calendar_app.get("/experts/feed/" + "x" * 43 + ".ics").status_code == 404
