"""The RQ side of calendars: read one connection's busy times, write one booking's event."""
from __future__ import annotations

from expertbook.jobs import app_context


def refresh_busy(connection_id: int) -> str:
    """RQ job: read the busy times of one connection's checked calendars (see :func:`expertbook.calendars.service.refresh`)."""
    from expertbook.calendars import service

    with app_context():
        return service.refresh(connection_id)


def sync_event(event_id: int) -> str:
    """RQ job: bring one booking's calendar event in line with the booking (see :func:`expertbook.calendars.writes.sync`)."""
    from expertbook.calendars import writes

    with app_context():
        return writes.sync(event_id)
