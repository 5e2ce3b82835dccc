"""The availability engine: which start times an expert offers for a service.

Pure functions over plain values, so every rule (weekly hours, overrides, bookings with buffers,
minimum notice, horizon, DST) is unit-tested without a database.

How times are made:

* Working ranges are wall-clock times in the expert's zone. Each local date's ranges are turned
  into UTC instants on their own, so "08:00" stays 08:00 local on both sides of a DST change.
* Inside a range, candidate starts step by real elapsed time (in UTC) from the range's start.
  A range that spans a DST change therefore never offers a time that does not exist on the clock
  (spring forward) nor loses the repeated hour (fall back).
* The step is the service's duration plus its buffers, so every offered time can be booked back to
  back with its neighbours. The meeting itself must fit inside the working range; buffers only
  keep other bookings away.
* A start is offered when it is at least ``min_notice`` from now, no further ahead than
  ``horizon_days``, and its blocked interval ``[start - before, end + after)`` overlaps no
  pending or confirmed booking's blocked interval.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

Range = tuple[time, time]
Interval = tuple[datetime, datetime]


@dataclass(frozen=True)
class Hours:
    """An expert's working hours: weekly ranges (0 = Monday) and per-date overrides (empty = day off)."""

    timezone: str
    weekly: Mapping[int, Sequence[Range]]
    overrides: Mapping[date, Sequence[Range]] = field(default_factory=dict)

    def ranges_on(self, day: date) -> Sequence[Range]:
        """The wall-clock working ranges of one local date."""
        if day in self.overrides:
            return self.overrides[day]
        return self.weekly.get(day.weekday(), ())


@dataclass(frozen=True)
class Rules:
    """The booking rules of one service."""

    duration_min: int
    buffer_before_min: int = 0
    buffer_after_min: int = 0
    min_notice_min: int = 0
    horizon_days: int = 60

    @property
    def duration(self) -> timedelta:
        return timedelta(minutes=self.duration_min)

    @property
    def step(self) -> timedelta:
        return timedelta(minutes=self.duration_min + self.buffer_before_min + self.buffer_after_min)

    def blocked(self, start: datetime) -> Interval:
        """The interval a booking starting at ``start`` keeps free of other bookings."""
        return (
            start - timedelta(minutes=self.buffer_before_min),
            start + self.duration + timedelta(minutes=self.buffer_after_min),
        )


def local_instant(day: date, clock: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of a wall-clock time on a local date.

    A time inside a spring-forward gap resolves with the offset before the change (``fold=0``),
    i.e. to the instant the clock jumps over; an ambiguous fall-back time means its first occurrence.
    """
    return datetime.combine(day, clock, tzinfo=zone).astimezone(UTC)


def working_intervals(hours: Hours, day: date) -> list[Interval]:
    """One local date's working ranges as UTC intervals; a range ending at 00:00 runs to midnight."""
    zone = ZoneInfo(hours.timezone)
    intervals = []
    for start, end in hours.ranges_on(day):
        start_at = local_instant(day, start, zone)
        end_at = local_instant(day + timedelta(days=1), time(0), zone) if end == time(0) else local_instant(day, end, zone)
        if start_at < end_at:
            intervals.append((start_at, end_at))
    return intervals


def overlaps(a: Interval, b: Interval) -> bool:
    """Whether two half-open intervals share any instant."""
    return a[0] < b[1] and b[0] < a[1]


def offered_starts(
    hours: Hours,
    rules: Rules,
    busy: Iterable[Interval],
    *,
    now: datetime,
    window_start: datetime,
    window_end: datetime,
) -> list[datetime]:
    """Every start time (UTC, ascending) offered in ``[window_start, window_end)``.

    ``busy`` holds the blocked intervals (buffers included) of the expert's pending and confirmed
    bookings.
    """
    zone = ZoneInfo(hours.timezone)
    busy = sorted(busy)
    earliest = now + timedelta(minutes=rules.min_notice_min)
    latest = now + timedelta(days=rules.horizon_days)
    first_day = window_start.astimezone(zone).date() - timedelta(days=1)
    last_day = window_end.astimezone(zone).date()
    starts: set[datetime] = set()
    day = first_day
    while day <= last_day:
        for range_start, range_end in working_intervals(hours, day):
            start = range_start
            while start + rules.duration <= range_end:
                if window_start <= start < window_end and earliest <= start <= latest:
                    blocked = rules.blocked(start)
                    if not any(overlaps(blocked, other) for other in busy):
                        starts.add(start)
                start += rules.step
        day += timedelta(days=1)
    return sorted(starts)


def is_offered(hours: Hours, rules: Rules, busy: Iterable[Interval], start: datetime, *, now: datetime) -> bool:
    """Whether exactly ``start`` is an offered time."""
    return start in offered_starts(hours, rules, busy, now=now, window_start=start, window_end=start + timedelta(seconds=1))


def local_day_window(day: date, timezone: str) -> Interval:
    """The UTC interval of one whole local date in ``timezone`` (23 or 25 hours on DST days)."""
    zone = ZoneInfo(timezone)
    return local_instant(day, time(0), zone), local_instant(day + timedelta(days=1), time(0), zone)


def group_by_local_day(starts: Iterable[datetime], timezone: str) -> dict[date, list[datetime]]:
    """Start times grouped by their date in ``timezone``."""
    zone = ZoneInfo(timezone)
    days: dict[date, list[datetime]] = {}
    for start in starts:
        days.setdefault(start.astimezone(zone).date(), []).append(start)
    return days
