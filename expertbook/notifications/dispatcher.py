"""After-commit dispatch of new outbox rows to RQ, from a background thread, in batches.

Enqueueing an RQ job (a pickled job and several Redis commands) costs about as much CPU as a whole
clinic booking, so a request that has just committed a row does not do it: it hands the row's id to
its process's dispatcher and answers. The dispatcher's thread waits ``MAIL_DISPATCH_LINGER_SECONDS``
for more ids, then enqueues them: one row as its usual job (``send_email``, deterministic id), several
as one ``send_emails`` job that sends them one by one, each claimed on its own as always.

Nothing can be lost here. Every id handed over belongs to a row already committed as ``pending``: if
Redis is down, or the process dies before its thread gets to an id, the relay finds the row and
enqueues it. At a normal exit the ids still waiting are enqueued by an ``atexit`` hook.
"""
from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Callable

from flask import Flask

from expertbook.observability import current_request_id

log = logging.getLogger(__name__)


class Dispatcher:
    """One per application and process: collects committed row ids and enqueues them in batches.

    ``enqueue(ids, request_ids)`` does the enqueueing (:func:`expertbook.notifications.service.enqueue_new`,
    which also creates the one dispatcher per app: :func:`expertbook.notifications.service.dispatcher`);
    ``request_ids`` names, for each id, the request (or job) that committed its row, if any.
    """

    def __init__(self, app: Flask, enqueue: Callable[[list[int], dict[int, str | None]], object]):
        self.app = app
        self.enqueue = enqueue
        self.linger = float(app.config["MAIL_DISPATCH_LINGER_SECONDS"])
        self._changed = threading.Condition()
        self._waiting: list[int] = []
        self._request_ids: dict[int, str | None] = {}
        self._in_flight = 0
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._exit_hook = False
        # A forked child gets a fresh lock and state: the parent's thread did not come along (and may
        # have held the lock at the fork), and the ids copied with this object are the parent's to enqueue.
        os.register_at_fork(after_in_child=self._forget_parent)

    def _forget_parent(self) -> None:
        self._changed = threading.Condition()
        self._waiting = []
        self._request_ids = {}
        self._in_flight = 0
        self._thread = None

    def add(self, outbox_id: int) -> None:
        """Have the committed row ``outbox_id`` enqueued soon; returns at once."""
        with self._changed:
            if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
                self._start()
            self._waiting.append(outbox_id)
            request_id = current_request_id()
            if request_id:
                self._request_ids[outbox_id] = request_id
            self._changed.notify_all()

    def _start(self) -> None:
        self._pid = os.getpid()
        self._thread = threading.Thread(target=self._run, name="outbox-dispatcher", daemon=True)
        self._thread.start()
        if not self._exit_hook:
            atexit.register(self.flush)
            self._exit_hook = True

    def _take(self) -> tuple[list[int], dict[int, str | None]]:
        with self._changed:
            batch, self._waiting = self._waiting, []
            request_ids, self._request_ids = self._request_ids, {}
            self._in_flight += bool(batch)
            return batch, request_ids

    def _run(self) -> None:
        while True:
            try:
                with self._changed:
                    self._changed.wait_for(lambda: self._waiting)
                time.sleep(max(self.linger, 0.0))  # the rows committed meanwhile join this batch
                self._enqueue(*self._take())
            except Exception:  # never let the thread die: add() would keep handing it ids
                log.exception("the outbox dispatcher failed; the rows it held stay pending for the relay")
                time.sleep(1.0)

    def _enqueue(self, batch: list[int], request_ids: dict[int, str | None]) -> None:
        if not batch:
            return
        try:
            with self.app.app_context():
                self.enqueue(batch, request_ids)
        except Exception as exc:  # Redis down or unreachable: the rows are committed and pending
            log.warning("could not enqueue emails %s (%s); each stays pending for the relay", batch, exc)
        finally:
            with self._changed:
                self._in_flight -= 1
                self._changed.notify_all()

    def flush(self, timeout: float = 10.0) -> bool:
        """Enqueue the waiting ids now, in this thread, and wait for batches in flight; True if all done.

        The ``atexit`` hook, so ids are not left behind at a normal exit; tests use it to see the queue
        as it will be a moment after a commit.
        """
        if self._pid != os.getpid():
            return True
        self._enqueue(*self._take())
        with self._changed:
            return self._changed.wait_for(lambda: not self._waiting and not self._in_flight, timeout)
