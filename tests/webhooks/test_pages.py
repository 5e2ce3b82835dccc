"""The webhook pages: who sees them, the secret shown once, the log with its attempts, Resend and Send test event."""
from __future__ import annotations

import re

from sqlalchemy import select
from standardwebhooks import Webhook

from expertbook.extensions import db
from expertbook.webhooks import service
from expertbook.webhooks.models import WebhookDelivery, WebhookSubscription
from tests.factories import PASSWORD, login, make_expert, make_staff, make_user


def latest(model):
    """The newest row of ``model`` as the database has it now (the test's session may hold an older snapshot)."""
    db.session.rollback()
    return db.session.scalar(select(model).order_by(model.id.desc()))


def add_hook(client, url, events=("appointment.cancelled",), for_=None):
    query = f"?for={for_}" if for_ else ""
    return client.post_form(f"/webhooks/new{query}", {"url": url, "events": list(events), "description": "HMIS"})


def secret_of(page) -> str:
    match = re.search(r'id="secret-value"[^>]*value="(whsec_[A-Za-z0-9+/=]+)"', page.get_data(as_text=True))
    assert match, "no secret on the page"
    return match.group(1)


def test_patients_and_plain_staff_find_no_webhooks(client):
    login(client, make_user())
    assert client.get("/webhooks").status_code == 404
    assert client.get("/webhooks/new").status_code == 404
    login(client, make_staff(admin=False))
    assert client.get("/webhooks").status_code == 404


def test_a_staff_admin_adds_a_webhook_sees_the_secret_once_and_it_signs(client, receiver):
    staff = make_staff()
    login(client, staff)
    assert "Webhooks" in client.get("/webhooks").get_data(as_text=True)
    page = add_hook(client, receiver.url)
    assert page.status_code == 201 and page.headers["Cache-Control"] == "no-store"
    secret = secret_of(page)
    subscription = latest(WebhookSubscription)
    assert subscription.hospital_id == staff.hospital_id and subscription.event_types == ["appointment.cancelled"]
    # Never again: not on the webhook's page, not in the list, not on the edit form.
    for path in ("/webhooks", f"/webhooks/{subscription.id}", f"/webhooks/{subscription.id}/edit"):
        assert secret not in client.get(path).get_data(as_text=True)
    # Send test event: it arrives signed with that secret, and the log shows the attempt.
    assert client.post_form(f"/webhooks/{subscription.id}/test").status_code == 303
    [request] = receiver.wait_for(1)
    assert Webhook(secret).verify(request.body, request.headers)["type"] == "webhook.test"
    log = client.get(f"/webhooks/{subscription.id}").get_data(as_text=True)
    assert "webhook.test" in log and "HTTP 200" in log and "Delivered" in log and "Resend" in log


def test_invalid_input_answers_422_with_the_reasons(client, receiver):
    login(client, make_staff())
    page = add_hook(client, "ftp://example.com/x", events=())
    body = page.get_data(as_text=True)
    assert page.status_code == 422 and "Use an https:// address." in body and "Choose at least one event." in body
    page = add_hook(client, receiver.url, events=("booking.created",))  # an expert's event, not a hospital's
    assert page.status_code == 422 and "Choose among the events listed." in page.get_data(as_text=True)
    assert latest(WebhookSubscription) is None


def test_another_hospitals_webhook_is_a_404_everywhere(client, make_client, receiver):
    owner = make_staff()
    login(client, owner)
    add_hook(client, receiver.url)
    subscription = latest(WebhookSubscription)
    service.send_test([service.owner_of(subscription)], subscription.id)
    row = latest(WebhookDelivery)
    other = make_client()
    login(other, make_staff())
    sid = subscription.id
    assert other.get(f"/webhooks/{sid}").status_code == 404
    assert other.get(f"/webhooks/{sid}/edit").status_code == 404
    for path in (f"/webhooks/{sid}/test", f"/webhooks/{sid}/secret", f"/webhooks/{sid}/delete", f"/webhooks/{sid}/deliveries/{row.id}/resend"):
        assert other.post_form(path).status_code == 404, path
    assert len(receiver.requests) == 1 and db.session.get(WebhookSubscription, sid) is not None
    # A colleague who is also a staff admin of the same hospital shares it.
    colleague = make_client()
    login(colleague, make_user(hospital=owner.hospital, staff_admin=True))
    assert colleague.get(f"/webhooks/{sid}").status_code == 200


