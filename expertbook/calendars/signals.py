"""Signals other areas subscribe to, so calendars never imports them.

- :data:`google_connection_changed`: an expert connected or re-authorized Google, or disconnected it. Sent
  after the change has been committed, with ``user_id`` (the expert). The video area resumes the Google
  Meet meetings that were waiting on the old grant.
"""
from __future__ import annotations

from flask.signals import Namespace

_signals = Namespace()

google_connection_changed = _signals.signal("google-connection-changed")
