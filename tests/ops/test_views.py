"""The dashboard page, its panels and the actions behind its buttons (htmx and plain forms)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from studio.ops.models import FailedTask
from studio.training.models import TrainingJob
from tests.ops.conftest import make_endpoint, signed_in

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def running_job(project, name: str = "fit") -> TrainingJob:
    return TrainingJob.objects.create(project=project, name=name, algorithm="linear-learner", status="running",
                                      started_at=timezone.now(), heartbeat_at=timezone.now(), worker="celery@w")


def test_it_shows_every_panel_with_its_data(world, admin, fake_workers):
    fake_workers.add("celery@gpu-1")
    running_job(world.other_project)
    make_endpoint(world.project)
    FailedTask.objects.create(task_name="studio.training.tasks.training_job_run_task", exception="KeyError: 'x'")
    page = signed_in(admin).get("/ops/")
    assert page.status_code == 200
    html = page.content.decode()
    for panel in ("ops-workers", "ops-queues", "ops-jobs", "ops-endpoints", "ops-failed-tasks", "ops-actions",
                  "ops-storage", "ops-users", "chart-queues", "chart-invocations"):
        assert f'data-testid="{panel}"' in html, panel
    assert 'data-worker="celery@gpu-1"' in html and 'data-testid="drain-worker"' in html
    assert "Rival Inc \u203a Secret" in html and 'data-testid="cancel-job"' in html
    assert 'data-testid="scale-variant"' in html and "KeyError" in html
    assert 'data-testid="queue-depth-training"' in html
    assert page.context["page_data"]["ws"] == "/ws/ops/"


def test_it_says_what_to_do_when_no_worker_answers(admin, fake_workers):
    html = signed_in(admin).get("/ops/panels/workers/").content.decode()
    assert "No worker is answering" in html and "celery -A studio worker" in html


def test_it_cancels_a_job_from_its_button_and_answers_with_the_jobs_panel(world, admin):
    job = running_job(world.project)
    response = signed_in(admin).post("/ops/jobs/cancel/", {"kind": "training-job", "id": str(job.id)}, **HTMX)
    assert response.status_code == 200
    assert response.templates[0].name == "ops/_jobs.html"
    assert "Cancelled training job &#x27;fit&#x27;: it is running and stops shortly." in response.content.decode()
    job.refresh_from_db()
    assert job.stop_requested


def test_it_shows_why_an_action_was_refused(world, admin):
    done = TrainingJob.objects.create(project=world.project, name="done", algorithm="linear-learner",
                                      status="completed")
    client = signed_in(admin)
    response = client.post("/ops/jobs/cancel/", {"kind": "training-job", "id": str(done.id)}, **HTMX)
    assert response.status_code == 200 and 'data-testid="action-error"' in response.content.decode()
    assert "already finished" in response.content.decode()
    # A plain form (no JavaScript) gets the dashboard with the reason and the status code.
    plain = client.post("/ops/jobs/cancel/", {"kind": "training-job", "id": str(done.id)})
    assert plain.status_code == 409 and "already finished" in plain.content.decode()
    bad = client.post("/ops/jobs/cancel/", {"kind": "spaceship", "id": str(done.id)})
    assert bad.status_code == 400 and "kind: kind must be one of" in bad.content.decode()


def test_it_redirects_a_plain_form_to_the_dashboard_once_done(world, admin):
    job = running_job(world.project)
    response = signed_in(admin).post("/ops/jobs/cancel/", {"kind": "training-job", "id": str(job.id)})
    assert response.status_code == 302 and response["Location"] == "/ops/"


def test_it_drains_and_resumes_a_worker_from_its_buttons(admin, fake_workers):
    fake_workers.add("celery@gpu-1")
    client = signed_in(admin)
    drained = client.post("/ops/workers/drain/", {"worker": "celery@gpu-1"}, **HTMX).content.decode()
    assert "no longer takes tasks from default, inference, training" in drained
    assert 'data-testid="worker-drained"' in drained and 'data-testid="resume-worker"' in drained
    resumed = client.post("/ops/workers/resume/", {"worker": "celery@gpu-1"}, **HTMX).content.decode()
    assert "takes tasks from default, inference, training again" in resumed
    assert 'data-testid="worker-drained"' not in resumed


def test_it_scales_an_endpoint_variant_from_its_form(world, admin):
    endpoint = make_endpoint(world.project, min_instances=1, max_instances=2)
    client = signed_in(admin)
    response = client.post(f"/ops/endpoints/{endpoint.id}/scale/",
                           {"variant": "main", "min_instances": "2", "max_instances": "4"}, **HTMX)
    html = response.content.decode()
    assert response.status_code == 200 and "variant main: 2 to 4 instances (2 wanted now)" in html
    refused = client.post(f"/ops/endpoints/{endpoint.id}/scale/",
                          {"variant": "main", "min_instances": "3", "max_instances": "1"}, **HTMX).content.decode()
    assert "max_instances" in refused and 'data-testid="action-error"' in refused


def test_it_lists_failed_tasks_and_shows_one_with_its_traceback(admin):
    task = FailedTask.objects.create(task_name="studio.endpoints.tasks.async_invocation_run_task", task_id="t-1",
                                     args="'3f2a'", exception="OSError: disk full",
                                     traceback="Traceback (most recent call last):\n  ...\nOSError: disk full",
                                     worker="celery@io")
    FailedTask.objects.create(task_name="studio.tuning.tasks.tuning_job_advance_task", exception="KeyError")
    client = signed_in(admin)
    listing = client.get("/ops/failed-tasks/?task=async")
    assert [t.id for t in listing.context["page"].object_list] == [task.id]
    assert "OSError: disk full" in listing.content.decode()
    detail = client.get(f"/ops/failed-tasks/{task.id}/").content.decode()
    assert "Traceback (most recent call last)" in detail and "celery@io" in detail and "&#x27;3f2a&#x27;" in detail
    assert client.get("/ops/failed-tasks/999999/").status_code == 404
