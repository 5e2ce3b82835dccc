"""iCalendar files (RFC 5545) for the whole app: events as an invitation (REQUEST/PUBLISH) or its
cancellation (CANCEL), and calendars of many events (the experts' subscription feed). The clinic's
emails and the expert bookings' download, emails and feed all build theirs here.

Times are written in the event's zone with a VTIMEZONE that uses RRULEs where the zone has rules
(:func:`vtimezone`), so icalendar, vobject (CalDAV servers such as Radicale) and ics (PyPI) all read
the same instants.
"""
from __future__ import annotations

from calendar import monthrange
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, Timezone, TimezoneDaylight, TimezoneStandard, vCalAddress, vText

from expertbook.database import utcnow

PRODID = "-//ExpertBook//Bookings//EN"


def event_ics(
    uid: str,
    start: datetime,
    end: datetime,
    summary: str,
    *,
    method: str = "REQUEST",
    status: str | None = None,
    **fields,
) -> str:
    """The text of a one-event calendar.

    ``uid`` must stay the same for one booking across its invitation and its cancellation (e.g.
    ``f"clinic-appointment-{id}@{host}"``); a later version has a higher ``sequence``, and a cancellation
    uses ``method="CANCEL"``. ``status`` defaults to CANCELLED for a cancellation, else CONFIRMED.
    The other ``fields`` are :func:`event`'s.
    """
    method = method.upper()
    status = status or ("CANCELLED" if method == "CANCEL" else "CONFIRMED")
    return calendar_ics([event(uid, start, end, summary, status=status, **fields)], method=method)


def calendar_ics(events: Iterable[Event], *, method: str | None = "PUBLISH", name: str | None = None) -> str:
    """The text of a calendar of ``events`` (built by :func:`event`) with the VTIMEZONEs their times use;
    ``name`` is the calendar's display name (X-WR-CALNAME, for subscriptions)."""
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    if method:
        calendar.add("method", method.upper())
    if name:
        calendar.add("x-wr-calname", name)
    for one in events:
        calendar.add_component(one)
    _add_timezones(calendar)
    return calendar.to_ical().decode()


def event(
    uid: str,
    start: datetime,
    end: datetime,
    summary: str,
    *,
    sequence: int = 0,
    status: str = "CONFIRMED",
    timezone: str | None = None,
    description: str = "",
    location: str = "",
    url: str | None = None,
    organizer: tuple[str, str] | None = None,
    attendees: Iterable[tuple[str, str]] = (),
    partstat: str | None = None,
    stamp: datetime | None = None,
    created: datetime | None = None,
    modified: datetime | None = None,
) -> Event:
    """One VEVENT.

    Times must be timezone-aware; with ``timezone`` (an IANA name) they are written in that zone with
    its TZID (and the calendar gets its VTIMEZONE), else in UTC. ``organizer`` and ``attendees`` are
    (name, email) pairs; ``partstat`` is the attendees' participation status. ``stamp`` (DTSTAMP)
    defaults to now.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("event times must be timezone-aware")
    zone = ZoneInfo(timezone) if timezone else None
    one = Event()
    one.add("uid", uid)
    one.add("sequence", sequence)
    one.add("dtstamp", stamp or utcnow())
    if created:
        one.add("created", created)
    if modified:
        one.add("last-modified", modified)
    one.add("dtstart", _local(start, zone))
    one.add("dtend", _local(end, zone))
    one.add("summary", summary)
    if description:
        one.add("description", description)
    if location:
        one.add("location", location)
    if url:
        one.add("url", url)
    one.add("status", status)
    if organizer:
        one.add("organizer", _address(*organizer))
    for name, email in attendees:
        address = _address(name, email)
        address.params["role"] = vText("REQ-PARTICIPANT")
        if partstat:
            address.params["partstat"] = vText(partstat)
        one.add("attendee", address)
    return one


def _address(name: str, email: str) -> vCalAddress:
    address = vCalAddress(f"mailto:{email}")
    address.params["cn"] = vText(name)
    return address


# ---------------------------------------------------------------------------- time zones


def _local(instant: datetime, zone: ZoneInfo | None) -> datetime:
    """``instant`` as the calendar writes it: local time in ``zone``, or UTC when there is no zone or the
    local time is ambiguous (the repeated hour when clocks go back names two instants; UTC names one)."""
    if zone is None:
        return instant.astimezone(UTC)
    local = instant.astimezone(zone)
    if local.replace(fold=1 - local.fold).utcoffset() != local.utcoffset():
        return instant.astimezone(UTC)
    return local


def _add_timezones(calendar: Calendar) -> None:
    """A VTIMEZONE for every TZID the calendar's times use (none for UTC times), covering their dates."""
    spans: dict[str, list[date]] = {}
    for event in calendar.walk("VEVENT"):
        for name in ("DTSTART", "DTEND"):
            prop = event.get(name)
            tzid = prop.params.get("TZID") if prop is not None else None
            if tzid:
                spans.setdefault(str(tzid), []).append(prop.dt.date())
    for tzid, days in sorted(spans.items()):
        calendar.add_component(vtimezone(tzid, min(days), max(days)))


