"""Shared helpers for the experts tests."""
import threading
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from expertbook.extensions import db


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


def race(app, calls):
    """Run each call in its own thread (and app context, so its own DB session), all released together."""
    barrier = threading.Barrier(len(calls))
    outcomes = [None] * len(calls)

    def run(index, call):
        with app.app_context():
            barrier.wait()
            try:
                call()
                outcomes[index] = "ok"
            except Exception as exc:  # noqa: BLE001 - the test inspects it
                outcomes[index] = exc
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    db.session.rollback()  # end the test's own read snapshot, so it sees what the threads committed
    return outcomes
