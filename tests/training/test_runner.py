"""The runner on real data: text columns, missing values, unsupervised algorithms, result plots, preprocessing."""

from __future__ import annotations

import json

import numpy as np
import pytest
from django.core.files.storage import default_storage

from algorithms import UnknownAlgorithm, get_algorithm
from studio.datasets.preprocessing import InputError
from studio.registry.services import model_load_bundle, model_predict_frame, model_preprocessing
from studio.training import runner
from studio.training.models import LogLine
from tests.training.factories import (
    anomalies_csv,
    blobs_csv,
    mixed_classification_csv,
    new_job,
    run_job,
    uploaded_dataset,
)

pytestmark = pytest.mark.django_db


def registered(name: str) -> str:
    try:
        get_algorithm(name)
    except UnknownAlgorithm:
        pytest.skip(f"{name} is not registered yet")
    return name


def log_text(job) -> str:
    return "\n".join(LogLine.objects.filter(job=job).order_by("seq").values_list("line", flat=True))


def test_it_one_hot_encodes_text_columns_imputes_numbers_and_saves_the_preprocessing(world, enqueued):
    dataset = uploaded_dataset(world, mixed_classification_csv(), name="churn", target="churned")
    job = run_job(new_job(world, dataset=dataset, target="churned", hyperparameters={"epochs": 8}))
    assert job.status == "completed", job.failure_reason
    assert job.final_metrics["validation:accuracy"] > 0.8
    text = log_text(job)
    assert "One-hot encoded 'city' (4 values);" in text and "become '__missing__'" in text
    assert "One-hot encoded 'plan' (2 values)." in text
    assert "missing values in 'age' with the mean " in text
    assert "Encoded 4 columns into 9 features." in text  # 2 numbers + 4 cities and __missing__ + 2 plans

    model = job.model
    assert model.feature_names == ["age", "usage", "city", "plan"]
    files = sorted(name.rsplit("/", 1)[1] for name in model.artifact_files)
    assert files == ["arrays.npz", "manifest.json", "preprocessing.json"]
    with default_storage.open(next(n for n in model.artifact_files if n.endswith("preprocessing.json"))) as fh:
        document = json.load(fh)
    assert document["missing_values"] == "mean" and "plan=pro" in document["features"]

    # Records in, labels out: the endpoint path, with text, a missing number and a city never seen.
    loaded = model_load_bundle(model=model)
    records = [{"age": 40, "usage": 2.0, "city": "Paris", "plan": "basic"},
               {"age": None, "usage": -2.0, "city": "Marseille", "plan": "pro"}]
    assert loaded.predict(records).tolist() == ["yes", "no"]
    assert model_predict_frame(model=model, rows=[[40, 2.0, "Lyon", "basic"]]).tolist() == ["yes"]
    with pytest.raises(InputError, match="record 1 lacks column"):
        loaded.features([{"age": 1}])
    assert [c["name"] for c in model_preprocessing(model=model).describe()] == ["age", "usage", "city", "plan"]


def test_it_fails_with_the_rows_when_missing_values_is_fail(world, enqueued):
    dataset = uploaded_dataset(world, mixed_classification_csv(), name="churn", target="churned")
    job = run_job(new_job(world, dataset=dataset, target="churned", missing_values="fail"))
    assert job.status == "failed"
    assert "column 'age' has missing values in rows" in job.failure_reason
    assert "missing_values is 'fail'" in job.failure_reason


def test_it_drops_rows_with_missing_numbers_when_asked(world, enqueued):
    dataset = uploaded_dataset(world, mixed_classification_csv(), name="churn", target="churned")
    job = run_job(new_job(world, dataset=dataset, target="churned", missing_values="drop_rows",
                          hyperparameters={"epochs": 3}))
    assert job.status == "completed", job.failure_reason
    text = log_text(job)
    assert "training rows with missing values (in 'age'" in text and "Imputed" not in text


