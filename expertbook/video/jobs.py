"""The RQ side of video meetings: the job that creates, updates or deletes one booking's meeting."""
from __future__ import annotations

from flask import has_app_context


def sync_meeting(meeting_id: int) -> str:
    """RQ job: bring one meeting in line with its booking (idempotent; see :func:`expertbook.video.meetings.sync`)."""
    from expertbook.video import meetings

    if has_app_context():  # our worker (expertbook.notifications.jobs.AppWorker) gives each job an app context
        return meetings.sync(meeting_id)
    # Run by a plain ``rq worker`` rather than ours: build the app from the environment.
    from expertbook import create_app

    with create_app().app_context():
        return meetings.sync(meeting_id)
