"""The expert pages through the web: becoming an expert, settings, marketplace, the booking page,
my bookings, the dashboard, live polling and access rules."""
import re
from datetime import date, time, timedelta

from sqlalchemy import func, select

from expertbook.experts import service
from expertbook.experts.models import Booking, ExpertProfile, Service, WeeklyHours
from expertbook.extensions import db
from tests.experts.helpers import book_kwargs, next_weekday_at
from tests.factories import login, make_expert, make_service, make_user


def _become(client, **overrides):
    data = {"display_name": "Grace Hopper", "headline": "Compilers", "bio": "Navy", "handle": "grace", "timezone": "America/New_York"}
    data.update(overrides)
    return client.post_form("/profile/become-expert", data)


def test_become_an_expert_sets_up_a_profile_with_default_hours(client):
    user = make_user("Grace Hopper")
    login(client, user)
    page = client.get("/profile").get_data(as_text=True)
    assert 'name="handle"' in page and "data-detect-tz" in page
    response = _become(client)
    assert response.status_code == 303 and response.headers["Location"].endswith("/experts/settings/services")
    profile = db.session.scalar(select(ExpertProfile))
    assert (profile.handle, profile.timezone, profile.user.is_expert) == ("grace", "America/New_York", True)
    hours = db.session.scalars(select(WeeklyHours).order_by(WeeklyHours.weekday)).all()
    assert [(h.weekday, h.start_time, h.end_time) for h in hours] == [(d, time(8), time(17)) for d in range(5)]
    assert "/expert/grace" in client.get("/profile").get_data(as_text=True)


def test_become_an_expert_validates_handle_and_zone(client):
    make_expert(handle="taken")
    login(client, make_user())
    for overrides, field in (({"handle": "api"}, "reserved"), ({"handle": "Bad Handle!"}, "lower-case"), ({"handle": "taken"}, "taken"), ({"timezone": "Mars/Olympus"}, "time zone")):
        response = _become(client, **overrides)
        assert response.status_code == 422
        assert field in response.get_data(as_text=True)
    db.session.rollback()
    assert db.session.scalar(select(func.count(ExpertProfile.id))) == 1


def test_services_create_edit_hide_delete(client):
    profile = make_expert()
    login(client, profile.user)
    data = {"title": "Tax review", "duration_min": "45", "price": "120.50", "currency": "eur", "location_kind": "video", "horizon_days": "30", "min_notice_min": "0"}
    assert client.post_form("/experts/settings/services/new", data).status_code == 303
    svc = db.session.scalar(select(Service))
    assert (svc.slug, svc.price_cents, svc.currency, svc.duration_min) == ("tax-review", 12050, "EUR", 45)
    bad = client.post_form("/experts/settings/services/new", {**data, "location_kind": "in_person"})
    assert bad.status_code == 422 and "Give the address" in bad.get_data(as_text=True)
    dup = client.post_form("/experts/settings/services/new", data)
    assert dup.status_code == 422 and "already have a service" in dup.get_data(as_text=True)
    assert client.post_form(f"/experts/settings/services/{svc.id}", {**data, "title": "Tax review plus", "slug": "tax", "requires_acceptance": "y"}).status_code == 303
    db.session.rollback()
    assert (svc.title, svc.slug, svc.requires_acceptance) == ("Tax review plus", "tax", True)
    client.post_form(f"/experts/settings/services/{svc.id}/visibility", {}, htmx=True)
    db.session.rollback()
    assert svc.hidden
    assert client.get(f"/expert/{profile.handle}/tax").status_code == 404
    client.post_form(f"/experts/settings/services/{svc.id}/delete", {}, htmx=True)
    db.session.rollback()
    assert svc.deleted_at is not None
    assert "Tax review" not in client.get("/experts/settings/services").get_data(as_text=True)