def test_it_draws_result_plots_and_stores_them_on_the_job(world, enqueued):
    dataset = uploaded_dataset(world, mixed_classification_csv(), name="churn", target="churned")
    job = run_job(new_job(world, dataset=dataset, target="churned", hyperparameters={"epochs": 3}))
    assert [p["id"] for p in job.result_plots] == ["confusion_matrix", "roc"]
    assert "all 60 validation rows" in job.result_plots[0]["note"]
    assert "Drew 2 result plot(s) on validation rows: confusion matrix, roc curve." in log_text(job)


def test_it_draws_on_training_rows_without_a_validation_set(world, enqueued):
    job = run_job(new_job(world, validation_fraction=0, hyperparameters={"epochs": 3}))
    assert job.status == "completed" and "all 200 training rows" in job.result_plots[0]["note"]


def test_a_plot_failure_is_logged_and_does_not_fail_the_job(world, enqueued, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no ink")

    monkeypatch.setattr(runner.plots, "result_plots", broken)
    job = run_job(new_job(world, hyperparameters={"epochs": 2}))
    assert job.status == "completed" and job.result_plots == []
    assert "Could not draw the result plots: RuntimeError: no ink" in log_text(job)


def test_it_trains_a_clustering_algorithm_without_a_target_leaving_out_the_label_column(world, enqueued):
    name = registered("kmeans")
    dataset = uploaded_dataset(world, blobs_csv(label_column="group"), name="blobs", target="group")
    job = run_job(new_job(world, dataset=dataset, algorithm=name, target="", hyperparameters={"k": 3}))
    assert job.status == "completed", job.failure_reason
    assert job.target == "" and job.model.feature_names == ["a", "b", "c"]
    assert "Left out 'group', the dataset's target column" in log_text(job)
    assert any(key.startswith("validation:") for key in job.final_metrics)
    assert [p["id"] for p in job.result_plots] == ["clusters", "cluster_sizes"]
    clusters = model_predict_frame(model=job.model, rows=[[0, 0, 0], [8, 8, 0], [0.1, 0, 0]])
    assert clusters[0] == clusters[2] != clusters[1]


def test_it_trains_an_anomaly_detector_with_optional_labels(world, enqueued):
    name = registered("random-cut-forest")
    dataset = uploaded_dataset(world, anomalies_csv(), name="sensors")
    labelled = run_job(new_job(world, dataset=dataset, algorithm=name, target="is_anomaly", hyperparameters={}))
    assert labelled.status == "completed", labelled.failure_reason
    assert labelled.final_metrics["validation:auc"] > 0.9
    assert labelled.result_plots[0]["figure"]["data"][0]["name"] == "normal (label 0)"
    unlabelled = run_job(new_job(world, dataset=dataset, algorithm=name, target="", name="no-labels",
                                 hyperparameters={}))
    assert unlabelled.status == "completed", unlabelled.failure_reason
    assert "validation:auc" not in unlabelled.final_metrics
    assert unlabelled.model.feature_names == ["x1", "x2", "is_anomaly"]  # no label given: every column is a feature
    assert np.asarray(model_predict_frame(model=labelled.model, rows=[[0, 0], [9, 9]])).tolist() == [0, 1]


def test_it_reads_a_validation_dataset_with_the_training_columns_kinds_and_vocabulary(world, enqueued):
    train = uploaded_dataset(world, mixed_classification_csv(n=200, seed=1), name="train", target="churned")
    # 'plan' holds a value never seen in training; 'city' is all numbers here, yet still read as text.
    rows = ["age,usage,city,plan,churned", "41,1.0,75,enterprise,yes", "39,-1.0,69,basic,no", "45,0.5,13,pro,no"]
    valid = uploaded_dataset(world, ("\n".join(rows) + "\n").encode(), name="valid")
    job = run_job(new_job(world, dataset=train, validation_dataset=valid, target="churned",
                          hyperparameters={"epochs": 3}))
    assert job.status == "completed", job.failure_reason
    text = log_text(job)
    assert "Loaded 3 validation rows from dataset 'valid'." in text
    assert "3 values of 'city' in the validation rows were not seen in training (e.g." in text
    assert "1 value of 'plan' in the validation rows was not seen in training (e.g. 'enterprise') and goes to" in text
    assert "validation:accuracy" in job.final_metrics
