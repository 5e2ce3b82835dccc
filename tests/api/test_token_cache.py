"""Bearer tokens: a token's signature is verified once per worker, but its expiry is checked on every use."""
from __future__ import annotations

from datetime import timedelta

import pytest

from expertbook.api import service
from expertbook.auth.tokens import digest
from expertbook.database import utcnow


def _token(user_id: int = 7, session_id: str = "session-1", secret: str = "a secret", hours: float = 1) -> str:
    return service.issue_token(user_id, session_id, secret, service.expiry(hours))


def test_a_verified_token_still_expires(monkeypatch):
    token = _token()
    assert service.token_claims(token, "a secret") == (7, digest("session-1"))
    assert service.token_claims(token, "a secret").user_id == 7  # from the cache
    later = utcnow() + timedelta(hours=1, seconds=1)
    monkeypatch.setattr(service, "utcnow", lambda: later)
    with pytest.raises(service.TokenError, match="Token expired"):
        service.token_claims(token, "a secret")


def test_the_cache_is_per_key_and_never_holds_failures():
    token = _token()
    assert service.token_claims(token, "a secret").user_id == 7
    with pytest.raises(service.TokenError, match="Invalid token"):
        service.token_claims(token, "another secret")
    for _ in range(2):
        with pytest.raises(service.TokenError, match="Invalid token"):
            service.token_claims(token[:-2] + "xx", "a secret")


def test_a_token_without_a_login_session_is_invalid():
    """Tokens signed before they could be revoked carry no session id: they no longer work."""
    from joserfc import jwt

    now = int(utcnow().timestamp())
    old_style = jwt.encode({"alg": "HS256"}, {"sub": "7", "iat": now, "exp": now + 3600}, service._key("a secret"), algorithms=["HS256"])
    with pytest.raises(service.TokenError, match="Invalid token"):
        service.token_claims(old_style, "a secret")
