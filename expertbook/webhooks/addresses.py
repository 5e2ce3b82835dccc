"""Where a webhook may be sent, and the one POST that sends it: protection against server-side request forgery.

A subscription's URL is a place our server connects to on its owner's say-so. Left unchecked, it
would let anyone with a subscription make the server call its own internal services (the database,
Redis, a cloud metadata endpoint on 169.254.169.254) and read their answers in the delivery log. So:

- only ``https`` URLs (``WEBHOOK_ALLOW_HTTP`` lets tests and development use ``http``), without a
  user name or password in them;
- every address the host name resolves to must be a public one: private, loopback, link-local,
  shared, reserved and multicast ranges are refused (``WEBHOOK_ALLOW_PRIVATE_ADDRESSES`` lets a test
  or an on-premises installation reach them);
- the check runs when the subscription is saved AND before every delivery, and the delivery connects
  to the very address it checked (the Host header and TLS's server name and certificate check still
  use the host name), so a DNS answer that changes between check and connect (DNS rebinding) cannot
  slip a private address in;
- redirects are never followed: a 3xx is an answer like any other that is not 2xx.
"""
from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import current_app
from flask_babel import gettext as _

MAX_URL = 2000
EXCERPT = 500


class RefusedAddress(ValueError):
    """The URL may not be used; the message says why, in words its owner understands."""


@dataclass(frozen=True)
class Target:
    """A URL taken apart: where to connect and what to ask for."""

    scheme: str
    host: str
    port: int
    path: str  # path and query, as sent in the request line

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def parse(url: str) -> Target:
    """Check a URL's form (not yet where it points); raise :class:`RefusedAddress` if it cannot be used."""
    url = (url or "").strip()
    if not url:
        raise RefusedAddress(_("Enter the address of your endpoint."))
    if len(url) > MAX_URL:
        raise RefusedAddress(_("Keep the address under %(count)s characters.", count=MAX_URL))
    if any(ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in url):
        raise RefusedAddress(_("The address may not contain spaces or control characters."))
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise RefusedAddress(_("This is not a valid address.")) from None
    allowed = ("https", "http") if current_app.config.get("WEBHOOK_ALLOW_HTTP") else ("https",)
    if parts.scheme not in allowed:
        raise RefusedAddress(_("Use an https:// address."))
    if not parts.hostname:
        raise RefusedAddress(_("The address needs a host name."))
    if parts.username is not None or parts.password is not None:
        raise RefusedAddress(_("Leave the user name and password out of the address; check the signature instead."))
    if parts.fragment:
        raise RefusedAddress(_("Leave out the part after #: it is never sent."))
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), path)


def _refused(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    # is_global is False for private, loopback, link-local, shared (100.64/10), reserved and
    # unspecified addresses; multicast is refused on its own, as some of it counts as global.
    return not address.is_global or address.is_multicast


def resolve(target: Target) -> str:
    """The address to connect to: the host name resolved, every answer checked. Raises
    :class:`RefusedAddress` when the name does not resolve or any answer is in a refused range."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise RefusedAddress(_("The host name %(host)s could not be found.", host=target.host)) from None
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    if not addresses:
        raise RefusedAddress(_("The host name %(host)s could not be found.", host=target.host))
    if not current_app.config.get("WEBHOOK_ALLOW_PRIVATE_ADDRESSES"):
        # Every answer, not only the first: a name that resolves to a public and a private address
        # could be connected to the private one by any client that picks another answer.
        for address in addresses:
            if _refused(address):
                raise RefusedAddress(_("%(host)s points to a private or local address (%(address)s), which webhooks may not reach.",
                                       host=target.host, address=str(address)))
    return str(addresses[0])


def check(url: str) -> Target:
    """Check a URL as a subscription is saved: its form, and where its name points now."""
    target = parse(url)
    resolve(target)
    return target


@dataclass(frozen=True)
class Answer:
    """What came back from one POST."""

    status: int
    excerpt: str


class NoAnswer(Exception):
    """The POST got no HTTP answer (timeout, refused connection, TLS failure, refused address)."""


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> Answer:
    """POST ``body`` to ``url`` (checked again, and connected to at the address checked), following no
    redirect, within ``timeout`` seconds. Returns the answer, whatever its status; raises
    :class:`RefusedAddress` or :class:`NoAnswer`."""
    import urllib3

    target = parse(url)
    address = resolve(target)
    deadline = time.monotonic() + timeout
    options = dict(timeout=urllib3.Timeout(connect=timeout, read=timeout), retries=False, maxsize=1)
    if target.scheme == "https":
        import certifi

        pool = urllib3.HTTPSConnectionPool(
            address, target.port, server_hostname=target.host, assert_hostname=target.host,
            cert_reqs="CERT_REQUIRED", ca_certs=current_app.config.get("WEBHOOK_CA_FILE") or certifi.where(), **options,
        )
    else:
        pool = urllib3.HTTPConnectionPool(address, target.port, **options)
    try:
        response = pool.urlopen(
            "POST", target.path, body=body, headers={**headers, "Host": target.host_header},
            redirect=False, retries=False, preload_content=False, assert_same_host=False,
        )
        try:
            excerpt = b""
            # Only the first bytes are kept, and never longer than the time left: a slow-dripping
            # answer cannot hold the worker past the timeout.
            while len(excerpt) < EXCERPT and time.monotonic() < deadline:
                chunk = response.read(EXCERPT - len(excerpt))
                if not chunk:
                    break
                excerpt += chunk
        finally:
            response.release_conn()
    except urllib3.exceptions.HTTPError as error:
        raise NoAnswer(_describe(error)) from error
    except OSError as error:
        raise NoAnswer(str(error)[:200]) from error
    finally:
        pool.close()
    return Answer(response.status, excerpt.decode("utf-8", errors="replace"))


def _describe(error: Exception) -> str:
    import urllib3

    if isinstance(error, (urllib3.exceptions.TimeoutError, urllib3.exceptions.ReadTimeoutError, urllib3.exceptions.ConnectTimeoutError)):
        return "timed out"
    if isinstance(error, urllib3.exceptions.SSLError):
        return f"TLS failed: {error}"[:200]
    if isinstance(error, urllib3.exceptions.NewConnectionError):
        return "could not connect"
    if isinstance(error, urllib3.exceptions.ProtocolError):
        return f"the connection broke: {error}"[:200]
    return f"{error.__class__.__name__}: {error}"[:200]
