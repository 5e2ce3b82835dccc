"""Zoom tokens: encrypted at rest, rotated keys, refreshed transparently and only once under a lock."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select, text

from expertbook import config as config_module
from expertbook.extensions import db
from expertbook import crypto
from expertbook.video import service
from expertbook.video.errors import ReauthRequired, TransientMeetingError
from expertbook.video.models import CONNECTED, RECONNECT_NEEDED, ZoomConnection
from expertbook.devtools.zoom_standin import MEETING_GET, TOKEN_REFRESH
from tests.video.conftest import expire_stored_token

ROOT = Path(__file__).resolve().parents[2]


def _raw_rows() -> list[str]:
    db.session.rollback()
    rows = db.session.execute(text("SELECT * FROM video_zoom_connections")).all()
    return [" ".join(str(value) for value in row) for row in rows]


def _stored(user_id: int) -> dict:
    db.session.rollback()
    connection = db.session.scalar(select(ZoomConnection).where(ZoomConnection.user_id == user_id))
    return crypto.decrypt(connection.secrets) | {"status": connection.status}


def test_columns_hold_no_plaintext_secret(connected_expert, zoom):
    token = service.access_token(connected_expert.id)
    [refresh] = zoom.standin.live_refresh_tokens
    rows = _raw_rows()
    assert len(rows) == 1
    for secret in (token, refresh, zoom.standin.user["email"], zoom.standin.user["id"], zoom.standin.user["account_id"]):
        assert secret not in rows[0]
    # ...and yet everything is there, encrypted.
    stored = _stored(connected_expert.id)
    assert stored["access_token"] == token and stored["refresh_token"] == refresh
    assert stored["email"] == zoom.standin.user["email"] and stored["active"] is True


def test_key_rotation_reencrypts_with_the_first_key(app, connected_expert, zoom, encryption_key):
    before = _stored(connected_expert.id)
    old_cipher = db.session.scalar(select(ZoomConnection.secrets))
    new_key = Fernet.generate_key().decode()
    app.config["TOKEN_ENCRYPTION_KEYS"] = f"{new_key},{encryption_key}"

    result = app.test_cli_runner().invoke(args=["rotate-token-keys"])
    assert result.exit_code == 0, result.output
    assert "Re-encrypted 1" in result.output

    db.session.rollback()
    new_cipher = db.session.scalar(select(ZoomConnection.secrets))
    assert new_cipher != old_cipher
    Fernet(new_key.encode()).decrypt(new_cipher.encode())  # the new key alone reads it
    app.config["TOKEN_ENCRYPTION_KEYS"] = new_key
    assert _stored(connected_expert.id)["refresh_token"] == before["refresh_token"]
    assert service.access_token(connected_expert.id) == before["access_token"]


def test_production_refuses_zoom_without_encryption_keys():
    config = config_module.from_env(
        {"EXPERTBOOK_ENV": "production", "SECRET_KEY": "x" * 32, "MAIL_SERVER": "smtp.example.org", "ZOOM_CLIENT_ID": "id", "ZOOM_CLIENT_SECRET": "s"}
    )
    with pytest.raises(config_module.ConfigError, match="TOKEN_ENCRYPTION_KEYS"):
        config_module.validate(config)
    config_module.validate(config | {"TOKEN_ENCRYPTION_KEYS": Fernet.generate_key().decode()})
    config_module.validate(config | {"ZOOM_CLIENT_ID": None})  # no Zoom, no key needed


def test_a_valid_token_is_used_without_refreshing(connected_expert, zoom):
    first = service.access_token(connected_expert.id)
    assert service.access_token(connected_expert.id) == first
    assert zoom.standin.calls[TOKEN_REFRESH] == 0


def test_an_expired_token_is_refreshed_transparently(connected_expert, zoom):
    old = _stored(connected_expert.id)
    expire_stored_token(connected_expert.id, zoom.standin)

    url = service.fresh_start_url(connected_expert.id, _create(connected_expert.id))
    assert url.startswith(zoom.url + "/s/")
    assert zoom.standin.calls[TOKEN_REFRESH] == 1
    new = _stored(connected_expert.id)
    # The rotated pair was saved: the stored refresh token is the one Zoom now accepts.
    assert new["refresh_token"] != old["refresh_token"]
    assert zoom.standin.live_refresh_tokens == [new["refresh_token"]]
    assert new["expires_at"] > time.time() + 3000


def _create(user_id: int) -> int:
    from datetime import UTC, datetime, timedelta

    result = service.create_meeting(user_id, "Consultation", datetime.now(UTC) + timedelta(days=1), 30, "UTC", False)
    return result.meeting_id


def test_concurrent_refresh_makes_exactly_one_call(app, connected_expert, zoom):
    user_id = connected_expert.id
    expire_stored_token(user_id, zoom.standin)
    zoom.standin.token_delay = 0.4  # hold the refresh open so the other workers arrive while it runs
    workers = 4
    barrier = threading.Barrier(workers)
    tokens: list[str] = []
    errors: list[BaseException] = []

    def work():
        with app.app_context():
            try:
                barrier.wait(timeout=10)
                tokens.append(service.access_token(user_id))
            except BaseException as error:  # noqa: BLE001 - reported below
                errors.append(error)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert zoom.standin.calls[TOKEN_REFRESH] == 1
    assert len(tokens) == workers and len(set(tokens)) == 1
    assert _stored(user_id)["status"] == CONNECTED
    # The token all of them got works at Zoom.
    assert service.check_connection(user_id).email == zoom.standin.user["email"]


_WORKER = """
import json, sys, time
from expertbook import create_app
from expertbook.video import service
from tests.conftest import _test_config
config = json.loads(sys.argv[1])
app = create_app(_test_config(config.pop("url"), **config["extra"]))
with app.app_context():
    time.sleep(max(0.0, config["start_at"] - time.time()))
    try:
        began = time.time()
        print(json.dumps({"token": service.access_token(config["user_id"]), "late": began - config["start_at"], "took": time.time() - began}))
    except Exception as error:
        print(json.dumps({"error": repr(error)}))
