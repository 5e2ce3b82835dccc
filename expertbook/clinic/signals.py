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
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True)
class BookedRows:
    """Rows another area writes with every new appointment (an online booking or a walk-in), in the
    booking's own statement, where a receiver of ``appointment_booked`` would cost the online booking
    its single statement (see the module's docstring).

    ``build(appointment_id, hospital_id, now)`` takes SQL expressions (a CTE's columns in PostgreSQL's
    one statement, plain values elsewhere) and returns an ``INSERT ... SELECT ... RETURNING id``, which
    becomes one more CTE of the booking's statement, or runs right after the appointment's INSERT in
    the same transaction; it may insert no row at all. ``written(ids)`` gets the new rows' ids once
    the booking has committed, when there are any.
    """

    build: Callable[[Any, Any, Any], Any]
    written: Callable[[list[int]], None]


#: The registered :class:`BookedRows`, in the order they were registered.
booked_rows: list[BookedRows] = []


def write_with_every_booking(build: Callable[[Any, Any, Any], Any], written: Callable[[list[int]], None]) -> None:
    """Register rows to write with every new appointment (see :class:`BookedRows`); idempotent."""
    part = BookedRows(build, written)
    if part not in booked_rows:
        booked_rows.append(part)
