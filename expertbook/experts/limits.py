"""Throttles of the doors that need no account: booking as a guest and the guest's manage link.

Booking as a guest is limited per client address and per email the booking names, whichever door
(the booking page or ``POST /api/bookings`` without a token) it comes through: both share the buckets.
Every attempt counts except one refused as invalid input (422), so a typo does not use up the day,
but a script trying times (409) does. Logged-in and token-carrying callers are not limited here.

The manage link is limited per client address on the links that fail (404): a guessing client
stops long before it could matter, a guest using their own link never notices. Moves through one link
are limited too (each one emails the expert): a person changes their mind a few times, a script or a
leaked link does not get to flood the expert's inbox.
"""
from __future__ import annotations

from flask import current_app, request
from flask_login import current_user

from expertbook.auth.limits import submitted_email
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
manage_link = limiter.shared_limit(
    lambda: current_app.config["MANAGE_LINK_LIMIT_PER_IP"], scope="guest-manage-link",
    deduct_when=lambda response: response.status_code == 404,
)
manage_moves = limiter.shared_limit(
    lambda: current_app.config["MANAGE_MOVES_LIMIT_PER_LINK"], scope="guest-manage-moves", methods=["POST"],
    key_func=lambda: "guest-manage-moves:" + str((request.view_args or {}).get("token", "")),
    deduct_when=lambda response: response.status_code < 400,  # only moves that happened
)
