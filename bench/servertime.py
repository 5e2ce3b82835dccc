"""Server time of a page, measured in-process: the WSGI call and the body's iteration, nothing else.

No socket, no HTTP parsing, no client: what is timed is what the app itself spends (routing, the
session and user load, the queries, the template) for a request with the given cookie.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from werkzeug.test import EnvironBuilder


@dataclass
class ServerTime:
    label: str
    path: str
    requests: int
    p50_ms: float
    p90_ms: float
    status: int
    bytes: int


def measure(app, label: str, path: str, cookie: str | None, requests: int = 200, warmup: int = 20) -> ServerTime:
    """Call ``app`` for ``path`` ``warmup + requests`` times and return the p50/p90 of the timed calls."""
    headers = {"Cookie": f"session={cookie}"} if cookie else {}
    template = EnvironBuilder(path=path, base_url="http://127.0.0.1", headers=headers).get_environ()
    status_line: list[str] = []

    def start_response(status, response_headers, exc_info=None):
        status_line.append(status)

    timings: list[float] = []
    size = 0
    for i in range(warmup + requests):
        environ = dict(template)
        status_line.clear()
        started = time.perf_counter()
        body = app(environ, start_response)
        try:
            size = sum(len(chunk) for chunk in body)
        finally:
            if hasattr(body, "close"):
                body.close()
        elapsed = time.perf_counter() - started
        if i >= warmup:
            timings.append(elapsed * 1000)
    status = int(status_line[0].split()[0])
    timings.sort()
    return ServerTime(label, path, requests, statistics.median(timings), timings[int(len(timings) * 0.9)], status, size)
