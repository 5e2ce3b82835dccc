"""Signals the booking code subscribes to, so video never imports bookings.

Both are sent after the change has been committed, with ``user_id`` (the expert) as keyword.

- :data:`zoom_connected`: an expert connected or re-authorized Zoom. Subscribers create the
  meetings that were waiting for it ("meeting link pending").
- :data:`zoom_reauth_required`: an expert's connection just changed to ``reconnect_needed``. Sent
  once per change (not once per failing booking), so a subscriber can send the one
  "please re-authorize" email; :func:`expertbook.video.service.reauthorize_url` is the link to put in it.

Connect with ``zoom_connected.connect(fn)`` (``fn(sender, user_id)``); the sender is the Flask app.
"""
from __future__ import annotations

from flask.signals import Namespace

_signals = Namespace()

zoom_connected = _signals.signal("zoom-connected")
zoom_reauth_required = _signals.signal("zoom-reauth-required")

# Sent INSIDE the transaction that records a meeting change (the outbox rule of
# :mod:`expertbook.experts.signals` applies: receivers only write rows, through ``db.session``).
# Both carry ``booking_id`` and ``meeting_id``.
#
# - :data:`meeting_ready`: the meeting of a confirmed booking was created; its join link is stored.
#   Subscribers queue the confirmation emails with the links.
# - :data:`meeting_reauth_needed`: creating the meeting needs the expert to re-authorize Zoom. Also
#   carries ``incident``, a string naming the refused grant (the same for every booking that waits on
#   it), so a subscriber can send one email per incident with a dedupe key.
meeting_ready = _signals.signal("meeting-ready")
meeting_reauth_needed = _signals.signal("meeting-reauth-needed")
