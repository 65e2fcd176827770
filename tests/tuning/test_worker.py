"""Tuning jobs on real Celery workers: trials and the orchestrator cross processes as in production."""

from __future__ import annotations

import time

import pytest
from django.conf import settings

from studio.training import services as training_services
from studio.training.models import TrainingJob
from tests.conftest import api_client, classification_csv
from tests.processes import celery_worker
from tests.training.test_worker import upload, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_it_runs_a_tuning_job_on_a_real_worker(world, tmp_path):
    client = api_client(world.member)
    pid = world.project.id
    people = upload(client, pid, "people", classification_csv(n=400))
    with celery_worker(tmp_path / "worker.log"):
        response = client.post(f"/api/v1/projects/{pid}/tuning-jobs", {
            "algorithm": "linear-learner", "dataset": people["id"], "target": "churned",
            "objective": {"metric": "validation:accuracy", "goal": "maximize"},
            "ranges": {"learning_rate": {"type": "continuous", "min": 0.001, "max": 0.5, "scale": "log"}},
            "static_hyperparameters": {"epochs": 3, "num_models": 2},
            "strategy": "bayesian", "max_jobs": 3, "max_parallel_jobs": 1,
        }, format="json")
        assert response.status_code == 201, response.content
        url = f"/api/v1/projects/{pid}/tuning-jobs/{response.json()['id']}"
        done = wait_for(client, url, {"completed", "failed", "stopped"}, timeout=120)
    log = (tmp_path / "worker.log").read_text()
    assert done["status"] == "completed", (done, log[-3000:])
    assert done["counts"]["completed"] == 3 and done["counts"]["total"] == 3
    assert done["best_training_job"]["objective_value"] > 0.85
    trials = client.get(url + "/trials").json()["results"]
    assert [t["number"] for t in trials] == [1, 2, 3]
    assert max(t["objective_value"] for t in trials) == done["best_training_job"]["objective_value"]


def test_it_finishes_with_the_right_counts_after_a_worker_dies_mid_trial(world, tmp_path, monkeypatch):
    client = api_client(world.member)
    pid = world.project.id
    people = upload(client, pid, "people", classification_csv(n=4000))
    # Grid order is fixed: trial 1 (mini-batches of 1 over 4,000 rows, 40 epochs) is slow enough to kill.
    body = {
        "algorithm": "linear-learner", "dataset": people["id"], "target": "churned",
        "objective": {"metric": "validation:accuracy", "goal": "maximize"},
        "ranges": {"mini_batch_size": {"type": "categorical", "values": [1, 256]}},
        "static_hyperparameters": {"epochs": 40, "num_models": 1, "early_stopping_patience": 100},
        "strategy": "grid", "max_jobs": 2, "max_parallel_jobs": 1,
    }
    with celery_worker(tmp_path / "first.log") as worker:
        response = client.post(f"/api/v1/projects/{pid}/tuning-jobs", body, format="json")
        assert response.status_code == 201, response.content
        url = f"/api/v1/projects/{pid}/tuning-jobs/{response.json()['id']}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not client.get(url).json()["counts"]["running"]:
            time.sleep(0.2)
        assert client.get(url).json()["counts"]["running"] == 1
        time.sleep(1.0)
        worker.kill()  # SIGKILL: no goodbye, the trial's heartbeat just stops
        worker.wait()
    first = TrainingJob.objects.get(tuning_trial__number=1)
    assert first.status == "running"
    monkeypatch.setattr(settings, "STUDIO_HEARTBEAT_TIMEOUT", 1)
    time.sleep(1.5)
    # The beat's reconciler, run here: the dead trial fails, and its tuning job is told to move on.
    assert training_services.training_jobs_reconcile()["failed"] == 1
    with celery_worker(tmp_path / "second.log"):
        done = wait_for(client, url, {"completed", "failed", "stopped"}, timeout=90)
    log = (tmp_path / "second.log").read_text()
    assert done["status"] == "completed", (done, log[-3000:])
    assert done["counts"] == {"pending": 0, "running": 0, "completed": 1, "failed": 1, "stopped": 0, "total": 2}
    first.refresh_from_db()
    assert first.status == "failed" and "stopped responding" in first.failure_reason
    assert all(job.attempts == 1 for job in TrainingJob.objects.filter(tuning_trial__isnull=False))
