"""The app's secret key and the old keys it still accepts: sign with the current, verify with any.

``SECRET_KEY`` signs and keys everything new: session cookies, CSRF tokens, API bearer tokens, the
signed links (a guest's manage link, a clinic move link), the binding of reset and verification
tokens, and the sealing of links in queued emails. ``SECRET_KEY_FALLBACKS`` (Flask's own setting,
most recent first) lists retired keys that are still accepted when *checking* one of those values,
so rotating the key breaks nothing in flight; every value made from then on uses the new key.
Flask itself honours the fallbacks for the session cookie; this module gives the rest of the app the
same list (docs/operations.md, *Key rotation*).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import current_app


def current(config: Mapping[str, Any] | None = None) -> str:
    """The key every new signature, hash or seal is made with."""
    config = current_app.config if config is None else config
    return str(config["SECRET_KEY"])


def accepted(config: Mapping[str, Any] | None = None) -> tuple[str, ...]:
    """Every key a value may have been made with: the current key first, then the fallbacks in order."""
    config = current_app.config if config is None else config
    keys = [current(config)]
    for key in config.get("SECRET_KEY_FALLBACKS") or ():
        key = str(key)
        if key and key not in keys:
            keys.append(key)
    return tuple(keys)


def for_itsdangerous(config: Mapping[str, Any] | None = None) -> list[str]:
    """The keys in the order itsdangerous takes a list in: oldest first, the signing key last (it
    signs with the last and tries them from the last to the first)."""
    return list(reversed(accepted(config)))
