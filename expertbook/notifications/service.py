"""Notification rules: the outbox, its delivery, retries, the relay and reminders.

How an email flows:

1. A service calls :func:`queue_email` inside its own ``transaction()``. The row is written in that
   transaction, so the email exists if and only if the change that caused it committed.
2. After commit the row is dispatched: with Redis, an RQ job on the notifications queue, enqueued by
   the process's dispatcher thread (rows committed within ``MAIL_DISPATCH_LINGER_SECONDS`` of each
   other share one job); without Redis, delivered in-process. If Redis is down the row simply stays
   ``pending``.
3. :func:`send` (the job body) claims the row with a compare-and-swap UPDATE, sends it outside any
   transaction, and records the outcome: ``sent``; ``pending`` again with backoff after a transient
   failure; ``failed`` after a permanent one or after ``MAIL_MAX_ATTEMPTS``. The claim is a short
   lease (``MAIL_CLAIM_SECONDS``) this process renews while the send is in flight (see
   :mod:`expertbook.notifications.lease`), so a killed worker's row is free again within seconds.
4. :func:`relay` enqueues whatever is pending and due, or stuck in ``sending`` because a worker
   died, unless its job is really waiting in the queue right now. The worker runs it every
   ``WORKER_TICK_SECONDS`` (sooner when one of its own retries falls due); ``flask --app wsgi relay``
   runs one pass.

The database is the only schedule: a retry is the row's ``next_attempt_at``, never a job scheduled
in Redis, so losing Redis's data, RQ's registries or a worker loses no email and delays none by
more than a tick. Each row is still sent once: every job only names a row, and the claim decides.
"""
from __future__ import annotations

import json
import logging
from contextlib import contextmanager
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email
from flask import current_app
from jinja2 import TemplateNotFound
from sqlalchemy import ColumnElement, Insert, Integer, String, and_, insert, literal, or_, select, update
from sqlalchemy.exc import IntegrityError

from expertbook.database import after_commit, transaction, utcnow
from expertbook.errors import NotFound, ValidationFailed
from expertbook.extensions import db
from expertbook.notifications import claims, mailer
from expertbook.notifications.claims import ClaimedRows, backoff
from expertbook.notifications.dispatcher import Dispatcher
from expertbook.notifications.lease import Leases
from expertbook.notifications.models import FAILED, PENDING, SENDING, SENT, STATUSES, OutboxEmail
from expertbook.observability import job_meta

log = logging.getLogger(__name__)

MAX_NAME = 120
MAX_SUBJECT = 255
JOB_PATH = "expertbook.notifications.jobs.send_email"
# The outbox table under the shared claim machinery (see expertbook.notifications.claims).
ROWS = ClaimedRows(OutboxEmail, "email")


# ---------------------------------------------------------------------------- input checks

# Characters that would start a new header line, or a second address, if they reached a header.
_ADDRESS_BREAKERS = set(",;<>\"()[]\\:") | {" ", "\t"}


def _has_control(value: str) -> bool:
    return any(ord(ch) < 0x20 or ord(ch) == 0x7F or ch in "\u2028\u2029\x85" for ch in value)


def address_problem(value: str | None) -> str | None:
    """Why ``value`` is not exactly one plain email address, or None if it is one.

    Shared by forms (which answer 422) and :func:`check_address`. CR/LF, commas, semicolons and
    angle brackets are refused outright: they are how one field turns into several recipients
    or extra headers.
    """
    value = (value or "").strip()
    if not value:
        return "Please enter an email address."
    if _has_control(value) or any(ch in _ADDRESS_BREAKERS for ch in value):
        return "Enter a single email address."
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        return str(exc)
    return None


def name_problem(value: str | None) -> str | None:
    """Why ``value`` cannot be a display name in an email header, or None if it can."""
    value = value or ""
    if _has_control(value):
        return "The name contains line breaks or other characters that are not allowed."
    if any(ch in value for ch in "<>@"):
        return "Enter a name, not an email address."
    if len(value.strip()) > MAX_NAME:
        return f"Keep it under {MAX_NAME} characters."
    return None


def check_address(value: str, field: str = "email") -> str:
    """One valid address, normalised; raise ValidationFailed({field: ...}) otherwise."""
    problem = address_problem(value)
    if problem:
        raise ValidationFailed({field: problem})
    return validate_email(value.strip(), check_deliverability=False).normalized


def check_display_name(value: str | None, field: str = "name") -> str:
    """A display name safe for a header; raise ValidationFailed({field: ...}) otherwise."""
    problem = name_problem(value)
    if problem:
        raise ValidationFailed({field: problem})
    return " ".join((value or "").split())


# ---------------------------------------------------------------------------- queueing


def _message_id() -> str:
    domain = urlsplit(current_app.config.get("BASE_URL") or "").hostname or "expertbook.invalid"
    return f"<{uuid.uuid4().hex}@{domain}>"


