"""Claims as leases: short, and renewed by a background thread for as long as this process works on them.

A worker claims an outbox row for ``MAIL_CLAIM_SECONDS`` before sending it. Were the claim long enough
for the slowest send, a worker killed mid-send would keep its row away from every other worker for
that long. So the claim is short and this process's :class:`Leases` thread extends it, every third of
its length, while the send is in flight: a live worker keeps its row however slow the server is (RQ's
job timeout bounds that), and a dead one stops renewing, so its row is due again within
``MAIL_CLAIM_SECONDS`` and the relay hands it to another worker.

Renewing is fenced by the caller's ``renew`` function (for the outbox: the row is still ``sending``
under the same attempt number), so a lease that lapsed and was taken over is never extended again.
"""
from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Callable

from flask import Flask

log = logging.getLogger(__name__)

Renew = Callable[[], bool]


class Leases:
    """One per application and process: the claims it holds, renewed from one daemon thread.

    ``hold(renew)`` registers a claim and returns the function that releases it. Every ``interval``
    seconds the thread calls each ``renew()`` inside an application context: True keeps the lease,
    False (the claim is no longer ours) drops it, an exception (the database away for a moment) is
    logged and tried again next time.
    """

    def __init__(self, app: Flask, interval: float):
        self.app = app
        self.interval = max(float(interval), 0.05)
        self._changed = threading.Condition()
        self._held: dict[int, Renew] = {}
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        # A forked child holds none of its parent's leases and has no thread.
        os.register_at_fork(after_in_child=self._forget_parent)

    def _forget_parent(self) -> None:
        self._changed = threading.Condition()
        self._held = {}
        self._thread = None

    def hold(self, renew: Renew) -> Callable[[], None]:
        """Keep renewing a claim with ``renew()`` until the returned function is called."""
        with self._changed:
            if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="claim-leases", daemon=True)
                self._thread.start()
            lease_id = next(self._ids)
            self._held[lease_id] = renew
            self._changed.notify_all()

        def release() -> None:
            with self._changed:
                self._held.pop(lease_id, None)

        return release

    @property
    def held(self) -> int:
        """How many leases are held now."""
        with self._changed:
            return len(self._held)

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._held)
            # Renew an interval after taking the lease, then every interval: well before it lapses.
            time.sleep(self.interval)
            self.renew_all()

    def renew_all(self) -> None:
        """Renew every lease held now (the thread's pass; tests call it directly)."""
        with self._changed:
            held = list(self._held.items())
        for lease_id, renew in held:
            try:
                with self.app.app_context():
                    kept = renew()
            except Exception as exc:  # never let the thread die; the lease may still be renewed in time
                log.warning("could not renew a claim (%s); trying again in %.1f s", exc, self.interval)
                continue
            if not kept:
                with self._changed:
                    self._held.pop(lease_id, None)
