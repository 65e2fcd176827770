"""Pages: tags and notes on the job page, comment threads on object pages, the bell and the notifications page."""

from __future__ import annotations

import pytest
from django.test import Client

from studio.endpoints.models import Endpoint
from studio.registry.models import Model
from studio.social import services
from studio.social.models import Comment, Notification, Webhook
from studio.training.models import TrainingJob
from studio.tuning.models import TuningJob
from tests.conftest import PASSWORD
from tests.training.factories import dataset_from_csv

pytestmark = pytest.mark.django_db


def signed_in(user, htmx: bool = False) -> Client:
    client = Client(headers={"HX-Request": "true"}) if htmx else Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


@pytest.fixture
def job(world):
    return TrainingJob.objects.create(project=world.project, name="run-1", algorithm="linear-learner",
                                      dataset=dataset_from_csv(world.project), created_by=world.member,
                                      tags=["baseline"], notes="First try <b>raw</b>")


def job_page(world, job) -> str:
    return f"/projects/{world.project.id}/training/{job.id}/"


def thread_url(world, target_type, target_id) -> str:
    return f"/projects/{world.project.id}/comments/{target_type}/{target_id}/"


def test_it_shows_tags_notes_and_the_comment_panel_on_the_job_page(world, job):
    body = signed_in(world.member).get(job_page(world, job)).content.decode()
    assert 'data-testid="tag-chip">baseline' in body and 'data-testid="tag-input"' in body
    assert "First try &lt;b&gt;raw&lt;/b&gt;" in body  # escaped, never markup
    assert f'hx-get="{thread_url(world, "training_job", job.id)}"' in body
    assert f'data-comments-ws="/ws/projects/{world.project.id}/comments/training_job/{job.id}/?since=' in body
    assert 'data-testid="comment-body"' in body


def test_it_shows_viewers_no_way_to_write(world, job):
    body = signed_in(world.viewer).get(job_page(world, job)).content.decode()
    assert 'data-testid="tag-chip">baseline' in body and 'data-testid="notes">First try' in body
    for action in ('data-testid="tag-input"', 'data-testid="tag-remove"', 'data-testid="notes-input"',
                   'data-testid="comment-body"', 'data-testid="comment-delete"'):
        assert action not in body, action
    assert 'data-testid="comments-read-only"' in body


def test_it_puts_the_comment_panel_on_tuning_model_and_endpoint_pages(world, job):
    tuning = TuningJob.objects.create(project=world.project, name="t", algorithm="linear-learner",
                                      objective_metric="validation:loss", objective_goal="minimize",
                                      strategy="random", max_jobs=1, max_parallel_jobs=1)
    model = Model.objects.create(project=world.project, name="m", algorithm="linear-learner", training_job=job,
                                 artifact_prefix="projects/x/")
    endpoint = Endpoint.objects.create(project=world.project, name="e", type="realtime")
    client = signed_in(world.viewer)
    for page, target_type, target in ((f"tuning/{tuning.id}/", "tuning_job", tuning), (f"models/{model.id}/", "model",
                                      model), (f"endpoints/{endpoint.id}/", "endpoint", endpoint)):
        response = client.get(f"/projects/{world.project.id}/{page}")
        assert response.status_code == 200, page
        assert f'hx-get="{thread_url(world, target_type, target.id)}"' in response.content.decode(), page


def test_it_renders_the_thread_escaped_with_actions_by_role(world, job):
    Comment.objects.create(project=world.project, target_type="training_job", target_id=str(job.id),
                           author=world.member, body="<img src=x onerror=alert(1)>")
    Comment.objects.create(project=world.project, target_type="training_job", target_id=str(job.id),
                           author=world.viewer, body="viewer's old comment")
    url = thread_url(world, "training_job", job.id)
    mine = signed_in(world.member, htmx=True).get(url).content.decode()
    assert "&lt;img src=x onerror=alert(1)&gt;" in mine and "<img src=x" not in mine
    assert mine.count('data-testid="comment-delete"') == 1  # a member deletes only their own
    admin = signed_in(world.owner, htmx=True).get(url).content.decode()
    assert admin.count('data-testid="comment-delete"') == 2  # an admin moderates every comment
    viewer = signed_in(world.viewer, htmx=True).get(url).content.decode()
    assert 'data-testid="comment-delete"' not in viewer and "viewer&#x27;s old comment" in viewer


