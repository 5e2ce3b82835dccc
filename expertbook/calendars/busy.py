"""Busy times from iCalendar data: recurrences expanded, "free" events and cancelled ones left out, all-day
events and floating times placed in the calendar owner's zone. Pure functions over text, so every rule is
unit-tested without a server.

How each kind of event counts (as calendar apps mean them):

- ``TRANSP:TRANSPARENT`` ("show as free") blocks nothing; ``TRANSP:OPAQUE`` (the default of RFC 5545) blocks.
- ``STATUS:CANCELLED`` blocks nothing (a cancelled occurrence of a series, too).
- An all-day event (``DTSTART;VALUE=DATE``) blocks its whole days, midnight to midnight in ``zone``; one
  without DTEND lasts one day.
- A time with a ``TZID`` (or in UTC) is that instant; a floating time (no zone) is read in ``zone``.
- A recurring event is expanded (RRULE, RDATE, EXDATE and moved occurrences, RECURRENCE-ID) by
  ``recurring_ical_events``, each occurrence in its own zone, so a weekly 10:00 stays 10:00 across DST.
- ExpertBook's own booking events (UID ``...@expertbook``, written by :mod:`expertbook.calendars.writes`)
  are not busy times: the bookings themselves already hold their time.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events

Interval = tuple[datetime, datetime]
OWN_UID_SUFFIX = "@expertbook"


def _instant(value: date | datetime, zone: ZoneInfo) -> datetime:
    if isinstance(value, datetime):
        return (value if value.tzinfo is not None else value.replace(tzinfo=zone)).astimezone(UTC)
    return datetime.combine(value, time(0), tzinfo=zone).astimezone(UTC)


def _blocks(event) -> bool:
    if str(event.get("TRANSP", "OPAQUE")).strip().upper() == "TRANSPARENT":
        return False
    return str(event.get("STATUS", "")).strip().upper() != "CANCELLED"


def event_interval(event, zone: ZoneInfo) -> Interval | None:
    """The UTC interval one (expanded) VEVENT occupies, or None if it occupies no time."""
    start = event.get("DTSTART")
    if start is None:
        return None
    start = start.dt
    end = event.get("DTEND")
    if end is not None:
        end = end.dt
    elif event.get("DURATION") is not None:
        end = start + event.get("DURATION").dt
    else:
        end = start + timedelta(days=1) if not isinstance(start, datetime) else start
    begin, finish = _instant(start, zone), _instant(end, zone)
    return (begin, finish) if begin < finish else None


def intervals(texts: Iterable[str], start: datetime, end: datetime, zone: str) -> list[Interval]:
    """Every busy interval the iCalendar objects in ``texts`` hold within ``[start, end)``, merged and sorted.

    A text that cannot be parsed is skipped (one broken object must not hide the others' busy times).
    """
    tz = ZoneInfo(zone)
    found: list[Interval] = []
    for text in texts:
        try:
            calendar = icalendar.Calendar.from_ical(text)
            occurrences = recurring_ical_events.of(calendar, components=["VEVENT"]).between(start, end)
        except Exception:  # noqa: BLE001 - a foreign server's bad data: skip the object, keep the rest
            continue
        for event in occurrences:
            if not _blocks(event) or str(event.get("UID", "")).endswith(OWN_UID_SUFFIX):
                continue
            found_interval = event_interval(event, tz)
            if found_interval is not None and found_interval[0] < end and found_interval[1] > start:
                found.append(found_interval)
    return merge(found)


def merge(found: Iterable[Interval]) -> list[Interval]:
    """Sorted intervals with overlapping and touching ones joined."""
    merged: list[Interval] = []
    for begin, finish in sorted(found):
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], finish))
        else:
            merged.append((begin, finish))
    return merged


def subtract(found: Iterable[Interval], holes: Iterable[Interval]) -> list[Interval]:
    """``found`` (merged) without the parts covered by ``holes``: a calendar's busy times without the times of
    the expert's own bookings, which that calendar may hold as events ExpertBook wrote (a free/busy answer
    cannot say which busy time is ours)."""
    holes = merge(holes)
    result: list[Interval] = []
    for begin, finish in merge(found):
        for hole_begin, hole_end in holes:
            if hole_end <= begin or hole_begin >= finish:
                continue
            if hole_begin > begin:
                result.append((begin, hole_begin))
            begin = max(begin, hole_end)
            if begin >= finish:
                break
        if begin < finish:
            result.append((begin, finish))
    return result
