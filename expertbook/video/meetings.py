"""The meeting of each video booking: written with the booking change, created at the provider by a job.

How a meeting flows:

1. A video booking becomes confirmed (at once, or when the expert accepts). Inside that transaction
   :func:`booking_confirmed` writes a ``pending`` :class:`~expertbook.video.models.Meeting` row and
   registers :func:`dispatch` to run after the commit.
2. :func:`dispatch` hands the meeting to the RQ queue ``default`` (with ``REDIS_URL``) or runs
   :func:`sync` in-process. If Redis is down the row stays due and the relay picks it up. Nothing
   is ever scheduled in Redis: the row's ``next_attempt_at`` says when the job is due.
3. :func:`sync` (the job body) claims the row, decides what the provider must do (create, update,
   delete) from the booking and the row, talks to the provider OUTSIDE any transaction, and records
   the outcome in a new transaction: ``created`` (and :data:`~expertbook.video.signals.meeting_ready`
   inside it, so the confirmation emails are written with the links); a retry at ``next_attempt_at``
   after a transient fault (``retry_delay``, honouring Retry-After); ``reauth_needed`` when the
   expert must re-authorize Zoom; ``failed`` when the provider refuses for good.
4. :func:`relay` re-dispatches whatever is due and not really waiting in the queue; the worker runs
   it with the outbox relay every tick, so a retry lost with Redis or a dead worker is back within one.
5. When the expert re-authorizes, disconnects, or Zoom deauthorizes our app
   (:data:`~expertbook.video.signals.zoom_connection_changed`), :func:`resume_expert` makes every
   meeting that waited on it due again, with the provider that now applies.

A cancelled or declined booking's meeting is deleted at the provider the same way (a meeting already
gone counts as done); a booking whose time differs from the meeting's (a reschedule,
:func:`booking_rescheduled`) is updated with a PATCH, so the join link stays the same.
"""
from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta
from functools import partial

from flask import current_app
from sqlalchemy import and_, or_, select, update

from expertbook.database import after_commit, transaction, utcnow
from expertbook.experts.models import ACTIVE_STATUSES, Booking
from expertbook.extensions import db
from expertbook.observability import job_meta
from expertbook.web import external_url
from expertbook.video import service as provider
from expertbook.video import signals
from expertbook.video.errors import MeetingError, MeetingNotFound, ReauthRequired, TransientMeetingError
from expertbook.video.models import (
    MEETING_CREATED,
    MEETING_DELETED,
    MEETING_FAILED,
    MEETING_PENDING,
    MEETING_REAUTH,
    RECONNECT_NEEDED,
    Meeting,
    ZoomConnection,
)

log = logging.getLogger(__name__)

QUEUE = "default"  # served by ``flask --app wsgi worker`` next to the notifications queue
JOB_PATH = "expertbook.video.jobs.sync_meeting"
MAX_ATTEMPTS = 10
# How long after a create whose answer was lost the expert's meetings are searched once more for a
# stray one: a create Zoom took longer than ZOOM_TIMEOUT to make has long finished by then.
SWEEP_AFTER = timedelta(minutes=10)


# ---------------------------------------------------------------------------- reading


def meeting_for(booking_id: int) -> Meeting | None:
    """The meeting row of a booking, if it has one."""
    return db.session.scalar(select(Meeting).where(Meeting.booking_id == booking_id))


def requires_reauth(meeting: Meeting | None) -> bool:
    """Whether the meeting waits for the expert to re-authorize Zoom (seed 001's ``requiresReAuth``)."""
    return meeting is not None and meeting.status == MEETING_REAUTH


def start_path(booking_id: int) -> str:
    """Our host "Start meeting" path for a booking (the route fetches a fresh start URL on click)."""
    return current_app.url_map.bind("localhost").build("video.start_meeting", {"booking_id": booking_id})


def start_url(booking_id: int) -> str:
    """The absolute host "Start meeting" link, for emails."""
    return external_url("video.start_meeting", booking_id=booking_id)


def _requested_provider(choice: str | None) -> str | None:
    return choice if choice in provider.PROVIDERS else None  # "auto": Zoom when connected


