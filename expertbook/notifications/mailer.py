"""Building and sending one email: rendering, MIME structure, SMTP with a timeout, error classes.

Nothing here touches the database; :mod:`expertbook.notifications.service` decides what a result means
for the outbox row.
"""
from __future__ import annotations

import logging
import smtplib
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, formatdate, getaddresses
from typing import Any

from flask import current_app, render_template

from expertbook.observability import REQUEST_ID_HEADER, count_failure, current_request_id

log = logging.getLogger(__name__)


class TransientFailure(Exception):
    """Worth trying again later: SMTP 4xx, connection refused or dropped, a timeout."""


class PermanentFailure(Exception):
    """Trying again will not help: SMTP 5xx, a broken template, a refused address."""


@dataclass(frozen=True)
class Email:
    """Everything needed to build one message, as plain values (no ORM object crosses the SMTP call)."""

    to_email: str
    to_name: str
    subject: str
    template: str
    context: Mapping[str, Any]
    message_id: str
    ics_text: str | None = None
    ics_method: str | None = None


def render_bodies(template: str, context: Mapping[str, Any]) -> tuple[str, str]:
    """The plain-text and HTML bodies of ``templates/email/<template>.txt`` and ``.html``.

    Flask autoescapes ``.html`` templates, so every value from the context is escaped in the HTML
    part; the ``.txt`` part is plain text and needs no escaping.
    """
    text = render_template(f"email/{template}.txt", **context)
    html = render_template(f"email/{template}.html", **context)
    return text, html


def build_message(email: Email) -> EmailMessage:
    """A multipart/alternative (text + HTML) message, wrapped in multipart/mixed with the .ics if any."""
    context = {
        "recipient_name": email.to_name,
        "base_url": current_app.config.get("BASE_URL", ""),
        "site_name": "ExpertBook",
        **email.context,
    }
    try:
        text, html = render_bodies(email.template, context)
    except Exception as exc:  # a template bug will not fix itself on retry
        raise PermanentFailure(f"cannot render email/{email.template}: {exc.__class__.__name__}: {exc}") from exc
    message = EmailMessage()
    try:
        # The default policy refuses CR/LF inside header values, a second line of defence after validation.
        message["From"] = current_app.config["MAIL_DEFAULT_SENDER"]
        message["To"] = formataddr((email.to_name, email.to_email))
        message["Subject"] = email.subject
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = email.message_id
        message["Auto-Submitted"] = "auto-generated"
        # The request that caused this email (a booking, a reset...), so it can be followed from the access
        # log through the worker's log to the recipient's copy (expertbook.observability).
        request_id = current_request_id()
        if request_id:
            message[REQUEST_ID_HEADER] = request_id
    except (ValueError, TypeError) as exc:  # a row written around the validation: it will never be sendable
        raise PermanentFailure(f"invalid header: {exc}") from exc
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    if email.ics_text:
        method = (email.ics_method or "PUBLISH").upper()
        message.add_attachment(
            email.ics_text,
            subtype="calendar",
            filename="cancel.ics" if method == "CANCEL" else "invite.ics",
            params={"method": method},
        )
    return message


def _smtp_code(exc: smtplib.SMTPException) -> int | None:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return max(codes) if codes else None
    return getattr(exc, "smtp_code", None)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "; ".join(f"{rcpt}: {code} {msg.decode(errors='replace') if isinstance(msg, bytes) else msg}"
                         for rcpt, (code, msg) in exc.recipients.items())
    if isinstance(exc, smtplib.SMTPResponseException):
        error = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        return f"SMTP {exc.smtp_code} {error}"
    return f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__


def deliver(message: EmailMessage) -> None:
    """Hand ``message`` to the configured SMTP server, or to the log when there is none.

    Raises :class:`TransientFailure` or :class:`PermanentFailure`. The timeout is given to
    ``smtplib.SMTP`` itself, which sets it on the socket before connecting, so it bounds the
    connect and every read and write of the dialogue: a server that hangs cannot hold a worker.
    """
    config = current_app.config
    if not config.get("MAIL_SERVER"):  # production allows this only with MAIL_BACKEND=log (config.validate)
        log.info("MAIL_SERVER is not set; this email is logged instead of sent:\n%s", message.as_string())
        return
    timeout = float(config["MAIL_TIMEOUT"])
    smtp_class = smtplib.SMTP_SSL if config.get("MAIL_USE_SSL") else smtplib.SMTP
    recipients = [address for _, address in getaddresses([message["To"]])]
    try:
        smtp = smtp_class(config["MAIL_SERVER"], int(config["MAIL_PORT"]), timeout=timeout)
    except (OSError, smtplib.SMTPException) as exc:
        raise _counted(_classify(exc)) from exc
    try:
        if config.get("MAIL_USE_TLS") and not config.get("MAIL_USE_SSL"):
            smtp.starttls()
        if config.get("MAIL_USERNAME"):
            smtp.login(config["MAIL_USERNAME"], config.get("MAIL_PASSWORD") or "")
        smtp.send_message(message, to_addrs=recipients)
    except (OSError, smtplib.SMTPException) as exc:
        smtp.close()  # not QUIT: on a hung connection that would wait out the timeout a second time
        raise _counted(_classify(exc)) from exc
    try:
        smtp.quit()
    except (OSError, smtplib.SMTPException):  # the message is accepted already; QUIT changes nothing
        smtp.close()


def _counted(failure: Exception) -> Exception:
    """``failure``, counted in the SMTP failure metric (``/metrics``) by its kind."""
    count_failure("smtp", "permanent" if isinstance(failure, PermanentFailure) else "transient")
    return failure


def _classify(exc: BaseException) -> Exception:
    """Turn an SMTP or socket error into a transient or permanent failure with a readable reason."""
    reason = _describe(exc)
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return TransientFailure(f"timed out: {reason}")
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return PermanentFailure(reason)
    if isinstance(exc, smtplib.SMTPException):
        code = _smtp_code(exc)
        if code is not None and 500 <= code < 600:
            return PermanentFailure(reason)
        return TransientFailure(reason)  # 4xx, a dropped connection, an unexpected answer
    return TransientFailure(reason)  # connection refused, reset, DNS: the server may be back later
