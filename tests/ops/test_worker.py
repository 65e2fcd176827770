"""A real Celery worker process: the dashboard sees it, drains and resumes it through the broker, and records the
tasks that fail on it."""

from __future__ import annotations

import time

import pytest

from studio.ops import metrics, workers
from studio.ops.models import FailedTask
from studio.training.tasks import training_job_run_task
from tests.conftest import api_client
from tests.processes import celery_worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def until(check, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"waited {timeout}s for {what}")


def our_worker(name_start: str):
    rows = workers.workers_snapshot(refresh=True)["workers"]
    return next((w for w in rows if w["name"].startswith(name_start) and w["alive"]), None)


def test_it_sees_drains_and_resumes_a_real_worker_and_records_its_failures(world, admin, tmp_path):
    client = api_client(admin)
    log = tmp_path / "worker.log"
    with celery_worker(log, name="ops"):
        worker = until(lambda: our_worker("ops-"), "the worker to answer")
        assert worker["queues"] == ["default", "inference", "training"] and worker["pool"] == "TaskPool"
        listed = client.get("/api/v1/ops/workers?refresh=1").json()["workers"]
        assert worker["name"] in [w["name"] for w in listed if w["alive"]]

        # A task that raises on the worker becomes a FailedTask, traceback and all.
        training_job_run_task.apply_async(args=["not-a-job"])
        failed = until(lambda: FailedTask.objects.filter(args="'not-a-job'").first(), "the failure to be recorded")
        assert failed.worker == worker["name"] and "not a valid UUID" in failed.exception
        assert "Traceback" in failed.traceback

        drained = client.post("/api/v1/ops/workers/drain", {"worker": worker["name"]}, format="json")
        assert drained.status_code == 200, drained.content
        assert drained.json()["queues"] == ["default", "inference", "training"]
        row = our_worker("ops-")
        assert row["queues"] == [] and row["drained"] == ["default", "inference", "training"]

        # Drained: a new message waits in its queue while the worker keeps answering the broker.
        before = metrics.queue_depths()["training"]
        training_job_run_task.apply_async(args=["while-drained"])
        assert our_worker("ops-") is not None  # one more round trip through the worker's event loop
        assert metrics.queue_depths()["training"] == before + 1
        assert not FailedTask.objects.filter(args="'while-drained'").exists()

        resumed = client.post("/api/v1/ops/workers/resume", {"worker": worker["name"]}, format="json")
        assert resumed.status_code == 200, resumed.content
        until(lambda: FailedTask.objects.filter(args="'while-drained'").exists(), "the waiting task to run")
        assert metrics.queue_depths()["training"] == before
        assert our_worker("ops-")["queues"] == ["default", "inference", "training"]
