"""Issue 12, "No input gives a 500", on the pages: the app's id converter, NUL bytes, extreme dates in
query strings and forms, the request size limit and 405's Allow header (expertbook/web.py,
expertbook/security.py)."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from expertbook.clinic.models import Appointment, Slot
from expertbook.experts.models import Service
from expertbook.extensions import db
from tests.factories import PASSWORD, login, make_appointment, make_expert, make_service, make_slot, make_staff, make_user

HUGE = "99999999999999999999"


@pytest.mark.parametrize(
    "path",
    [
        f"/clinic/slots/{HUGE}",
        f"/clinic/slots/{HUGE}/availability",
        f"/clinic/slots/{HUGE}/now-serving",
        "/clinic/slots/0",
        f"/clinic/slots/{2**31}",
        f"/clinic/appointments/{HUGE}",
        f"/experts/bookings/{HUGE}",
        f"/experts/bookings/{HUGE}/booking.ics",
        f"/video/meetings/{HUGE}/start",
        "/clinic/slots/" + "9" * 5000,
    ],
)
def test_ids_outside_the_integer_range_are_404(client, path):
    login(client, make_user())
    response = client.get(path)
    assert response.status_code == 404
    assert "text/html" in response.content_type


def test_the_largest_id_is_routed_and_simply_not_found(client):
    assert client.get(f"/clinic/slots/{2**31 - 1}").status_code == 404
    slot = make_slot()
    assert client.get(f"/clinic/slots/{slot.id}").status_code == 200


def test_id_query_parameters_outside_the_range_are_404(client):
    staff = make_staff()
    login(client, staff)
    for doctor in (HUGE, "-1", "0", "x"):
        assert client.get(f"/clinic/staff/slots?doctor={doctor}").status_code == 404, doctor
    assert client.get("/clinic/staff/slots?doctor=").status_code == 200
    for page in (HUGE, "-5", "x", "1" * 5000):
        assert client.get(f"/clinic/staff/slots?page={page}").status_code == 200, page


@pytest.mark.parametrize("path", ["/clinic/search?location=%00", "/clinic/search?specialization=a%00b", "/experts?q=%00", "/login?next=%00"])
def test_nul_in_a_query_string_is_400_with_a_message(client, path):
    response = client.get(path)
    assert response.status_code == 400
    assert "characters that are not allowed" in response.get_data(as_text=True)


def test_nul_in_a_path_or_a_form_is_refused(client):
    make_expert(handle="grace")
    assert client.get("/expert/gr%00ace").status_code == 404
    response = client.post_form("/login", {"email": "a\x00@example.com", "password": PASSWORD})
    assert response.status_code == 400
    htmx = client.post_form("/login", {"email": "someone@example.com", "password": "x\x00"}, htmx=True)
    assert htmx.status_code == 400 and "<html" not in htmx.get_data(as_text=True)


def test_extreme_dates_on_the_expert_booking_page_show_the_page(client):
    profile = make_expert(handle="grace")
    svc = make_service(profile)
    base = f"/expert/grace/{svc.slug}"
    for query in (
        "day=9999-12-31&tz=Pacific/Kiritimati",
        "day=0001-01-01&tz=Etc/GMT%2B12",
        "start=9999-12-31T23:59:00-12:00",
        "start=0001-01-01T00:00:00%2B01:00",
        "month=9999-12",
        "month=0-1",
        "day=2999-12-31&month=2999-12",
    ):
        response = client.get(f"{base}?{query}")
        assert response.status_code == 200, query


def test_a_booking_form_with_an_extreme_time_books_nothing(client):
    profile = make_expert(handle="grace")
    svc = make_service(profile)
    login(client, make_user())
    response = client.post_form(f"/expert/grace/{svc.slug}", {"start": "9999-12-31T23:59:00-12:00", "name": "Erin", "email": "erin@example.com"})
    assert response.status_code in (409, 422)


def test_extreme_dates_in_clinic_filters_and_forms(client):
    staff = make_staff()
    make_slot(staff.hospital)
    assert client.get("/clinic/search?date=9999-12-31").status_code == 200
    assert client.get("/clinic/search?date=0001-01-01").status_code == 200
    login(client, staff)
    assert client.get("/clinic/staff/slots?date=9999-12-31").status_code == 200
    db.session.rollback()
    before = db.session.scalar(select(func.count()).select_from(Slot))
    response = client.post_form(
        "/clinic/staff/slots/new",
        {"doctors-0-name": "Dr. Far", "doctors-0-specialization": "ENT", "date": "9999-12-31", "start_time": "09:00", "end_time": "23:59", "capacity": "10"},
    )
    assert response.status_code == 422 and "within the next two years" in response.get_data(as_text=True)
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Slot)) == before


def test_the_service_form_takes_prices_exact_to_the_cent(client):
    profile = make_expert()
    login(client, profile.user)
    data = {"title": "Tax review", "duration_min": "45", "currency": "eur", "location_kind": "video", "horizon_days": "30", "min_notice_min": "0"}
    for price, message in (("49.505", "at most two decimals"), ("1e308", "between 0 and 1000000"), ("NaN", "")):
        response = client.post_form("/experts/settings/services/new", {**data, "price": price})
        assert response.status_code == 422 and message in response.get_data(as_text=True), price
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Service)) == 0


def test_a_body_over_the_limit_is_413_with_a_page(app, client):
    response = client.post("/login", data={"email": "x" * (2 * 1024 * 1024), "password": "y"})
    assert response.status_code == 413
    assert "text/html" in response.content_type


def test_405_pages_carry_allow(client):
    slot = make_slot()
    response = client.get(f"/clinic/slots/{slot.id}/book")
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"].split(", ")
    assert "text/html" in response.content_type


def test_moving_to_a_session_id_the_database_cannot_hold_moves_nothing(client):
    slot = make_slot()
    patient = make_user()
    appointment = make_appointment(slot, patient)
    login(client, patient)
    for slot_id in (HUGE, str(2**31), "0", "-3"):
        response = client.post_form(f"/clinic/appointments/{appointment.id}/move", {"slot_id": slot_id})
        assert response.status_code == 422, slot_id
        assert "Choose a session." in response.get_data(as_text=True)
    db.session.rollback()
    assert db.session.get(Appointment, appointment.id).status == Appointment.BOOKED
