"""The account emails, written to the outbox inside the transaction of the change that causes them.

Templates live in ``templates/email/auth/``; each documents its context. Links that carry a one-time
token are sealed (see :mod:`expertbook.auth.tokens`): the outbox row never holds a usable token.
"""
from __future__ import annotations

from flask import current_app

from expertbook.auth.models import User
from expertbook.auth.tokens import seal
from expertbook.database import utcnow
from expertbook.notifications.service import queue_email
from expertbook.web import external_url

PASSWORD_RESET = "auth-password-reset"
PASSWORD_CHANGED = "auth-password-changed"
VERIFY_EMAIL = "auth-verify-email"
REGISTRATION_ATTEMPT = "auth-registration-attempt"


def password_reset(user: User, secret: str) -> None:
    """The link to choose a new password (``/reset-password/<token>``)."""
    queue_email(
        PASSWORD_RESET, user.email, user.name, "auth/password_reset",
        {
            "sealed_link": seal(external_url("auth.reset_password_link", token=secret)),
            "minutes": current_app.config["PASSWORD_RESET_MINUTES"],
            "forgot_url": external_url("auth.forgot_password"),
        },
        subject="Reset your ExpertBook password",
    )


def password_changed(user: User, how: str) -> None:
    """The notice after a password change (``how="changed"``) or reset (``how="reset"``)."""
    queue_email(
        PASSWORD_CHANGED, user.email, user.name, "auth/password_changed",
        {"how": how, "forgot_url": external_url("auth.forgot_password")},
        subject="Your ExpertBook password was changed",
    )


def verify_email(user: User, secret: str, publishes: bool = False) -> None:
    """The verification link (``/verify-email/<token>``)."""
    queue_email(
        VERIFY_EMAIL, user.email, user.name, "auth/verify_email",
        {
            "sealed_link": seal(external_url("auth.verify_email_link", token=secret)),
            "days": current_app.config["EMAIL_VERIFICATION_DAYS"],
            "publishes": publishes,
        },
        subject="Confirm your email address",
    )


def registration_attempt(user: User) -> None:
    """Tell the owner of ``user``'s address that someone tried to register it again.

    At most one an hour per account (the dedupe key), so registration cannot be used to flood a mailbox.
    """
    queue_email(
        REGISTRATION_ATTEMPT, user.email, user.name, "auth/registration_attempt",
        {"login_url": external_url("auth.login"), "forgot_url": external_url("auth.forgot_password")},
        subject="Someone tried to register with your email address",
        dedupe_key=f"{REGISTRATION_ATTEMPT}:{user.id}:{utcnow():%Y%m%d%H}",
    )