_ICS_METHOD = re.compile(r"^METHOD:([A-Za-z-]+)\r?$", re.MULTILINE)


def _ics_method(ics: str) -> str:
    """The calendar's METHOD (REQUEST, CANCEL, ...), read off its text. Parsing the whole calendar
    again only for this cost more than building it, inside the booking's transaction."""
    if not ics.lstrip().startswith("BEGIN:VCALENDAR"):
        raise ValueError("ics is not a calendar: it must start with BEGIN:VCALENDAR")
    found = _ICS_METHOD.search(ics)
    return found.group(1).upper() if found else "PUBLISH"


def _checked_parts(
    to_email: str, to_name: str, subject: str, template: str, context: Mapping[str, Any], ics: str | None
) -> tuple[str, str, str, dict[str, Any], str | None]:
    """The email's parts checked and normalised: (to_email, to_name, subject, context, ics_method).

    Raises ValidationFailed for an unusable address, name or subject, ValueError for a bug in the caller.
    """
    to_email = check_address(to_email, "to_email")
    to_name = check_display_name(to_name, "to_name")
    if _has_control(subject or "") or not (subject or "").strip() or len(subject.strip()) > MAX_SUBJECT:
        raise ValidationFailed({"subject": "The subject must be one line of at most 255 characters."})
    subject = " ".join(subject.split())
    try:
        context = json.loads(json.dumps(dict(context)))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"email context must be JSON-serialisable: {exc}") from exc
    for suffix in ("txt", "html"):
        try:
            current_app.jinja_env.get_template(f"email/{template}.{suffix}")
        except TemplateNotFound as exc:  # a bug in the caller: fail loudly, before anything is written
            raise ValueError(f"no email template templates/email/{template}.{suffix}") from exc
    return to_email, to_name, subject, context, _ics_method(ics) if ics else None


def queue_email(
    kind: str,
    to_email: str,
    to_name: str,
    template: str,
    context: Mapping[str, Any],
    *,
    subject: str,
    ics: str | None = None,
    dedupe_key: str | None = None,
) -> int | None:
    """Write one email to the outbox and dispatch it once the surrounding transaction commits.

    Call it inside the caller's ``transaction()`` (it joins it; alone it opens its own).
    ``template`` names ``templates/email/<template>.txt`` and ``.html`` (an area's own are
    ``"<area>/<name>"``, e.g. ``"clinic/token_confirmed"``); ``context`` must be
    JSON-serialisable (format dates and build absolute links before calling). ``ics`` is the text of
    a calendar; its METHOD (REQUEST, CANCEL, ...) becomes the attachment's MIME parameter.
    With ``dedupe_key`` the email is queued at most once, ever: a second call with the same key
    returns None without touching the caller's transaction. Returns the outbox row's id.

    Raises ValidationFailed for an unusable address, name or subject (fields ``to_email``,
    ``to_name``, ``subject``), ValueError for programming errors (unknown template, bad context).
    """
    to_email, to_name, subject, context, ics_method = _checked_parts(to_email, to_name, subject, template, context, ics)
    if len(kind) > 60 or len(template) > 80 or (dedupe_key is not None and len(dedupe_key) > 200):
        raise ValueError("kind, template or dedupe_key is longer than its column (60, 80, 200)")

    with transaction() as session:
        if dedupe_key is not None and session.scalar(select(OutboxEmail.id).where(OutboxEmail.dedupe_key == dedupe_key)):
            return None
        row = OutboxEmail(
            kind=kind,
            to_email=to_email,
            to_name=to_name,
            subject=subject,
            template=template,
            context=context,
            ics_text=ics,
            ics_method=ics_method,
            message_id=_message_id(),
            status=PENDING,
            attempts=0,
            next_attempt_at=utcnow(),
            dedupe_key=dedupe_key,
        )
        if dedupe_key is None:
            session.add(row)
            session.flush()
        else:
            session.flush()  # the caller's pending writes first, so their errors stay theirs
            # A savepoint, so losing the race for the key undoes only this row, never the caller's work.
            try:
                with session.begin_nested():
                    session.add(row)
            except IntegrityError:
                log.info("email %s not queued again: dedupe key %r exists", kind, dedupe_key)
                return None
        row_id, attempts = row.id, row.attempts
        after_commit(lambda: dispatch(row_id, attempts, fresh=True))
    return row_id


# ---------------------------------------------------------------------------- named emails, composed by the worker


@dataclass(frozen=True)
class Composed:
    """An email as a composer builds it: the same parts :func:`queue_email` takes."""

    to_email: str
    to_name: str
    template: str
    context: Mapping[str, Any]
    subject: str
    ics: str | None = None


Composer = Callable[[int], Composed]
_composers: dict[str, Composer] = {}