def test_other_experts_services_and_settings_are_404(client):
    mine, theirs = make_expert(), make_expert()
    svc = make_service(theirs)
    login(client, mine.user)
    assert client.get(f"/experts/settings/services/{svc.id}").status_code == 404
    assert client.post_form(f"/experts/settings/services/{svc.id}/delete", {}).status_code == 404
    login(client, make_user())  # not an expert
    for url in ("/expert-dashboard", "/experts/settings/hours", "/experts/settings/services", "/experts/settings/profile"):
        assert client.get(url).status_code == 404


def test_weekly_hours_and_overrides(client):
    profile = make_expert()
    login(client, profile.user)
    assert "08:00-17:00" in client.get("/experts/settings/hours").get_data(as_text=True)
    week = {f"day{d}": "" for d in range(7)}
    week.update(day0="08:00-12:00, 13:00-17:00", day5="10:00-14:00")
    assert client.post_form("/experts/settings/hours", week).status_code == 303
    db.session.rollback()
    assert service.weekly_ranges(profile.id) == {0: [(time(8), time(12)), (time(13), time(17))], 5: [(time(10), time(14))]}
    bad = client.post_form("/experts/settings/hours", {**week, "day1": "09:00-08:00"})
    assert bad.status_code == 422 and "ends before it starts" in bad.get_data(as_text=True)
    overlap = client.post_form("/experts/settings/hours", {**week, "day1": "09:00-12:00, 11:00-13:00"})
    assert overlap.status_code == 422
    day = date.today() + timedelta(days=10)
    assert client.post_form("/experts/settings/overrides", {"day": day.isoformat(), "ranges": ""}).status_code == 303
    db.session.rollback()
    assert service.overrides_of(profile.id) == {day: []}
    client.post_form("/experts/settings/overrides", {"day": day.isoformat(), "ranges": "10:00-11:00"})
    db.session.rollback()
    assert service.overrides_of(profile.id) == {day: [(time(10), time(11))]}
    assert "Day off" not in client.get("/experts/settings/hours").get_data(as_text=True)
    client.post_form(f"/experts/settings/overrides/{day.isoformat()}/delete", {})
    db.session.rollback()
    assert service.overrides_of(profile.id) == {}


def test_marketplace_search_by_name_service_or_keyword(client):
    ada = make_expert("Ada Lovelace", handle="ada")
    make_service(ada, "Analytical engines")
    make_expert("Alan Turing", handle="alan")
    for q, expected, absent in (("lovelace", "Ada Lovelace", "Alan Turing"), ("engines", "Ada Lovelace", "Alan Turing"), ("turing", "Alan Turing", "Ada Lovelace")):
        page = client.get(f"/experts?q={q}").get_data(as_text=True)
        assert expected in page and absent not in page
    fragment = client.get("/experts?q=zzz", headers={"HX-Request": "true"})
    assert fragment.get_data(as_text=True).lstrip().startswith('<section id="expert-results"')
    assert "No expert matches" in fragment.get_data(as_text=True)


def test_public_profile_shows_services_and_the_next_14_times(client):
    profile = make_expert(handle="ada")
    make_service(profile, "Consultation")
    page = client.get("/expert/ada?tz=Asia/Kolkata").get_data(as_text=True)
    assert "Consultation" in page
    links = re.findall(r'href="(/expert/ada/[^"]+start=[^"]+)"', page)
    assert len(links) == 14
    assert client.get("/expert/nobody").status_code == 404


