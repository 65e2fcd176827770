"""The dashboard's Celery side: a task failing anywhere becomes a FailedTask; beat's sample task feeds the charts."""

from __future__ import annotations

import pytest

from studio.ops import metrics, services
from studio.ops.models import FailedTask
from studio.ops.tasks import ops_metrics_sample_task
from studio.training.tasks import training_job_run_task

pytestmark = pytest.mark.django_db


def test_it_records_a_task_that_fails_with_its_traceback():
    result = training_job_run_task.apply(args=["not-a-job-id"])  # the worker's code path, in this process
    assert result.failed()
    task = FailedTask.objects.get()
    assert task.task_name == "studio.training.tasks.training_job_run_task"
    assert task.task_id == result.id and task.args == "'not-a-job-id'"
    assert task.exception.startswith("ValidationError") and "not a valid UUID" in task.exception
    assert "Traceback (most recent call last)" in task.traceback and "training_job_claim" in task.traceback
    assert task.worker


def test_it_lets_the_worker_go_on_when_the_failure_cannot_be_recorded(monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("database away")

    monkeypatch.setattr(services, "failed_task_record", broken)
    assert training_job_run_task.apply(args=["nope"]).failed()  # the original failure, not the recorder's
    assert not FailedTask.objects.exists()


def test_it_samples_once_per_interval_from_the_beat_task(monkeypatch):
    monkeypatch.setattr(metrics, "queue_depths", lambda: {"training": 2, "inference": 0, "default": 1})
    assert ops_metrics_sample_task.apply().get() is True
    assert ops_metrics_sample_task.apply().get() is False  # a second beat in the same interval
    [sample] = metrics.samples_since()
    assert sample["queues"] == {"training": 2, "inference": 0, "default": 1}
    assert sample["invocations"] == {"total": 0, "endpoints": {}}


def test_it_keeps_an_hour_of_samples(monkeypatch):
    monkeypatch.setattr(metrics, "queue_depths", lambda: {"training": 0, "inference": 0, "default": 0})
    monkeypatch.setattr(metrics, "sample_lock", lambda: True)
    monkeypatch.setattr(metrics, "keep_minutes", lambda: 1.0)  # 12 samples of 5 s
    for i in range(20):
        services.metrics_sample(now=1_000_000.0 + 5 * i)
    assert metrics.redis_client().llen(metrics.SAMPLES_KEY) == 12