def _locked(booking_id: int) -> Meeting | None:
    return db.session.scalar(
        select(Meeting).where(Meeting.booking_id == booking_id).with_for_update(of=Meeting).execution_options(populate_existing=True)
    )


# ---------------------------------------------------------------------------- inside the booking transaction


def booking_confirmed(booking_id: int) -> Meeting | None:
    """A booking became confirmed: give a video booking its (pending) meeting, created after commit.

    Runs inside the booking's transaction (a signal receiver): it only writes the row; the provider
    is called by the job :func:`dispatch` starts once the booking has committed.
    """
    booking = db.session.get(Booking, booking_id)
    if booking is None or booking.service.location_kind != "video":
        return None
    meeting = _locked(booking_id)
    if meeting is None:
        meeting = Meeting(
            booking_id=booking_id,
            provider=provider.provider_for(booking.expert.user_id, _requested_provider(booking.service.video_provider)),
            status=MEETING_PENDING,
            attempts=0,
            next_attempt_at=utcnow(),
        )
        db.session.add(meeting)
        db.session.flush()
    _dispatch_after_commit(meeting)
    return meeting


def booking_ended(booking_id: int) -> None:
    """A booking was cancelled or declined: delete its meeting (after commit, if one exists at the provider)."""
    meeting = _locked(booking_id)
    if meeting is None or meeting.status == MEETING_DELETED:
        return
    if meeting.external_id is None and meeting.create_marker is None and meeting.external_ref is None:
        # Nothing exists at the provider (a Jitsi room, or not created yet). A create job in flight
        # notices the cancelled booking when it records its result and deletes what it made.
        meeting.status = MEETING_DELETED
        meeting.next_attempt_at = None
        return
    meeting.attempts = 0
    meeting.next_attempt_at = utcnow()
    _dispatch_after_commit(meeting)


def booking_rescheduled(booking_id: int) -> None:
    """A booking moved: the job PATCHes its meeting to the new time (the join link stays the same).

    A meeting not created yet is simply created at the new time; a Jitsi room has no time to move.
    """
    meeting = _locked(booking_id)
    if meeting is None or meeting.status in (MEETING_DELETED, MEETING_FAILED):
        return
    if meeting.status == MEETING_REAUTH:
        return  # resume_expert() makes it due when the expert re-authorizes; it reads the booking's time then
    meeting.attempts = 0
    meeting.next_attempt_at = utcnow()
    _dispatch_after_commit(meeting)


# ---------------------------------------------------------------------------- dispatch


def _uses_queue() -> bool:
    from expertbook.notifications.service import uses_queue

    return uses_queue()


def job_id(meeting_id: int, due: datetime | None) -> str:
    """Deterministic per (meeting, due time): dispatching the same due work twice finds the job waiting."""
    return f"meeting-{meeting_id}-{int(due.timestamp()) if due else 0}"


def _queue():
    from rq import Queue

    from expertbook.notifications.service import redis_connection

    return Queue(QUEUE, connection=redis_connection())


def enqueue(meeting_id: int, due: datetime | None, waiting: set[str] | None = None) -> bool:
    """Put the meeting's job on the queue now, unless it is already waiting there. Raises redis errors.

    ``waiting`` is what the caller already knows to be waiting (the relay asks for all its rows at once).
    """
    from expertbook.notifications.service import waiting_jobs

    queue = _queue()
    jid = job_id(meeting_id, due)
    if jid in (waiting if waiting is not None else waiting_jobs(queue, [jid])):
        return False
    queue.enqueue(JOB_PATH, meeting_id, job_id=jid, job_timeout=_claim_seconds() + 60, result_ttl=24 * 3600,
                  failure_ttl=7 * 24 * 3600, description=f"sync video meeting {meeting_id}", meta=job_meta())
    return True