def vtimezone(tzid: str, first: date, last: date) -> Timezone:
    """The VTIMEZONE of an IANA zone for events between ``first`` and ``last``, with RRULEs where it has rules.

    Every change of offset from the year before ``first`` to the year after ``last`` is found (daily steps,
    then bisection to the second) and grouped by what it is (offsets, name, month, weekday, wall-clock time);
    a group that happens in consecutive years on the same n-th (or last) weekday becomes one STANDARD or
    DAYLIGHT with a yearly RRULE (with UNTIL if the rule stopped), as Google and Outlook write them. Any
    other change is an onset of its own. RDATE lists are never used: vobject reads only their first value.
    A zone without changes gets one onset with its fixed offset.
    """
    zone = ZoneInfo(tzid)
    start, end = datetime(first.year - 1, 1, 1, tzinfo=UTC), datetime(last.year + 2, 1, 1, tzinfo=UTC)
    component = Timezone()
    component.add("tzid", tzid)
    changes = _changes(zone, start, end)
    if not changes:
        offset, dst, name = _state(zone, int(start.timestamp()))
        component.add_component(_onset(datetime(1970, 1, 1), offset, offset, dst, name))
        return component
    groups: dict[tuple, list[tuple[datetime, int, bool, datetime]]] = {}
    for instant, before, after in changes:
        local = (instant + before[0]).replace(tzinfo=None)  # onsets are written in the time before the change
        last_day = monthrange(local.year, local.month)[1]
        key = (before[0], after, local.month, local.weekday(), local.time())
        groups.setdefault(key, []).append((local, (local.day - 1) // 7 + 1, local.day + 7 > last_day, instant))
    for (offset_from, (offset_to, dst, name), month, weekday, _), onsets in groups.items():
        for run in _yearly_runs(onsets):
            every_last = all(onset[2] for onset in run)
            if len(run) > 1 and (every_last or len({onset[1] for onset in run}) == 1):
                rule = {"freq": "YEARLY", "bymonth": month, "byday": f"{-1 if every_last else run[0][1]}{_WEEKDAYS[weekday]}"}
                if run[-1][0].year < end.year - 1:  # the rule stopped inside the window
                    # A day past the last onset: dateutil (under vobject and ics) compares UNTIL with the
                    # onset's wall-clock time, and would drop the last onset if UNTIL were its exact instant.
                    rule["until"] = run[-1][3] + timedelta(days=1)
                component.add_component(_onset(run[0][0], offset_from, offset_to, dst, name, rule))
            else:
                for onset in run:
                    component.add_component(_onset(onset[0], offset_from, offset_to, dst, name))
    return component


_WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


def _state(zone: ZoneInfo, seconds: int) -> tuple[timedelta, timedelta, str]:
    local = datetime.fromtimestamp(seconds, UTC).astimezone(zone)
    return local.utcoffset(), local.dst(), local.tzname()


def _changes(zone: ZoneInfo, start: datetime, end: datetime) -> list[tuple[datetime, tuple, tuple]]:
    """Every change of offset, DST or name in [start, end): (instant, state before, state after)."""
    found, day = [], 86400
    now, stop = int(start.timestamp()), int(end.timestamp())
    before = _state(zone, now)
    while now < stop:
        after = _state(zone, now + day)
        if after != before:
            low, high = now, now + day  # the change is in (low, high]
            while high - low > 1:
                middle = (low + high) // 2
                low, high = (middle, high) if _state(zone, middle) == before else (low, middle)
            found.append((datetime.fromtimestamp(high, UTC), before, _state(zone, high)))
        now, before = now + day, after
    return found


def _yearly_runs(onsets: list) -> list[list]:
    """The onsets split into runs of consecutive years."""
    runs: list[list] = []
    for onset in sorted(onsets):
        if runs and onset[0].year == runs[-1][-1][0].year + 1:
            runs[-1].append(onset)
        else:
            runs.append([onset])
    return runs


def _onset(local: datetime, offset_from: timedelta, offset_to: timedelta, dst: timedelta, name: str | None, rule: dict | None = None):
    part = TimezoneDaylight() if dst else TimezoneStandard()
    part.add("dtstart", local)
    part.add("tzoffsetfrom", offset_from)
    part.add("tzoffsetto", offset_to)
    if name:
        part.add("tzname", name)
    if rule:
        part.add("rrule", rule)
    return part
