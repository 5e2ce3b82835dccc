"""Bearer tokens: a token's signature is verified once per worker, but its expiry is checked on every use."""
from __future__ import annotations

from datetime import timedelta

import pytest

from expertbook.api import service
from expertbook.database import utcnow


def test_a_verified_token_still_expires(monkeypatch):
    token, _ = service.issue_token(7, "a secret", hours=1)
    assert service.user_id_from_token(token, "a secret") == 7
    assert service.user_id_from_token(token, "a secret") == 7  # from the cache
    later = utcnow() + timedelta(hours=1, seconds=1)
    monkeypatch.setattr(service, "utcnow", lambda: later)
    with pytest.raises(service.TokenError, match="Token expired"):
        service.user_id_from_token(token, "a secret")


def test_the_cache_is_per_key_and_never_holds_failures():
    token, _ = service.issue_token(7, "a secret", hours=1)
    assert service.user_id_from_token(token, "a secret") == 7
    with pytest.raises(service.TokenError, match="Invalid token"):
        service.user_id_from_token(token, "another secret")
    for _ in range(2):
        with pytest.raises(service.TokenError, match="Invalid token"):
            service.user_id_from_token(token[:-2] + "xx", "a secret")