class NothingToCompose(LookupError):
    """What a named email is about no longer exists (raised by a composer; the row fails for good)."""


def register_composer(kind: str, composer: Composer) -> Composer:
    """Let rows of ``kind`` be queued by name: ``composer(ref_id)`` builds their email when it is sent.

    Call it at import time of the area's module, like :func:`register_reminder_source`. A composer
    reads what it needs by ``ref_id``, raises :class:`NothingToCompose` if that is gone, and must
    build the same email however often it is called for the same row.
    """
    if len(kind) > 60:
        raise ValueError("kind is longer than its column (60)")
    _composers[kind] = composer
    return composer


_INSERT_NAMED = insert(OutboxEmail.__table__).returning(OutboxEmail.__table__.c.id)


def named_email_insert(kind: str, ref_id: ColumnElement[int], now: ColumnElement[datetime]) -> Insert:
    """The outbox row of the named email ``kind`` about ``ref_id``, as an ``INSERT ... SELECT ... RETURNING id``.

    For a caller that writes its change in one statement (data-modifying CTEs on PostgreSQL): made a
    CTE of that statement, the email's row is written with the change and costs no round trip of its
    own. ``ref_id`` is a column of another CTE (the new row's id) and ``now`` the statement's time (a bind
    parameter, so the row is due by the app's clock, which the worker compares it with, not the
    database's). The caller hands the returned id to
    :func:`dispatch_after_commit`. Elsewhere use :func:`queue_composed`, which writes the same row.
    """
    table = OutboxEmail.__table__
    return insert(table).from_select(
        ["kind", "ref_id", "status", "attempts", "next_attempt_at", "created_at"],
        select(literal(kind, String), ref_id, literal(PENDING, String), literal(0, Integer), now, now),
    ).returning(table.c.id)


def dispatch_after_commit(outbox_id: int) -> None:
    """Dispatch a row the caller's statement wrote (see :func:`named_email_insert`) once its transaction commits."""
    after_commit(lambda: dispatch(outbox_id, 0, fresh=True))


def queue_composed(kind: str, ref_id: int) -> int:
    """Queue the email of ``kind`` about ``ref_id``; the worker composes it when it first sends it.

    For hot paths (every clinic booking writes one): the caller's transaction pays for one small
    INSERT and nothing else: no query for the email's facts, no templates, no address checks, no
    calendar file. Like :func:`queue_email` the row exists if and only if the caller's change
    commits, and it is dispatched after the commit. What a composer refuses (an address that
    cannot be mailed) fails the row when it is sent, visibly on the Notifications page.
    Raises ValueError for a kind no composer is registered for.
    """
    if kind not in _composers:
        raise ValueError(f"no composer is registered for emails of kind {kind!r}")
    with transaction() as session:
        now = utcnow()
        values = {"kind": kind, "ref_id": ref_id, "status": PENDING, "attempts": 0, "next_attempt_at": now, "created_at": now}
        # A savepoint: should the INSERT fail (a caller may swallow that, see never_costs_the_change),
        # only the savepoint is undone, not the caller's change, which PostgreSQL would otherwise
        # silently roll back at COMMIT.
        with session.begin_nested():
            row_id = session.connection().execute(_INSERT_NAMED, values).scalar_one()
        dispatch_after_commit(row_id)
    return row_id


def _compose(outbox_id: int, attempt: int, kind: str, ref_id: int) -> mailer.Email:
    """Build a named row's email and store its parts, so every later attempt sends the same message.

    Raises :class:`mailer.PermanentFailure` when it cannot be built (its subject is gone, or the
    composer's address or name is refused); other errors propagate and count as a failed attempt.
    """
    composer = _composers.get(kind)
    if composer is None:
        raise mailer.PermanentFailure(f"no composer is registered for emails of kind {kind!r}")
    try:
        parts = composer(ref_id)
        to_email, to_name, subject, context, ics_method = _checked_parts(
            parts.to_email, parts.to_name, parts.subject, parts.template, parts.context, parts.ics)
    except NothingToCompose as exc:
        raise mailer.PermanentFailure(f"nothing to send: {exc}") from exc
    except ValidationFailed as exc:
        raise mailer.PermanentFailure(f"cannot be sent: {exc.errors}") from exc
    finally:
        db.session.rollback()  # end the composer's reads before writing
    message_id = _message_id()
    stored = ROWS.store(outbox_id, attempt, to_email=to_email, to_name=to_name, subject=subject, template=parts.template,
                        context=context, ics_text=parts.ics, ics_method=ics_method, message_id=message_id)
    if not stored:
        raise _LostClaim(outbox_id)
    return mailer.Email(to_email=to_email, to_name=to_name, subject=subject, template=parts.template, context=context,
                        message_id=message_id, ics_text=parts.ics, ics_method=ics_method)


