"""Signals the booking code subscribes to, so video never imports bookings.

Both are sent after the change has been committed, with ``user_id`` (the expert) as keyword.

- :data:`zoom_connection_changed`: an expert connected or re-authorized Zoom, disconnected it, or
  Zoom told us they removed our app. Subscribers resume the meetings that were waiting on the old
  connection ("meeting link pending"); each is created with the provider that now applies (Zoom
  again, or Jitsi once Zoom is gone).
- :data:`zoom_reauth_required`: an expert's connection just changed to ``reconnect_needed``. Sent
  once per change (not once per failing booking), so a subscriber can send the one
  "please re-authorize" email; :func:`expertbook.video.service.reauthorize_url` is the link to put in it.

Connect with ``zoom_connection_changed.connect(fn)`` (``fn(sender, user_id)``); the sender is the Flask app.
"""
from __future__ import annotations

from flask.signals import Namespace

_signals = Namespace()

zoom_connection_changed = _signals.signal("zoom-connection-changed")
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
