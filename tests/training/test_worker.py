"""A real Celery worker process (not eager mode) runs jobs from the real broker against the test database."""

from __future__ import annotations

import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.conftest import api_client, classification_csv, regression_csv
from tests.processes import celery_worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def wait_for(client, url: str, statuses: set[str], timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(url).json()
        if body["status"] in statuses:
            return body
        time.sleep(0.25)
    raise AssertionError(f"{url} still {body['status']} after {timeout}s: {body}")


def upload(client, project_id, name: str, content: bytes) -> dict:
    response = client.post(
        f"/api/v1/projects/{project_id}/datasets",
        {"file": SimpleUploadedFile(f"{name}.csv", content, content_type="text/csv"), "name": name},
        format="multipart",
    )
    assert response.status_code == 201, response.content
    return response.json()


def test_it_runs_training_jobs_on_a_real_worker(world, tmp_path):
    client = api_client(world.member)
    pid = world.project.id
    houses = upload(client, pid, "houses", regression_csv(n=400))
    people = upload(client, pid, "people", classification_csv(n=400))
    with celery_worker(tmp_path / "worker.log"):
        regression = client.post(f"/api/v1/projects/{pid}/training-jobs", {
            "algorithm": "linear-learner", "dataset": houses["id"], "target": "price",
            "hyperparameters": {"epochs": 5}, "validation_fraction": 0.25,
        }, format="json")
        assert regression.status_code == 201, regression.content
        classifier = client.post(f"/api/v1/projects/{pid}/training-jobs", {
            "algorithm": "linear-learner", "dataset": people["id"], "target": "churned",
            "hyperparameters": {"epochs": 5}, "validation_fraction": 0.25,
        }, format="json")
        assert classifier.status_code == 201, classifier.content
        url = f"/api/v1/projects/{pid}/training-jobs/{{}}"
        done_regression = wait_for(client, url.format(regression.json()["id"]), {"completed", "failed"})
        done_classifier = wait_for(client, url.format(classifier.json()["id"]), {"completed", "failed"})
    log = (tmp_path / "worker.log").read_text()
    assert done_regression["status"] == "completed", (done_regression, log[-3000:])
    assert done_classifier["status"] == "completed", (done_classifier, log[-3000:])
    assert done_regression["final_metrics"]["validation:r2"] > 0.95
    assert done_classifier["final_metrics"]["validation:accuracy"] > 0.9
    series = client.get(url.format(regression.json()["id"]) + "/metrics").json()["series"]
    assert [step for step, _, _ in series["train:loss"]] == [1, 2, 3, 4, 5]
    model = client.get(f"/api/v1/projects/{pid}/models/{done_regression['model']}").json()
    assert model["algorithm"] == "linear-learner" and model["size_bytes"] > 0
