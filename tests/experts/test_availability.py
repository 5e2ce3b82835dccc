"""The availability engine, as pure functions: hours, overrides, bookings with buffers, notice,
horizon, and DST changes in Europe/London and America/New_York."""
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from expertbook.experts.availability import Hours, Rules, group_by_local_day, local_day_window, offered_starts

WEEKDAYS_8_17 = {d: [(time(8), time(17))] for d in range(5)}
EVERY_DAY_8_17 = {d: [(time(8), time(17))] for d in range(7)}
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


def day_starts(hours, rules, day, busy=(), now=LONG_AGO, tz=None):
    start, end = local_day_window(day, tz or hours.timezone)
    rules = Rules(rules.duration_min, rules.buffer_before_min, rules.buffer_after_min, rules.min_notice_min, 100_000) if now is LONG_AGO else rules
    return offered_starts(hours, rules, busy, now=now, window_start=start, window_end=end)


def local_labels(starts, tz):
    return [s.astimezone(ZoneInfo(tz)).strftime("%H:%M") for s in starts]


def test_default_hours_give_hourly_slots_from_8_to_16():
    hours = Hours("Europe/London", WEEKDAYS_8_17)
    starts = day_starts(hours, Rules(60), date(2026, 6, 10))  # a Wednesday, BST
    assert local_labels(starts, "Europe/London") == [f"{h:02d}:00" for h in range(8, 17)]
    assert starts[0] == datetime(2026, 6, 10, 7, 0, tzinfo=UTC)  # 08:00 BST is 07:00 UTC


def test_weekend_and_several_ranges_a_day():
    hours = Hours("Europe/London", {0: [(time(9), time(12)), (time(13), time(15, 30))]})
    assert day_starts(hours, Rules(60), date(2026, 6, 13)) == []  # Saturday
    monday = day_starts(hours, Rules(60), date(2026, 6, 15))
    assert local_labels(monday, "Europe/London") == ["09:00", "10:00", "11:00", "13:00", "14:00"]  # 14:00-15:00 is the last that fits


def test_overrides_replace_the_weekly_hours_or_give_a_day_off():
    off = date(2026, 6, 15)
    short = date(2026, 6, 16)
    saturday = date(2026, 6, 20)
    hours = Hours("Europe/London", WEEKDAYS_8_17, {off: [], short: [(time(10), time(12))], saturday: [(time(9), time(10))]})
    assert day_starts(hours, Rules(60), off) == []
    assert local_labels(day_starts(hours, Rules(60), short), "Europe/London") == ["10:00", "11:00"]
    assert local_labels(day_starts(hours, Rules(60), saturday), "Europe/London") == ["09:00"]


def test_bookings_and_buffers_block_times():
    hours = Hours("UTC", EVERY_DAY_8_17)
    day = date(2026, 6, 10)
    ten = datetime(2026, 6, 10, 10, tzinfo=UTC)
    # A booking 10:00-11:00 with a 15 minute buffer after it blocks 10:00-11:15.
    busy = [(ten, ten + timedelta(minutes=75))]
    labels = local_labels(day_starts(hours, Rules(60), day, busy), "UTC")
    assert "10:00" not in labels and "11:00" not in labels and "09:00" in labels and "12:00" in labels
    # The new service's own buffer before (30 min) also keeps it away from the end of that block.
    rules = Rules(30, buffer_before_min=30)
    labels = local_labels(day_starts(hours, rules, day, busy), "UTC")
    # Step = 60 min (30 + 30 buffer): 08:00, 09:00, 10:00 (blocked), 11:00 (blocked: its buffer 10:30-11:00 overlaps), 12:00...
    assert labels[:3] == ["08:00", "09:00", "12:00"]


def test_a_longer_service_does_not_fit_before_a_booking():
    hours = Hours("UTC", EVERY_DAY_8_17)
    day = date(2026, 6, 10)
    busy = [(datetime(2026, 6, 10, 10, tzinfo=UTC), datetime(2026, 6, 10, 11, tzinfo=UTC))]
    labels = local_labels(day_starts(hours, Rules(120), day, busy), "UTC")
    # 08:00-10:00 fits exactly; nothing starting later may overlap 10:00-11:00.
    assert labels[0] == "08:00"
    assert all(not ("09:00" <= label < "11:00") for label in labels)


def test_the_meeting_must_fit_inside_the_hours():
    hours = Hours("UTC", {2: [(time(8), time(10, 30))]})
    assert local_labels(day_starts(hours, Rules(60), date(2026, 6, 10)), "UTC") == ["08:00", "09:00"]


