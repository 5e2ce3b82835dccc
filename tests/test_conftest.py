"""How the test suite finds PostgreSQL and Redis when no variable names them."""
from __future__ import annotations

import os
import shutil
import signal
import socket
from pathlib import Path

import pytest

from tests.conftest import _local_service, free_port


def test_a_variable_wins_over_a_local_server(monkeypatch):
    monkeypatch.setenv("EXPERTBOOK_PROBE_URL", "redis://elsewhere:6379/0")
    assert _local_service("EXPERTBOOK_PROBE_URL", free_port(), "redis://127.0.0.1/0") == ("redis://elsewhere:6379/0", "EXPERTBOOK_PROBE_URL")


def test_a_server_answering_on_the_default_port_is_used(monkeypatch):
    monkeypatch.delenv("EXPERTBOOK_PROBE_URL", raising=False)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        url, source = _local_service("EXPERTBOOK_PROBE_URL", port, f"redis://127.0.0.1:{port}/0")
    assert url == f"redis://127.0.0.1:{port}/0" and source.startswith(f"found on 127.0.0.1:{port}")


def test_nothing_there_says_how_to_get_it(monkeypatch):
    monkeypatch.delenv("EXPERTBOOK_PROBE_URL", raising=False)
    port = free_port()  # nothing listens there
    url, reason = _local_service("EXPERTBOOK_PROBE_URL", port, "redis://127.0.0.1/0")
    assert url is None and reason == f"none: set EXPERTBOOK_PROBE_URL, or run one on 127.0.0.1:{port}"


# ---------------------------------------------------------------------------- parallel workers


def _area_url(monkeypatch, worker: str, number: int) -> str:
    """The Redis URL ``redis_database(number)`` gives pytest-xdist worker ``worker``, closed again at once."""
    from tests import conftest

    monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
    databases = conftest.redis_database(number)
    url = next(databases)
    databases.close()
    return url


def test_two_workers_never_share_an_area_redis_database(monkeypatch):
    from tests.conftest import AREA_DATABASES, REDIS_URL, missing

    if not REDIS_URL:
        missing("Redis", "REDIS_URL is not set")
    urls = {(worker, number): _area_url(monkeypatch, worker, number) for worker in ("gw0", "gw1") for number in (1, 6)}
    assert len(set(urls.values())) == 4, urls
    assert urls["gw1", 1].rsplit("/", 1)[1] == str(1 + AREA_DATABASES)


def test_a_worker_beyond_the_servers_databases_gets_a_redis_server_of_its_own(monkeypatch):
    from redis import Redis

    from tests import conftest

    if not conftest.REDIS_URL:
        conftest.missing("Redis", "REDIS_URL is not set")
    if not shutil.which("redis-server"):
        conftest.missing("redis-server", "the redis-server binary is not installed")
    monkeypatch.setattr(conftest, "_worker_redis", [])  # this test's own, not the worker's
    url = _area_url(monkeypatch, "gw99", 3)  # database 696: no default server has it
    try:
        assert url == f"redis://127.0.0.1:{conftest._worker_redis[0].port}/3"
        assert Redis.from_url(url).ping()
    finally:
        conftest._worker_redis[0].stop()


def _browser_processes() -> set[int]:
    """The browsers Playwright started from this test process (the main process of each: it talks over a pipe)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = set(), [os.getpid()]
    while todo:
        for pid in children.get(todo.pop(), []):
            todo.append(pid)
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"--remote-debugging-pipe" in command and not any(part.startswith(b"--type=") for part in command):
                found.add(pid)
    return found


@pytest.mark.browser
def test_a_browser_that_died_is_launched_again_for_the_next_page(_playwright, recwarn):
    """Killed from outside (as a busy machine does), the browser is replaced at the next new context,
    where Playwright would otherwise raise TargetClosedError."""
    from tests.conftest import CHROMIUM, Browsers, missing

    if _playwright is None:
        missing("browser (Chromium)", f"{CHROMIUM} is not installed (apt-get install chromium)")
    before = _browser_processes()  # the worker's own browser, if it has one: left alone
    browsers = Browsers(_playwright)  # this test's own
    try:
        first = browsers.new_context().new_page()
        first.set_content("<p>first</p>")
        ours = _browser_processes() - before
        assert len(ours) == 1, ours
        os.kill(ours.pop(), signal.SIGKILL)
        page = browsers.new_context().new_page()
        page.set_content("<p>second</p>")
        assert page.text_content("p") == "second"
        assert browsers.launches == 2
        assert any("launched again" in str(warning.message) for warning in recwarn)
    finally:
        browsers.close()
