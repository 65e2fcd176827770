from __future__ import annotations

import pytest

from studio.training.models import TrainingJob
from tests.conftest import api_client
from tests.training.factories import dataset_from_csv, new_job, run_job

pytestmark = pytest.mark.django_db

JOB_FIELDS = {
    "id", "name", "algorithm", "status", "status_message", "failure_reason", "hyperparameters", "final_metrics",
    "model", "created_by", "created_at", "started_at", "ended_at", "duration_seconds", "rule_results",
    "dataset", "validation_dataset", "target", "validation_fraction", "max_runtime_seconds", "missing_values",
    "tags", "notes",
}


def url(world, suffix: str = "") -> str:
    return f"/api/v1/projects/{world.project.id}/training-jobs{suffix}"


def test_it_creates_a_job_and_returns_it(world, enqueued, django_capture_on_commit_callbacks):
    dataset = dataset_from_csv(world.project)
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client(world.member).post(url(world), {
            "name": "houses-1", "algorithm": "linear-learner", "dataset": str(dataset.id), "target": "price",
            "hyperparameters": {"epochs": 3}, "validation_fraction": 0.25, "max_runtime_seconds": 600,
        }, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == JOB_FIELDS
    assert body["status"] == "pending" and body["name"] == "houses-1" and body["created_by"] == "mark"
    assert body["dataset"] == str(dataset.id) and body["model"] is None and body["rule_results"] == []
    assert body["hyperparameters"]["epochs"] == 3 and body["validation_fraction"] == 0.25
    assert body["missing_values"] == "mean"
    assert enqueued == [body["id"]]


def test_it_names_each_bad_hyperparameter_in_a_400(world):
    dataset = dataset_from_csv(world.project)
    response = api_client(world.member).post(url(world), {
        "algorithm": "linear-learner", "dataset": str(dataset.id), "target": "price",
        "hyperparameters": {"epochs": 0, "learning_rate": 5, "momentum": 0.9},
    }, format="json")
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert "epochs must be between 1 and 1000" in errors["hyperparameters.epochs"][0]
    assert "learning_rate must be between 1e-06 and 1.0" in errors["hyperparameters.learning_rate"][0]
    assert "unknown hyperparameter 'momentum'" in errors["hyperparameters.momentum"][0]
    assert "epochs" in response.json()["detail"]
    assert not TrainingJob.objects.exists()


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"algorithm": "deep-magic"}, "algorithm", "linear-learner"),
    ({"target": "nope"}, "target", "Columns: x1, x2, x3, price"),
    ({"dataset": "00000000-0000-0000-0000-000000000000"}, "dataset", "No dataset"),
    ({"dataset": "not-a-uuid"}, "dataset", "UUID"),
    ({"validation_fraction": 0.9}, "validation_fraction", "between 0 and 0.5"),
    ({"missing_values": "guess"}, "missing_values", "one of mean, median, zero, drop_rows, fail (got 'guess')"),
])
def test_it_answers_400_naming_the_field(world, body, field, words):
    dataset = dataset_from_csv(world.project)
    payload = {"algorithm": "linear-learner", "dataset": str(dataset.id), "target": "price", **body}
    response = api_client(world.member).post(url(world), payload, format="json")
    assert response.status_code == 400, response.content
    assert words in " ".join(response.json()["errors"][field])


def test_it_answers_409_to_a_duplicate_name(world, enqueued):
    job = new_job(world, name="same")
    response = api_client(world.member).post(url(world), {
        "name": "same", "algorithm": "linear-learner", "dataset": str(job.dataset_id), "target": "price",
    }, format="json")
    assert response.status_code == 409 and "same" in response.json()["detail"]


def test_it_forbids_viewers_to_create_or_stop(world, enqueued):
    job = new_job(world)
    client = api_client(world.viewer)
    response = client.post(url(world), {"algorithm": "linear-learner", "dataset": str(job.dataset_id),
                                        "target": "price"}, format="json")
    assert response.status_code == 403
    assert client.post(url(world, f"/{job.id}/stop")).status_code == 403
    assert client.get(url(world, f"/{job.id}")).status_code == 200  # but reads everything