def dispatch(meeting_id: int, due: datetime | None = None) -> None:
    """Start the meeting's job if it is due. Never raises: the booking is committed and stays.

    Work due later is never scheduled in Redis: the row's ``next_attempt_at`` is the schedule, and
    the relay (the worker's tick, woken at ``due`` when this process is a worker) enqueues it then.
    With a queue, a Redis failure leaves the row due for the relay; without one the job runs here
    (in-process retries are left to the relay, which the worker tick or ``flask relay`` runs).
    """
    from expertbook.notifications.service import relay_due_at

    if due is not None and due > utcnow():
        relay_due_at(due)
        return
    if _uses_queue():
        try:
            enqueue(meeting_id, due)
        except Exception as exc:
            log.warning("could not enqueue video meeting %s (%s); the relay will", meeting_id, exc)
        return
    try:
        sync(meeting_id)
    except Exception:
        log.exception("in-process video meeting job %s failed; the relay will retry it", meeting_id)


def _dispatch_after_commit(meeting: Meeting) -> None:
    # The due time is part of the job id, so this and a relay pass for the same work make one job.
    after_commit(partial(dispatch, meeting.id, meeting.next_attempt_at))


def relay(now: datetime | None = None, limit: int = 200) -> int:
    """Dispatch every meeting that is due and not claimed, unless its job really waits in the queue now.

    Returns how many were due. Part of the worker's periodic pass (a relay hook).
    """
    from expertbook.notifications.service import waiting_jobs

    now = now or utcnow()
    rows = db.session.execute(
        select(Meeting.id, Meeting.next_attempt_at)
        .where(
            Meeting.next_attempt_at <= now,
            Meeting.status != MEETING_DELETED,
            or_(Meeting.claimed_until.is_(None), Meeting.claimed_until < now),
        )
        .order_by(Meeting.next_attempt_at)
        .limit(limit)
    ).all()
    db.session.rollback()
    waiting = waiting_jobs(_queue(), [job_id(meeting_id, due) for meeting_id, due in rows]) if rows and _uses_queue() else set()
    for meeting_id, due in rows:
        if _uses_queue():
            enqueue(meeting_id, due, waiting)
        else:
            try:
                sync(meeting_id, now=max(now, utcnow()))
            except Exception:
                log.exception("video meeting %s: the relay's attempt failed", meeting_id)
    if rows:
        log.info("relay dispatched %s video meeting job(s)", len(rows))
    return len(rows)


# ---------------------------------------------------------------------------- the job


def _claim_seconds() -> int:
    # Long enough for a token refresh and two API calls, each bounded by ZOOM_TIMEOUT.
    return int(float(current_app.config.get("ZOOM_TIMEOUT", 10)) * 4) + 30


def _claim(meeting_id: int, now: datetime) -> datetime | None:
    claim = now + timedelta(seconds=_claim_seconds())
    with transaction() as session:
        claimed = session.execute(
            update(Meeting)
            .where(
                Meeting.id == meeting_id,
                Meeting.next_attempt_at <= now,
                Meeting.status != MEETING_DELETED,
                or_(Meeting.claimed_until.is_(None), Meeting.claimed_until < now),
            )
            .values(claimed_until=claim)
            .execution_options(synchronize_session=False)
        ).rowcount
    return claim if claimed == 1 else None


def _plan(meeting: Meeting, booking: Booking) -> str:
    """What the provider must do for this meeting now: create, update, delete, forget (mark deleted),
    sweep (delete strays of lost creates) or nothing."""
    active = booking.status in ACTIVE_STATUSES
    if not active:
        # A create marker left means Zoom may hold meetings we never heard of: look for them too.
        exists = meeting.external_id is not None or meeting.create_marker is not None or meeting.external_ref is not None
        return "delete" if exists else "forget"
    if meeting.join_url is None:
        # Created only for a confirmed booking; one moved back to pending keeps its meeting (moved below).
        return "create" if booking.status == "confirmed" else "nothing"
    moved = meeting.scheduled_start != booking.start_at or meeting.scheduled_minutes != booking.duration_minutes
    if meeting.provider in (provider.ZOOM, provider.MEET) and moved:
        return "update"
    if meeting.provider == provider.ZOOM and meeting.create_marker is not None:
        return "sweep"
    return "nothing"


def _due(plan: str) -> datetime:
    """When the job for ``plan`` is due: a sweep waits :data:`SWEEP_AFTER` for late creates to land."""
    return utcnow() + (SWEEP_AFTER if plan == "sweep" else timedelta(0))


