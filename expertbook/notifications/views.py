"""The site administrator's view of the outbox: what failed, what is waiting, and a retry button."""
from __future__ import annotations

from functools import wraps

import click
from flask import Blueprint, abort, current_app, flash, request, url_for
from flask_login import current_user, login_required

from expertbook.notifications import service
from expertbook.notifications.models import STATUSES
from expertbook.web import EmptyForm, redirect_to, render

# cli_group=None: the commands are ``flask worker``, ``flask relay``... not ``flask notifications worker``.
bp = Blueprint("notifications", __name__, url_prefix="/notifications", cli_group=None)

FILTERS = ("unsent", *STATUSES, "all")


def admin_required(view):
    """Only site administrators may use ``view``; everyone else gets 404, as if it were not there."""

    @wraps(view)
    @login_required
    def wrapped(*args, **kwargs):
        if not current_user.is_admin:
            abort(404)
        return view(*args, **kwargs)

    return wrapped


@bp.get("")
@admin_required
def index():
    """Emails that are failed, waiting or being sent (or any status with ``?status=``)."""
    status = request.args.get("status", "unsent")
    if status not in FILTERS:
        status = "unsent"
    return render(
        "notifications/index.html",
        "notifications/_outbox.html",
        rows=service.outbox(None if status == "unsent" else status),
        counts=service.outbox_counts(),
        selected=status,  # not "status": render() takes that as the HTTP status
        filters=FILTERS,
    )


@bp.post("/<int:outbox_id>/retry")
@admin_required
def retry(outbox_id: int):
    """Put a failed email back in the queue with a fresh set of attempts."""
    form = EmptyForm()  # only its CSRF token
    if not form.validate_on_submit():
        abort(400)
    row = service.retry_failed(outbox_id)
    # A named email that failed before it was composed has no recipient yet.
    recipient = f" to {row.to_email}" if row.to_email else f" ({row.kind})"
    flash(f"Email {row.id}{recipient} is queued again.", "success")
    return redirect_to(url_for("notifications.index", status=request.args.get("status", "unsent")))


# ---------------------------------------------------------------------------- commands


@bp.cli.command("worker")
@click.option("--burst", is_flag=True, help="Work until the queues are empty, then exit.")
@click.option("--queue", "queues", multiple=True, help="Queue names (default: the notifications queue and 'default').")
def worker_command(burst: bool, queues: tuple[str, ...]) -> None:
    """Run an RQ worker (no RQ scheduler: the relay enqueues what is due); it also relays the outbox and queues reminders periodically."""
    from expertbook.notifications.jobs import Ticker, periodic_pass, work
    from expertbook.observability import Heartbeat

    app = current_app._get_current_object()
    if not app.config.get("REDIS_URL"):
        raise click.ClickException("REDIS_URL is not set. Without Redis, emails are delivered in-process; no worker is needed.")
    names = list(queues or (app.config["NOTIFICATIONS_QUEUE"], "default"))
    periodic_pass(app)  # at once: catch up with whatever piled up while no worker ran
    # /healthz and /metrics tell from this whether any worker is alive (expertbook.observability).
    heartbeat = None if burst else Heartbeat(app.config["REDIS_URL"], min(30.0, float(app.config["WORKER_TICK_SECONDS"]))).start()
    ticker = None
    if not burst:
        ticker = Ticker(app)
        app.extensions["notifications_ticker"] = ticker  # retries recorded here wake it (service.relay_due_at)
        ticker.start()
    try:
        work(app, names, burst=burst)
    finally:
        if ticker is not None:
            ticker.stop()
            app.extensions.pop("notifications_ticker", None)
        if heartbeat is not None:
            heartbeat.stop()


@bp.cli.command("relay")
def relay_command() -> None:
    """One relay pass: dispatch every email (and other job, e.g. a video meeting) that is due, or abandoned by a dead worker."""
    jobs = service.run_relay_hooks()
    if jobs:
        click.echo(f"{jobs} other job(s) dispatched.")
    try:
        count = service.relay()
    except Exception as exc:  # Redis down: say so plainly
        raise click.ClickException(f"relay failed: {exc}") from exc
    click.echo(f"{count} email(s) dispatched.")


@bp.cli.command("reminders")
def reminders_command() -> None:
    """Queue the reminders that are due (each booking's reminder is sent once)."""
    count = service.send_due_reminders()
    click.echo(f"{count} reminder(s) queued.")
