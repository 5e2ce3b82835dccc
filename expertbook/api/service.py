"""API rules: signed bearer tokens (JWT, HS256) with an expiry."""
from __future__ import annotations

from datetime import timedelta
from functools import lru_cache

from joserfc import jwt
from joserfc.errors import ExpiredTokenError, JoseError
from joserfc.jwk import OctKey

from expertbook.database import utcnow

ALGORITHM = "HS256"


class TokenError(Exception):
    """A bearer token that cannot be used; the message is what the client is told."""


@lru_cache(maxsize=4)
def _key(secret_key: str) -> OctKey:
    # A key derived for this purpose only, so API tokens and session cookies never share a signature.
    return OctKey.import_key(("expertbook-api-token:" + secret_key).encode())


def issue_token(user_id: int, secret_key: str, hours: int) -> tuple[str, int]:
    """A signed token for ``user_id`` and its lifetime in seconds."""
    now = utcnow()
    expires_in = int(timedelta(hours=hours).total_seconds())
    claims = {"sub": str(user_id), "iat": int(now.timestamp()), "exp": int(now.timestamp()) + expires_in}
    return jwt.encode({"alg": ALGORITHM}, claims, _key(secret_key), algorithms=[ALGORITHM]), expires_in


def user_id_from_token(token: str, secret_key: str) -> int:
    """The user id a valid token was issued to; raises TokenError("Token expired") or TokenError("Invalid token")."""
    user_id, expires = _verified(token, secret_key)
    if expires <= utcnow().timestamp():
        raise TokenError("Token expired")
    return user_id


@lru_cache(maxsize=4096)
def _verified(token: str, secret_key: str) -> tuple[int, int]:
    # A client sends the same token with every request: its signature is checked once per worker,
    # its expiry every time (above). Failures raise, and so are never cached.
    try:
        decoded = jwt.decode(token, _key(secret_key), algorithms=[ALGORITHM])
        jwt.JWTClaimsRegistry(exp={"essential": True}, sub={"essential": True}).validate(decoded.claims)
        return int(decoded.claims["sub"]), int(decoded.claims["exp"])
    except ExpiredTokenError:
        raise TokenError("Token expired") from None
    except (JoseError, ValueError, TypeError, KeyError):
        raise TokenError("Invalid token") from None