def test_booking_page_calendar_times_and_booking(client):
    profile = make_expert(handle="ada")
    svc = make_service(profile, "Consultation", slug="consult")
    start = next_weekday_at(10)
    day = start.date()
    url = f"/expert/ada/consult?tz=Europe/London&month={day:%Y-%m}&day={day.isoformat()}"
    page = client.get(url).get_data(as_text=True)
    assert f'data-day="{day.isoformat()}"' in page
    assert f'data-start="{start.isoformat()}"' in page
    saturday = day + timedelta(days=(5 - day.weekday()) % 7)
    if saturday.month == day.month:
        assert f'data-day="{saturday.isoformat()}"' not in page  # weekends are disabled
    # Times are shown in the customer's zone, with the expert's noted.
    tokyo = client.get(f"/expert/ada/consult?tz=Asia/Tokyo&day={start.astimezone(__import__('zoneinfo').ZoneInfo('Asia/Tokyo')).date()}").get_data(as_text=True)
    assert "works in United Kingdom (London) time" in tokyo
    # Not logged in: the form books as a guest (tests/experts/test_guest_pages.py), or offers to log in.
    form_page = client.get(url + f"&start={start.isoformat()}").get_data(as_text=True)
    assert 'id="guest-note"' in form_page and 'id="booking-form"' in form_page and "/login?next=" in form_page
    customer = make_user("Cara Customer")
    login(client, customer)
    form_page = client.get(url + f"&start={start.isoformat()}").get_data(as_text=True)
    assert 'value="Cara Customer"' in form_page and customer.email in form_page  # prefilled
    key = re.search(r'name="idempotency_key" type="hidden" value="([^"]+)"', form_page).group(1)
    data = {"start": start.isoformat(), "tz": "Europe/London", "idempotency_key": key, "name": "Cara Customer", "email": customer.email, "phone": "", "notes": "Hello"}
    response = client.post_form("/expert/ada/consult", data)
    assert response.status_code == 303
    db.session.rollback()
    booking = db.session.scalar(select(Booking))
    assert response.headers["Location"].endswith(f"/experts/bookings/{booking.id}")
    assert "Confirmed" in client.get(f"/experts/bookings/{booking.id}").get_data(as_text=True)
    # The double submit (same hidden key) lands on the same booking.
    again = client.post_form("/expert/ada/consult", data)
    assert again.headers["Location"].endswith(f"/experts/bookings/{booking.id}")
    db.session.rollback()
    assert db.session.scalar(select(func.count(Booking.id))) == 1
    # Someone else wanting the same time gets 409 with the fresh times of that day.
    other = make_user()
    login(client, other)
    taken = client.post_form("/expert/ada/consult", {**data, "idempotency_key": "other", "name": other.name, "email": other.email}, htmx=True)
    body = taken.get_data(as_text=True)
    assert taken.status_code == 409
    assert "That time was just taken" in body and body.lstrip().startswith('<section id="booking-panel"')
    assert f'data-start="{start.isoformat()}"' not in body
    assert f'data-start="{(start + timedelta(hours=1)).isoformat()}"' in body


def test_booking_form_errors_are_422(client):
    profile = make_expert(handle="ada")
    make_service(profile, slug="consult")
    login(client, make_user())
    start = next_weekday_at(10)
    response = client.post_form("/expert/ada/consult", {"start": start.isoformat(), "tz": "Europe/London", "name": "X", "email": "not-an-email", "idempotency_key": "k"}, htmx=True)
    assert response.status_code == 422
    db.session.rollback()
    assert db.session.scalar(select(func.count(Booking.id))) == 0