@contextmanager
def never_costs_the_change(what: str) -> Iterator[None]:
    """Build and queue emails inside a caller's transaction without ever letting them undo it.

    ``queue_email`` checks everything before its one INSERT, so an error raised while an email is
    built or queued has written nothing: it is logged and the caller's change commits as usual.
    An address that cannot be mailed is expected now and then (a warning); anything else is a bug
    (logged with its traceback), but still not a reason to lose a booking.
    """
    try:
        yield
    except ValidationFailed as error:
        log.warning("email for %s not queued: %s", what, error.errors)
    except Exception:
        log.exception("email for %s not queued", what)


# ---------------------------------------------------------------------------- dispatch


def uses_queue() -> bool:
    """Whether emails go through RQ (Redis configured) rather than being delivered in-process."""
    config = current_app.config
    return bool(config.get("REDIS_URL")) and not config.get("RUN_JOBS_INLINE")


def redis_connection():
    """The app's Redis client for the queues, created once; short timeouts so a dead Redis fails fast."""
    from redis import Redis

    app = current_app._get_current_object()
    client = app.extensions.get("notifications_redis")
    if client is None:
        client = Redis.from_url(app.config["REDIS_URL"], socket_connect_timeout=2, socket_timeout=5)
        app.extensions["notifications_redis"] = client
    return client


def notifications_queue():
    """The RQ queue emails are sent from."""
    from rq import Queue

    return Queue(current_app.config["NOTIFICATIONS_QUEUE"], connection=redis_connection())


def job_id(outbox_id: int, attempts: int) -> str:
    """The RQ job id of the attempt that follows ``attempts`` earlier ones of a row.

    Deterministic, so dispatching the same row twice (after-commit, then the relay) finds the job
    already queued instead of adding a second one. Each claim increments ``attempts``, so the job
    that replaces one lost with a dead worker gets a fresh id.
    """
    return f"{current_app.config['NOTIFICATIONS_QUEUE']}-email-{outbox_id}-{attempts}"


def send_seconds() -> float:
    """The longest one send may take: every step of an SMTP dialogue (connect, EHLO, STARTTLS, AUTH,
    MAIL, RCPT, DATA, the message, QUIT) is bounded by ``MAIL_TIMEOUT``. RQ's job timeout, the bound
    on a live worker that keeps renewing its claim, is derived from it."""
    return 12 * float(current_app.config["MAIL_TIMEOUT"])


def enqueue(outbox_id: int, attempts: int, *, fresh: bool = False, request_id: str | None = None) -> bool:
    """Put the row's next attempt on the queue now, unless that job is already waiting there.

    ``fresh`` (a row committed a moment ago) skips the look for a waiting job: none can exist yet, and
    the round trip is saved on every booking. Should the relay race it, the same job id is queued
    twice and its second run finds the row claimed or sent.
    Raises redis errors; :func:`dispatch` and :func:`relay` decide what they mean.
    """
    queue = notifications_queue()
    if not fresh and _waiting_rows(queue, [(outbox_id, attempts)]):
        return False
    _put(queue, outbox_id, attempts, request_id)
    return True


def _put(queue, outbox_id: int, attempts: int, request_id: str | None = None) -> None:
    queue.enqueue(
        JOB_PATH,
        outbox_id,
        job_id=job_id(outbox_id, attempts),
        # The request that committed the row, for the worker's log lines and the email's X-Request-ID.
        meta=job_meta({outbox_id: request_id}),
        job_timeout=int(send_seconds()) + 60,
        result_ttl=24 * 3600,
        failure_ttl=7 * 24 * 3600,
        description=f"send outbox email {outbox_id}",
    )


BATCH_JOB_PATH = "expertbook.notifications.jobs.send_emails"
MAX_BATCH = 100


# How long a row remembers the batch job it waits in (see enqueue_new); after that, the relay may give a
# row still waiting in a long backlog one job of its own (harmless: the claim lets one run send it).
BATCH_MARK_SECONDS = 3600


def _batch_mark(outbox_id: int) -> str:
    return f"{job_id(outbox_id, 0)}:batch"


