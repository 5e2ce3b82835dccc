"""Settings → Video: connecting Zoom with state and PKCE, testing, re-authorizing and disconnecting."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import requests
from sqlalchemy import select

from expertbook.extensions import db
from expertbook.video import service
from expertbook.video.models import RECONNECT_NEEDED, ZoomConnection
from expertbook.devtools.zoom_standin import REVOKE, TOKEN_CODE, USERS_ME
from tests.factories import connect_zoom, login, make_expert_user, make_user


def _connection(user_id: int) -> ZoomConnection | None:
    db.session.rollback()
    return db.session.scalar(select(ZoomConnection).where(ZoomConnection.user_id == user_id))


def test_settings_page_is_for_experts_only(client, zoom):
    user = make_user()
    login(client, user)
    assert client.get("/video/settings").status_code == 404
    assert client.get("/video/zoom/connect").status_code == 404
    assert client.post_form("/video/zoom/disconnect").status_code == 404


def test_settings_page_needs_login(client, zoom):
    response = client.get("/video/settings")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_connect_uses_state_and_pkce_and_shows_the_account(client, zoom):
    expert = make_expert_user()
    login(client, expert)
    page = client.get("/video/settings")
    assert page.status_code == 200
    assert "Connect Zoom" in page.get_data(as_text=True)

    start = client.get("/video/zoom/connect")
    assert start.status_code == 302
    params = parse_qs(urlsplit(start.headers["Location"]).query)
    assert params["response_type"] == ["code"]
    assert params["client_id"] == [zoom.standin.client_id]
    assert params["redirect_uri"] == ["http://testserver.example/video/zoom/callback"]
    assert len(params["state"][0]) >= 20
    assert params["code_challenge_method"] == ["S256"]
    assert len(params["code_challenge"][0]) == 43  # base64url of a SHA-256 digest
    assert _connection(expert.id) is None, "starting the flow must not write to the database"

    back = requests.get(start.headers["Location"], allow_redirects=False, timeout=10)
    target = urlsplit(back.headers["Location"])
    done = client.get(f"{target.path}?{target.query}")
    assert done.status_code == 303
    assert done.headers["Location"].endswith("/video/settings")
    assert zoom.standin.calls[TOKEN_CODE] == 1
    assert zoom.standin.calls[USERS_ME] == 1

    page = client.get("/video/settings").get_data(as_text=True)
    assert zoom.standin.user["email"] in page
    assert "Connected" in page
    db.session.rollback()  # end the test's read snapshot; the request committed in its own session
    account = service.zoom_account(expert.id)
    assert account.active and account.email == zoom.standin.user["email"]
    assert account.zoom_user_id == zoom.standin.user["id"]
    assert account.account_id == zoom.standin.user["account_id"]


def test_callback_refuses_a_missing_state(client, zoom):
    expert = make_expert_user()
    login(client, expert)
    start = client.get("/video/zoom/connect")
    back = requests.get(start.headers["Location"], allow_redirects=False, timeout=10)
    code = parse_qs(urlsplit(back.headers["Location"]).query)["code"][0]

    response = client.get(f"/video/zoom/callback?code={code}")
    assert response.status_code == 400
    assert "start again" in response.get_data(as_text=True)
    assert zoom.standin.calls[TOKEN_CODE] == 0, "the code must not even be exchanged"
    assert _connection(expert.id) is None


def test_callback_refuses_a_wrong_state(client, zoom):
    expert = make_expert_user()
    login(client, expert)
    start = client.get("/video/zoom/connect")
    back = requests.get(start.headers["Location"], allow_redirects=False, timeout=10)
    code = parse_qs(urlsplit(back.headers["Location"]).query)["code"][0]

    response = client.get(f"/video/zoom/callback?code={code}&state=forged-state-value")
    assert response.status_code == 400
    assert zoom.standin.calls[TOKEN_CODE] == 0
    assert _connection(expert.id) is None


def test_state_from_another_browser_is_refused(client, make_client, zoom):
    """An attacker's authorization code and state, replayed into a victim's browser, do not connect the victim."""
    attacker, victim = make_expert_user(), make_expert_user()
    login(client, attacker)
    start = client.get("/video/zoom/connect")
    back = requests.get(start.headers["Location"], allow_redirects=False, timeout=10)
    target = urlsplit(back.headers["Location"])

    victim_browser = make_client()
    login(victim_browser, victim)
    assert victim_browser.get(f"{target.path}?{target.query}").status_code == 400
    assert _connection(victim.id) is None


def test_the_standin_checks_the_pkce_verifier(client, zoom):
    """If the verifier sent with the code does not match the challenge, Zoom (the stand-in) refuses it."""
    expert = make_expert_user()
    login(client, expert)
    start = client.get("/video/zoom/connect")
    state = parse_qs(urlsplit(start.headers["Location"]).query)["state"][0]
    with client.session_transaction() as session:
        key = f"_state_zoom_{state}"
        data = session[key]
        data["data"]["code_verifier"] = "x" * 48  # a verifier that does not match the challenge
        session[key] = data
    back = requests.get(start.headers["Location"], allow_redirects=False, timeout=10)
    target = urlsplit(back.headers["Location"])

    response = client.get(f"{target.path}?{target.query}")
    assert response.status_code == 400
    assert zoom.standin.calls[TOKEN_CODE] == 1
    assert _connection(expert.id) is None


def test_a_state_is_single_use(client, zoom):
    expert = make_expert_user()
    login(client, expert)
    start = client.get("/video/zoom/connect")
    back = requests.get(start.headers["Location"], allow_redirects=False, timeout=10)
    target = urlsplit(back.headers["Location"])
    assert client.get(f"{target.path}?{target.query}").status_code == 303
    assert client.get(f"{target.path}?{target.query}").status_code == 400


def test_declined_authorization_changes_nothing(client, zoom):
    expert = make_expert_user()
    login(client, expert)
    client.get("/video/zoom/connect")
    response = client.get("/video/zoom/callback?error=access_denied&state=whatever")
    assert response.status_code == 303
    assert _connection(expert.id) is None
    page = client.get("/video/settings").get_data(as_text=True)
    assert "declined" in page


def test_test_connection_answers_a_fragment(client, zoom):
    expert = make_expert_user()
    login(client, expert)
    connect_zoom(client, zoom.url)
    response = client.post_form("/video/zoom/test", htmx=True)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert html.strip().startswith('<div id="zoom-test-result"')
    assert f"Zoom knows you as {zoom.standin.user['email']}" in html
    assert zoom.standin.calls[USERS_ME] == 2  # once when connecting, once for the test


def test_test_connection_reports_a_refused_grant(client, zoom):
    expert = make_expert_user()
    login(client, expert)
    connect_zoom(client, zoom.url)
    zoom.standin.revoke_all()
    html = client.post_form("/video/zoom/test", htmx=True).get_data(as_text=True)
    assert "re-authorize" in html.lower()
    assert _connection(expert.id).status == RECONNECT_NEEDED
    page = client.get("/video/settings").get_data(as_text=True)
    assert "Reconnect needed" in page and "Re-authorize" in page


def test_reauthorize_replaces_the_grant_and_reactivates(client, zoom):
    expert = make_expert_user()
    login(client, expert)
    connect_zoom(client, zoom.url)
    zoom.standin.revoke_all()
    client.post_form("/video/zoom/test", htmx=True)
    assert _connection(expert.id).status == RECONNECT_NEEDED

    assert connect_zoom(client, zoom.url).status_code == 303
    db.session.rollback()
    assert service.zoom_account(expert.id).active
    assert service.access_token(expert.id)
    assert db.session.scalar(select(db.func.count()).select_from(ZoomConnection)) == 1


def test_disconnect_revokes_at_zoom_and_deletes_the_tokens(client, zoom):
    expert = make_expert_user()
    login(client, expert)
    connect_zoom(client, zoom.url)
    assert zoom.standin.live_refresh_tokens

    response = client.post_form("/video/zoom/disconnect")
    assert response.status_code == 303
    assert zoom.standin.calls[REVOKE] == 1
    assert zoom.standin.live_refresh_tokens == []
    assert _connection(expert.id) is None
    page = client.get("/video/settings").get_data(as_text=True)
    assert "Connect Zoom" in page and "revoked" in page


def test_disconnect_deletes_the_tokens_even_if_zoom_is_down(client, zoom):
    expert = make_expert_user()
    login(client, expert)
    connect_zoom(client, zoom.url)
    zoom.standin.fail(REVOKE, "500")
    client.post_form("/video/zoom/disconnect")
    assert _connection(expert.id) is None
    assert "did not confirm" in client.get("/video/settings").get_data(as_text=True)


def test_without_zoom_credentials_only_jitsi_is_offered(client, app, zoom):
    app.config["ZOOM_CLIENT_ID"] = None
    expert = make_expert_user()
    login(client, expert)
    page = client.get("/video/settings").get_data(as_text=True)
    assert "Zoom is not set up" in page
    assert client.get("/video/zoom/connect").status_code == 404


def test_only_the_latest_connect_attempt_is_valid(client, zoom):
    expert = make_expert_user()
    login(client, expert)
    first = client.get("/video/zoom/connect").headers["Location"]
    for _ in range(30):  # many clicks must not grow the session cookie
        client.get("/video/zoom/connect")
    with client.session_transaction() as session:
        assert len([key for key in session if key.startswith("_state_zoom_")]) == 1
    back = requests.get(first, allow_redirects=False, timeout=10)
    target = urlsplit(back.headers["Location"])
    assert client.get(f"{target.path}?{target.query}").status_code == 400


def test_signals_tell_the_booking_code_about_connections(app, client, zoom):
    from expertbook.video import signals

    expert = make_expert_user()
    login(client, expert)
    connected, reauth = [], []

    def on_connected(sender, user_id):
        connected.append(user_id)

    def on_reauth(sender, user_id):
        reauth.append(user_id)

    with signals.zoom_connection_changed.connected_to(on_connected, app), signals.zoom_reauth_required.connected_to(on_reauth, app):
        connect_zoom(client, zoom.url)
        assert connected == [expert.id] and reauth == []
        zoom.standin.revoke_all()
        for _ in range(3):  # three failing bookings, one signal (one email)
            client.post_form("/video/zoom/test", htmx=True)
        assert reauth == [expert.id]
        connect_zoom(client, zoom.url)
        assert connected == [expert.id, expert.id]


def test_reauthorize_url_logs_in_then_goes_to_zoom(app, client, zoom):
    db.session.rollback()
    url = service.reauthorize_url()
    assert url == "http://testserver.example/video/zoom/connect"
    response = client.get("/video/zoom/connect")
    assert response.status_code == 302 and "/login?next=/video/zoom/connect" in response.headers["Location"]


def test_an_unreachable_token_endpoint_during_connect_is_explained(client, zoom):
    expert = make_expert_user()
    login(client, expert)
    start = client.get("/video/zoom/connect")
    back = requests.get(start.headers["Location"], allow_redirects=False, timeout=10)
    target = urlsplit(back.headers["Location"])
    zoom.standin.fail(TOKEN_CODE, "500")
    response = client.get(f"{target.path}?{target.query}")
    assert response.status_code == 303
    assert "not answering" in client.get("/video/settings").get_data(as_text=True)
    assert _connection(expert.id) is None