def test_it_adds_a_comment_from_the_htmx_form(world, job):
    response = signed_in(world.member, htmx=True).post(thread_url(world, "training_job", job.id),
                                                       {"body": "Nice curve"})
    assert response.status_code == 200 and response["HX-Trigger"] == "comments-changed"
    assert 'data-testid="comment-body"' in response.content.decode()  # a fresh, empty form
    assert Comment.objects.get().body == "Nice curve"


def test_it_keeps_the_draft_and_names_the_problem_on_bad_input(world, job):
    response = signed_in(world.member, htmx=True).post(thread_url(world, "training_job", job.id),
                                                       {"body": "x" * 10_001})
    assert response.status_code == 400
    body = response.content.decode()
    assert "at most 10,000 characters" in body and "x" * 10_001 in body
    assert not Comment.objects.exists()


def test_it_edits_and_deletes_from_the_page(world, job):
    comment = Comment.objects.create(project=world.project, target_type="training_job", target_id=str(job.id),
                                     author=world.member, body="typo")
    client = signed_in(world.member, htmx=True)
    edited = client.post(f"/projects/{world.project.id}/comment/{comment.id}/edit/", {"body": "fixed"})
    assert edited.status_code == 200 and edited["HX-Trigger"] == "comments-changed"
    assert signed_in(world.owner, htmx=True).post(
        f"/projects/{world.project.id}/comment/{comment.id}/edit/", {"body": "x"}).status_code == 403
    deleted = client.post(f"/projects/{world.project.id}/comment/{comment.id}/delete/")
    assert deleted.status_code == 200
    comment.refresh_from_db()
    assert comment.body == "fixed" and comment.deleted_at is not None


def test_it_refuses_viewers_and_outsiders_on_comment_pages(world, job):
    url = thread_url(world, "training_job", job.id)
    assert signed_in(world.viewer, htmx=True).post(url, {"body": "hi"}).status_code == 403
    assert signed_in(world.outsider, htmx=True).get(url).status_code == 404
    assert signed_in(world.outsider, htmx=True).post(url, {"body": "hi"}).status_code == 404
    assert signed_in(world.member).get(thread_url(world, "dataset", job.id)).status_code == 404
    assert signed_in(world.member).get(thread_url(world, "training_job", "not-a-uuid")).status_code == 404
    assert Client().get(url).status_code == 302  # to sign in
    assert not Comment.objects.exists()


def test_it_adds_and_removes_tags_and_saves_notes_from_the_page(world, job):
    client = signed_in(world.member, htmx=True)
    tags_url = f"/projects/{world.project.id}/runs/{job.id}/tags/"
    added = client.post(tags_url, {"tag": "v2, Sweep"})
    assert added.status_code == 200 and 'data-testid="tag-chip">sweep' in added.content.decode()
    removed = client.post(tags_url, {"remove": "baseline"})
    assert 'data-testid="tag-chip">baseline' not in removed.content.decode()
    bad = client.post(tags_url, {"tag": "-nope"})
    assert bad.status_code == 400 and "not a valid tag" in bad.content.decode()
    saved = client.post(f"/projects/{world.project.id}/runs/{job.id}/notes/", {"notes": "Use lr 0.01"})
    assert saved.status_code == 200 and 'data-testid="notes-saved"' in saved.content.decode()
    job.refresh_from_db()
    assert job.tags == ["v2", "sweep"] and job.notes == "Use lr 0.01"


