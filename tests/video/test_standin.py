"""The Zoom stand-in itself answers like Zoom, so tests against it mean something."""
from __future__ import annotations

import base64
import hashlib
from urllib.parse import parse_qs, urlsplit

import requests

from expertbook.devtools.zoom_standin import AUTHORIZE, MEETING_DELETE, TOKEN_CODE

CALLBACK = "http://127.0.0.1:9/callback"


def _authorize(zoom, verifier: str | None = "v" * 50, method: str = "S256") -> dict:
    params = {"response_type": "code", "client_id": zoom.standin.client_id, "redirect_uri": CALLBACK, "state": "s1"}
    if verifier is not None:
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        params |= {"code_challenge": challenge, "code_challenge_method": method}
    answer = requests.get(zoom.url + "/oauth/authorize", params=params, allow_redirects=False, timeout=5)
    assert answer.status_code == 302
    return {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["Location"]).query).items()}


def _token(zoom, **data):
    auth = (zoom.standin.client_id, zoom.standin.client_secret)
    return requests.post(zoom.url + "/oauth/token", data=data, auth=auth, timeout=5)


def _tokens(zoom) -> dict:
    code = _authorize(zoom)["code"]
    answer = _token(zoom, grant_type="authorization_code", code=code, redirect_uri=CALLBACK, code_verifier="v" * 50)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_authorization_requires_pkce_s256(zoom):
    assert _authorize(zoom, verifier=None) == {"state": "s1", "error": "invalid_request"}
    assert _authorize(zoom, method="plain")["error"] == "invalid_request"
    assert zoom.standin.calls[AUTHORIZE] == 2


def test_the_code_is_bound_to_the_verifier_and_single_use(zoom):
    code = _authorize(zoom)["code"]
    wrong = _token(zoom, grant_type="authorization_code", code=code, redirect_uri=CALLBACK, code_verifier="w" * 50)
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    code = _authorize(zoom)["code"]
    assert _token(zoom, grant_type="authorization_code", code=code, redirect_uri=CALLBACK).status_code == 400
    code = _authorize(zoom)["code"]
    good = _token(zoom, grant_type="authorization_code", code=code, redirect_uri=CALLBACK, code_verifier="v" * 50)
    assert good.status_code == 200
    assert set(good.json()) >= {"access_token", "token_type", "refresh_token", "expires_in", "scope"}
    again = _token(zoom, grant_type="authorization_code", code=code, redirect_uri=CALLBACK, code_verifier="v" * 50)
    assert again.status_code == 400
    assert zoom.standin.calls[TOKEN_CODE] == 4


def test_the_client_must_authenticate(zoom):
    code = _authorize(zoom)["code"]
    answer = requests.post(
        zoom.url + "/oauth/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK, "code_verifier": "v" * 50},
        auth=(zoom.standin.client_id, "wrong"),
        timeout=5,
    )
    assert answer.status_code == 401


def test_refresh_rotates_and_old_access_tokens_die(zoom):
    first = _tokens(zoom)
    second = _token(zoom, grant_type="refresh_token", refresh_token=first["refresh_token"]).json()
    assert second["refresh_token"] != first["refresh_token"]
    reused = _token(zoom, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert reused.status_code == 400 and reused.json() == {"error": "invalid_grant", "reason": "Invalid Token!"}
    me = requests.get(zoom.url + "/v2/users/me", headers={"Authorization": f"Bearer {first['access_token']}"}, timeout=5)
    assert me.status_code == 401 and me.json()["code"] == 124
    me = requests.get(zoom.url + "/v2/users/me", headers={"Authorization": f"Bearer {second['access_token']}"}, timeout=5)
    assert me.status_code == 200 and me.json()["email"] == zoom.standin.user["email"]


def test_meetings_have_64_bit_ids_and_unknown_ones_answer_3001(zoom):
    token = _tokens(zoom)["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    created = requests.post(zoom.url + "/v2/users/me/meetings", json={"topic": "t", "type": 2}, headers=headers, timeout=5)
    assert created.status_code == 201
    meeting = created.json()
    assert isinstance(meeting["id"], int) and meeting["id"] > 2**32
    assert {"join_url", "start_url", "password", "settings", "uuid", "host_id"} <= set(meeting)
    url = f"{zoom.url}/v2/meetings/{meeting['id']}"
    assert requests.delete(url, headers=headers, timeout=5).status_code == 204
    gone = requests.delete(url, headers=headers, timeout=5)
    assert gone.status_code == 404 and gone.json()["code"] == 3001
    assert zoom.standin.calls[MEETING_DELETE] == 2
