"""Throttles of the doors that need no account: booking as a guest and the guest's manage link.

Booking as a guest is limited per client address and per email the booking names, whichever door
(the booking page or ``POST /api/bookings`` without a token) it comes through: both share the buckets.
Every attempt counts except one refused as invalid input (422), so a typo does not use up the day,
but a script trying times (409) does. Logged-in and token-carrying callers are not limited here.

The manage link counts only the lookups that fail (404) with a token we never issued, per client address
and per token prefix (the part of the token that names a booking, so guesses at one booking from many
addresses add up too); past either limit, such lookups answer 429. A link we issued is never counted and
never refused: many guests behind one NAT address keep their links however much someone else there
guesses. Moves through
one link are limited too, per booking (each one emails the expert): a person changes their mind a few
times, a script or a leaked link does not get to flood the expert's inbox.
"""
from __future__ import annotations

from flask import current_app, g, request
from flask_login import current_user

from expertbook.auth.limits import submitted_email
from expertbook.experts import service
from expertbook.extensions import limiter


def _counts(response) -> bool:
    return response.status_code != 422


def _has_account() -> bool:
    # The API's guest door is the request without a bearer token (a session cookie counts for nothing
    # there); the page's, a visitor not logged in.
    if request.blueprint == "api":
        return bool(request.headers.get("Authorization"))
    return current_user.is_authenticated


def _email_key() -> str:
    return "guest-booking-email:" + submitted_email()


guest_per_ip = limiter.shared_limit(
    lambda: current_app.config["GUEST_BOOKING_LIMIT_PER_IP"], scope="guest-booking-ip", methods=["POST"],
    deduct_when=_counts, exempt_when=_has_account,
)
guest_per_email = limiter.shared_limit(
    lambda: current_app.config["GUEST_BOOKING_LIMIT_PER_EMAIL"], scope="guest-booking-email", methods=["POST"],
    deduct_when=_counts, exempt_when=_has_account, key_func=_email_key,
)
def _token() -> str:
    return str((request.view_args or {}).get("token", ""))


def _issued_link() -> bool:
    """Whether this request's manage token is exactly one we issued (signature checks only, no query):
    such a request is exempt from the failure limits, neither counted nor refused. Only a token we did
    not issue is a guess; an issued link that no longer opens its booking (expired, revoked) answers
    404 like any other, but its owner opening it again is not guessing."""
    if "manage_link_issued" not in g:
        g.manage_link_issued = service.manage_link_booking_id(_token()) is not None
    return g.manage_link_issued


def _failed(response) -> bool:
    return response.status_code == 404


def _prefix_key() -> str:
    # The part of a token before its signature names the booking: wrong signatures for one booking,
    # from any number of addresses, share this bucket. (Bounded, so a long guess cannot bloat the key.)
    token = _token()
    return "guest-manage-prefix:" + (token.rpartition(".")[0] or token)[:64]


manage_link = limiter.shared_limit(
    lambda: current_app.config["MANAGE_LINK_LIMIT_PER_IP"], scope="guest-manage-link",
    exempt_when=_issued_link, deduct_when=_failed,
)
manage_link_prefix = limiter.shared_limit(
    lambda: current_app.config["MANAGE_LINK_LIMIT_PER_PREFIX"], scope="guest-manage-prefix",
    key_func=_prefix_key, exempt_when=_issued_link, deduct_when=_failed,
)


def _moved_booking_key() -> str:
    # Per booking, not per spelling of its link: only the exact token issued opens a booking (see
    # experts.service.manage_link_booking_id), and a link that opens nothing moves nothing (404).
    booking_id = service.manage_link_booking_id(_token())
    return f"guest-manage-moves:{booking_id if booking_id is not None else 'none'}"


manage_moves = limiter.shared_limit(
    lambda: current_app.config["MANAGE_MOVES_LIMIT_PER_LINK"], scope="guest-manage-moves", methods=["POST"],
    key_func=_moved_booking_key,
    deduct_when=lambda response: response.status_code < 400,  # only moves that happened
)
