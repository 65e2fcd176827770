"""The admin dashboard's REST API under /api/v1/ops/, as a script with a site admin's token uses it."""

from __future__ import annotations

import io
import json
import uuid

import pytest
from django.core.management import call_command
from django.utils import timezone

from studio.datasets.models import Dataset
from studio.ops import metrics
from studio.ops.models import FailedTask
from studio.training.models import TrainingJob
from tests.conftest import api_client
from tests.ops.conftest import make_endpoint, traffic

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(admin):
    return api_client(admin)


def test_it_reports_workers_and_queue_depths(client, fake_workers, monkeypatch):
    fake_workers.add("celery@gpu-1", queues=["training"])
    monkeypatch.setattr(metrics, "queue_depths", lambda: {"training": 5, "inference": 0, "default": 1})
    body = client.get("/api/v1/ops/workers?refresh=1").json()
    assert [(w["name"], w["alive"], w["queues"]) for w in body["workers"]] == [("celery@gpu-1", True, ["training"])]
    assert client.get("/api/v1/ops/queues").json() == {"queues": {"training": 5, "inference": 0, "default": 1}}


def test_it_lists_jobs_and_cancels_one(world, client):
    job = TrainingJob.objects.create(project=world.other_project, name="fit", algorithm="linear-learner",
                                     status="running", started_at=timezone.now(), heartbeat_at=timezone.now())
    listing = client.get("/api/v1/ops/jobs").json()
    assert listing["count"] == 1 and listing["results"][0]["id"] == str(job.id)
    assert listing["results"][0]["team"] == world.other_team.slug
    assert client.get("/api/v1/ops/jobs?stuck=1").json()["count"] == 0
    response = client.post("/api/v1/ops/jobs/cancel", {"kind": "training-job", "id": str(job.id)}, format="json")
    assert response.status_code == 202
    assert response.json() == {"kind": "training-job", "id": str(job.id), "name": "fit", "status": "running",
                               "status_message": ""}
    actions = client.get("/api/v1/ops/actions").json()["results"]
    assert [(a["actor"], a["verb"], a["target"]) for a in actions] == [("ada", "cancelled training job", "fit")]


@pytest.mark.parametrize("body, field", [
    ({"kind": "robot", "id": str(uuid.uuid4())}, "kind"),
    ({"kind": "training-job", "id": "nope"}, "id"),
    ({"kind": "training-job"}, "id"),
])
def test_it_names_the_field_of_a_bad_cancel(client, body, field):
    response = client.post("/api/v1/ops/jobs/cancel", body, format="json")
    assert response.status_code == 400 and field in response.json()["errors"]


def test_it_answers_404_and_409_for_absent_and_finished_jobs(world, client):
    missing = client.post("/api/v1/ops/jobs/cancel", {"kind": "transform-job", "id": str(uuid.uuid4())},
                          format="json")
    assert missing.status_code == 404
    done = TrainingJob.objects.create(project=world.project, name="done", algorithm="linear-learner",
                                      status="completed")
    finished = client.post("/api/v1/ops/jobs/cancel", {"kind": "training-job", "id": str(done.id)}, format="json")
    assert finished.status_code == 409 and "already finished" in finished.json()["detail"]


def test_it_drains_and_resumes_a_worker(client, fake_workers):
    fake_workers.add("celery@gpu-1", queues=["training"])
    drained = client.post("/api/v1/ops/workers/drain", {"worker": "celery@gpu-1"}, format="json")
    assert drained.status_code == 200 and drained.json()["queues"] == ["training"]
    resumed = client.post("/api/v1/ops/workers/resume", {"worker": "celery@gpu-1"}, format="json")
    assert resumed.status_code == 200 and resumed.json()["queues"] == ["training"]
    unknown = client.post("/api/v1/ops/workers/drain", {"worker": "celery@ghost"}, format="json")
    assert unknown.status_code == 400 and "worker" in unknown.json()["errors"]
    missing = client.post("/api/v1/ops/workers/drain", {}, format="json")
    assert missing.status_code == 400 and "worker" in missing.json()["errors"]


