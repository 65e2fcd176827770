"""Every registered algorithm trains end to end through the REST API on a real Celery worker.

Parametrized over ``list_algorithms()``, so an algorithm added later is covered without touching this
file; its data comes from the builder for its kind of target (labels to predict, none, or optional
anomaly labels). One worker process serves the whole module.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from algorithms import list_algorithms
from studio.registry.models import Model
from studio.registry.services import model_load_bundle
from tests.conftest import api_client
from tests.processes import celery_worker
from tests.training.factories import anomalies_csv, blobs_csv, mixed_classification_csv

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


# target kind -> (CSV, the dataset's own target column, the job's target, two records to predict)
DATASETS: dict[str, Callable[[], tuple[bytes, str, str, list]]] = {
    # A text feature and missing cells, so preprocessing is exercised by every supervised algorithm.
    "required": lambda: (mixed_classification_csv(n=240), "churned", "churned",
                         [{"age": 40, "usage": 1.0, "city": "Paris", "plan": "basic"},
                          {"age": None, "usage": -1.0, "city": "Rome", "plan": "pro"}]),
    # The dataset names a label column: unsupervised jobs must leave it out of the features.
    "none": lambda: (blobs_csv(label_column="group"), "group", "", [[0, 0, 0], [8, 8, 0]]),
    "optional": lambda: (anomalies_csv(), "", "is_anomaly", [[0, 0], [7, 7]]),
}
# Small settings so every job takes about a second; anything not listed trains with its defaults.
HYPERPARAMETERS = {
    "linear-learner": {"epochs": 5, "num_models": 2},
    "kmeans": {"k": 3},
    "random-cut-forest": {"num_trees": 50},
}
PLOTS_BY_TASK = {
    "binary_classification": {"confusion_matrix", "roc"},
    "multiclass_classification": {"confusion_matrix", "roc"},
    "regression": {"predicted_vs_actual", "residuals"},
    "clustering": {"clusters", "cluster_sizes"},
    "dimensionality_reduction": {"scree"},
    "anomaly_detection": {"anomaly_scores"},
}


@pytest.fixture(scope="module")
def worker(django_db_setup, tmp_path_factory):
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    with celery_worker(log):
        yield log


def wait_for(client, url: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(url).json()
        if body["status"] in ("completed", "failed", "stopped"):
            return body
        time.sleep(0.2)
    raise AssertionError(f"{url} still {body['status']} after {timeout}s: {body}")


def hyperparameters_for(algo) -> dict:
    declared = {hp.name for hp in algo.hyperparameters}
    return {k: v for k, v in HYPERPARAMETERS.get(algo.name, {}).items() if k in declared}


@pytest.mark.parametrize("algo", list_algorithms(), ids=lambda a: a.name)
def test_it_trains_every_algorithm_through_the_api(world, worker, algo):
    content, dataset_target, target, records = DATASETS[algo.target]()
    client = api_client(world.member)
    pid = world.project.id
    upload = client.post(f"/api/v1/projects/{pid}/datasets", {
        "file": SimpleUploadedFile("data.csv", content, content_type="text/csv"), "name": f"{algo.name}-data",
        "target": dataset_target,
    }, format="multipart")
    assert upload.status_code == 201, upload.content
    created = client.post(f"/api/v1/projects/{pid}/training-jobs", {
        "algorithm": algo.name, "dataset": upload.json()["id"], "target": target, "validation_fraction": 0.25,
        "hyperparameters": hyperparameters_for(algo),
    }, format="json")
    assert created.status_code == 201, created.content

    job = wait_for(client, f"/api/v1/projects/{pid}/training-jobs/{created.json()['id']}")
    log = client.get(f"/api/v1/projects/{pid}/training-jobs/{job['id']}/logs").content.decode()
    assert job["status"] == "completed", (job["failure_reason"], log[-2000:], worker.read_text()[-2000:])

    declared = {metric.name for metric in algo.metrics}
    assert job["final_metrics"] and set(job["final_metrics"]) <= declared, set(job["final_metrics"]) - declared
    assert algo.default_objective in job["final_metrics"]
    assert job["missing_values"] == "mean" and job["target"] == target

    model = client.get(f"/api/v1/projects/{pid}/models/{job['model']}").json()
    assert model["algorithm"] == algo.name and model["size_bytes"] > 0 and model["training_job"] == job["id"]
    assert dataset_target not in model["feature_names"] and target not in model["feature_names"]
    prediction = model_load_bundle(model=Model.objects.get(id=model["id"])).predict(records)
    assert len(prediction) == 2

    plot_ids = {plot["id"] for plot in job["result_plots"]}
    estimator = model_load_bundle(model=Model.objects.get(id=model["id"])).estimator
    assert PLOTS_BY_TASK[estimator.task_] <= plot_ids, (estimator.task_, plot_ids)
    if callable(getattr(estimator, "kneighbors", None)):
        assert "neighbors" in plot_ids
    assert all(plot["note"] for plot in job["result_plots"])
