"""Webhooks: a signed POST per notification sent by a Celery task with capped retries, refusing internal targets."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from celery.exceptions import Retry

from studio.social import services
from studio.social.models import Webhook, WebhookDelivery
from studio.social.tasks import webhook_deliver_task

pytestmark = pytest.mark.django_db


def webhook_url() -> str:
    return "/api/v1/notifications/webhook"


def set_webhook(user, url: str, **kwargs) -> Webhook:
    return services.webhook_update(user=user, url=url, enabled=True, **kwargs)


def test_it_posts_a_signed_json_notification_after_commit(world, receiver, deliveries,
                                                          django_capture_on_commit_callbacks):
    webhook = set_webhook(world.member, receiver.url)
    with django_capture_on_commit_callbacks(execute=True):
        notification = services.notify(user=world.member, project=world.project, kind="training_job.completed",
                                       title="Training job houses completed", url="/projects/x/")
    assert len(deliveries) == 1  # one message, sent once the row is committed
    assert webhook_deliver_task.apply(args=[deliveries[0]]).get() == "delivered"
    (headers, body), = receiver.received
    expected = "sha256=" + hmac.new(webhook.secret.encode(), body, hashlib.sha256).hexdigest()
    assert headers["x-studio-signature"] == expected
    assert headers["content-type"] == "application/json" and headers["x-studio-event"] == "training_job.completed"
    payload = json.loads(body)
    assert payload["event"] == "training_job.completed" and payload["user"] == "mark"
    assert payload["notification"]["id"] == str(notification.id)
    assert payload["notification"]["title"] == "Training job houses completed"
    assert payload["notification"]["project"] == {"id": str(world.project.id), "name": "Churn"}
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "delivered" and delivery.attempts == 1 and delivery.delivered_at is not None


def test_it_does_nothing_twice_when_a_task_is_redelivered(world, receiver, deliveries):
    set_webhook(world.member, receiver.url)
    services.notify(user=world.member, kind="other", title="x")
    delivery = WebhookDelivery.objects.get()
    assert services.webhook_deliver(delivery_id=delivery.id) == "delivered"
    assert services.webhook_deliver(delivery_id=delivery.id) == "done"
    assert len(receiver.received) == 1


def test_it_retries_a_failing_receiver_a_capped_number_of_times(world, failing_receiver, deliveries):
    set_webhook(world.member, failing_receiver.url)
    services.notify(user=world.member, kind="other", title="x")
    delivery = WebhookDelivery.objects.get()
    outcomes = [services.webhook_deliver(delivery_id=delivery.id) for _ in range(services.WEBHOOK_MAX_ATTEMPTS + 2)]
    assert outcomes == ["retry"] * (services.WEBHOOK_MAX_ATTEMPTS - 1) + ["failed", "done", "done"]
    delivery.refresh_from_db()
    assert delivery.status == "failed" and delivery.attempts == services.WEBHOOK_MAX_ATTEMPTS
    assert delivery.last_result == "failed: HTTP 500"
    assert len(failing_receiver.received) == services.WEBHOOK_MAX_ATTEMPTS


def test_the_task_asks_celery_to_retry_with_a_growing_countdown(world, failing_receiver, deliveries, monkeypatch):
    set_webhook(world.member, failing_receiver.url)
    services.notify(user=world.member, kind="other", title="x")
    delivery = WebhookDelivery.objects.get()
    with pytest.raises(Retry):
        webhook_deliver_task.apply(args=[str(delivery.id)], throw=True)
    assert [services.webhook_retry_countdown(n) for n in (1, 2, 3, 10)] == [10.0, 20.0, 40.0, 300.0]


def test_it_sends_only_the_chosen_events_and_nothing_when_disabled(world, receiver, deliveries):
    set_webhook(world.member, receiver.url, events=["training_job.failed"])
    services.notify(user=world.member, kind="training_job.completed", title="x")
    services.notify(user=world.member, kind="training_job.failed", title="y")
    assert list(WebhookDelivery.objects.values_list("event", flat=True)) == ["training_job.failed"]
    services.webhook_update(user=world.member, enabled=False)
    services.notify(user=world.member, kind="training_job.failed", title="z")
    assert WebhookDelivery.objects.count() == 1


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/hook", "http://10.0.0.5/hook", "http://169.254.169.254/latest",
                                 "http://[::1]/x", "ftp://example.com/x"])
def test_it_refuses_internal_targets_when_saved(world, api, settings, url):
    settings.STUDIO_NOTIFY_ALLOW_PRIVATE = False
    response = api(world.member).patch(webhook_url(), {"url": url, "enabled": True}, format="json")
    assert response.status_code == 400 and "url" in response.json()["errors"]
    assert not Webhook.objects.filter(user=world.member, enabled=True).exists()


def test_it_refuses_internal_targets_when_sending_too(world, receiver, deliveries, settings):
    # Saved while allowed (or the name resolved elsewhere then): refused at delivery, never retried.
    set_webhook(world.member, receiver.url)
    settings.STUDIO_NOTIFY_ALLOW_PRIVATE = False
    services.notify(user=world.member, kind="other", title="x")
    delivery = WebhookDelivery.objects.get()
    assert services.webhook_deliver(delivery_id=delivery.id) == "refused"
    delivery.refresh_from_db()
    assert delivery.status == "refused" and "loopback address 127.0.0.1" in delivery.last_result
    assert receiver.received == []


def test_it_shows_and_updates_the_webhook_over_the_api(world, api, receiver):
    client = api(world.member)
    shown = client.get(webhook_url()).json()
    assert shown["url"] == "" and shown["enabled"] is False and shown["secret"].startswith("whsec_")
    saved = client.patch(webhook_url(), {"url": receiver.url, "enabled": True, "events": ["tuning_job.failed"]},
                         format="json")
    assert saved.status_code == 200 and saved.json()["enabled"] is True and saved.json()["events"] == [
        "tuning_job.failed"]
    rotated = client.post(webhook_url() + "/rotate-secret").json()
    assert rotated["secret"] != shown["secret"]
    assert api(world.owner).get(webhook_url()).json()["url"] == ""  # each user has their own


@pytest.mark.parametrize(("payload", "field"), [
    ({"enabled": True}, "url"),
    ({"enabled": "maybe"}, "enabled"),
    ({"events": ["everything"]}, "events"),
    ({"events": "training_job.failed"}, "events"),
])
def test_it_names_the_field_of_bad_webhook_settings(world, api, payload, field):
    response = api(world.member).patch(webhook_url(), payload, format="json")
    assert response.status_code == 400 and field in response.json()["errors"]


def test_the_test_button_posts_once_and_reports_the_outcome(world, api, receiver, failing_receiver):
    client = api(world.member)
    client.patch(webhook_url(), {"url": receiver.url}, format="json")
    result = client.post(webhook_url() + "/test").json()
    assert result["status"] == "delivered" and result["event"] == "test"
    headers, body = receiver.received[0]
    secret = Webhook.objects.get(user=world.member).secret
    assert headers["x-studio-signature"] == "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    client.patch(webhook_url(), {"url": failing_receiver.url}, format="json")
    failed = client.post(webhook_url() + "/test").json()
    assert failed["status"] == "failed" and failed["attempts"] == 1 and failed["last_result"] == "failed: HTTP 500"
    deliveries = client.get(webhook_url() + "/deliveries").json()["results"]
    assert [d["status"] for d in deliveries] == ["failed", "delivered"]


def test_the_test_button_needs_a_url(world, api):
    response = api(world.member).post(webhook_url() + "/test")
    assert response.status_code == 400 and "url" in response.json()["errors"]


def test_the_api_schema_describes_every_social_route():
    from drf_spectacular.generators import SchemaGenerator

    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    for path in ("/api/v1/projects/{project_id}/comments", "/api/v1/projects/{project_id}/comments/{comment_id}",
                 "/api/v1/projects/{project_id}/training-jobs/{job_id}/tags",
                 "/api/v1/projects/{project_id}/training-jobs/{job_id}/notes", "/api/v1/notifications",
                 "/api/v1/notifications/{notification_id}/read", "/api/v1/notifications/read-all",
                 "/api/v1/notifications/webhook", "/api/v1/notifications/webhook/test"):
        assert path in paths, path
    assert "patch" in paths["/api/v1/projects/{project_id}/training-jobs/{job_id}/tags"]


def test_it_drops_queued_deliveries_once_the_webhook_is_turned_off(world, receiver, deliveries):
    set_webhook(world.member, receiver.url)
    services.notify(user=world.member, kind="other", title="x")
    services.webhook_update(user=world.member, enabled=False)
    delivery = WebhookDelivery.objects.get()
    assert services.webhook_deliver(delivery_id=delivery.id) == "refused"
    delivery.refresh_from_db()
    assert delivery.last_result == "refused: the webhook was turned off" and receiver.received == []
