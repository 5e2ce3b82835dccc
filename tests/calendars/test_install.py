"""caldav's HTTP library (niquests) brings urllib3-future, whose wheel would replace urllib3 for every package
here (requests included). `make install` builds it to live beside urllib3 instead: check that it did."""
from __future__ import annotations

import importlib.metadata
from pathlib import Path

import urllib3


def test_urllib3_is_upstream_and_the_fork_lives_beside_it():
    assert urllib3.__version__ == importlib.metadata.version("urllib3"), "urllib3-future has replaced urllib3 (see the Makefile)"
    site = Path(urllib3.__file__).resolve().parent.parent
    assert not (site / "urllib3_future.pth").exists(), "urllib3-future's startup hook is installed (see the Makefile)"
    import urllib3_future  # noqa: F401 - niquests, under caldav, uses it under its own name
