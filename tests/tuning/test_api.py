from __future__ import annotations

import pytest

from studio.datasets.models import Dataset
from studio.tuning import services
from tests.training.factories import classification_dataset, run_job

pytestmark = pytest.mark.django_db

BODY = {
    "algorithm": "linear-learner",
    "objective": {"metric": "validation:accuracy", "goal": "maximize"},
    "ranges": {"learning_rate": {"type": "continuous", "min": 0.001, "max": 0.5, "scale": "log"},
               "optimizer": {"type": "categorical", "values": ["adam", "sgd"]}},
    "static_hyperparameters": {"epochs": 2, "num_models": 1},
    "strategy": "random", "max_jobs": 3, "max_parallel_jobs": 1, "early_stopping": "off",
}


def url(world, suffix: str = "", project=None) -> str:
    return f"/api/v1/projects/{(project or world.project).id}/tuning-jobs{suffix}"


def create(world, api, **overrides):
    dataset = Dataset.objects.filter(project=world.project).first() or classification_dataset(world.project)
    response = api(world.member).post(url(world), {**BODY, "dataset": str(dataset.id), **overrides}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def test_it_creates_a_tuning_job(world, api, advances):
    body = create(world, api, name="churn-tuning")
    assert body["name"] == "churn-tuning" and body["status"] == "pending" and body["strategy"] == "random"
    assert body["objective"] == {"metric": "validation:accuracy", "goal": "maximize"}
    assert body["ranges"]["optimizer"] == {"type": "categorical", "values": ["adam", "sgd"]}
    assert body["counts"] == {"pending": 0, "running": 0, "completed": 0, "failed": 0, "stopped": 0, "total": 0}
    assert body["best_training_job"] is None and body["created_by"] == "mark"


def test_it_reports_counts_the_best_trial_and_trials(world, api, enqueued, advances):
    body = create(world, api)
    services.tuning_job_advance(tuning_job_id=body["id"])
    client = api(world.viewer)
    trials = client.get(url(world, f"/{body['id']}/trials")).json()
    assert trials["count"] == 1
    run_job(__import__("studio.training.models", fromlist=["TrainingJob"]).TrainingJob.objects.get(
        id=trials["results"][0]["id"]))
    services.tuning_job_advance(tuning_job_id=body["id"])
    detail = client.get(url(world, f"/{body['id']}")).json()
    assert detail["status"] == "running"
    assert detail["counts"]["completed"] == 1 and detail["counts"]["pending"] == 1
    best = detail["best_training_job"]
    assert best["number"] == 1 and best["model"] is not None
    assert set(BODY["ranges"]) <= set(best["hyperparameters"])
    first = client.get(url(world, f"/{body['id']}/trials")).json()["results"][0]
    assert first["objective_value"] == best["objective_value"] == first["final_metrics"]["validation:accuracy"]
    assert first["status"] == "completed" and first["number"] == 1 and set(first["parameters"]) == set(BODY["ranges"])


def test_it_lists_only_this_projects_jobs_and_filters_by_status(world, api, advances):
    create(world, api)
    client = api(world.viewer)
    assert client.get(url(world)).json()["count"] == 1
    assert client.get(url(world) + "?status=completed").json()["count"] == 0


def test_it_stops_a_job(world, api, enqueued, advances):
    body = create(world, api)
    services.tuning_job_advance(tuning_job_id=body["id"])
    assert api(world.viewer).post(url(world, f"/{body['id']}/stop")).status_code == 403
    response = api(world.member).post(url(world, f"/{body['id']}/stop"))
    assert response.status_code == 202 and response.json()["status"] == "stopped"
    assert response.json()["counts"]["stopped"] == 1
    again = api(world.member).post(url(world, f"/{body['id']}/stop"))
    assert again.status_code == 409 and "already finished" in again.json()["detail"]


@pytest.mark.parametrize(("override", "field"), [
    ({"ranges": {"learning_rate": {"type": "continuous", "min": 0.5, "max": 0.1}}}, "ranges.learning_rate"),
    ({"ranges": {"learning_rate": {"type": "continuous", "min": 0, "max": 0.1, "scale": "log"}}},
     "ranges.learning_rate"),
    ({"ranges": {"nope": {"type": "integer", "min": 1, "max": 2}}}, "ranges.nope"),
    ({"strategy": "grid", "ranges": {"optimizer": {"type": "categorical", "values": ["adam", "sgd"]},
                                     "mini_batch_size": {"type": "integer", "min": 8, "max": 9}}, "max_jobs": 3},
     "max_jobs"),
    ({"ranges": "learning_rate"}, "ranges"),
    ({"objective": {"metric": "validation:accuracy", "goal": "up"}}, "objective.goal"),
])
def test_it_answers_bad_specs_with_a_400_naming_the_field(world, api, override, field):
    dataset = classification_dataset(world.project)
    response = api(world.member).post(url(world), {**BODY, "dataset": str(dataset.id), **override}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert any(key.startswith(field) for key in body["errors"]), body
    assert body["detail"]


def test_it_refuses_a_viewer_and_hides_other_teams(world, api, advances):
    dataset = classification_dataset(world.project)
    assert api(world.viewer).post(url(world), {**BODY, "dataset": str(dataset.id)}, format="json").status_code == 403
    body = create(world, api)
    outsider = api(world.outsider)
    for path in ("", f"/{body['id']}", f"/{body['id']}/trials"):
        assert outsider.get(url(world, path)).status_code == 404
    assert outsider.post(url(world, f"/{body['id']}/stop")).status_code == 404
    # Their own project does not reveal ours either.
    assert outsider.get(url(world, f"/{body['id']}", project=world.other_project)).status_code == 404


def test_it_describes_tuning_in_the_schema(world, api):
    schema = api(world.member).get("/api/schema/", HTTP_ACCEPT="application/json").json()
    paths = schema["paths"]
    base = "/api/v1/projects/{project_id}/tuning-jobs"
    assert {base, base + "/{tuning_job_id}", base + "/{tuning_job_id}/trials", base + "/{tuning_job_id}/stop"} <= \
        set(paths)