def _topic(booking: Booking) -> str:
    return f"{booking.service.title} - {booking.customer_name}"


def sync(meeting_id: int, now: datetime | None = None) -> str:
    """The meeting job: bring the provider in line with the booking. Idempotent; returns what it did.

    ``"created"``, ``"updated"``, ``"deleted"``, ``"swept"``, ``"retry"``, ``"reauth"``, ``"failed"``,
    or ``"skipped"`` (not due, claimed elsewhere, or nothing to do).
    """
    now = now or utcnow()
    claim = _claim(meeting_id, now)
    if claim is None:
        return "skipped"
    meeting = db.session.get(Meeting, meeting_id, populate_existing=True)
    booking = db.session.get(Booking, meeting.booking_id, populate_existing=True)
    plan = _plan(meeting, booking)
    expert_user_id = booking.expert.user_id
    args = dict(
        topic=_topic(booking), start_utc=booking.start_at, duration_min=booking.duration_minutes, timezone=booking.expert.timezone,
    )
    requested = _requested_provider(booking.service.video_provider)
    recording = bool(booking.service.record_meetings)
    provider_name, external_id, marker = meeting.provider, meeting.external_id, meeting.create_marker
    meet = dict(external_ref=meeting.external_ref, booking_uid=booking.ics_uid)  # where a Meet meeting's event is
    booking_id = booking.id
    db.session.rollback()  # end the read: no snapshot or lock is held while the provider is called

    try:
        if plan == "create":
            if provider.provider_for(expert_user_id, requested) == provider.ZOOM:
                return _create_at_zoom(meeting_id, claim, booking_id, marker, expert_user_id, requested, recording, args)
            result = provider.create_meeting(expert_user_id, recording=recording, provider=requested, booking_uid=meet["booking_uid"], **args)
            return _record_created(meeting_id, claim, result, args["start_utc"], args["duration_min"])
        if plan == "update":
            try:
                provider.update_meeting(expert_user_id, provider_name, external_id, **meet, **args)
            except MeetingNotFound:
                log.warning("meeting %s vanished at Zoom; creating a new one", meeting_id)
                return _finish(meeting_id, claim, status=MEETING_PENDING, external_id=None, join_url=None,
                               password=None, next_attempt_at=utcnow(), redispatch=True, outcome="retry")
            return _finish(meeting_id, claim, scheduled_start=args["start_utc"], scheduled_minutes=args["duration_min"],
                           attempts=0, last_error=None, next_attempt_at=None, outcome="updated", recheck=True)
        if plan == "delete":
            provider.delete_meeting(expert_user_id, provider_name, external_id, **meet)
            if marker is not None:  # and whatever a create whose answer was lost may have made
                provider.delete_marked(expert_user_id, marker)
            return _finish(meeting_id, claim, status=MEETING_DELETED, next_attempt_at=None, last_error=None, outcome="deleted")
        if plan == "sweep":
            provider.delete_marked(expert_user_id, marker, keep=external_id)
            return _finish(meeting_id, claim, create_marker=None, next_attempt_at=None, outcome="swept", recheck=True)
        if plan == "forget":
            return _finish(meeting_id, claim, status=MEETING_DELETED, next_attempt_at=None, outcome="deleted")
        return _finish(meeting_id, claim, next_attempt_at=None, outcome="skipped")
    except TransientMeetingError as error:
        return _retry_later(meeting_id, claim, str(error), error.retry_after)
    except ReauthRequired as error:
        return _record_reauth(meeting_id, claim, expert_user_id, plan, str(error), provider_name)
    except MeetingError as error:
        log.warning("video meeting %s: the provider refused to %s it: %s", meeting_id, plan, error)
        return _finish(meeting_id, claim, status=MEETING_FAILED, next_attempt_at=None,
                       last_error=f"{plan} refused: {error}"[:2000], outcome="failed")
    except Exception as error:  # a bug or an unexpected answer: retry within the limit, loudly
        log.exception("video meeting %s: unexpected error during %s", meeting_id, plan)
        return _retry_later(meeting_id, claim, repr(error), None)