def test_it_refuses_tag_and_note_writes_to_viewers_and_outsiders(world, job):
    for user, code in ((world.viewer, 403), (world.outsider, 404)):
        client = signed_in(user, htmx=True)
        assert client.post(f"/projects/{world.project.id}/runs/{job.id}/tags/", {"tag": "x"}).status_code == code
        assert client.post(f"/projects/{world.project.id}/runs/{job.id}/notes/", {"notes": "x"}).status_code == code
    job.refresh_from_db()
    assert job.tags == ["baseline"] and job.notes == "First try <b>raw</b>"


def test_the_bell_shows_the_unread_count_on_every_page(world, deliveries):
    client = signed_in(world.member)
    assert 'data-testid="unread-count" hidden>0<' in client.get("/").content.decode()
    services.notify(user=world.member, project=world.project, kind="other", title="Done")
    body = client.get(f"/projects/{world.project.id}/").content.decode()
    assert 'data-testid="unread-count">1<' in body and 'data-ws="/ws/notifications/"' in body


def test_the_notifications_page_lists_opens_and_marks_read(world, deliveries):
    job_url = f"/projects/{world.project.id}/training/"
    first = services.notify(user=world.member, project=world.project, kind="training_job.failed",
                            title="Training job houses failed", body="<b>boom</b>", url=job_url)
    services.notify(user=world.member, kind="other", title="Second")
    services.notify(user=world.owner, kind="other", title="Not for mark")
    client = signed_in(world.member)
    body = client.get("/notifications/").content.decode()
    assert "Training job houses failed" in body and "Second" in body and "Not for mark" not in body
    assert "&lt;b&gt;boom&lt;/b&gt;" in body and 'data-testid="unread-badge">2 unread' in body
    opened = client.get(f"/notifications/{first.id}/")
    assert opened.status_code == 302 and opened["Location"] == job_url
    first.refresh_from_db()
    assert first.read_at is not None
    client.post("/notifications/read-all/")
    assert not Notification.objects.filter(user=world.member, read_at__isnull=True).exists()


def test_it_never_redirects_out_of_the_studio(world, deliveries):
    bad = services.notify(user=world.member, kind="other", title="x", url="//evil.example.com/")
    response = signed_in(world.member).get(f"/notifications/{bad.id}/")
    assert response["Location"] == "/notifications/"


def test_someone_elses_notification_is_a_404(world, deliveries):
    theirs = services.notify(user=world.owner, kind="other", title="x", url="/")
    client = signed_in(world.member)
    assert client.get(f"/notifications/{theirs.id}/").status_code == 404
    assert client.post(f"/notifications/{theirs.id}/read/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.read_at is None


def test_it_saves_webhook_settings_and_shows_errors(world, settings, receiver):
    client = signed_in(world.member)
    settings.STUDIO_NOTIFY_ALLOW_PRIVATE = False
    refused = client.post("/notifications/webhook/", {"url": "http://127.0.0.1/hook", "enabled": "on"})
    assert refused.status_code == 400 and "loopback address" in refused.content.decode()
    settings.STUDIO_NOTIFY_ALLOW_PRIVATE = True
    saved = client.post("/notifications/webhook/", {"url": receiver.url, "enabled": "on",
                                                    "events": ["training_job.failed"]})
    assert saved.status_code == 302
    webhook = Webhook.objects.get(user=world.member)
    assert webhook.enabled and webhook.url == receiver.url and webhook.events == ["training_job.failed"]
    tested = client.post("/notifications/webhook/test/", follow=True).content.decode()
    assert "Test event delivered" in tested and len(receiver.received) == 1
    secret = webhook.secret
    client.post("/notifications/webhook/rotate/")
    webhook.refresh_from_db()
    assert webhook.secret != secret


def test_the_notifications_page_needs_a_sign_in(world):
    assert Client().get("/notifications/").status_code == 302
