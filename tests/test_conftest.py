"""How the test suite finds PostgreSQL and Redis when no variable names them."""
from __future__ import annotations

import socket

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
