"""Webhook pages: a hospital's staff admins and experts list, add, change and test their webhooks, and
read each one's delivery log (every attempt, with *Resend*).

The signing secret is shown once, in the answer to the POST that made it (or made a new one): never
in a URL, never in a flash message (which travels in the session cookie), never again.
"""
from __future__ import annotations

from functools import wraps

from flask import Blueprint, abort, current_app, flash, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from expertbook.errors import Conflict, ValidationFailed
from expertbook.extensions import limiter
from expertbook.web import EmptyForm, apply_errors, no_store, page_arg, redirect_to, render
from expertbook.webhooks import events, service
from expertbook.webhooks.forms import SubscriptionForm
from expertbook.webhooks.models import DELIVERED, FAILED, PENDING

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")

LOG_FILTERS = ("all", PENDING, DELIVERED, FAILED)


def _subscription_key() -> str:
    return f"webhook-sends:{(request.view_args or {}).get('subscription_id')}"


# *Send test event* and *Resend* make the server POST to an address its owner chose: limited per webhook,
# so nobody turns the button into a way of flooding someone else's server from ours.
sends_limit = limiter.shared_limit(lambda: current_app.config["WEBHOOK_SEND_LIMIT"], scope="webhook-sends",
                                   key_func=_subscription_key, methods=["POST"])


@bp.record_once
def _connect(state) -> None:
    from expertbook.webhooks import account_hooks, openapi, subscribers

    subscribers.connect()
    account_hooks.connect()
    openapi.register()


def owners_required(view):
    """Only hospital staff admins and experts have webhooks; everyone else gets 404, as if it were not there."""

    @wraps(view)
    @login_required
    def wrapped(*args, **kwargs):
        if not service.owners_of(current_user):
            abort(404)
        return view(*args, **kwargs)

    return wrapped


def _owners() -> list[service.Owner]:
    return service.owners_of(current_user)


def _owner_for(kind: str | None) -> service.Owner:
    """The owner a new webhook is for (``?for=hospital`` or ``expert``; the only one when there is one)."""
    owners = _owners()
    for owner in owners:
        if owner.kind == kind:
            return owner
    if kind is None and len(owners) == 1:
        return owners[0]
    abort(404)


def _check_csrf(form) -> None:
    if "csrf_token" in form.errors:
        abort(400)


@bp.get("")
@owners_required
def index():
    """Every webhook of the hospital (for its staff admins) and of the expert, with how many events wait."""
    groups = []
    for owner in _owners():
        subscriptions = service.subscriptions_of(owner)
        groups.append((owner, subscriptions))
    waiting = service.waiting([s.id for _, subscriptions in groups for s in subscriptions])
    return render("webhooks/index.html", "webhooks/_list.html", groups=groups, waiting=waiting,
                  max_subscriptions=service.MAX_SUBSCRIPTIONS, HOSPITAL=events.HOSPITAL)


@bp.route("/new", methods=["GET", "POST"])
@owners_required
@no_store
def new():
    """Add a webhook. The answer to a successful POST shows its signing secret, once (201)."""
    owner = _owner_for(request.args.get("for"))
    form = SubscriptionForm().for_owner(owner.kind)
    status = 200
    if request.method == "POST":
        status = 422
        if form.validate_on_submit():
            try:
                subscription, secret = service.create(owner, form.url.data, form.events.data, form.description.data,
                                                      created_by=current_user.id)
            except ValidationFailed as error:
                apply_errors(form, error)
            except Conflict as error:
                form.form_errors.append(str(error))
                status = 409
            else:
                return render("webhooks/secret.html", "webhooks/_secret.html", status=201, subscription=subscription,
                              secret=secret, created=True)
        _check_csrf(form)
    return render("webhooks/new.html", "webhooks/_form.html", status=status, form=form, owner=owner,
                  action=url_for("webhooks.new", **({"for": owner.kind} if len(_owners()) > 1 else {})), HOSPITAL=events.HOSPITAL)


@bp.get("/<int:subscription_id>")
@owners_required
def subscription(subscription_id: int):
    """One webhook: what it sends where, its buttons, and its delivery log (paged, newest first).

    htmx asks for the log alone (paging, filtering, and a poll while deliveries are under way).
    """
    found = service.subscription_for(_owners(), subscription_id)
    selected = request.args.get("status", "all")
    if selected not in LOG_FILTERS:
        selected = "all"
    log = service.delivery_log(subscription_id, page_arg(), None if selected == "all" else selected)
    return render("webhooks/subscription.html", "webhooks/_log.html", subscription=found, log=log, selected=selected,
                  filters=LOG_FILTERS, labels=_filter_labels(), event_labels=_event_labels())


