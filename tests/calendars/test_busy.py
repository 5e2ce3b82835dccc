"""Busy times from iCalendar text (no server): what blocks and what does not, in which zone."""
from __future__ import annotations

from datetime import UTC, datetime

from expertbook.calendars.busy import intervals, merge

WINDOW = (datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 12, 31, tzinfo=UTC))


def _calendar(*events: str) -> str:
    body = "".join(f"BEGIN:VEVENT\r\nUID:{n}\r\nDTSTAMP:20300101T000000Z\r\n{event.strip()}\r\nEND:VEVENT\r\n" for n, event in enumerate(events))
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n{body}END:VCALENDAR\r\n"


def _utc(*parts) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_opaque_events_block_and_free_or_cancelled_ones_do_not():
    text = _calendar(
        "DTSTART:20300105T100000Z\r\nDTEND:20300105T110000Z",
        "DTSTART:20300105T120000Z\r\nDTEND:20300105T130000Z\r\nTRANSP:TRANSPARENT",
        "DTSTART:20300105T140000Z\r\nDTEND:20300105T150000Z\r\nSTATUS:CANCELLED",
        "DTSTART:20300105T160000Z\r\nDURATION:PT30M\r\nTRANSP:OPAQUE",
    )
    assert intervals([text], *WINDOW, "Europe/London") == [
        (_utc(2030, 1, 5, 10), _utc(2030, 1, 5, 11)),
        (_utc(2030, 1, 5, 16), _utc(2030, 1, 5, 16, 30)),
    ]


def test_all_day_and_floating_times_are_the_calendar_owners_days_and_clock():
    text = _calendar(
        "DTSTART;VALUE=DATE:20300110\r\nDTEND;VALUE=DATE:20300112",  # two whole days
        "DTSTART;VALUE=DATE:20300115",  # no DTEND: one day
        "DTSTART:20300120T090000\r\nDTEND:20300120T100000",  # floating: 09:00 on the owner's clock
    )
    found = intervals([text], *WINDOW, "Asia/Kolkata")
    assert found == [
        (_utc(2030, 1, 9, 18, 30), _utc(2030, 1, 11, 18, 30)),
        (_utc(2030, 1, 14, 18, 30), _utc(2030, 1, 15, 18, 30)),
        (_utc(2030, 1, 20, 3, 30), _utc(2030, 1, 20, 4, 30)),
    ]


def test_a_weekly_series_keeps_its_wall_clock_across_dst_with_exceptions_and_moved_occurrences():
    text = _calendar(
        # Weekly on Thursdays 10:00 London, from before to after the clocks go forward (31 March 2030).
        "DTSTART;TZID=Europe/London:20300321T100000\r\nDTEND;TZID=Europe/London:20300321T110000\r\n"
        "RRULE:FREQ=WEEKLY;COUNT=4\r\nEXDATE;TZID=Europe/London:20300328T100000",
    ) .replace("END:VCALENDAR", "BEGIN:VEVENT\r\nUID:0\r\nDTSTAMP:20300101T000000Z\r\nRECURRENCE-ID;TZID=Europe/London:20300404T100000\r\n"
               "DTSTART;TZID=Europe/London:20300404T150000\r\nDTEND;TZID=Europe/London:20300404T160000\r\nEND:VEVENT\r\nEND:VCALENDAR")
    assert intervals([text], *WINDOW, "UTC") == [
        (_utc(2030, 3, 21, 10), _utc(2030, 3, 21, 11)),  # GMT
        # 28 March excluded
        (_utc(2030, 4, 4, 14), _utc(2030, 4, 4, 15)),  # moved to 15:00 BST
        (_utc(2030, 4, 11, 9), _utc(2030, 4, 11, 10)),  # 10:00 BST
    ]


def test_a_broken_object_does_not_hide_the_others():
    good = _calendar("DTSTART:20300105T100000Z\r\nDTEND:20300105T110000Z")
    assert intervals(["not a calendar", good], *WINDOW, "UTC") == [(_utc(2030, 1, 5, 10), _utc(2030, 1, 5, 11))]


def test_merge_joins_overlapping_and_touching_intervals():
    a, b, c, d = (_utc(2030, 1, 1, h) for h in (9, 10, 11, 12))
    assert merge([(c, d), (a, b), (b, c)]) == [(a, d)]