def test_minimum_notice_and_horizon():
    hours = Hours("UTC", EVERY_DAY_8_17)
    now = datetime(2026, 6, 10, 9, 30, tzinfo=UTC)
    rules = Rules(60, min_notice_min=120, horizon_days=2)
    start = datetime(2026, 6, 10, tzinfo=UTC)
    starts = offered_starts(hours, rules, [], now=now, window_start=start, window_end=start + timedelta(days=5))
    assert starts[0] == datetime(2026, 6, 10, 12, tzinfo=UTC)  # 11:30 at the earliest, on the 60-min grid
    assert starts[-1] <= now + timedelta(days=2)
    assert starts[-1] == datetime(2026, 6, 12, 9, tzinfo=UTC)


def test_ranges_until_midnight():
    hours = Hours("UTC", {2: [(time(22), time(0))]})
    assert local_labels(day_starts(hours, Rules(60), date(2026, 6, 10)), "UTC") == ["22:00", "23:00"]


@pytest.mark.parametrize(
    "tz, before, switch, after",
    [
        ("Europe/London", date(2026, 3, 27), date(2026, 3, 29), date(2026, 3, 30)),  # spring forward Sun 29 March
        ("Europe/London", date(2026, 10, 23), date(2026, 10, 25), date(2026, 10, 26)),  # fall back Sun 25 October
        ("America/New_York", date(2026, 3, 6), date(2026, 3, 8), date(2026, 3, 9)),  # spring forward Sun 8 March
        ("America/New_York", date(2026, 10, 30), date(2026, 11, 1), date(2026, 11, 2)),  # fall back Sun 1 November
    ],
)
def test_8am_local_stays_8am_local_across_dst(tz, before, switch, after):
    hours = Hours(tz, EVERY_DAY_8_17)
    expected = [f"{h:02d}:00" for h in range(8, 17)]
    for day in (before, switch, after):
        starts = day_starts(hours, Rules(60), day)
        assert local_labels(starts, tz) == expected, day
        # and they are real, distinct instants exactly an hour apart
        assert all(b - a == timedelta(hours=1) for a, b in zip(starts, starts[1:]))
    # The UTC time of 08:00 local moves by an hour across the switch.
    utc_before = day_starts(hours, Rules(60), before)[0].hour
    utc_after = day_starts(hours, Rules(60), after)[0].hour
    assert abs(utc_before - utc_after) == 1


@pytest.mark.parametrize(
    "tz, day, expected",
    [
        # 00:00-04:00 on the spring-forward night: 01:00-02:00 (London) / 02:00-03:00 (New York) never happens.
        ("Europe/London", date(2026, 3, 29), ["00:00 GMT", "02:00 BST", "03:00 BST"]),
        ("America/New_York", date(2026, 3, 8), ["00:00 EST", "01:00 EST", "03:00 EDT"]),
        # On the fall-back night the repeated hour is real time: 5 hours of slots, 01:00 twice.
        ("Europe/London", date(2026, 10, 25), ["00:00 BST", "01:00 BST", "01:00 GMT", "02:00 GMT", "03:00 GMT"]),
        ("America/New_York", date(2026, 11, 1), ["00:00 EDT", "01:00 EDT", "01:00 EST", "02:00 EST", "03:00 EST"]),
    ],
)
def test_a_range_across_the_switch_has_no_phantom_or_missing_slots(tz, day, expected):
    hours = Hours(tz, {d: [(time(0), time(4))] for d in range(7)})
    starts = day_starts(hours, Rules(60), day)
    assert [s.astimezone(ZoneInfo(tz)).strftime("%H:%M %Z") for s in starts] == expected
    assert len(set(starts)) == len(starts)


def test_customer_zone_grouping_across_the_date_line():
    # An expert in New York working 17:00-21:00 is already "tomorrow" for a customer in Tokyo.
    hours = Hours("America/New_York", {d: [(time(17), time(21))] for d in range(7)})
    start, end = local_day_window(date(2026, 6, 11), "Asia/Tokyo")
    starts = offered_starts(hours, Rules(60, horizon_days=100_000), [], now=LONG_AGO, window_start=start, window_end=end)
    assert local_labels(starts, "Asia/Tokyo") == ["06:00", "07:00", "08:00", "09:00"]
    assert set(group_by_local_day(starts, "America/New_York")) == {date(2026, 6, 10)}


def test_dst_day_windows_are_23_and_25_hours():
    s, e = local_day_window(date(2026, 3, 29), "Europe/London")
    assert e - s == timedelta(hours=23)
    s, e = local_day_window(date(2026, 11, 1), "America/New_York")
    assert e - s == timedelta(hours=25)
