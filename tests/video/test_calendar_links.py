"""Meeting links in calendar files: the customer's .ics and feed entry carry the join link (LOCATION,
URL, DESCRIPTION), the expert's carry our start route, never Zoom's start_url. Real Zoom stand-in."""
from __future__ import annotations

import re

from icalendar import Calendar

from expertbook.experts import service as experts
from tests.factories import login, make_service, make_user
from tests.notifications.conftest import smtp  # noqa: F401 - the SMTP server fixture
from tests.video.test_booking_meetings import BASE, app_config, book, meeting_of, profile  # noqa: F401 - fixtures


def _event(data: bytes):
    [event] = Calendar.from_ical(data).walk("VEVENT")
    return event


def _assert_link(event, link: str) -> None:
    assert str(event["LOCATION"]) == link and str(event["URL"]) == link and link in str(event["DESCRIPTION"])


def _no_host_secret(data: bytes, zoom) -> None:
    text = data.decode()
    assert "zak=" not in text and f"{zoom.url}/s/" not in text


def test_each_side_downloads_its_own_link(client, profile, zoom, make_client):
    customer = make_user("Sinduja Vel")
    booking = book(make_service(profile), customer)
    join_url = meeting_of(booking.id).join_url
    start_route = f"{BASE}/video/meetings/{booking.id}/start"

    login(client, customer)
    mine = client.get(f"/experts/bookings/{booking.id}/booking.ics").data
    _assert_link(_event(mine), join_url)
    assert start_route not in mine.decode()
    _no_host_secret(mine, zoom)

    expert_client = make_client()
    login(expert_client, profile.user)
    theirs = expert_client.get(f"/experts/bookings/{booking.id}/booking.ics").data
    _assert_link(_event(theirs), start_route)
    assert join_url not in theirs.decode()
    _no_host_secret(theirs, zoom)


def test_the_feed_carries_each_sides_link_and_no_link_once_cancelled(client, profile, zoom):
    customer = make_user("Sinduja Vel")
    booking = book(make_service(profile), customer)
    join_url = meeting_of(booking.id).join_url
    login(client, customer)
    client.post_form("/experts/calendar-feed/reset", {})
    page = client.get("/experts/calendar-feed").get_data(as_text=True)
    feed = re.search(r'id="feed-url" value="http://testserver.example([^"]+)"', page).group(1)
    [event] = Calendar.from_ical(client.get(feed).data).walk("VEVENT")
    _assert_link(event, join_url)
    experts.cancel(customer.id, booking.id)
    [event] = Calendar.from_ical(client.get(feed).data).walk("VEVENT")
    assert str(event["STATUS"]) == "CANCELLED" and "URL" not in event and join_url not in str(event["DESCRIPTION"])


def test_a_link_still_being_made_is_not_in_the_file(client, profile, zoom):
    from expertbook.devtools.zoom_standin import MEETING_CREATE

    zoom.standin.fail(MEETING_CREATE, "500")
    customer = make_user()
    booking = book(make_service(profile), customer)
    login(client, customer)
    event = _event(client.get(f"/experts/bookings/{booking.id}/booking.ics").data)
    assert str(event["LOCATION"]) == "Video meeting" and "URL" not in event