def test_resend_new_secret_pause_and_delete(client, receiver):
    login(client, make_staff())
    first_secret = secret_of(add_hook(client, receiver.url))
    subscription = latest(WebhookSubscription)
    sid = subscription.id
    client.post_form(f"/webhooks/{sid}/test")
    row = latest(WebhookDelivery)
    # A new secret: shown once, and the resend is signed with it (the old one no longer verifies).
    page = client.post_form(f"/webhooks/{sid}/secret")
    new_secret = secret_of(page)
    assert new_secret != first_secret and page.headers["Cache-Control"] == "no-store"
    assert client.post_form(f"/webhooks/{sid}/deliveries/{row.id}/resend").status_code == 303
    first, again = receiver.wait_for(2)
    assert Webhook(new_secret).verify(again.body, again.headers)
    assert first.headers["webhook-id"] == again.headers["webhook-id"]
    # Pause: saved from the edit form.
    page = client.post_form(f"/webhooks/{sid}/edit", {"url": receiver.url, "events": ["appointment.cancelled"], "description": ""})
    assert page.status_code == 303
    db.session.rollback()
    assert db.session.get(WebhookSubscription, sid).active is False
    assert "Paused" in client.get("/webhooks").get_data(as_text=True)
    assert client.post_form(f"/webhooks/{sid}/delete").status_code == 303
    db.session.rollback()
    assert db.session.get(WebhookSubscription, sid) is None and latest(WebhookDelivery) is None


def test_an_expert_who_is_also_a_staff_admin_has_both_lists(client, receiver):
    staff = make_staff()
    from expertbook.experts.models import ExpertProfile

    expert = make_expert("Dr. Both")
    user = db.session.get(type(staff), expert.user_id)
    user.hospital_id, user.is_staff_admin = staff.hospital_id, True
    db.session.commit()
    login(client, user)
    page = client.get("/webhooks").get_data(as_text=True)
    assert "Your hospital" in page and "Your webhooks as an expert" in page
    assert add_hook(client, receiver.url, ("booking.created",), for_="expert").status_code == 201
    assert add_hook(client, receiver.url, ("appointment.booked",), for_="hospital").status_code == 201
    rows = db.session.scalars(select(WebhookSubscription).order_by(WebhookSubscription.id)).all()
    assert [(r.expert_user_id, r.hospital_id) for r in rows] == [(user.id, None), (None, staff.hospital_id)]
    assert client.get("/webhooks/new").status_code == 404  # which one? it must be said
    assert db.session.get(ExpertProfile, expert.id) is not None


def test_the_log_is_paged(client, receiver):
    login(client, make_staff())
    add_hook(client, receiver.url)
    subscription = latest(WebhookSubscription)
    owners = [service.owner_of(subscription)]
    for _ in range(service.PAGE_SIZE + 2):
        service.send_test(owners, subscription.id)
    first = client.get(f"/webhooks/{subscription.id}").get_data(as_text=True)
    second = client.get(f"/webhooks/{subscription.id}?page=2").get_data(as_text=True)
    assert first.count('class="delivery ') == service.PAGE_SIZE and "Older" in first
    assert second.count('class="delivery ') == 2 and "Newer" in second
    fragment = client.get(f"/webhooks/{subscription.id}?status=failed", headers={"HX-Request": "true"})
    assert fragment.get_data(as_text=True).lstrip().startswith('<section id="delivery-log"')


def test_an_experts_webhooks_are_in_their_data_and_go_with_their_account(client, receiver):
    from expertbook.auth import service as accounts

    expert = make_expert("Dr. Export")
    subscription, secret = service.create(service.Owner("expert", expert.user_id), receiver.url, ["booking.created"], "My CRM")
    data = accounts.account_data(expert.user_id)
    assert data["webhooks"] == [{"url": receiver.url, "description": "My CRM", "events": ["booking.created"], "active": True,
                                 "createdAt": subscription.created_at.isoformat()}]
    assert secret not in str(data)
    accounts.delete_account(expert.user_id, PASSWORD)
    assert latest(WebhookSubscription) is None


def test_send_test_event_and_resend_are_limited_per_webhook(app, client, receiver):
    app.config["WEBHOOK_SEND_LIMIT"] = "2 per minute"
    login(client, make_staff())
    add_hook(client, receiver.url)
    sid = latest(WebhookSubscription).id
    assert client.post_form(f"/webhooks/{sid}/test").status_code == 303
    row = latest(WebhookDelivery)
    assert client.post_form(f"/webhooks/{sid}/deliveries/{row.id}/resend").status_code == 303
    assert client.post_form(f"/webhooks/{sid}/test").status_code == 429
    assert len(receiver.wait_for(2)) == 2 and len(receiver.requests) == 2
