"""Clinic events other areas can subscribe to (e.g. to email the token), without editing the clinic code.

Both are sent only after the transaction committed, with the application as sender and the
appointment's id as the only keyword argument::

    from expertbook.clinic.signals import appointment_booked

    @appointment_booked.connect
    def email_token(app, appointment_id: int) -> None: ...

A failing receiver is logged and never undoes the booking.
"""
from blinker import Namespace

_signals = Namespace()

#: An appointment was booked (kwarg ``appointment_id``).
appointment_booked = _signals.signal("clinic.appointment-booked")
#: A patient cancelled an appointment (kwarg ``appointment_id``).
appointment_cancelled = _signals.signal("clinic.appointment-cancelled")
