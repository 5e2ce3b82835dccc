"""Calendar files every client reads the same: VTIMEZONEs with RRULEs (as Google and Outlook write
them), read back by icalendar, vobject 0.9.9 (CalDAV servers such as Radicale) and ics (PyPI), across
both DST changes of Europe/London and America/New_York."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import ics
import icalendar
import pytest
import vobject

from expertbook.ics import calendar_ics, event, vtimezone

# Both changes of each zone in two years with different calendars: the day before, the day, the day after,
# at hours that straddle the change (a time in the spring gap cannot be a real instant; the autumn hour
# that happens twice is written in UTC, which names one instant).
CHANGES = {
    "Europe/London": ["2027-03-28", "2027-10-31", "2031-03-30", "2031-10-26"],
    "America/New_York": ["2027-03-14", "2027-11-07", "2031-03-09", "2031-11-02"],
}


def _instants(zone: str) -> list[datetime]:
    found = []
    for day in CHANGES[zone]:
        middle = datetime.fromisoformat(day)
        for offset in (-1, 0, 1):
            for hour in (0, 1, 2, 3, 9, 23):
                local = (middle + timedelta(days=offset)).replace(hour=hour, minute=30, tzinfo=ZoneInfo(zone))
                found.append(local.astimezone(UTC))
    # And every 20 minutes through the night of each change, in UTC steps (both sides of each hour that repeats).
    for day in CHANGES[zone]:
        start = datetime.fromisoformat(day).replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)
        found.extend(start + timedelta(minutes=20 * n) for n in range(24))
    return sorted(set(found))


def _calendar(zone: str) -> tuple[str, dict[str, datetime]]:
    truth, events = {}, []
    for n, instant in enumerate(_instants(zone)):
        uid = f"{n}@test"
        truth[uid] = instant
        events.append(event(uid, instant, instant + timedelta(minutes=45), f"event {n}", timezone=zone, stamp=instant))
    return calendar_ics(events, method="PUBLISH"), truth


@pytest.mark.parametrize("zone", sorted(CHANGES))
def test_icalendar_vobject_and_ics_read_the_same_instants(zone):
    text, truth = _calendar(zone)
    assert "RDATE" not in text and "RRULE:FREQ=YEARLY" in text
    read = {
        "icalendar": {str(e["UID"]): e.decoded("DTSTART") for e in icalendar.Calendar.from_ical(text).walk("VEVENT")},
        "vobject": {e.uid.value: e.dtstart.value for e in vobject.readOne(text).vevent_list},
        "ics": {e.uid: e.begin.datetime for e in ics.Calendar(text).events},
    }
    for parser, starts in read.items():
        assert set(starts) == set(truth), parser
        wrong = {uid: (starts[uid].isoformat(), truth[uid].isoformat()) for uid in truth if starts[uid].timestamp() != truth[uid].timestamp()}
        assert not wrong, f"{parser} reads {len(wrong)} of {len(truth)} times differently: {sorted(wrong.items())[:3]}"


@pytest.mark.parametrize("zone, rules", [
    ("Europe/London", {("DAYLIGHT", "BYMONTH=3", "BYDAY=-1SU"), ("STANDARD", "BYMONTH=10", "BYDAY=-1SU")}),
    ("America/New_York", {("DAYLIGHT", "BYMONTH=3", "BYDAY=2SU"), ("STANDARD", "BYMONTH=11", "BYDAY=1SU")}),
])
def test_zones_with_rules_get_two_yearly_rules(zone, rules):
    component = vtimezone(zone, date(2027, 1, 1), date(2029, 12, 31))
    found = set()
    for part in component.subcomponents:
        rule = part["RRULE"].to_ical().decode()
        assert "UNTIL" not in rule  # both rules still hold after the window
        found.add((part.name, *sorted(p for p in rule.split(";") if p.startswith(("BYMONTH", "BYDAY")))))
    assert found == {(kind, *sorted(parts)) for kind, *parts in rules}


def test_a_zone_without_changes_has_one_fixed_offset():
    component = vtimezone("Asia/Kolkata", date(2027, 1, 1), date(2027, 1, 1))
    [part] = component.subcomponents
    assert (part.name, part["TZOFFSETFROM"].to_ical(), part["TZOFFSETTO"].to_ical()) == ("STANDARD", "+0530", "+0530")
    assert "RRULE" not in part and "RDATE" not in part


def test_a_rule_that_stopped_ends_with_until():
    # Europe/Moscow kept summer time until 2010, then stayed on one offset (2011) and moved again (2014).
    component = vtimezone("Europe/Moscow", date(2010, 6, 1), date(2012, 6, 1))
    rules = [part["RRULE"].to_ical().decode() for part in component.subcomponents if "RRULE" in part]
    assert rules and all("UNTIL=" in rule for rule in rules)
    text = calendar_ics([event("m@test", datetime(2010, 7, 1, 9, tzinfo=UTC), datetime(2010, 7, 1, 10, tzinfo=UTC), "m", timezone="Europe/Moscow"),
                         event("n@test", datetime(2012, 1, 10, 9, tzinfo=UTC), datetime(2012, 1, 10, 10, tzinfo=UTC), "n", timezone="Europe/Moscow")])
    for starts in ({e.uid.value: e.dtstart.value for e in vobject.readOne(text).vevent_list},
                   {str(e["UID"]): e.decoded("DTSTART") for e in icalendar.Calendar.from_ical(text).walk("VEVENT")},
                   {e.uid: e.begin.datetime for e in ics.Calendar(text).events}):
        assert starts["m@test"].timestamp() == datetime(2010, 7, 1, 9, tzinfo=UTC).timestamp()
        assert starts["n@test"].timestamp() == datetime(2012, 1, 10, 9, tzinfo=UTC).timestamp()


def test_the_repeated_autumn_hour_is_written_in_utc():
    second = datetime(2027, 10, 31, 1, 30, tzinfo=UTC)  # 01:30 GMT, the second 01:30 in London
    text = calendar_ics([event("x@test", second, second + timedelta(hours=1), "x", timezone="Europe/London")])
    assert "DTSTART:20271031T013000Z" in text
