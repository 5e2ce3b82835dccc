"""Issue 14 for experts: readable, searchable time zones with the aliases browsers report, My bookings keeps
cancelled bookings apart, the calendar opens on the first month with a free time, and live pages are never cached."""
from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from expertbook.errors import ValidationFailed
from expertbook.experts import service, zones
from tests.experts.helpers import book_kwargs, next_weekday_at
from tests.factories import login, make_expert, make_service, make_user


@pytest.mark.parametrize(
    ("sent", "zone"),
    [
        ("Asia/Kolkata", "Asia/Kolkata"),
        ("Asia/Calcutta", "Asia/Kolkata"),  # what older browsers report
        ("Europe/Kiev", "Europe/Kyiv"),
        ("US/Eastern", "America/New_York"),
        ("GMT", "UTC"),
        ("Etc/UTC", "UTC"),
        ("India (Kolkata)", "Asia/Kolkata"),
        ("  india (kolkata) ", "Asia/Kolkata"),
        ("United Kingdom (London)", "Europe/London"),
        ("London", "Europe/London"),
        ("asia/tokyo", "Asia/Tokyo"),
        ("Europe/Amsterdam", "Europe/Amsterdam"),  # listed for its own country, kept although tzdata links it
        ("Nowhere/Special", None),
        ("", None),
    ],
)
def test_canonical_zone_names(sent, zone):
    assert zones.canonical(sent) == zone


def test_readable_names_for_the_picker():
    labels = {z.name: z.label for z in zones.zones()}
    assert labels["Asia/Kolkata"] == "India (Kolkata)"
    assert labels["Europe/London"] == "United Kingdom (London)"
    assert labels["America/Chicago"] == "United States (Chicago)"
    assert labels["UTC"] == "UTC (Coordinated Universal Time)"
    assert "Asia/Calcutta" not in labels  # aliases are understood, not listed
    assert len(labels) == len(set(labels.values())) > 300  # every entry readable and distinct
    names = [z.label for z in zones.zones()]
    assert names == sorted(names, key=str.casefold)
    options = dict(zones.options(datetime(2026, 1, 5, 12, tzinfo=ZoneInfo("UTC"))))
    assert options["India (Kolkata)"] == "Asia/Kolkata · UTC+05:30"
    assert options["United Kingdom (London)"] == "Europe/London · UTC+00:00"


def test_profiles_and_bookings_store_the_canonical_zone(app):
    user = make_user()
    profile = service.create_profile(user.id, "Ada", "", "", "ada-expert", "Asia/Calcutta")
    assert profile.timezone == "Asia/Kolkata"
    service.update_profile(user.id, "Ada", "", "", "ada-expert", "United Kingdom (London)")
    assert service.profile_of(user.id).timezone == "Europe/London"
    with pytest.raises(ValidationFailed) as refused:
        service.update_profile(user.id, "Ada", "", "", "ada-expert", "Atlantis")
    assert "India (Kolkata) or London" in refused.value.errors["timezone"][0]
    assert service.valid_timezone("Asia/Calcutta", "tz") == "Asia/Kolkata"


def test_pages_show_readable_zone_names(app, client):
    profile = make_expert(handle="ada", timezone="Asia/Kolkata")
    make_service(profile, slug="consult")
    page = client.get("/expert/ada").get_data(as_text=True)
    assert "Works in India (Kolkata) time." in page
    assert '<datalist id="tz-options">' in page and '<option value="India (Kolkata)">Asia/Kolkata · UTC+05:30</option>' in page
    booking = client.get("/expert/ada/consult?tz=Asia/Calcutta").get_data(as_text=True)
    assert booking.count('<datalist id="tz-options">') == 1
    fragment = client.get("/expert/ada/consult?tz=London", headers={"HX-Request": "true"}).get_data(as_text=True)
    # The suggestions live on the page once; the swapped panel only points at them.
    assert "tz-options" in fragment and "<datalist" not in fragment
    assert 'value="United Kingdom (London)" data-tz-input data-zone="Europe/London"' in fragment


def test_my_bookings_lists_cancelled_bookings_apart_and_offers_their_removal(app, client):
    expert = make_expert(handle="ada")
    svc = make_service(expert, slug="consult")
    customer = make_user("Cara Customer")
    keep = service.book(customer.id, svc.id, next_weekday_at(10), **book_kwargs(customer))
    drop = service.book(customer.id, svc.id, next_weekday_at(13), **book_kwargs(customer))
    service.cancel(customer.id, drop.id, "Changed my mind")
    login(client, customer)
    response = client.get("/my-bookings")
    assert response.headers["Cache-Control"] == "no-store"
    html = response.get_data(as_text=True)
    upcoming, rest = html.split("<h2>Cancelled or declined</h2>")
    called_off, _past = rest.split("<h2>Past</h2>")
    assert f'id="booking-{keep.id}"' in upcoming and f'id="booking-{drop.id}"' not in upcoming
    assert f'id="booking-{drop.id}"' in called_off
    assert "Add to calendar" in upcoming and "Add to calendar" not in called_off
    assert "Remove from calendar" in called_off and "Cancel…" not in called_off


def test_the_calendar_opens_on_the_first_month_with_a_free_time(app, client):
    # No weekly hours at all; one date next month has hours, so this month is empty.
    profile = make_expert(handle="ada", timezone="Europe/London", hours={})
    svc = make_service(profile, slug="consult")
    today = datetime.now(ZoneInfo("Europe/London")).date()
    first_next = (today.replace(day=1) + timedelta(days=32)).replace(day=1)
    open_day = first_next + timedelta(days=3)
    service.set_override(profile.user_id, open_day, [(time(9), time(12))])
    page = client.get("/expert/ada/consult?tz=Europe/London").get_data(as_text=True)
    assert f'<h2 id="month-label">{first_next:%B %Y}</h2>' in page
    assert f'data-day="{open_day.isoformat()}"' in page
    # The accessible name of a day starts with the number it shows (axe: label-content-name-mismatch).
    link = re.search(rf'<a [^>]*data-day="{open_day.isoformat()}"[^>]*>(.*?)</a>', page).group(1)
    assert re.fullmatch(rf'{open_day.day}<span class="visually-hidden"> {open_day:%B}, {open_day:%A}: times available</span>', link)
    assert "aria-label=" not in page.split('id="month-calendar"')[1].split("</table>")[0].replace('aria-label="Previous month"', "").replace('aria-label="Next month"', "")
    # Asking for a month still shows that month.
    assert f'<h2 id="month-label">{today:%B %Y}</h2>' in client.get(f"/expert/ada/consult?tz=Europe/London&month={today:%Y-%m}").get_data(as_text=True)
    assert service.first_day_with_times(svc, today, today + timedelta(days=70), "Europe/London") == open_day


def test_expert_pages_with_live_state_are_never_cached(app, client):
    profile = make_expert(handle="ada")
    svc = make_service(profile, slug="consult")
    customer = make_user()
    booking = service.book(customer.id, svc.id, next_weekday_at(10), **book_kwargs(customer))
    for url in ("/expert/ada", "/expert/ada/consult"):
        assert client.get(url).headers["Cache-Control"] == "no-store", url
    login(client, customer)
    assert client.get(f"/experts/bookings/{booking.id}").headers["Cache-Control"] == "no-store"
