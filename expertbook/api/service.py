"""API rules: signed bearer tokens (JWT, HS256) with an expiry, each standing for one login session.

A token's claims are the user (``sub``), the id of its login session (``sid``, a row of
``login_sessions`` stored under the SHA-256 of the id, see :mod:`expertbook.auth.sessions`) and its
expiry. It is signed with (a key derived from) ``SECRET_KEY`` and accepted when signed with it or one
of ``SECRET_KEY_FALLBACKS``, so a key rotation does not log API clients out (:mod:`expertbook.keys`). The signature is checked once per worker and token (cached); whether the session is still
open (not logged out, no password change since) is checked by the request, with the account lookup
that request makes anyway.
"""
from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import NamedTuple

from joserfc import jwt
from joserfc.errors import BadSignatureError, ExpiredTokenError, JoseError
from joserfc.jwk import OctKey

from expertbook.auth.tokens import digest
from expertbook.database import utcnow

ALGORITHM = "HS256"


class TokenError(Exception):
    """A bearer token that cannot be used; the message is what the client is told."""


@lru_cache(maxsize=4)
def _key(secret_key: str) -> OctKey:
    # A key derived for this purpose only, so API tokens and session cookies never share a signature.
    return OctKey.import_key(("expertbook-api-token:" + secret_key).encode())


def expiry(hours: float, now: datetime | None = None) -> datetime:
    """When a token issued now for ``hours`` expires, in whole seconds (as its ``exp`` claim says)."""
    now = now or utcnow()
    return datetime.fromtimestamp(int(now.timestamp()) + int(hours * 3600), UTC)


def issue_token(user_id: int, session_id: str, secret_key: str, expires_at: datetime) -> str:
    """A signed token for ``user_id`` standing for the login session ``session_id``, valid until ``expires_at``."""
    claims = {"sub": str(user_id), "sid": session_id, "iat": int(utcnow().timestamp()), "exp": int(expires_at.timestamp())}
    return jwt.encode({"alg": ALGORITHM}, claims, _key(secret_key), algorithms=[ALGORITHM])


class Claims(NamedTuple):
    """What a valid token says: whose it is and the stored hash of its login session."""

    user_id: int
    session_hash: str


def token_claims(token: str, secret_keys: str | tuple[str, ...]) -> Claims:
    """The claims of a token validly signed with one of ``secret_keys`` (the current key first, then
    the fallbacks) and unexpired; raises TokenError("Token expired") or TokenError("Invalid token").
    Whether its session is still open is the caller's check."""
    if isinstance(secret_keys, str):
        secret_keys = (secret_keys,)
    user_id, expires, session_hash = _verified(token, tuple(secret_keys))
    if expires <= utcnow().timestamp():
        raise TokenError("Token expired")
    return Claims(user_id, session_hash)


def _decoded(token: str, secret_keys: tuple[str, ...]):
    """The token decoded with the first of ``secret_keys`` whose signature it carries."""
    for secret_key in secret_keys[:-1]:
        try:
            return jwt.decode(token, _key(secret_key), algorithms=[ALGORITHM])
        except BadSignatureError:
            continue
    return jwt.decode(token, _key(secret_keys[-1]), algorithms=[ALGORITHM])


@lru_cache(maxsize=4096)
def _verified(token: str, secret_keys: tuple[str, ...]) -> tuple[int, int, str]:
    # A client sends the same token with every request: its signature is checked once per worker,
    # its expiry every time (above). Failures raise, and so are never cached. The session id's hash
    # is computed here too, once. A token without a session id (issued before tokens could be
    # revoked) is invalid: its owner logs in again. The keys are part of the cache's key: once a
    # fallback is dropped, a token it signed is checked again, and refused.
    try:
        decoded = _decoded(token, secret_keys)
        jwt.JWTClaimsRegistry(exp={"essential": True}, sub={"essential": True}, sid={"essential": True}).validate(decoded.claims)
        session_id = decoded.claims["sid"]
        if not isinstance(session_id, str) or not session_id:
            raise ValueError("sid")
        return int(decoded.claims["sub"]), int(decoded.claims["exp"]), digest(session_id)
    except ExpiredTokenError:
        raise TokenError("Token expired") from None
    except (JoseError, ValueError, TypeError, KeyError):
        raise TokenError("Invalid token") from None
