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