def enqueue_new(outbox_ids: list[int], request_ids: Mapping[int, str | None] | None = None) -> None:
    """Enqueue rows just committed (attempt 0): one as its own job, several as ``send_emails`` jobs.

    Called by the dispatcher's thread. Each row of a batch is marked with its batch job's id, so the
    relay, finding the row pending, sees that job waiting and adds no second one (as it does for a
    row's own job). ``request_ids`` (row id -> the request that committed it) go into the jobs' meta.
    Raises redis errors.
    """
    request_ids = request_ids or {}
    if len(outbox_ids) == 1:
        enqueue(outbox_ids[0], 0, fresh=True, request_id=request_ids.get(outbox_ids[0]))
        return
    queue = notifications_queue()
    config = current_app.config
    for start in range(0, len(outbox_ids), MAX_BATCH):
        ids = outbox_ids[start:start + MAX_BATCH]
        batch_id = f"{config['NOTIFICATIONS_QUEUE']}-emails-{uuid.uuid4().hex}"
        # The marks go first: should the enqueue then fail, they name a job that does not exist,
        # which the relay reads as "not waiting".
        marks = queue.connection.pipeline(transaction=False)
        for outbox_id in ids:
            marks.set(_batch_mark(outbox_id), batch_id, ex=BATCH_MARK_SECONDS)
        marks.execute()
        queue.enqueue(
            BATCH_JOB_PATH,
            ids,
            job_id=batch_id,
            meta=job_meta({outbox_id: request_ids.get(outbox_id) for outbox_id in ids}),
            # Every send is bounded by MAIL_TIMEOUT, so this only stops a batch that hangs anyway; the
            # rows it did not reach stay pending for the relay.
            job_timeout=int(send_seconds() * len(ids)) + 60,
            result_ttl=24 * 3600,
            failure_ttl=7 * 24 * 3600,
            description=f"send outbox emails {ids[0]}..{ids[-1]} ({len(ids)})",
        )


def waiting_jobs(queue, job_ids: Iterable[str]) -> set[str]:
    """Of ``job_ids``, the jobs a worker will really pick up from ``queue``: in its list now, and queued.

    Nothing else counts as waiting: not a job RQ merely scheduled or deferred (only its scheduler would
    ever move it), not one "started" by a worker that may be dead, not a "queued" job whose id Redis
    lost with its list. Those are enqueued again; the row's claim keeps a second run from sending twice.
    Two round trips, whatever the number of ids: the queue's list, then the candidates' statuses.
    """
    from rq.job import Job

    wanted = set(job_ids)
    if not wanted:
        return set()
    connection = queue.connection
    listed = [jid for jid in (raw.decode() for raw in connection.lrange(queue.key, 0, -1)) if jid in wanted]
    if not listed:
        return set()
    statuses = connection.pipeline(transaction=False)
    for jid in listed:
        statuses.hget(Job.key_for(jid), "status")
    return {jid for jid, status in zip(listed, statuses.execute()) if status == b"queued"}


def _waiting_rows(queue, rows: list[tuple[int, int]]) -> set[int]:
    """The ids of ``rows`` (id, attempts) whose next attempt already waits in ``queue``: as its own job,
    or, for a new row, in the batch job it was enqueued with (see :func:`enqueue_new`)."""
    new = [outbox_id for outbox_id, attempts in rows if attempts == 0]
    batch_of: dict[int, str] = {}
    if new:
        marks = queue.connection.mget([_batch_mark(outbox_id) for outbox_id in new])
        batch_of = {outbox_id: mark.decode() for outbox_id, mark in zip(new, marks) if mark}
    own = {outbox_id: job_id(outbox_id, attempts) for outbox_id, attempts in rows}
    waiting = waiting_jobs(queue, [*own.values(), *batch_of.values()])
    return {outbox_id for outbox_id in own if own[outbox_id] in waiting or batch_of.get(outbox_id) in waiting}


def dispatch(outbox_id: int, attempts: int = 0, *, fresh: bool = False) -> None:
    """Start delivering a committed row. Never raises: the caller's change is committed and stays.

    With a queue, a row committed a moment ago (``fresh``) goes to the process's dispatcher, which
    enqueues it from its own thread (see :mod:`expertbook.notifications.dispatcher`); other rows
    are enqueued here. A Redis failure leaves the row pending for the relay. Without a queue the
    row is delivered here and now (bounded by ``MAIL_TIMEOUT``).
    """
    if uses_queue():
        try:
            if fresh:
                dispatcher(current_app._get_current_object()).add(outbox_id)
            else:
                enqueue(outbox_id, attempts)
        except Exception as exc:  # Redis down or unreachable: the relay will pick the row up
            log.warning("could not enqueue email %s (%s); it stays pending for the relay", outbox_id, exc)
        return
    try:
        send(outbox_id)
    except Exception:
        log.exception("in-process delivery of email %s failed; it stays in the outbox", outbox_id)


def dispatcher(app) -> Dispatcher:
    """The application's dispatcher in this process, created on first use."""
    found = app.extensions.get("notifications_dispatcher")
    if found is None:
        found = app.extensions.setdefault("notifications_dispatcher", Dispatcher(app, enqueue_new))
    return found


def flush_dispatch(timeout: float = 10.0) -> bool:
    """Enqueue the rows this process's dispatcher still holds and wait for it; True if it finished in time."""
    return dispatcher(current_app._get_current_object()).flush(timeout)


# ---------------------------------------------------------------------------- sending


