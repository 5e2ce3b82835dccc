"""Clinic events other areas can subscribe to (e.g. to email a cancellation), without editing the clinic code.

Both are sent INSIDE the booking's transaction, right after the change is flushed, with the application
as sender and the appointment's id as the only keyword argument::

    from expertbook.clinic.signals import appointment_booked

    @appointment_booked.connect
    def email_token(app, appointment_id: int) -> None: ...

That is what lets a receiver write its own rows (an outbox email, say) in the same transaction, so they
commit or roll back together with the booking. Receivers therefore only write through ``db.session`` and
defer every side effect (HTTP, Redis, SMTP) with ``expertbook.database.after_commit``; a receiver whose
failure must not cost the booking writes in a savepoint and logs (``queue_composed`` does, see
``never_costs_the_change`` in ``expertbook.notifications.service``): on PostgreSQL a failed statement
outside a savepoint aborts the whole transaction, which ``transaction()`` then refuses to commit.

The token confirmation itself is no receiver: the booking writes it (in its one statement on PostgreSQL,
see ``expertbook.clinic.booking.book``). With no receiver of
``appointment_booked`` connected, as shipped, PostgreSQL runs that statement on its own, without a
transaction around it; connecting one puts the booking back in a transaction, at the cost of a BEGIN and
a COMMIT round trip per booking.
"""
from blinker import Namespace
from flask import current_app

_signals = Namespace()

#: An appointment was booked (kwarg ``appointment_id``).
appointment_booked = _signals.signal("clinic.appointment-booked")
#: A patient cancelled an appointment (kwarg ``appointment_id``).
appointment_cancelled = _signals.signal("clinic.appointment-cancelled")


def send(signal, **kwargs) -> None:
    """Send one of these signals from inside the change's transaction, with the application as sender."""
    signal.send(current_app._get_current_object(), **kwargs)
