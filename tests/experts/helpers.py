"""Shared helpers for the experts tests."""
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo


def next_weekday_at(hour: int, minute: int = 0, tz: str = "Europe/London", weekday: int = 2, weeks_ahead: int = 1) -> datetime:
    """A future instant: ``weekday`` (0 = Monday) at hour:minute local, at least a week from now, in UTC."""
    zone = ZoneInfo(tz)
    today = datetime.now(zone).date() + timedelta(days=7 * weeks_ahead)
    day = today + timedelta(days=(weekday - today.weekday()) % 7)
    return datetime.combine(day, time(hour, minute), tzinfo=zone).astimezone(UTC)


def book_kwargs(user, **extra):
    values = dict(name=user.name, email=user.email, phone="+44 20 7946 0000", notes="", customer_timezone="Europe/London")
    values.update(extra)
    return values