def _backoff(attempt: int) -> timedelta:
    config = current_app.config
    return backoff(attempt, config["MAIL_RETRY_BASE_SECONDS"], config["MAIL_RETRY_MAX_SECONDS"])


class _LostClaim(Exception):
    """The row's claim expired and another worker took it over: this attempt must not send."""


@dataclass(frozen=True)
class _Named:
    """A claimed row whose email is still to be composed."""

    kind: str
    ref_id: int


def _claim(outbox_id: int) -> tuple[mailer.Email | _Named, int] | None:
    """Move the row to ``sending`` if it is ours to send now; return what to send and the attempt number."""
    attempt = ROWS.claim(outbox_id, OutboxEmail.attempts < current_app.config["MAIL_MAX_ATTEMPTS"])
    if attempt is None:
        return None
    row = db.session.get(OutboxEmail, outbox_id, populate_existing=True)
    if row is None:  # deleted a moment after the claim (its recipient deleted their account)
        db.session.rollback()
        return None
    if row.template is None:
        claimed: mailer.Email | _Named = _Named(row.kind, row.ref_id)
    else:
        claimed = mailer.Email(
            to_email=row.to_email,
            to_name=row.to_name,
            subject=row.subject,
            template=row.template,
            context=row.context,
            message_id=row.message_id,
            ics_text=row.ics_text,
            ics_method=row.ics_method,
        )
    db.session.rollback()  # end the read before the SMTP dialogue: no snapshot is held across it
    return claimed, attempt


def leases(app) -> Leases:
    """The application's claim leases in this process (see :mod:`expertbook.notifications.lease`)."""
    return claims.leases(app)


def _finish(outbox_id: int, attempt: int, **values: Any) -> bool:
    """Record an outcome, only if the claim of ``attempt`` is still ours (``attempts`` is the fence)."""
    return ROWS.finish(outbox_id, attempt, **values)


def send(outbox_id: int) -> str:
    """Send one outbox row if it is due and unclaimed: the body of the RQ job. Idempotent.

    Returns ``"sent"``, ``"retry"``, ``"failed"`` or ``"skipped"`` (already sent, failed, claimed
    by another worker, or not due yet).
    """
    claimed = _claim(outbox_id)
    if claimed is None:
        return "skipped"
    email, attempt = claimed
    release = ROWS.hold(outbox_id, attempt)
    try:
        return _send_claimed(outbox_id, attempt, email)
    finally:
        release()


def _send_claimed(outbox_id: int, attempt: int, email: mailer.Email | _Named) -> str:
    try:
        if isinstance(email, _Named):
            email = _compose(outbox_id, attempt, email.kind, email.ref_id)
        mailer.deliver(mailer.build_message(email))
    except _LostClaim:
        log.warning("email %s: attempt %s lost its claim while composing; not sent", outbox_id, attempt)
        return "skipped"
    except mailer.PermanentFailure as exc:
        log.warning("email %s failed permanently: %s", outbox_id, exc)
        _finish(outbox_id, attempt, status=FAILED, last_error=str(exc)[:2000])
        return "failed"
    except Exception as exc:  # TransientFailure, or something unexpected: retry, within the limit
        if not isinstance(exc, mailer.TransientFailure):
            log.exception("email %s: unexpected error while sending", outbox_id)
        outcome = _retry_later(outbox_id, attempt, f"{exc}" if isinstance(exc, mailer.TransientFailure) else repr(exc))
        if _is_job_timeout(exc):
            raise  # RQ's job timeout: the retry is recorded, and the job (a batch too) must stop here
        return outcome
    _finish(outbox_id, attempt, status=SENT, sent_at=utcnow(), last_error=None)
    log.info("email %s sent (attempt %s)", outbox_id, attempt)
    return "sent"


def _is_job_timeout(exc: BaseException) -> bool:
    from rq.timeouts import BaseTimeoutException

    return isinstance(exc, BaseTimeoutException)


def _retry_later(outbox_id: int, attempt: int, reason: str) -> str:
    max_attempts = current_app.config["MAIL_MAX_ATTEMPTS"]
    if attempt >= max_attempts:
        log.warning("email %s failed after %s attempts: %s", outbox_id, attempt, reason)
        _finish(outbox_id, attempt, status=FAILED, last_error=f"gave up after {attempt} attempts: {reason}"[:2000])
        return "failed"
    due = utcnow() + _backoff(attempt)
    log.info("email %s: attempt %s failed (%s); retrying at %s", outbox_id, attempt, reason, due.isoformat())
    # The row's next_attempt_at is the retry: the relay enqueues it once it is due.
    if _finish(outbox_id, attempt, status=PENDING, next_attempt_at=due, last_error=reason[:2000]):
        relay_due_at(due)
    return "retry"


