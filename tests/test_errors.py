"""A service's NotFound becomes a 404 through the app's one error handler: a page, an htmx fragment, or JSON under /api/."""
from __future__ import annotations

from expertbook.api import service as tokens
from tests.factories import login, make_appointment, make_slot, make_user


def test_a_missing_object_is_a_404_page_with_the_services_message(client):
    response = client.get("/clinic/slots/999999")
    assert response.status_code == 404
    page = response.get_data(as_text=True)
    assert "<html" in page and 'id="error"' in page and "Slot not found" in page


def test_under_htmx_it_is_the_error_fragment(client):
    response = client.get("/clinic/slots/999999", headers={"HX-Request": "true"})
    assert response.status_code == 404 and "HX-Request" in response.headers["Vary"]
    fragment = response.get_data(as_text=True)
    assert "<html" not in fragment and fragment.lstrip().startswith('<article id="error"') and "Slot not found" in fragment


def test_someone_elses_object_is_not_found_too(client):
    appointment = make_appointment(make_slot(), make_user(email="owner@example.com"))
    login(client, make_user(email="other@example.com"))
    response = client.get(f"/clinic/appointments/{appointment.id}")
    assert response.status_code == 404 and "Appointment not found" in response.get_data(as_text=True)
    assert client.get("/experts/bookings/999999").status_code == 404


def test_under_the_api_it_is_json(app, client):
    user = make_user()
    token, _ = tokens.issue_token(user.id, app.config["SECRET_KEY"], hours=1)
    response = client.post("/api/appointments/999999/cancel", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 404 and response.get_json() == {"error": "Appointment not found"}
