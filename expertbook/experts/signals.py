"""Signals sent after a booking change has committed, so notifications and video meetings can
subscribe without this package knowing about them.

Each is sent with the application as sender and ``booking_id`` (int); ``booking_cancelled`` also
carries ``cancelled_by`` (the user id of whoever cancelled). Receivers run after the commit and
their failures are logged, never undoing the booking.

    from expertbook.experts.signals import booking_confirmed

    @booking_confirmed.connect
    def create_meeting(app, booking_id, **extra): ...
"""
from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

booking_requested = _signals.signal("booking-requested")  # a booking that needs the expert's acceptance was made
booking_confirmed = _signals.signal("booking-confirmed")  # a booking became confirmed: at once, or on accept
booking_declined = _signals.signal("booking-declined")  # the expert declined a pending request
booking_cancelled = _signals.signal("booking-cancelled")  # customer or expert cancelled (kwarg cancelled_by)
