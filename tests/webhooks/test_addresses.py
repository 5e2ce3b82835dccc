"""Server-side request forgery: only https, only public addresses (checked when saved AND when sent), no redirects."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from expertbook.errors import ValidationFailed
from expertbook.extensions import db
from expertbook.webhooks import addresses, events, service
from expertbook.webhooks.models import WebhookAttempt, WebhookDelivery
from tests.factories import make_staff


@pytest.fixture
def app_config(encryption_key):
    # As in production: https only, public addresses only.
    return {"TOKEN_ENCRYPTION_KEYS": encryption_key, "WEBHOOK_TIMEOUT_SECONDS": 2.0}


def owner() -> service.Owner:
    return service.Owner(events.HOSPITAL, make_staff().hospital_id)


def refusal(url: str) -> str:
    with pytest.raises(ValidationFailed) as refused:
        service.create(owner(), url, ["appointment.cancelled"])
    return refused.value.errors["url"][0]


def test_a_url_resolving_to_127_0_0_1_is_refused_when_private_addresses_are_not_allowed(app):
    # "localhost" is a name; what counts is the address it resolves to.
    assert "private or local address (127.0.0.1)" in refusal("https://localhost:8443/hooks")
    assert "127.0.0.1" in refusal("https://127.0.0.1/hooks")


@pytest.mark.parametrize("host", [
    "10.0.0.5", "172.16.3.4", "192.168.1.1",  # private
    "169.254.169.254",  # link-local: the cloud metadata endpoint
    "100.64.0.1",  # shared address space
    "0.0.0.0", "[::1]", "[::ffff:127.0.0.1]", "[fe80::1]", "[fd00::1]", "224.0.0.1",
])
def test_private_loopback_link_local_and_other_non_public_ranges_are_refused(app, host):
    assert "private or local address" in refusal(f"https://{host}/hooks")


def test_only_https_and_no_credentials_in_the_url(app):
    assert refusal("http://93.184.215.14/hooks") == "Use an https:// address."
    assert refusal("ftp://93.184.215.14/hooks") == "Use an https:// address."
    assert "user name and password" in refusal("https://user:pw@93.184.215.14/hooks")
    assert refusal("") == "Enter the address of your endpoint."
    assert "could not be found" in refusal("https://no-such-host.invalid/hooks")


def test_a_public_address_is_accepted(app):
    subscription, _ = service.create(owner(), "https://93.184.215.14/hooks", ["appointment.cancelled"])
    assert subscription.url == "https://93.184.215.14/hooks"


def test_the_address_is_checked_again_at_delivery_time(app, receiver, encryption_key):
    # Saved while private addresses were allowed (an operator changed their mind since, or the name now
    # points elsewhere): the delivery checks again and never connects.
    app.config.update(WEBHOOK_ALLOW_HTTP=True, WEBHOOK_ALLOW_PRIVATE_ADDRESSES=True)
    staff = make_staff()
    subscription, _ = service.create(service.Owner(events.HOSPITAL, staff.hospital_id), receiver.url, ["appointment.cancelled"])
    app.config["WEBHOOK_ALLOW_PRIVATE_ADDRESSES"] = False
    service.send_test([service.owner_of(subscription)], subscription.id)
    row = db.session.scalar(select(WebhookDelivery))
    attempt = db.session.scalar(select(WebhookAttempt))
    assert receiver.requests == []
    assert row.status == "pending" and attempt.status_code is None and "private or local address (127.0.0.1)" in attempt.error


def test_a_delivery_connects_to_the_address_it_checked_and_names_the_host(app, receiver):
    # A host name, not an address: resolved and checked once, connected to at that address, with the
    # name in the Host header (and, for https, in TLS's server name and certificate check).
    app.config.update(WEBHOOK_ALLOW_HTTP=True, WEBHOOK_ALLOW_PRIVATE_ADDRESSES=True)
    url = receiver.url.replace("127.0.0.1", "localhost")
    target = addresses.parse(url)
    assert addresses.resolve(target) in ("127.0.0.1", "::1")
    answer = addresses.post(url, b"{}", {"Content-Type": "application/json"}, 2.0)
    assert answer.status == 200 and receiver.requests[0].headers["host"] == f"localhost:{target.port}"