def test_it_lists_and_shows_jobs(world, enqueued):
    done = run_job(new_job(world, name="done"))
    new_job(world, name="waiting")
    client = api_client(world.viewer)
    listing = client.get(url(world)).json()
    assert listing["count"] == 2 and {j["name"] for j in listing["results"]} == {"done", "waiting"}
    assert [j["name"] for j in client.get(url(world) + "?status=completed").json()["results"]] == ["done"]
    assert set(listing["results"][0]) == JOB_FIELDS  # lists leave the result plots out
    body = client.get(url(world, f"/{done.id}")).json()
    assert set(body) == JOB_FIELDS | {"result_plots"}
    assert body["status"] == "completed" and body["model"] == str(done.model.id)
    assert [p["id"] for p in body["result_plots"]] == ["predicted_vs_actual", "residuals"]
    assert body["result_plots"][0]["kind"] == "figure" and body["result_plots"][0]["figure"]["data"]
    assert body["final_metrics"]["validation:r2"] > 0.9 and body["duration_seconds"] >= 0


def test_it_returns_metric_series_and_logs(world, enqueued):
    job = run_job(new_job(world, hyperparameters={"epochs": 3, "early_stopping_patience": 3}))
    client = api_client(world.viewer)
    series = client.get(url(world, f"/{job.id}/metrics")).json()["series"]
    assert [point[0] for point in series["train:loss"]] == [1, 2, 3]
    step, value, ts = series["validation:loss"][0]
    assert step == 1 and isinstance(value, float) and ts > 1.7e9
    logs = client.get(url(world, f"/{job.id}/logs"))
    assert logs.status_code == 200 and logs["Content-Type"].startswith("text/plain")
    assert "epoch 3: train:loss=" in logs.content.decode()


def test_it_stops_jobs_with_202_and_refuses_finished_ones_with_409(world, enqueued):
    job = new_job(world)
    client = api_client(world.member)
    response = client.post(url(world, f"/{job.id}/stop"))
    assert response.status_code == 202 and response.json()["status"] == "stopped"
    again = client.post(url(world, f"/{job.id}/stop"))
    assert again.status_code == 409 and "already finished" in again.json()["detail"]


def test_it_hides_jobs_from_outsiders(world, enqueued):
    job = new_job(world)
    client = api_client(world.outsider)
    for suffix in ("", f"/{job.id}", f"/{job.id}/metrics", f"/{job.id}/logs"):
        assert client.get(url(world, suffix)).status_code == 404
    assert client.post(url(world, f"/{job.id}/stop")).status_code == 404
    assert client.post(url(world), {"algorithm": "linear-learner", "dataset": str(job.dataset_id)},
                       format="json").status_code == 404
    # a job id of this project under the outsider's own project is not found either
    own = f"/api/v1/projects/{world.other_project.id}/training-jobs/{job.id}"
    assert client.get(own).status_code == 404
    TrainingJob.objects.get(id=job.id)


def test_it_refuses_anonymous_callers(world, enqueued):
    job = new_job(world)
    assert api_client().get(url(world, f"/{job.id}")).status_code == 401


def test_it_describes_the_routes_in_the_schema(world):
    schema = api_client(world.viewer).get("/api/schema/?format=json").json()
    paths = schema["paths"]
    base = "/api/v1/projects/{project_id}/training-jobs"
    for path in (base, base + "/{job_id}", base + "/{job_id}/metrics", base + "/{job_id}/logs",
                 base + "/{job_id}/stop"):
        assert path in paths, path


def test_it_takes_the_missing_values_strategy(world, enqueued):
    dataset = dataset_from_csv(world.project)
    response = api_client(world.member).post(url(world), {
        "algorithm": "linear-learner", "dataset": str(dataset.id), "target": "price", "missing_values": "drop_rows",
    }, format="json")
    assert response.status_code == 201 and response.json()["missing_values"] == "drop_rows"
    assert TrainingJob.objects.get().missing_values == "drop_rows"
