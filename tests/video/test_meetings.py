"""The meeting provider interface the booking code calls: Zoom when connected, Jitsi otherwise."""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from expertbook.extensions import db
from expertbook.video import service
from expertbook.video.errors import MeetingNotFound, ReauthRequired, TransientMeetingError
from expertbook.video.models import RECONNECT_NEEDED, ZoomConnection
from expertbook.devtools.zoom_standin import MEETING_CREATE, MEETING_DELETE, MEETING_GET, MEETING_PATCH, TOKEN_REFRESH
from tests.factories import make_expert_user
from tests.video.conftest import expire_stored_token

START = datetime(2030, 3, 4, 9, 30, tzinfo=UTC)


def _create(user_id: int, **kwargs):
    arguments = {"topic": "Tax advice with Ana", "start_utc": START, "duration_min": 45, "timezone": "Europe/Berlin", "recording": False}
    return service.create_meeting(user_id, **(arguments | kwargs))


def test_zoom_meeting_has_a_64_bit_id_and_safe_settings(connected_expert, zoom):
    result = _create(connected_expert.id, recording=True)
    assert result.provider == "zoom"
    assert result.meeting_id > 2**32
    assert result.join_url.startswith(f"{zoom.url}/j/{result.meeting_id}")
    assert result.password
    assert not hasattr(result, "start_url"), "the host's start URL is never part of what gets stored"
    meeting = zoom.standin.meetings[result.meeting_id]
    assert meeting["topic"] == "Tax advice with Ana"
    assert meeting["start_time"] == "2030-03-04T09:30:00Z"
    assert meeting["duration"] == 45 and meeting["timezone"] == "Europe/Berlin" and meeting["type"] == 2
    assert meeting["settings"]["waiting_room"] is True
    assert meeting["settings"]["join_before_host"] is False
    assert meeting["settings"]["auto_recording"] == "cloud"


def test_recording_off_is_sent_as_none(connected_expert, zoom):
    result = _create(connected_expert.id, recording=False)
    assert zoom.standin.meetings[result.meeting_id]["settings"]["auto_recording"] == "none"


def test_jitsi_is_the_default_without_zoom(app, zoom):
    expert = make_expert_user()
    first, second = _create(expert.id), _create(expert.id)
    for result in (first, second):
        assert result.provider == "jitsi" and result.meeting_id is None and result.password is None
        assert re.fullmatch(r"https://jitsi\.test\.example/ExpertBook-[A-Za-z0-9_-]{24}", result.join_url)
    assert first.join_url != second.join_url
    assert zoom.standin.calls[MEETING_CREATE] == 0


def test_the_service_can_choose_jitsi_even_with_zoom(connected_expert, zoom):
    assert _create(connected_expert.id, provider="jitsi").provider == "jitsi"
    assert zoom.standin.calls[MEETING_CREATE] == 0


def test_a_connection_waiting_for_reauthorization_does_not_fall_back_to_jitsi(connected_expert, zoom):
    expire_stored_token(connected_expert.id, zoom.standin)
    zoom.standin.revoke_all()
    with pytest.raises(ReauthRequired):
        _create(connected_expert.id)
    with pytest.raises(ReauthRequired):
        _create(connected_expert.id)
    assert zoom.standin.calls[TOKEN_REFRESH] == 1
    assert zoom.standin.calls[MEETING_CREATE] == 0


def test_the_start_url_is_fetched_fresh_at_each_call(connected_expert, zoom):
    meeting_id = _create(connected_expert.id).meeting_id
    first = service.fresh_start_url(connected_expert.id, meeting_id)
    second = service.fresh_start_url(connected_expert.id, meeting_id)
    assert first.startswith(f"{zoom.url}/s/{meeting_id}?zak=") and second.startswith(f"{zoom.url}/s/{meeting_id}?zak=")
    assert first != second
    assert zoom.standin.calls[MEETING_GET] == 2


def test_start_url_of_a_deleted_meeting_is_not_found(connected_expert, zoom):
    meeting_id = _create(connected_expert.id).meeting_id
    service.delete_meeting(connected_expert.id, "zoom", meeting_id)
    with pytest.raises(MeetingNotFound):
        service.fresh_start_url(connected_expert.id, meeting_id)


def test_update_moves_the_meeting(connected_expert, zoom):
    meeting_id = _create(connected_expert.id).meeting_id
    service.update_meeting(connected_expert.id, "zoom", meeting_id, "Tax advice (moved)", START + timedelta(days=1), 60, "Asia/Kolkata")
    meeting = zoom.standin.meetings[meeting_id]
    assert meeting["start_time"] == "2030-03-05T09:30:00Z"
    assert meeting["duration"] == 60 and meeting["timezone"] == "Asia/Kolkata" and meeting["topic"] == "Tax advice (moved)"
    assert meeting["settings"]["waiting_room"] is True
    assert zoom.standin.calls[MEETING_PATCH] == 1


def test_update_and_delete_of_a_jitsi_room_need_nothing(connected_expert, zoom):
    service.update_meeting(connected_expert.id, "jitsi", None, "x", START, 30, "UTC")
    service.delete_meeting(connected_expert.id, "jitsi", None)
    assert zoom.standin.calls[MEETING_PATCH] == zoom.standin.calls[MEETING_DELETE] == 0