"""


def test_two_processes_refreshing_at_once_make_one_call(app, connected_expert, zoom, encryption_key):
    user_id = connected_expert.id
    expire_stored_token(user_id, zoom.standin)
    zoom.standin.token_delay = 0.5
    extra = zoom.config() | {"TOKEN_ENCRYPTION_KEYS": encryption_key, "ZOOM_TIMEOUT": 5.0}
    argument = json.dumps(
        {"url": app.config["SQLALCHEMY_DATABASE_URI"], "extra": extra, "user_id": user_id, "start_at": time.time() + 4}
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    processes = [
        subprocess.Popen([sys.executable, "-c", _WORKER, argument], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    answers = []
    for process in processes:
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        answers.append(json.loads(out.strip().splitlines()[-1]))
    assert all("token" in answer for answer in answers), answers
    assert answers[0]["token"] == answers[1]["token"]
    assert zoom.standin.calls[TOKEN_REFRESH] == 1


def test_a_refused_refresh_marks_reconnect_needed(connected_expert, zoom):
    expire_stored_token(connected_expert.id, zoom.standin)
    zoom.standin.revoke_all()  # the grant is dead at Zoom: refresh answers invalid_grant / "Invalid Token!"

    with pytest.raises(ReauthRequired) as caught:
        service.access_token(connected_expert.id)
    assert caught.value.user_id == connected_expert.id
    stored = _stored(connected_expert.id)
    assert stored["status"] == RECONNECT_NEEDED and stored["active"] is False
    assert zoom.standin.calls[TOKEN_REFRESH] == 1

    # Until the expert re-authorizes, nothing more is sent to Zoom.
    with pytest.raises(ReauthRequired):
        service.access_token(connected_expert.id)
    assert zoom.standin.calls[TOKEN_REFRESH] == 1


def test_reusing_a_rotated_refresh_token_is_refused_by_the_standin(connected_expert, zoom):
    """What makes the lock necessary: Zoom kills a refresh token once it has been used."""
    import requests

    old = _stored(connected_expert.id)["refresh_token"]
    expire_stored_token(connected_expert.id, zoom.standin)
    service.access_token(connected_expert.id)
    answer = requests.post(
        zoom.url + "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": old},
        auth=(zoom.standin.client_id, zoom.standin.client_secret),
        timeout=5,
    )
    assert answer.status_code == 400
    assert answer.json() == {"error": "invalid_grant", "reason": "Invalid Token!"}


def test_a_token_endpoint_outage_is_transient_and_keeps_the_credential(connected_expert, zoom):
    old = _stored(connected_expert.id)
    expire_stored_token(connected_expert.id, zoom.standin)
    zoom.standin.fail(TOKEN_REFRESH, "500")
    with pytest.raises(TransientMeetingError):
        service.access_token(connected_expert.id)
    stored = _stored(connected_expert.id)
    assert stored["status"] == CONNECTED and stored["refresh_token"] == old["refresh_token"]
    # Next time it works.
    assert service.access_token(connected_expert.id)
    assert zoom.standin.calls[TOKEN_REFRESH] == 2


def test_a_rate_limited_token_endpoint_is_transient_with_retry_after(connected_expert, zoom):
    expire_stored_token(connected_expert.id, zoom.standin)
    zoom.standin.fail(TOKEN_REFRESH, "429", retry_after=12)
    with pytest.raises(TransientMeetingError) as caught:
        service.access_token(connected_expert.id)
    assert caught.value.retry_after == 12
    assert _stored(connected_expert.id)["status"] == CONNECTED


def test_401_code_124_refreshes_once_and_retries(connected_expert, zoom):
    meeting_id = _create(connected_expert.id)
    zoom.standin.fail(MEETING_GET, "401")  # Zoom says the (unexpired) access token is invalid
    url = service.fresh_start_url(connected_expert.id, meeting_id)
    assert url.startswith(zoom.url + f"/s/{meeting_id}?zak=")
    assert zoom.standin.calls[TOKEN_REFRESH] == 1
    assert zoom.standin.calls[MEETING_GET] == 2


def test_401_after_a_fresh_token_asks_for_reauthorization(connected_expert, zoom):
    meeting_id = _create(connected_expert.id)
    zoom.standin.fail(MEETING_GET, "401", times=2)
    with pytest.raises(ReauthRequired):
        service.fresh_start_url(connected_expert.id, meeting_id)
    assert zoom.standin.calls[TOKEN_REFRESH] == 1
    assert _stored(connected_expert.id)["status"] == RECONNECT_NEEDED
