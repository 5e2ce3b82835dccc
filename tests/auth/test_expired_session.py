"""A login that ends under an open page (issue 14): the person is told so plainly, on the login page, and comes
back to the page they were on; a real cross-site post still gets a plain 400."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from expertbook.auth import sessions
from tests.factories import login, login_via_form, make_slot, make_user

EXPIRED = "Your session has expired: log in again."
BASE = "http://localhost"


def _next_of(location: str) -> str:
    parts = urlsplit(location)
    assert parts.path == "/login", location
    return parse_qs(parts.query)["next"][0]


def test_htmx_post_after_the_session_cookie_is_gone_goes_to_login_and_back(app, client):
    slot = make_slot()
    user = make_user(email="asha@example.com")
    page = f"/clinic/search?date={slot.date}"
    # The page was loaded while logged in; the cookie has since expired, so the form's token has no session.
    response = client.post(
        f"/clinic/slots/{slot.id}/book",
        data={"patient_name": "Asha", "contact_number": "9876543210"},
        headers={"HX-Request": "true", "X-CSRFToken": "a-token-of-an-ended-session", "HX-Current-URL": BASE + page},
    )
    assert response.status_code == 401 and response.get_data() == b""
    assert _next_of(response.headers["HX-Redirect"]) == page
    login_page = client.get(response.headers["HX-Redirect"]).get_data(as_text=True)
    assert EXPIRED in login_page
    back = login_via_form(client, user.email, next=page)
    assert back.status_code in (302, 303) and back.headers["Location"] == page


def test_plain_form_post_after_expiry_uses_the_referring_page(app, client):
    user = make_user()
    response = client.post("/clinic/appointments/1/cancel", data={"csrf_token": "stale"}, headers={"Referer": BASE + "/clinic/my-appointments"})
    assert response.status_code in (302, 303)
    assert _next_of(response.headers["Location"]) == "/clinic/my-appointments"
    assert EXPIRED in client.get(response.headers["Location"]).get_data(as_text=True)
    assert user  # nothing was cancelled: the request never reached the view


def test_a_post_from_another_site_is_still_refused_plainly(app, client):
    response = client.post("/clinic/appointments/1/cancel", data={"csrf_token": "forged"}, headers={"Referer": "https://evil.example/page"})
    assert response.status_code == 400 and "Location" not in response.headers
    htmx = client.post("/clinic/appointments/1/cancel", headers={"HX-Request": "true", "X-CSRFToken": "forged", "HX-Current-URL": "https://evil.example/"})
    assert htmx.status_code == 400 and "HX-Redirect" not in htmx.headers


def test_a_logged_in_page_with_a_wrong_token_is_not_called_an_expired_session(app, client):
    login(client, make_user())
    response = client.post("/clinic/appointments/1/cancel", data={"csrf_token": "wrong"}, headers={"Referer": BASE + "/clinic/my-appointments"})
    assert response.status_code == 400 and EXPIRED not in response.get_data(as_text=True)


def test_a_revoked_login_is_told_it_expired_and_a_first_visit_is_only_asked_to_log_in(app, client, make_client):
    token = login(client, make_user())
    sessions.end_session(token)  # e.g. the password was changed on another device
    revoked = client.get("/clinic/my-appointments")
    assert revoked.status_code == 302 and _next_of(revoked.headers["Location"]) == "/clinic/my-appointments"
    assert EXPIRED in client.get(revoked.headers["Location"]).get_data(as_text=True)

    stranger = make_client()
    first = stranger.get("/clinic/my-appointments")
    page = stranger.get(first.headers["Location"]).get_data(as_text=True)
    assert "Please log in to continue." in page and EXPIRED not in page

    # An htmx poll from a page shown while logged in names that page, not the fragment's URL.
    poll = stranger.get("/my-bookings?since=1", headers={"HX-Request": "true", "HX-Current-URL": BASE + "/my-bookings"})
    assert poll.status_code == 401 and _next_of(poll.headers["HX-Redirect"]) == "/my-bookings"