def test_delete_and_delete_again(connected_expert, zoom):
    meeting_id = _create(connected_expert.id).meeting_id
    service.delete_meeting(connected_expert.id, "zoom", meeting_id)
    assert meeting_id not in zoom.standin.meetings
    service.delete_meeting(connected_expert.id, "zoom", meeting_id)  # already deleted: fine
    assert zoom.standin.calls[MEETING_DELETE] == 2


def test_delete_after_disconnecting_is_done(client, connected_expert, zoom):
    meeting_id = _create(connected_expert.id).meeting_id
    client.post_form("/video/zoom/disconnect")
    db.session.rollback()
    service.delete_meeting(connected_expert.id, "zoom", meeting_id)
    assert zoom.standin.calls[MEETING_DELETE] == 0


@pytest.mark.parametrize("endpoint", [MEETING_CREATE, MEETING_GET, MEETING_PATCH, MEETING_DELETE])
def test_a_server_error_is_transient(connected_expert, zoom, endpoint):
    meeting_id = _create(connected_expert.id).meeting_id
    zoom.standin.fail(endpoint, "500")
    calls = {
        MEETING_CREATE: lambda: _create(connected_expert.id),
        MEETING_GET: lambda: service.fresh_start_url(connected_expert.id, meeting_id),
        MEETING_PATCH: lambda: service.update_meeting(connected_expert.id, "zoom", meeting_id, "t", START, 30, "UTC"),
        MEETING_DELETE: lambda: service.delete_meeting(connected_expert.id, "zoom", meeting_id),
    }
    with pytest.raises(TransientMeetingError) as caught:
        calls[endpoint]()
    assert caught.value.retry_after is None
    calls[endpoint]()  # the fault was one-off: the retry succeeds


def test_a_rate_limit_is_transient_with_retry_after(connected_expert, zoom):
    zoom.standin.fail(MEETING_CREATE, "429", retry_after=17)
    with pytest.raises(TransientMeetingError) as caught:
        _create(connected_expert.id)
    assert caught.value.retry_after == 17
    assert service.retry_delay(1, caught.value.retry_after, jitter=0) == 17


def test_a_hanging_zoom_is_transient(app, connected_expert, zoom):
    app.config["ZOOM_TIMEOUT"] = 0.5
    zoom.standin.hang_seconds = 5
    zoom.standin.fail(MEETING_CREATE, "hang")
    with pytest.raises(TransientMeetingError, match="in time"):
        _create(connected_expert.id)


def test_an_unreachable_zoom_is_transient(app, connected_expert, zoom):
    zoom.stop()
    with pytest.raises(TransientMeetingError, match="reached"):
        _create(connected_expert.id)


def test_expired_token_is_refreshed_before_creating(connected_expert, zoom):
    expire_stored_token(connected_expert.id, zoom.standin)
    assert _create(connected_expert.id).provider == "zoom"
    assert zoom.standin.calls[TOKEN_REFRESH] == 1
    db.session.rollback()
    assert db.session.scalar(select(ZoomConnection.status)) != RECONNECT_NEEDED


# ---------------------------------------------------------------------------- retry policy (pure)


def test_retry_delay_backs_off_exponentially_up_to_a_cap():
    assert [service.retry_delay(n, jitter=1.0 - 1e-9) for n in (1, 2, 3, 4)] == pytest.approx([30, 60, 120, 240])
    assert [service.retry_delay(n, jitter=0) for n in (1, 2, 3)] == [15, 30, 60]
    assert service.retry_delay(9, jitter=0.999999, max_attempts=20) == pytest.approx(3600, rel=1e-5)
    assert service.retry_delay(30, jitter=0, max_attempts=40) == 1800


def test_retry_delay_honours_retry_after_as_a_floor():
    assert service.retry_delay(1, retry_after=120, jitter=0) == 120
    assert service.retry_delay(5, retry_after=1, jitter=0) == 240


def test_retry_delay_gives_up_after_the_last_attempt():
    assert service.retry_delay(10) is not None
    assert service.retry_delay(11) is None
    with pytest.raises(ValueError):
        service.retry_delay(0)


def test_retry_delay_is_jittered():
    delays = {service.retry_delay(3) for _ in range(50)}
    assert len(delays) > 1 and all(60 <= d <= 120 for d in delays)


def test_retry_after_header_parsing():
    from expertbook.video.zoom import retry_after_seconds

    now = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    assert retry_after_seconds("30") == 30
    assert retry_after_seconds("Tue, 01 Jan 2030 12:01:30 GMT", now=now) == 90
    assert retry_after_seconds("Tue, 01 Jan 2030 11:00:00 GMT", now=now) == 0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


def test_provider_calls_refuse_to_run_inside_a_service_transaction(connected_expert, zoom):
    from expertbook.database import transaction

    db.session.rollback()
    with pytest.raises(RuntimeError, match="inside a service transaction"):
        with transaction():
            _create(connected_expert.id, provider="jitsi")
    assert zoom.standin.calls[MEETING_CREATE] == 0