def _create_at_zoom(meeting_id: int, claim: datetime, booking_id: int, marker: str | None, expert_user_id: int,
                    requested: str | None, recording: bool, args: dict) -> str:
    """Create the booking's Zoom meeting, or adopt the one an earlier create made unseen.

    Before the first create a marker is committed; it goes into the meeting's agenda. A create whose
    answer is lost (``ZOOM_TIMEOUT`` ran out while Zoom was still making it, or the worker died) leaves
    the marker set, so the next attempt lists the expert's meetings and adopts the one carrying it
    (deleting any extra one) instead of making another. A first create that answered clears it: no
    other meeting can exist. A marker kept is swept once more :data:`SWEEP_AFTER` later (and when the
    booking's meeting is deleted): every other meeting carrying it is deleted, then it is cleared.
    """
    first = marker is None
    if first:
        marker = _mark(meeting_id, claim, booking_id)
        if marker is None:
            return "skipped"
    else:
        found = provider.find_meetings(expert_user_id, marker)
        if found:
            keep, *strays = found
            try:
                # Its time is the one the lost create asked for: bring it to the booking's current one.
                provider.update_meeting(expert_user_id, provider.ZOOM, keep, **args)
                adopted = provider.zoom_meeting(expert_user_id, keep)
            except MeetingNotFound:
                adopted = None  # deleted at Zoom meanwhile: create one below
            if adopted is not None:
                for stray in strays:
                    provider.delete_meeting(expert_user_id, provider.ZOOM, stray)
                log.info("video meeting %s: adopted Zoom meeting %s, made by a create whose answer was lost", meeting_id, keep)
                return _record_created(meeting_id, claim, adopted, args["start_utc"], args["duration_min"])
    result = provider.create_meeting(expert_user_id, recording=recording, provider=requested, marker=marker, **args)
    return _record_created(meeting_id, claim, result, args["start_utc"], args["duration_min"], clear_marker=first)


def _mark(meeting_id: int, claim: datetime, booking_id: int) -> str | None:
    """Commit the marker of the create about to be sent; None if the claim is no longer ours."""
    marker = f"expertbook-booking-{booking_id}-{secrets.token_hex(8)}"
    with transaction():
        meeting = _owned(meeting_id, claim)
        if meeting is None:
            return None
        meeting.create_marker = marker
    return marker


def _touch(booking_id: int) -> None:
    # The booking pages poll on the booking's updated_at: a meeting state change must show there.
    db.session.execute(
        update(Booking).where(Booking.id == booking_id).values(updated_at=utcnow()).execution_options(synchronize_session=False)
    )


def _owned(meeting_id: int, claim: datetime) -> Meeting | None:
    meeting = db.session.scalar(
        select(Meeting).where(Meeting.id == meeting_id).with_for_update(of=Meeting).execution_options(populate_existing=True)
    )
    if meeting is None or meeting.claimed_until != claim:
        log.warning("video meeting %s: the job lost its claim before recording its outcome", meeting_id)
        return None
    return meeting


def _finish(meeting_id: int, claim: datetime, *, outcome: str, redispatch: bool = False, recheck: bool = False, **values) -> str:
    """Record an outcome if the claim is still ours; release the claim."""
    with transaction():
        meeting = _owned(meeting_id, claim)
        if meeting is None:
            return "skipped"
        for name, value in values.items():
            setattr(meeting, name, value)
        meeting.claimed_until = None
        if "status" in values:
            _touch(meeting.booking_id)
        if recheck:
            # The booking may have changed again while the provider was being called.
            booking = db.session.get(Booking, meeting.booking_id, populate_existing=True)
            plan = _plan(meeting, booking)
            if plan != "nothing":
                meeting.next_attempt_at = _due(plan)
                redispatch = True
        if redispatch:
            _dispatch_after_commit(meeting)
    return outcome