def relay_due_at(due: datetime) -> None:
    """Something this process recorded falls due at ``due``: have its worker's tick run the relay
    then rather than at its next regular tick. Only a hint, to keep retries on time; the row is
    what counts, and any relay pass after ``due`` dispatches it."""
    ticker = current_app.extensions.get("notifications_ticker")
    if ticker is not None:
        ticker.wake_at(due)


# ---------------------------------------------------------------------------- relay and admin


def relay(now: datetime | None = None, limit: int = 500, settle_seconds: float = 0.0) -> int:
    """One pass: dispatch rows that are due (pending) or abandoned (``sending`` past their claim).

    Each row's job is enqueued unless it is really waiting in the queue now (:func:`waiting_jobs`);
    rows a dead worker left behind on their last allowed attempt are marked failed. Safe to run
    anywhere, any number of times at once: jobs have deterministic ids and sending claims the row.
    Returns how many rows were due (enqueued now or found waiting). Raises a redis error if the
    queue is unreachable. ``settle_seconds`` leaves rows committed less than that long ago, on their
    first attempt, to the dispatcher of the process that committed them (the worker's periodic pass):
    its job carries the request id the email is sent with; a second job would only race it.
    """
    now = now or utcnow()
    max_attempts = current_app.config["MAIL_MAX_ATTEMPTS"]
    abandoned = ROWS.abandoned(now)
    with transaction() as session:
        session.execute(
            update(OutboxEmail)
            .where(abandoned, OutboxEmail.attempts >= max_attempts)
            .values(status=FAILED, claimed_until=None,
                    last_error=f"gave up after {max_attempts} attempts: the worker stopped during the last one")
            .execution_options(synchronize_session=False)
        )
    ready = ROWS.due(now)
    if settle_seconds > 0:
        ready = and_(ready, or_(OutboxEmail.status != PENDING, OutboxEmail.attempts > 0,
                                OutboxEmail.created_at <= now - timedelta(seconds=settle_seconds)))
    rows = [tuple(row) for row in db.session.execute(
        select(OutboxEmail.id, OutboxEmail.attempts)
        .where(ready)
        .order_by(OutboxEmail.next_attempt_at, OutboxEmail.id)
        .limit(limit)
    )]
    db.session.rollback()  # end the read before sending, so no snapshot is held across SMTP calls
    if not uses_queue():
        for outbox_id, _ in rows:
            send(outbox_id)
        return len(rows)
    queue = notifications_queue()
    waiting = _waiting_rows(queue, rows)
    for outbox_id, attempts in rows:
        if outbox_id not in waiting:
            _put(queue, outbox_id, attempts)
    if len(rows) > len(waiting):
        log.info("relay enqueued %s email(s); %s more were waiting in the queue", len(rows) - len(waiting), len(waiting))
    return len(rows)


RelayHook = Callable[[], int]
_relay_hooks: list[RelayHook] = []


def register_relay_hook(hook: RelayHook) -> RelayHook:
    """Have the relay pass (the worker's tick, ``flask relay``) also run ``hook()``, e.g. due meeting jobs.

    A hook re-dispatches its own area's due work and returns how many items it dispatched.
    """
    if hook not in _relay_hooks:
        _relay_hooks.append(hook)
    return hook


def run_relay_hooks() -> int:
    """Run every registered relay hook; a failing hook is logged and does not stop the others."""
    from redis.exceptions import RedisError

    done = 0
    for hook in list(_relay_hooks):
        try:
            done += hook() or 0
        except RedisError as exc:  # expected while Redis is away: one line, not a traceback
            log.warning("relay hook %s could not reach Redis (%s)", getattr(hook, "__qualname__", hook), exc)
        except Exception:
            log.exception("relay hook %r failed", hook)
    return done


def retry_failed(outbox_id: int) -> OutboxEmail:
    """Give a failed email a fresh set of attempts (an admin fixed the address or the server)."""
    with transaction() as session:
        done = session.execute(
            update(OutboxEmail)
            .where(OutboxEmail.id == outbox_id, OutboxEmail.status == FAILED)
            .values(status=PENDING, attempts=0, next_attempt_at=utcnow(), claimed_until=None)
            .execution_options(synchronize_session=False)
        ).rowcount
        if done != 1:
            raise NotFound("There is no failed email with this number.")
        after_commit(lambda: dispatch(outbox_id, 0))
    row = db.session.get(OutboxEmail, outbox_id, populate_existing=True)
    assert row is not None
    return row


def outbox(status: str | None = None, limit: int = 200) -> list[OutboxEmail]:
    """Rows for the admin page, newest first: one status, or by default everything not yet sent."""
    query = select(OutboxEmail).order_by(OutboxEmail.id.desc()).limit(limit)
    if status in STATUSES:
        query = query.where(OutboxEmail.status == status)
    elif status != "all":
        query = query.where(OutboxEmail.status != SENT)
    return list(db.session.scalars(query))