def _filter_labels() -> dict[str, str]:
    return {"all": _("All"), PENDING: _("Waiting"), DELIVERED: _("Delivered"), FAILED: _("Failed")}


def _event_labels() -> dict[str, str]:
    labels = {event.name: str(event.label) for event in events.EVENTS}
    labels[events.TEST_EVENT] = _("Test event")
    return labels


@bp.route("/<int:subscription_id>/edit", methods=["GET", "POST"])
@owners_required
def edit(subscription_id: int):
    """Change a webhook's URL, events or description, or pause and resume it (the secret stays)."""
    found = service.subscription_for(_owners(), subscription_id)
    owner = service.owner_of(found)
    if request.method == "GET":
        form = SubscriptionForm(data={"url": found.url, "events": found.event_types, "description": found.description,
                                      "active": found.active}).for_owner(owner.kind)
        return render("webhooks/edit.html", "webhooks/_form.html", form=form, owner=owner, subscription=found,
                      action=url_for("webhooks.edit", subscription_id=subscription_id), HOSPITAL=events.HOSPITAL)
    form = SubscriptionForm().for_owner(owner.kind)
    if form.validate_on_submit():
        try:
            service.update_subscription(_owners(), subscription_id, form.url.data, form.events.data, form.description.data,
                                        form.active.data)
        except ValidationFailed as error:
            apply_errors(form, error)
        else:
            flash(_("Saved."), "success")
            return redirect_to(url_for("webhooks.subscription", subscription_id=subscription_id))
    _check_csrf(form)
    return render("webhooks/edit.html", "webhooks/_form.html", status=422, form=form, owner=owner, subscription=found,
                  action=url_for("webhooks.edit", subscription_id=subscription_id), HOSPITAL=events.HOSPITAL)


def _empty_form() -> None:
    if not EmptyForm().validate_on_submit():
        abort(400)


@bp.post("/<int:subscription_id>/test")
@owners_required
@sends_limit
def send_test(subscription_id: int):
    """*Send test event*: a ``webhook.test`` delivery, signed like any other, shown in the log."""
    _empty_form()
    try:
        service.send_test(_owners(), subscription_id)
    except Conflict as error:
        flash(str(error), "error")
    else:
        flash(_("A test event is on its way. Its attempts appear in the log below."), "success")
    return redirect_to(url_for("webhooks.subscription", subscription_id=subscription_id))


@bp.post("/<int:subscription_id>/deliveries/<int:delivery_id>/resend")
@owners_required
@sends_limit
def resend(subscription_id: int, delivery_id: int):
    """*Resend*: a delivered or failed event goes out again (same ``webhook-id``, a fresh retry window)."""
    _empty_form()
    try:
        service.resend(_owners(), subscription_id, delivery_id)
    except Conflict as error:
        flash(str(error), "error")
    else:
        flash(_("The event is being sent again."), "success")
    return redirect_to(url_for("webhooks.subscription", subscription_id=subscription_id,
                               **({"status": request.args["status"]} if request.args.get("status") in LOG_FILTERS else {})))


@bp.post("/<int:subscription_id>/secret")
@owners_required
@no_store
def rotate_secret(subscription_id: int):
    """Make a new signing secret (the old one stops working at once); the answer shows it, once."""
    _empty_form()
    secret = service.rotate_secret(_owners(), subscription_id)
    found = service.subscription_for(_owners(), subscription_id)
    return render("webhooks/secret.html", "webhooks/_secret.html", subscription=found, secret=secret, created=False)


@bp.post("/<int:subscription_id>/delete")
@owners_required
def delete(subscription_id: int):
    """Delete a webhook with its log; events still waiting are dropped."""
    _empty_form()
    service.delete(_owners(), subscription_id)
    flash(_("The webhook was deleted."), "success")
    return redirect_to(url_for("webhooks.index"))


@bp.cli.command("rotate-keys")
def rotate_keys_command() -> None:
    """Re-encrypt every webhook signing secret with the first key of TOKEN_ENCRYPTION_KEYS (``flask webhooks rotate-keys``)."""
    import click

    count = service.rotate_keys()
    click.echo(f"Re-encrypted {count} webhook signing secret(s) with the first key.")