def _record_created(meeting_id: int, claim: datetime, result: provider.MeetingResult, start: datetime, minutes: int,
                    clear_marker: bool = False) -> str:
    app = current_app._get_current_object()
    with transaction():
        meeting = _owned(meeting_id, claim)
        if meeting is None:
            if result.meeting_id is not None:  # another run owns the row now; do not leave ours behind at Zoom
                after_commit(partial(_discard, meeting_id, result))
            return "skipped"
        if clear_marker:
            meeting.create_marker = None
        meeting.provider = result.provider
        meeting.external_id = result.meeting_id
        meeting.external_ref = result.external_ref
        meeting.join_url = result.join_url
        meeting.password = result.password
        meeting.scheduled_start = start
        meeting.scheduled_minutes = minutes
        meeting.status = MEETING_CREATED
        meeting.attempts = 0
        meeting.last_error = None
        meeting.claimed_until = None
        _touch(meeting.booking_id)
        booking = db.session.get(Booking, meeting.booking_id, populate_existing=True)
        if booking.status == "confirmed":
            meeting.next_attempt_at = None
            db.session.flush()
            signals.meeting_ready.send(app, booking_id=booking.id, meeting_id=meeting.id)
            plan = _plan(meeting, booking)
            if plan != "nothing":  # the time changed meanwhile, or a lost create may still leave a stray
                meeting.next_attempt_at = _due(plan)
                _dispatch_after_commit(meeting)
        else:
            # Cancelled while we were creating it: delete what we made.
            meeting.next_attempt_at = utcnow()
            _dispatch_after_commit(meeting)
    log.info("video meeting %s created (%s)", meeting_id, result.provider)
    return "created"


def _discard(meeting_id: int, result: provider.MeetingResult) -> None:
    meeting = db.session.get(Meeting, meeting_id)
    booking = db.session.get(Booking, meeting.booking_id) if meeting else None
    if booking is None:
        return
    if result.provider == provider.MEET:
        return  # the Meet event is the booking's own (its id comes from the booking): no duplicate to remove
    try:
        provider.delete_meeting(booking.expert.user_id, result.provider, result.meeting_id)
    except MeetingError as error:
        log.warning("could not delete duplicate Zoom meeting %s: %s", result.meeting_id, error)


def _retry_later(meeting_id: int, claim: datetime, reason: str, retry_after: float | None) -> str:
    with transaction():
        meeting = _owned(meeting_id, claim)
        if meeting is None:
            return "skipped"
        meeting.attempts += 1
        meeting.claimed_until = None
        meeting.last_error = reason[:2000]
        delay = provider.retry_delay(meeting.attempts, retry_after, max_attempts=MAX_ATTEMPTS,
                                     base=float(current_app.config.get("VIDEO_RETRY_BASE_SECONDS", 30)))
        if delay is None:
            log.warning("video meeting %s: giving up after %s attempts: %s", meeting_id, meeting.attempts, reason)
            meeting.status = MEETING_FAILED
            meeting.next_attempt_at = None
            meeting.last_error = f"gave up after {meeting.attempts} attempts: {reason}"[:2000]
            _touch(meeting.booking_id)
            return "failed"
        due = utcnow() + timedelta(seconds=delay)
        meeting.next_attempt_at = due
        log.info("video meeting %s: attempt %s failed (%s); retrying at %s", meeting_id, meeting.attempts, reason, due.isoformat())
        _dispatch_after_commit(meeting)  # the relay enqueues it when due
    return "retry"


def _incident(expert_user_id: int, provider_name: str = provider.ZOOM) -> str | None:
    """Names the refused grant: a connection goes from connected to ``reconnect_needed`` at most once
    per authorization (re-authorizing sets a new ``connected_at``), so (connection, connected_at) is one incident."""
    if provider_name == provider.MEET:
        from expertbook.calendars import google

        return google.reauth_incident(expert_user_id)
    connection = db.session.scalar(select(ZoomConnection).where(ZoomConnection.user_id == expert_user_id))
    if connection is None or connection.status != RECONNECT_NEEDED:
        return None
    return f"{connection.id}:{connection.connected_at.strftime('%Y%m%dT%H%M%S.%f')}"


