"""Calendars' subscriptions: busy times for the booking engine, booking events written out, relay passes.

The booking receivers run inside the booking's transaction (see :mod:`expertbook.experts.signals`): they
only write event rows and leave the server calls to jobs started after the commit. :func:`connect` is
called once per application; connecting again is a no-op.
"""
from __future__ import annotations

from expertbook.calendars import service, writes
from expertbook.experts import signals as booking_signals


def on_booking_confirmed(sender, booking_id: int, **extra) -> None:
    writes.booking_confirmed(booking_id)


def on_booking_changed(sender, booking_id: int, **extra) -> None:
    writes.booking_changed(booking_id)


def connect() -> None:
    """Register the busy source, subscribe to the booking signals, join the relay pass (idempotent)."""
    from expertbook.auth.service import register_account_data_source, register_account_deletion_hook
    from expertbook.experts.service import register_busy_source
    from expertbook.notifications.service import register_relay_hook

    register_busy_source(service.busy_for)
    booking_signals.booking_confirmed.connect(on_booking_confirmed)
    booking_signals.booking_rescheduled.connect(on_booking_changed)
    booking_signals.booking_cancelled.connect(on_booking_changed)
    booking_signals.booking_declined.connect(on_booking_changed)
    register_relay_hook(service.relay)
    register_relay_hook(writes.relay)
    register_account_deletion_hook(service.forget_account)
    register_account_data_source(service.account_data)
