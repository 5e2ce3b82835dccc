"""Moved to :mod:`expertbook.ics` (one iCalendar builder for the whole app); kept for the old import path."""
from expertbook.ics import event_ics

__all__ = ["event_ics"]
