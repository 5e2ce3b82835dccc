"""Signals sent when a booking changes, so notifications and video meetings can subscribe without
this package knowing about them.

Each is sent with the application as sender and ``booking_id`` (int). ``booking_confirmed`` also
carries ``accepted`` (True when the expert accepted a request, False when the booking was confirmed
at once); ``booking_cancelled`` carries ``cancelled_by`` (the user id of whoever cancelled).

**The outbox rule: receivers run INSIDE the booking's transaction**, right after the change is
flushed and before it commits. So:

- a receiver may write rows, only through ``db.session`` (``queue_email(...)``, a meeting row):
  they commit together with the booking, or not at all if it rolls back;
- a receiver must NOT do anything outside the database (HTTP calls, Redis, enqueueing jobs, sending
  mail): defer it with :func:`expertbook.database.after_commit`, which runs it only after the commit;
- an exception in a receiver rolls the booking back, so only let one escape for a real bug.

    from expertbook.experts.signals import booking_confirmed

    @booking_confirmed.connect
    def create_meeting(app, booking_id, **extra): ...
"""
from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

booking_requested = _signals.signal("booking-requested")  # a booking that needs the expert's acceptance was made
booking_confirmed = _signals.signal("booking-confirmed")  # a booking became confirmed: at once, or on accept (kwarg accepted)
booking_declined = _signals.signal("booking-declined")  # the expert declined a pending request
booking_cancelled = _signals.signal("booking-cancelled")  # customer or expert cancelled (kwarg cancelled_by; None: a guest)
# The booking moved to another time (same UID, SEQUENCE + 1). Kwargs: previous_start, previous_end (aware UTC),
# by_customer (bool), back_to_pending (True when the customer moved a request that needs acceptance).
booking_rescheduled = _signals.signal("booking-rescheduled")