def test_pending_request_accept_and_live_updates(client, make_client):
    profile = make_expert(handle="ada")
    svc = make_service(profile, requires_acceptance=True)
    customer = make_user()
    booking = service.book(customer.id, svc.id, next_weekday_at(10), **book_kwargs(customer))
    expert_client = make_client()
    login(expert_client, profile.user)
    login(client, customer)
    assert "Pending" in client.get(f"/experts/bookings/{booking.id}").get_data(as_text=True)
    stamp = re.search(r'/my-bookings\?since=([^"]+)"', client.get("/my-bookings").get_data(as_text=True)).group(1)
    # Polling answers 204 (nothing to swap) until something changes.
    assert client.get(f"/my-bookings?since={stamp}", headers={"HX-Request": "true"}).status_code == 204
    dash = expert_client.get("/expert-dashboard").get_data(as_text=True)
    assert "Requests to answer" in dash and booking.customer_name in dash
    accepted = expert_client.post_form(f"/experts/bookings/{booking.id}/accept", {"view": "dashboard"}, htmx=True)
    assert accepted.status_code == 200 and accepted.get_data(as_text=True).lstrip().startswith('<div id="dashboard"')
    again = expert_client.post_form(f"/experts/bookings/{booking.id}/accept", {"view": "dashboard"}, htmx=True)
    assert again.status_code == 409 and "already confirmed" in again.get_data(as_text=True)
    live = client.get(f"/my-bookings?since={stamp}", headers={"HX-Request": "true"})
    assert live.status_code == 200 and 'data-status="confirmed"' in live.get_data(as_text=True)
    assert client.get(f"/experts/bookings/{booking.id}?since=0", headers={"HX-Request": "true"}).status_code == 200
    detail_stamp = re.search(r'/experts/bookings/\d+\?since=([^"]+)"', client.get(f"/experts/bookings/{booking.id}").get_data(as_text=True)).group(1)
    assert client.get(f"/experts/bookings/{booking.id}?since={detail_stamp}", headers={"HX-Request": "true"}).status_code == 204


def test_decline_tells_the_customer_and_frees_the_time(client, make_client):
    profile = make_expert(handle="ada")
    svc = make_service(profile, requires_acceptance=True)
    customer = make_user()
    start = next_weekday_at(10)
    booking = service.book(customer.id, svc.id, start, **book_kwargs(customer))
    expert_client = make_client()
    login(expert_client, profile.user)
    expert_client.post_form(f"/experts/bookings/{booking.id}/decline", {"view": "detail"})
    login(client, customer)
    assert "declined this request" in client.get(f"/experts/bookings/{booking.id}").get_data(as_text=True)
    db.session.rollback()
    assert start in service.times_on(svc, start.date(), "UTC")


def test_either_party_cancels_with_a_reason(client, make_client):
    profile = make_expert(handle="ada")
    svc = make_service(profile)
    customer = make_user()
    one = service.book(customer.id, svc.id, next_weekday_at(10), **book_kwargs(customer))
    two = service.book(customer.id, svc.id, next_weekday_at(12), **book_kwargs(customer))
    login(client, customer)
    response = client.post_form(f"/experts/bookings/{one.id}/cancel", {"reason": "Flu", "view": "mine"}, htmx=True)
    assert response.status_code == 200 and "Reason: Flu" in response.get_data(as_text=True)
    expert_client = make_client()
    login(expert_client, profile.user)
    expert_client.post_form(f"/experts/bookings/{two.id}/cancel", {"reason": "", "view": "dashboard"}, htmx=True)
    db.session.rollback()
    assert (one.status, one.cancelled_by, two.status, two.cancelled_by) == ("cancelled", customer.id, "cancelled", profile.user_id)
    assert "Cancelled by the expert" in client.get(f"/experts/bookings/{two.id}").get_data(as_text=True)


def test_strangers_get_404_for_someone_elses_booking(client):
    profile = make_expert(handle="ada")
    svc = make_service(profile, requires_acceptance=True)
    customer = make_user()
    booking = service.book(customer.id, svc.id, next_weekday_at(10), **book_kwargs(customer))
    login(client, make_user())
    assert client.get(f"/experts/bookings/{booking.id}").status_code == 404
    assert client.get(f"/experts/bookings/{booking.id}/booking.ics").status_code == 404
    for action in ("cancel", "accept", "decline"):
        assert client.post_form(f"/experts/bookings/{booking.id}/{action}", {"view": "detail"}).status_code == 404
    # The customer may not accept their own request either.
    login(client, customer)
    assert client.post_form(f"/experts/bookings/{booking.id}/accept", {"view": "detail"}).status_code == 404
    db.session.rollback()
    assert booking.status == "pending"