def _record_reauth(meeting_id: int, claim: datetime, expert_user_id: int, plan: str, reason: str,
                   provider_name: str = provider.ZOOM) -> str:
    app = current_app._get_current_object()
    with transaction():
        meeting = _owned(meeting_id, claim)
        if meeting is None:
            return "skipped"
        meeting.claimed_until = None
        incident = _incident(expert_user_id, provider_name)
        if incident is None:
            # Not waiting on a re-authorization (the expert disconnected meanwhile): try again soon,
            # when the provider choice is made afresh.
            meeting.attempts += 1
            meeting.next_attempt_at = utcnow() + timedelta(seconds=provider.retry_delay(min(meeting.attempts, MAX_ATTEMPTS), max_attempts=MAX_ATTEMPTS))
            meeting.last_error = reason[:2000]
            _dispatch_after_commit(meeting)
            return "retry"
        meeting.next_attempt_at = None  # resumed by resume_expert() when the expert re-authorizes
        which = "Google" if provider_name == provider.MEET else "Zoom"
        meeting.last_error = f"waiting for the expert to re-authorize {which}: {reason}"[:2000]
        if plan == "create":
            meeting.status = MEETING_REAUTH
            _touch(meeting.booking_id)
            _park_waiting(expert_user_id, meeting.id, meeting.last_error, provider_name)
            db.session.flush()
            signals.meeting_reauth_needed.send(app, booking_id=meeting.booking_id, meeting_id=meeting.id, incident=incident)
    return "reauth"


def _park_waiting(expert_user_id: int, meeting_id: int, reason: str, provider_name: str = provider.ZOOM) -> None:
    """The expert's other Zoom meetings still to be created need the same refused grant: they wait with
    this one (and the one email about it lists them all) instead of each failing against Zoom in turn.
    Meetings another job holds right now are left to it."""
    now = utcnow()
    others = db.session.scalars(
        _of_expert(select(Meeting), expert_user_id)
        .where(
            Meeting.id != meeting_id,
            Meeting.status == MEETING_PENDING,
            Meeting.provider == provider_name,
            Meeting.join_url.is_(None),
            Booking.status == "confirmed",
            or_(Meeting.claimed_until.is_(None), Meeting.claimed_until < now),
        )
        .with_for_update(of=Meeting)
    ).all()
    for other in others:
        other.status = MEETING_REAUTH
        other.next_attempt_at = None
        other.last_error = reason
        _touch(other.booking_id)


def waiting_on_reauth(expert_user_id: int) -> list[Booking]:
    """The expert's bookings whose meetings wait for a Zoom re-authorization, soonest first."""
    return list(db.session.scalars(
        _of_expert(select(Booking), expert_user_id)
        .where(Meeting.status == MEETING_REAUTH, Booking.status.in_(ACTIVE_STATUSES))
        .order_by(Booking.start_at, Booking.id)
    ))


def _of_expert(query, expert_user_id: int):
    """``query`` (of meetings or bookings) narrowed to the meetings of one expert's bookings."""
    from expertbook.experts.models import ExpertProfile

    return (
        query.select_from(Meeting)
        .join(Booking, Booking.id == Meeting.booking_id)
        .join(ExpertProfile, ExpertProfile.id == Booking.expert_id)
        .where(ExpertProfile.user_id == expert_user_id)
    )


# ---------------------------------------------------------------------------- re-authorization


def resume_expert(expert_user_id: int) -> int:
    """The expert's Zoom connection changed: make every meeting that waited on it due now; returns how many.

    Meetings still to be created go back to ``pending`` (their provider is chosen afresh), and
    deletions or updates that waited are retried. Runs after the connection's commit.
    """
    with transaction():
        rows = db.session.scalars(
            _of_expert(select(Meeting), expert_user_id)
            .where(
                Meeting.status.in_((MEETING_PENDING, MEETING_REAUTH, MEETING_CREATED)),
                or_(Meeting.status != MEETING_CREATED, and_(Meeting.next_attempt_at.is_(None), Meeting.last_error.is_not(None))),
            )
            .with_for_update(of=Meeting)
        ).all()
        now = utcnow()
        for meeting in rows:
            if meeting.status == MEETING_REAUTH:
                meeting.status = MEETING_PENDING
            meeting.attempts = 0
            meeting.next_attempt_at = now
            _dispatch_after_commit(meeting)
    if rows:
        log.info("resuming %s video meeting(s) of user %s after (re)connecting Zoom", len(rows), expert_user_id)
    return len(rows)
