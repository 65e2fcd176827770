"""Every registered algorithm trains end to end through the REST API on a real Celery worker.

Parametrized over ``list_algorithms()``, so an algorithm added later is covered without touching this
file; its data comes from the builder for its kind of target (labels to predict, none, or optional
anomaly labels). One worker process serves the whole module.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from algorithms import list_algorithms
from studio.registry.models import Model
from studio.registry.services import model_load_bundle
from tests.conftest import api_client
from tests.processes import celery_worker
from tests.training.factories import (
    DETECTION_SIZE,
    IMAGE_SIZE,
    anomalies_csv,
    blobs_csv,
    colour_images_zip,
    documents_jsonl,
    mixed_classification_csv,
    reviews_jsonl,
    squares_detection_zip,
)

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
# Text and image algorithms: (file name, content, upload fields, two inputs to predict). Their labels come
# from the dataset itself ('label' of a text file, class folders or annotations.json of a ZIP).
def media_dataset(algo) -> tuple[str, bytes, dict, object]:
    if algo.input == "text":
        if algo.name == "summarization":  # 'label' holds reference summaries
            return "documents.jsonl", documents_jsonl(), {}, ["One sentence here. Another one there.", "Short."]
        return "reviews.jsonl", reviews_jsonl(), {}, ["great lovely film", "awful boring plot"]
    if "detection" in algo.task:
        return "squares.zip", squares_detection_zip(), {"image_size": DETECTION_SIZE}, \
            np.zeros((2, DETECTION_SIZE, DETECTION_SIZE, 3), dtype=np.uint8)
    return "shapes.zip", colour_images_zip(), {"image_size": IMAGE_SIZE}, \
        np.zeros((2, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)



# Small settings so every job takes about a second; anything not listed trains with its defaults.
HYPERPARAMETERS = {
    "linear-learner": {"epochs": 5, "num_models": 2},
    "kmeans": {"k": 3},
    "random-cut-forest": {"num_trees": 50},
    "image-classification": {"epochs": 2, "width": 8, "num_layers": 1, "mini_batch_size": 16},
    "text-classification": {"epochs": 2, "vector_dim": 8, "buckets": 1000},
    "word2vec": {"epochs": 2, "vector_dim": 8},
    "object-detection": {"epochs": 2, "mini_batch_size": 8, "base_filters": 4},
}
PLOTS_BY_TASK = {
    "binary_classification": {"confusion_matrix", "roc"},
    "multiclass_classification": {"confusion_matrix", "roc"},
    "regression": {"predicted_vs_actual", "residuals"},
    "clustering": {"clusters", "cluster_sizes"},
    "dimensionality_reduction": {"scree"},
    "anomaly_detection": {"anomaly_scores"},
    "image_classification": {"confusion_matrix", "roc", "misclassified"},
    "text_classification": {"confusion_matrix", "roc"},
    "embedding": {"embedding_map", "nearest_words"},
    "summarization": {"summaries"},
    "object_detection": {"detections", "class_ap"},
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
    if algo.input == "tabular":
        content, dataset_target, target, records = DATASETS[algo.target]()
        fields = {"file": SimpleUploadedFile("data.csv", content, content_type="text/csv"), "target": dataset_target}
    else:
        filename, content, extra, records = media_dataset(algo)
        # A text job's labels are its 'label' column; image labels need no target at all.
        target = dataset_target = "label" if algo.input == "text" and algo.target != "none" else ""
        fields = {"file": SimpleUploadedFile(filename, content), "kind": algo.input, **extra}
    client = api_client(world.member)
    pid = world.project.id
    upload = client.post(f"/api/v1/projects/{pid}/datasets", {**fields, "name": f"{algo.name}-data"},
                         format="multipart")
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
    if algo.input == "tabular":
        assert dataset_target not in model["feature_names"] and target not in model["feature_names"]
    else:
        assert model["feature_names"] == []  # text and image models have no tabular features
    prediction = model_load_bundle(model=Model.objects.get(id=model["id"])).predict(records)
    assert len(prediction) == 2

    plot_ids = {plot["id"] for plot in job["result_plots"]}
    estimator = model_load_bundle(model=Model.objects.get(id=model["id"])).estimator
    assert PLOTS_BY_TASK[estimator.task_] <= plot_ids, (estimator.task_, plot_ids)
    if callable(getattr(estimator, "kneighbors", None)):
        assert "neighbors" in plot_ids
    assert all(plot["note"] for plot in job["result_plots"])