def outbox_counts() -> dict[str, int]:
    """How many rows each status has."""
    from sqlalchemy import func

    counts = dict(db.session.execute(select(OutboxEmail.status, func.count()).group_by(OutboxEmail.status)).all())
    return {status: counts.get(status, 0) for status in STATUSES}


def emails_to(address: str, limit: int = 1000) -> list[dict[str, Any]]:
    """The emails written to ``address`` (newest first), for a person's "Download my data".

    What each was (kind, subject), when it was queued and sent, and its state; not the bodies, whose
    links may carry one-time tokens.
    """
    rows = db.session.scalars(
        select(OutboxEmail).where(OutboxEmail.to_email == address).order_by(OutboxEmail.id.desc()).limit(limit)
    )
    return [
        {
            "kind": row.kind,
            "subject": row.subject,
            "status": row.status,
            "queuedAt": row.created_at.isoformat() if row.created_at else None,
            "sentAt": row.sent_at.isoformat() if row.sent_at else None,
        }
        for row in rows
    ]


def forget_address(address: str) -> int:
    """Delete every email written to ``address``, sent or not (its owner deleted their account).

    Joins the caller's transaction. A row that is being sent right now still goes out; one deleted
    before its job runs is skipped by the job. Returns how many rows went.
    """
    from sqlalchemy import delete

    with transaction() as session:
        return session.execute(delete(OutboxEmail).where(OutboxEmail.to_email == address)).rowcount or 0


def forget_named(kinds: Iterable[str], ref_ids: Iterable[int]) -> int:
    """Delete the named rows of ``kinds`` about ``ref_ids`` (an area's records that are being deleted or
    anonymised), so none of them is composed later for a person who is gone. Joins the caller's transaction."""
    from sqlalchemy import delete

    kinds, ref_ids = list(kinds), list(ref_ids)
    if not kinds or not ref_ids:
        return 0
    deleted = 0
    with transaction() as session:
        for start in range(0, len(ref_ids), 500):
            chunk = ref_ids[start:start + 500]
            deleted += session.execute(
                delete(OutboxEmail).where(OutboxEmail.kind.in_(kinds), OutboxEmail.ref_id.in_(chunk))
            ).rowcount or 0
    return deleted


# ---------------------------------------------------------------------------- reminders


@dataclass(frozen=True)
class Reminder:
    """One reminder a booking area wants sent. ``kind`` and ``id`` identify it: it goes out once."""

    kind: str
    id: int | str
    to_email: str
    to_name: str
    subject: str
    context: Mapping[str, Any] = field(default_factory=dict)
    template: str = "reminder"
    ics: str | None = None


ReminderSource = Callable[[datetime, datetime], Iterable[Reminder]]
_reminder_sources: list[ReminderSource] = []


def register_reminder_source(source: ReminderSource) -> ReminderSource:
    """Register ``source(now, until)``: it yields a :class:`Reminder` for each booking starting in [now, until).

    Usable as a decorator. Call it at import time of the booking area's module.
    """
    if source not in _reminder_sources:
        _reminder_sources.append(source)
    return source


def unregister_reminder_source(source: ReminderSource) -> None:
    """Remove a source registered earlier (tests use this to clean up)."""
    if source in _reminder_sources:
        _reminder_sources.remove(source)


def send_due_reminders(now: datetime | None = None) -> int:
    """Queue a reminder for every booking starting within ``REMINDER_HOURS``; each is queued once, ever.

    The unique ``dedupe_key`` ``reminder:<kind>:<id>`` makes concurrent or repeated passes harmless.
    Returns how many reminders this pass queued.
    """
    now = now or utcnow()
    until = now + timedelta(hours=current_app.config["REMINDER_HOURS"])
    queued = 0
    for source in list(_reminder_sources):
        reminders = list(source(now, until))
        # The pass runs every tick over the whole window: skip, in one query, what earlier passes queued,
        # rather than checking each one's address and templates and opening a transaction to find out.
        keys = [f"reminder:{reminder.kind}:{reminder.id}" for reminder in reminders]
        queued_before = set()
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            queued_before.update(db.session.scalars(select(OutboxEmail.dedupe_key).where(OutboxEmail.dedupe_key.in_(chunk))))
        db.session.rollback()  # the reads end here; each reminder is its own transaction
        for reminder, key in zip(reminders, keys):
            if key in queued_before:
                continue
            try:
                row_id = queue_email(
                    f"reminder-{reminder.kind}",
                    reminder.to_email,
                    reminder.to_name,
                    reminder.template,
                    reminder.context,
                    subject=reminder.subject,
                    ics=reminder.ics,
                    dedupe_key=key,
                )
            except ValidationFailed as error:
                log.warning("reminder %s not queued: %s", key, error.errors)
                continue
            queued += row_id is not None
    return queued
