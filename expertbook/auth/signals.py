"""Signals of accounts, so other areas can react without auth knowing them.

:data:`account_created` is sent INSIDE the transaction that creates an account (the outbox rule of
:mod:`expertbook.experts.signals` applies: receivers only write rows, through ``db.session``), with
the app as sender and ``user_id`` and ``email`` (normalised) as keywords. Experts listens to attach
guest bookings made with a verified address (:func:`expertbook.experts.service.claim_guest_bookings`);
the email verification step should send the same kind of signal when an address becomes verified.
"""
from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

account_created = _signals.signal("account-created")