def test_it_lists_endpoints_and_scales_one(world, client):
    endpoint = make_endpoint(world.project, min_instances=1, max_instances=2)
    traffic(endpoint, rps=4.0)
    [row] = client.get("/api/v1/ops/endpoints").json()["results"]
    assert row["id"] == str(endpoint.id) and row["rps"] == pytest.approx(4.0)
    response = client.post(f"/api/v1/ops/endpoints/{endpoint.id}/scale", {"variant": "main", "instances": 3},
                           format="json")
    assert response.status_code == 200
    [variant] = response.json()["variants"]
    assert (variant["min_instances"], variant["max_instances"], variant["desired_instances"]) == (3, 3, 3)
    bad = client.post(f"/api/v1/ops/endpoints/{endpoint.id}/scale", {"variant": "main", "max_instances": "lots"},
                      format="json")
    assert bad.status_code == 400 and list(bad.json()["errors"]) == ["max_instances"]
    gone = client.post(f"/api/v1/ops/endpoints/{uuid.uuid4()}/scale", {"variant": "main", "instances": 1},
                       format="json")
    assert gone.status_code == 404


def test_it_reports_storage_teams_and_users(world, client):
    Dataset.objects.create(project=world.project, name="d", file="d.csv", status="ready", size_bytes=2048,
                           created_by=world.member)
    storage = client.get("/api/v1/ops/storage").json()
    assert storage["total_bytes"] == 2048 and storage["teams"][0]["slug"] == world.team.slug
    teams = client.get("/api/v1/ops/teams").json()
    assert teams["count"] == 2 and teams["results"][0]["storage"]["datasets_bytes"] == 2048
    users = {u["username"]: u for u in client.get("/api/v1/ops/users?page_size=100").json()["results"]}
    assert users["mark"]["uploaded_bytes"] == 2048 and users["ada"]["is_site_admin"]


def test_it_lists_failed_tasks_and_shows_a_traceback(client):
    task = FailedTask.objects.create(task_name="studio.x.tasks.t", task_id="abc", exception="ValueError: v",
                                     traceback="Traceback...", worker="celery@h")
    [row] = client.get("/api/v1/ops/failed-tasks?task=x.tasks").json()["results"]
    assert row["id"] == task.id and "traceback" not in row
    assert client.get(f"/api/v1/ops/failed-tasks/{task.id}").json()["traceback"] == "Traceback..."
    assert client.get("/api/v1/ops/failed-tasks/424242").status_code == 404


def test_it_returns_chart_samples_and_checks_its_parameters(client, monkeypatch):
    monkeypatch.setattr(metrics, "queue_depths", lambda: {"training": 1, "inference": 0, "default": 0})
    client.get("/api/v1/ops/queues")
    from studio.ops import services

    sample = services.metrics_sample()
    assert client.get("/api/v1/ops/samples?minutes=5").json() == {"samples": [sample]}
    assert client.get(f"/api/v1/ops/samples?since={sample['ts']}").json() == {"samples": []}
    bad = client.get("/api/v1/ops/samples?minutes=soon")
    assert bad.status_code == 400 and list(bad.json()["errors"]) == ["minutes"]


def test_it_describes_every_ops_route_in_the_schema():
    out = io.StringIO()
    call_command("spectacular", "--fail-on-warn", "--validate", "--format", "openapi-json", stdout=out)
    paths = json.loads(out.getvalue())["paths"]
    for path in ("/api/v1/ops/workers", "/api/v1/ops/jobs/cancel", "/api/v1/ops/endpoints/{endpoint_id}/scale",
                 "/api/v1/ops/failed-tasks/{failed_task_id}", "/api/v1/ops/storage", "/api/v1/ops/samples"):
        assert path in paths, path