def test_no_state_change_on_get_and_csrf_required(client):
    profile = make_expert(handle="ada")
    svc = make_service(profile)
    customer = make_user()
    booking = service.book(customer.id, svc.id, next_weekday_at(10), **book_kwargs(customer))
    login(client, customer)
    assert client.get(f"/experts/bookings/{booking.id}/cancel").status_code == 405
    assert client.post(f"/experts/bookings/{booking.id}/cancel", data={"view": "mine"}).status_code in (400, 422, 303)
    db.session.rollback()
    assert booking.status == "confirmed"


def test_dashboard_shows_new_bookings_without_reload(client):
    profile = make_expert(handle="ada")
    svc = make_service(profile)
    login(client, profile.user)
    page = client.get("/expert-dashboard").get_data(as_text=True)
    assert "Nothing booked today." in page or "No upcoming bookings." in page
    poll_url = re.search(r'hx-get="(/expert-dashboard\?since=[^"]+)"', page).group(1).replace("&amp;", "&")
    assert client.get(poll_url, headers={"HX-Request": "true"}).status_code == 204
    customer = make_user("New Customer")
    service.book(customer.id, svc.id, next_weekday_at(10), **book_kwargs(customer))
    fresh = client.get(poll_url, headers={"HX-Request": "true"})
    assert fresh.status_code == 200 and "New Customer" in fresh.get_data(as_text=True)
    assert fresh.get_data(as_text=True).lstrip().startswith('<div id="dashboard"')


def test_display_zone_defaults_to_the_experts_until_the_browser_says_otherwise(client):
    profile = make_expert(handle="ada", timezone="Asia/Kolkata")
    make_service(profile, slug="consult")
    picker = re.compile(r'<input type="text" id="tz-picker" name="tz" list="tz-options" value="([^"]+)" data-tz-input data-zone="([^"]+)"')
    first = client.get("/expert/ada/consult").get_data(as_text=True)
    assert 'data-tz-autosubmit="1"' in first and picker.search(first).groups() == ("India (Kolkata)", "Asia/Kolkata")
    chosen = client.get("/expert/ada/consult?tz=America/Chicago").get_data(as_text=True)
    assert 'data-tz-autosubmit="0"' in chosen and picker.search(chosen).groups() == ("United States (Chicago)", "America/Chicago")
    # What browsers report (an old alias) and what the picker sends (a readable name) both give the IANA zone,
    # and count as chosen, so the page never resubmits itself in a loop.
    alias = client.get("/expert/ada/consult?tz=Asia/Calcutta").get_data(as_text=True)
    assert 'data-tz-autosubmit="0"' in alias and picker.search(alias).group(2) == "Asia/Kolkata"
    readable = client.get("/expert/ada/consult?tz=United+Kingdom+(London)").get_data(as_text=True)
    assert picker.search(readable).group(2) == "Europe/London" and "tz=Europe/London" in readable
    bogus = client.get("/expert/ada/consult?tz=Not/AZone").get_data(as_text=True)
    assert picker.search(bogus).group(2) == "Asia/Kolkata"


def test_meeting_actions_include_point_gets_the_booking(app, client):
    profile = make_expert(handle="ada")
    svc = make_service(profile)
    customer = make_user()
    booking = service.book(customer.id, svc.id, next_weekday_at(10), **book_kwargs(customer))
    login(client, customer)
    loader = app.jinja_loader
    from jinja2 import ChoiceLoader, DictLoader

    app.jinja_loader = ChoiceLoader([DictLoader({"experts/_meeting_actions.html": '<span class="probe">{{ booking.id }}-{{ as_expert }}</span>'}), loader])
    app.jinja_env.cache = {}
    try:
        for url in (f"/experts/bookings/{booking.id}", "/my-bookings"):
            assert f'<span class="probe">{booking.id}-False</span>' in client.get(url).get_data(as_text=True)
    finally:
        app.jinja_loader = loader
        app.jinja_env.cache = {}
