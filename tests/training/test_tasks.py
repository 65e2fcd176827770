from __future__ import annotations

import json
import time

import numpy as np
import pytest
from django.core.files.storage import default_storage

from algorithms import LinearLearner
from studio.registry.models import Model
from studio.registry.services import model_load
from studio.training import runner, services
from studio.training.models import LogLine, MetricPoint, TrainingJob
from tests.training.factories import classification_dataset, new_job, run_job

pytestmark = pytest.mark.django_db


def test_it_trains_a_regressor_and_registers_its_model(world, enqueued):
    job = run_job(new_job(world, name="houses-v1", hyperparameters={"epochs": 6, "early_stopping_patience": 6}))
    assert job.status == "completed", job.failure_reason
    assert job.started_at and job.ended_at and job.duration_seconds >= 0 and job.worker
    assert job.final_metrics["validation:r2"] > 0.9 and "train:rmse" in job.final_metrics

    steps = MetricPoint.objects.filter(job=job, name="train:loss").values_list("step", flat=True)
    assert sorted(steps) == [1, 2, 3, 4, 5, 6]
    assert MetricPoint.objects.filter(job=job, name="validation:rmse").count() == 6

    lines = list(LogLine.objects.filter(job=job).order_by("seq").values_list("seq", "line"))
    assert [seq for seq, _ in lines] == list(range(1, len(lines) + 1))
    text = "\n".join(line for _, line in lines)
    assert "Loaded 200 rows × 3 features from dataset 'houses'" in text  # noqa: RUF001
    assert "Training linear-learner on 160 rows, validating on 40" in text
    assert "epoch 6: train:loss=" in text and "Saved model (" in text

    model = Model.objects.get(training_job=job)
    assert model.name == "houses-v1" and model.algorithm == "linear-learner" and model.target == "price"
    assert model.feature_names == ["x1", "x2", "x3"] and model.metrics == job.final_metrics
    assert model.hyperparameters["epochs"] == 6 and model.created_by == world.member
    assert sorted(name.rsplit("/", 1)[1] for name in model.artifact_files) == [
        "arrays.npz", "manifest.json", "preprocessing.json"]
    assert all(name.startswith(f"projects/{world.project.id}/models/{model.id}/") for name in model.artifact_files)
    assert model.size_bytes == sum(default_storage.size(name) for name in model.artifact_files)

    manifest_name = next(n for n in model.artifact_files if n.endswith("manifest.json"))
    with default_storage.open(manifest_name) as fh:
        assert json.load(fh)["algorithm"] == "linear-learner"
    arrays_name = next(n for n in model.artifact_files if n.endswith("arrays.npz"))
    with default_storage.open(arrays_name) as fh, np.load(fh, allow_pickle=False) as npz:
        assert npz["coef_"].shape == (3,)

    estimator = model_load(model=model)
    assert isinstance(estimator, LinearLearner)
    prediction = estimator.predict(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    assert prediction[0] == pytest.approx(3.0, abs=0.4) and prediction[1] == pytest.approx(-2.0, abs=0.4)


def test_it_trains_a_classifier_with_string_labels(world, enqueued):
    dataset = classification_dataset(world.project)
    job = run_job(new_job(world, dataset=dataset, target="churned", hyperparameters={"epochs": 5}))
    assert job.status == "completed", job.failure_reason
    assert job.final_metrics["validation:accuracy"] > 0.85
    estimator = model_load(model=job.model)
    assert set(estimator.predict(np.array([[2.0, 2.0], [-2.0, -2.0]]))) == {"yes", "no"}


def test_it_stores_events_before_publishing_them(world, enqueued, monkeypatch, django_capture_on_commit_callbacks):
    published: list[dict] = []

    def spy(*, kind, object_id, events):
        if kind == "project":  # the project's pages hear of status changes too
            assert {e["type"] for e in events} == {"status"}
            return
        assert kind == "training-job"
        for event in events:
            if event["type"] == "metric":
                # The page's history replay must already hold every point it may receive live.
                assert MetricPoint.objects.filter(job_id=object_id, name=event["name"], step=event["step"]).exists()
            if event["type"] == "log":
                assert LogLine.objects.filter(job_id=object_id, seq=event["seq"]).exists()
            published.append(event)

    monkeypatch.setattr(services, "publish", spy)
    job = new_job(world, hyperparameters={"epochs": 3, "early_stopping_patience": 3})
    with django_capture_on_commit_callbacks(execute=True):  # "completed" is published once the model is committed
        job = run_job(job)
    statuses = [e["status"] for e in published if e["type"] == "status"]
    assert statuses == ["running", "completed"]
    metric = next(e for e in published if e["type"] == "metric")
    assert set(metric) == {"type", "name", "step", "value", "ts"} and metric["ts"] <= time.time()
    assert sum(e["type"] == "metric" for e in published) == MetricPoint.objects.filter(job=job).count()


def test_it_publishes_the_failure_reason_with_the_failed_status(world, enqueued, monkeypatch,
                                                                django_capture_on_commit_callbacks):
    published: list[dict] = []
    monkeypatch.setattr(services, "publish", lambda *, kind, object_id, events:
                        published.extend(events) if kind == "training-job" else None)
    job = new_job(world)
    TrainingJob.objects.filter(id=job.id).update(hyperparameters={"epochs": 5000})
    with django_capture_on_commit_callbacks(execute=True):
        job = run_job(job)
    assert job.status == "failed" and "epochs must be between 1 and 1000" in job.failure_reason
    assert published[-1] == {"type": "status", "status": "failed", "message": job.failure_reason}


@pytest.mark.django_db(transaction=True)
def test_it_keeps_the_heartbeat_fresh_during_a_long_epoch(world, enqueued):
    job = new_job(world)
    services.training_job_claim(job_id=job.id, worker="w1")
    first = TrainingJob.objects.get(id=job.id).heartbeat_at
    with runner._Heartbeat(job.id, every=0.05):
        time.sleep(0.4)
    assert TrainingJob.objects.get(id=job.id).heartbeat_at > first


def test_it_measures_train_metrics_on_a_sample_of_large_training_sets(world, enqueued, monkeypatch):
    monkeypatch.setattr(runner, "TRAIN_EVAL_ROWS", 50)
    job = run_job(new_job(world, hyperparameters={"epochs": 2}))
    assert job.status == "completed", job.failure_reason
    assert "train:rmse" in job.final_metrics
    lines = list(LogLine.objects.filter(job=job).values_list("line", flat=True))
    assert "Train metrics are measured on a random sample of 50 training rows." in lines
