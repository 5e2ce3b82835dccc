"""The RQ side of video meetings: the job that creates, updates or deletes one booking's meeting."""
from __future__ import annotations

from expertbook.jobs import app_context


def sync_meeting(meeting_id: int) -> str:
    """RQ job: bring one meeting in line with its booking (idempotent; see :func:`expertbook.video.meetings.sync`)."""
    from expertbook.video import meetings

    with app_context():  # our worker's, or a fresh app's under a plain ``rq worker``
        return meetings.sync(meeting_id)
