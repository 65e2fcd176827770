"""Pipelines on real Celery workers: advances, step runs and training jobs cross processes as in production."""

from __future__ import annotations

import time

import numpy as np
import pytest
from django.conf import settings

from studio.pipelines import engine, services
from studio.pipelines.models import EXECUTION_FINAL_STATUSES, PipelineExecution, PipelineStep
from tests.conftest import api_client, classification_csv
from tests.processes import celery_worker
from tests.training.factories import dataset_from_csv
from tests.training.test_worker import upload, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

FINAL = {str(status) for status in EXECUTION_FINAL_STATUSES}


def split_train_check(dataset: str) -> dict:
    return {
        "parameters": {"data": dataset, "threshold": 0.8},
        "steps": [
            {"name": "split", "type": "processing", "retry": {"max_attempts": 2, "backoff_seconds": 0},
             "arguments": {"operation": "split", "dataset": {"ref": "parameters.data"},
                           "fractions": {"train": 0.8, "validation": 0.2}, "seed": 3}},
            {"name": "train", "type": "training", "arguments": {
                "algorithm": "linear-learner", "dataset": {"ref": "steps.split.train"}, "target": "churned",
                "validation_dataset": {"ref": "steps.split.validation"}, "hyperparameters": {"epochs": 3}}},
            {"name": "good", "type": "condition", "arguments": {
                "left": {"ref": "steps.train.metrics.validation:accuracy"}, "op": ">=",
                "right": {"ref": "parameters.threshold"}, "if_false": ["too_weak"]}},
            {"name": "too_weak", "type": "fail", "arguments": {"message": "accuracy below the threshold"}},
        ],
    }


def test_it_runs_a_pipeline_end_to_end_on_a_real_worker(world, tmp_path):
    client = api_client(world.member)
    pid = world.project.id
    upload(client, pid, "people", classification_csv(n=400))
    response = client.post(f"/api/v1/projects/{pid}/pipelines",
                           {"name": "churn", "definition": split_train_check("people")}, format="json")
    assert response.status_code == 201, response.content
    pipeline_url = f"/api/v1/projects/{pid}/pipelines/{response.json()['id']}"
    with celery_worker(tmp_path / "worker.log"):
        started = client.post(f"{pipeline_url}/executions", {}, format="json")
        assert started.status_code == 201, started.content
        done = wait_for(client, f"{pipeline_url}/executions/{started.json()['id']}", FINAL, timeout=120)
        # The same inputs again: the split and the training come from the cache.
        again = client.post(f"{pipeline_url}/executions", {"parameters": {"threshold": 1.5}}, format="json")
        second = wait_for(client, f"{pipeline_url}/executions/{again.json()['id']}", FINAL, timeout=60)
    log = (tmp_path / "worker.log").read_text()
    assert done["status"] == "completed", (done, log[-3000:])
    steps = {s["name"]: s for s in done["steps"]}
    assert {name: s["status"] for name, s in steps.items()} == {
        "split": "completed", "train": "completed", "good": "completed", "too_weak": "skipped"}
    assert steps["train"]["outputs"]["metrics"]["validation:accuracy"] >= 0.8
    assert second["status"] == "failed", (second, log[-3000:])
    assert {s["name"]: s["status"] for s in second["steps"]} == {
        "split": "cached", "train": "cached", "good": "completed", "too_weak": "failed"}
    assert second["failure_reason"] == "Step 'too_weak' failed: accuracy below the threshold"


def big_csv(rows: int) -> bytes:
    """A classification CSV large enough that splitting it takes seconds (written by Arrow, quickly)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 8)).round(3)
    columns = {f"f{i}": x[:, i] for i in range(8)}
    columns["churned"] = np.where(x[:, 0] + x[:, 1] > 0, "yes", "no")
    out = pa.BufferOutputStream()
    pacsv.write_csv(pa.table(columns), out, pacsv.WriteOptions(quoting_style="none"))
    return out.getvalue().to_pybytes()


def wait_until(predicate, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_it_recovers_a_step_whose_worker_was_killed(world, tmp_path, monkeypatch):
    dataset_from_csv(world.project, name="big", content=big_csv(500_000), target="churned")
    pipeline = services.pipeline_create(user=world.member, project=world.project, name="big",
                                        definition=split_train_check("big"))
    with celery_worker(tmp_path / "first.log") as worker:
        execution = engine.pipeline_execution_start(user=world.member, pipeline=pipeline)
        # The worker has started splitting (it marks the step "Running" before the work).
        wait_until(lambda: PipelineStep.objects.filter(execution=execution, name="split", status="running",
                                                       status_message="Running").exists(),
                   timeout=60, what="the split to start")
        time.sleep(0.5)
        worker.kill()  # SIGKILL: no goodbye, the step's heartbeat just stops
        worker.wait()
    split = PipelineStep.objects.get(execution=execution, name="split")
    assert split.status == "running" and split.attempts == 1
    # The beat's reconciler, run here: the step's heartbeat is stale, so it is retried on another worker.
    monkeypatch.setattr(settings, "STUDIO_PIPELINE_STEP_STALE_SECONDS", 1)
    time.sleep(1.5)
    assert engine.pipeline_executions_reconcile()["lost"] == 1
    split.refresh_from_db()
    assert split.status == "pending" and "stopped responding" in split.status_message
    with celery_worker(tmp_path / "second.log"):
        done = wait_until(lambda: PipelineExecution.objects.filter(id=execution.id, status__in=FINAL).first(),
                          timeout=180, what="the execution to finish")
    log = (tmp_path / "second.log").read_text()
    assert done.status == "completed", (done.failure_reason, log[-3000:])
    split.refresh_from_db()
    assert split.status == "completed" and split.attempts == 2
    assert set(split.outputs) >= {"train", "validation"}
