from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from django.core.files.storage import default_storage

from algorithms import load_model
from studio.accounts.models import AuditEvent
from studio.registry.models import Model, ModelGroup, ModelVersion
from studio.training.models import TrainingJob
from studio.tuning.models import TuningJob, TuningTrial
from tests.conftest import api_client
from tests.registry.conftest import bare_model, deploy
from tests.training.factories import new_job, run_job

pytestmark = pytest.mark.django_db

MODEL_FIELDS = {"id", "name", "algorithm", "training_job", "metrics", "size_bytes", "created_at",
                "hyperparameters", "feature_names", "target"}
GROUP_FIELDS = {"id", "name", "description", "versions_count", "latest_version", "created_by", "created_at"}
VERSION_FIELDS = {"version", "group", "model", "model_name", "approval_status", "description", "metrics",
                  "created_by", "created_at", "approved_by", "approved_at", "status_changed_by", "status_changed_at"}


@pytest.fixture
def model(world, enqueued):
    return run_job(new_job(world, name="houses-v1")).model


def url(world, suffix: str = "") -> str:
    return f"/api/v1/projects/{world.project.id}/models{suffix}"


def test_it_lists_and_shows_models(world, model):
    client = api_client(world.viewer)
    listing = client.get(url(world)).json()
    assert listing["count"] == 1 and listing["results"][0]["id"] == str(model.id)
    assert set(listing["results"][0]) == MODEL_FIELDS
    body = client.get(url(world, f"/{model.id}")).json()
    assert set(body) == MODEL_FIELDS | {"versions"} and body["versions"] == []
    assert body["name"] == "houses-v1" and body["algorithm"] == "linear-learner"
    assert body["training_job"] == str(model.training_job_id) and body["size_bytes"] == model.size_bytes > 0
    assert body["feature_names"] == ["x1", "x2", "x3"] and body["target"] == "price"
    assert body["metrics"]["validation:r2"] > 0.9


def test_it_downloads_a_zip_that_loads_without_pickle(world, model, tmp_path):
    response = api_client(world.viewer).get(url(world, f"/{model.id}/download"))
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert 'filename="houses-v1.zip"' in response["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert sorted(archive.namelist()) == ["arrays.npz", "manifest.json", "preprocessing.json"]
        assert json.loads(archive.read("manifest.json"))["algorithm"] == "linear-learner"
        archive.extractall(tmp_path)
    estimator = load_model(tmp_path)
    assert estimator.predict(np.zeros((1, 3))).shape == (1,)


def test_it_hides_models_from_outsiders(world, model):
    client = api_client(world.outsider)
    for suffix in ("", f"/{model.id}", f"/{model.id}/download"):
        assert client.get(url(world, suffix)).status_code == 404
    other = f"/api/v1/projects/{world.other_project.id}/models/{model.id}"
    assert client.get(other).status_code == 404


def test_it_offers_no_model_creation_and_refuses_a_viewers_delete(world, model):
    client = api_client(world.viewer)
    assert client.post(url(world), {}, format="json").status_code == 405
    assert client.delete(url(world, f"/{model.id}")).status_code == 403
    assert Model.objects.filter(id=model.id).exists()


def groups_url(world, suffix: str = "") -> str:
    return f"/api/v1/projects/{world.project.id}/model-groups{suffix}"


def new_group(world, name: str = "pricing", user=None) -> dict:
    response = api_client(user or world.member).post(groups_url(world), {"name": name}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_it_creates_lists_and_shows_model_groups(world):
    client = api_client(world.member)
    response = client.post(groups_url(world), {"name": "pricing", "description": "House prices"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == GROUP_FIELDS
    assert body["name"] == "pricing" and body["description"] == "House prices" and body["created_by"] == "mark"
    assert body["versions_count"] == 0 and body["latest_version"] is None
    duplicate = client.post(groups_url(world), {"name": "Pricing"}, format="json")
    assert duplicate.status_code == 409 and "already exists" in duplicate.json()["detail"]
    assert client.post(groups_url(world), {"name": ""}, format="json").status_code == 400
    viewer = api_client(world.viewer)
    assert viewer.post(groups_url(world), {"name": "mine"}, format="json").status_code == 403
    listing = viewer.get(groups_url(world)).json()
    assert listing["count"] == 1 and listing["results"][0]["id"] == body["id"]
    assert viewer.get(groups_url(world, f"/{body['id']}")).json() == body


def test_it_registers_versions_numbered_from_one(world):
    group = new_group(world)
    first, second = bare_model(world.project, "m1"), bare_model(world.project, "m2")
    client = api_client(world.member)
    versions = groups_url(world, f"/{group['id']}/versions")
    response = client.post(versions, {"model": str(first.id)}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == VERSION_FIELDS
    assert body["version"] == 1 and body["approval_status"] == "pending" and body["model"] == str(first.id)
    assert body["created_by"] == "mark" and body["created_at"] and body["approved_by"] is None
    assert body["group"] == group["id"] and body["model_name"] == "m1"
    assert client.post(versions, {"model": str(second.id)}, format="json").json()["version"] == 2
    again = client.post(versions, {"model": str(first.id)}, format="json")
    assert again.status_code == 409 and "already version 1" in again.json()["detail"]
    listing = api_client(world.viewer).get(versions).json()
    assert [v["version"] for v in listing["results"]] == [2, 1]
    shown = api_client(world.viewer).get(groups_url(world, f"/{group['id']}/versions/1")).json()
    assert shown["model"] == str(first.id)
    assert api_client(world.viewer).get(groups_url(world, f"/{group['id']}/versions/7")).status_code == 404
    detail = api_client(world.viewer).get(groups_url(world, f"/{group['id']}")).json()
    assert detail["versions_count"] == 2 and detail["latest_version"] == 2
    model = api_client(world.viewer).get(url(world, f"/{first.id}")).json()
    assert model["versions"] == [{"group": group["id"], "group_name": "pricing", "version": 1,
                                  "approval_status": "pending"}]


def test_it_answers_400_naming_model_for_a_model_of_another_project(world):
    group = new_group(world)
    stranger = bare_model(world.other_project, "theirs")
    client = api_client(world.member)
    for value in (str(stranger.id), "not-a-uuid"):
        response = client.post(groups_url(world, f"/{group['id']}/versions"), {"model": value}, format="json")
        assert response.status_code == 400
        assert response.json()["errors"] == {"model": [f"No model '{value}' in this project."]}
    viewer = api_client(world.viewer).post(groups_url(world, f"/{group['id']}/versions"),
                                           {"model": str(bare_model(world.project).id)}, format="json")
    assert viewer.status_code == 403 and not ModelVersion.objects.exists()


def test_it_approves_and_rejects_with_who_and_when(world):
    group = new_group(world)
    model = bare_model(world.project)
    api_client(world.member).post(groups_url(world, f"/{group['id']}/versions"), {"model": str(model.id)},
                                  format="json")
    version_url = groups_url(world, f"/{group['id']}/versions/1")
    viewer = api_client(world.viewer).patch(version_url, {"approval_status": "approved"}, format="json")
    assert viewer.status_code == 403
    approved = api_client(world.member).patch(version_url, {"approval_status": "approved", "description": "good"},
                                              format="json")
    assert approved.status_code == 200
    body = approved.json()
    assert body["approval_status"] == "approved" and body["approved_by"] == "mark" and body["approved_at"]
    assert body["status_changed_by"] == "mark" and body["description"] == "good"
    rejected = api_client(world.owner).patch(version_url, {"approval_status": "rejected"}, format="json").json()
    assert rejected["approval_status"] == "rejected" and rejected["approved_by"] is None
    assert rejected["status_changed_by"] == "olivia" and rejected["status_changed_at"] >= body["approved_at"]
    bad = api_client(world.member).patch(version_url, {"approval_status": "maybe"}, format="json")
    assert bad.status_code == 400 and "approval_status" in bad.json()["errors"]
    assert api_client(world.member).patch(version_url, {}, format="json").status_code == 400
    assert AuditEvent.objects.filter(verb="rejected model version", actor=world.owner).count() == 1


def test_it_deletes_groups_and_versions_as_admin_unless_deployed(world):
    group = new_group(world)
    served = bare_model(world.project, "served")
    client = api_client(world.member)
    client.post(groups_url(world, f"/{group['id']}/versions"), {"model": str(served.id)}, format="json")
    variant = deploy(served, name="prod")
    assert client.delete(groups_url(world, f"/{group['id']}")).status_code == 403
    owner = api_client(world.owner)
    for suffix in (f"/{group['id']}/versions/1", f"/{group['id']}"):
        conflict = owner.delete(groups_url(world, suffix))
        assert conflict.status_code == 409 and "deployed on endpoint 'prod'" in conflict.json()["detail"]
    variant.endpoint.delete()
    assert owner.delete(groups_url(world, f"/{group['id']}/versions/1")).status_code == 204
    assert owner.delete(groups_url(world, f"/{group['id']}")).status_code == 204
    assert not ModelGroup.objects.exists() and Model.objects.filter(id=served.id).exists()


def test_it_deletes_a_model_with_its_files_or_answers_409_naming_the_user(world, model,
                                                                          django_capture_on_commit_callbacks):
    client = api_client(world.member)
    variant = deploy(model, name="houses-prod")
    conflict = client.delete(url(world, f"/{model.id}"))
    assert conflict.status_code == 409
    assert "used by endpoint 'houses-prod'" in conflict.json()["detail"]
    variant.endpoint.delete()
    group = new_group(world)
    client.post(groups_url(world, f"/{group['id']}/versions"), {"model": str(model.id)}, format="json")
    registered = client.delete(url(world, f"/{model.id}"))
    assert registered.status_code == 409 and "version 1 of model group 'pricing'" in registered.json()["detail"]
    api_client(world.owner).delete(groups_url(world, f"/{group['id']}"))
    files = list(model.artifact_files)
    assert files and all(default_storage.exists(name) for name in files)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.delete(url(world, f"/{model.id}"))
    assert response.status_code == 204
    assert not Model.objects.filter(id=model.id).exists()
    assert not any(default_storage.exists(name) for name in files)
    assert client.get(url(world, f"/{model.id}")).status_code == 404


def test_it_serves_the_lineage_of_a_model_from_a_tuning_trial(world):
    tuning = TuningJob.objects.create(project=world.project, name="tune", algorithm="linear-learner",
                                      objective_metric="validation:loss", objective_goal="minimize",
                                      strategy="random", max_jobs=2, max_parallel_jobs=1)
    job = TrainingJob.objects.create(project=world.project, name="tune-001", algorithm="linear-learner",
                                     status="completed")
    TuningTrial.objects.create(tuning_job=tuning, training_job=job, number=1)
    model = bare_model(world.project, "tune-001", training_job=job)
    group = new_group(world)
    api_client(world.member).post(groups_url(world, f"/{group['id']}/versions"), {"model": str(model.id)},
                                  format="json")
    endpoint = deploy(model, name="prod").endpoint
    body = api_client(world.viewer).get(url(world, f"/{model.id}/lineage")).json()
    kinds = {n["id"]: n["kind"] for n in body["nodes"]}
    assert sorted(kinds.values()) == ["endpoint", "model", "model_version", "training_job", "tuning_job"]
    version_id = next(i for i, k in kinds.items() if k == "model_version")
    assert {(e["from"], e["to"]) for e in body["edges"]} == {
        (f"tuning_job:{tuning.id}", f"training_job:{job.id}"), (f"training_job:{job.id}", f"model:{model.id}"),
        (f"model:{model.id}", version_id), (f"model:{model.id}", f"endpoint:{endpoint.id}"),
    }
    assert all(set(n) == {"id", "kind", "label", "url"} for n in body["nodes"])


def test_it_hides_the_registry_from_outsiders(world):
    group = new_group(world)
    model = bare_model(world.project)
    api_client(world.member).post(groups_url(world, f"/{group['id']}/versions"), {"model": str(model.id)},
                                  format="json")
    client = api_client(world.outsider)
    for suffix in ("", f"/{group['id']}", f"/{group['id']}/versions", f"/{group['id']}/versions/1"):
        assert client.get(groups_url(world, suffix)).status_code == 404, suffix
        assert client.delete(groups_url(world, suffix)).status_code in (404, 405), suffix
    assert client.post(groups_url(world), {"name": "x"}, format="json").status_code == 404
    assert client.patch(groups_url(world, f"/{group['id']}/versions/1"), {"approval_status": "approved"},
                        format="json").status_code == 404
    assert client.get(url(world, f"/{model.id}/lineage")).status_code == 404
    assert client.delete(url(world, f"/{model.id}")).status_code == 404
    # Their own project cannot reach our group either.
    theirs = f"/api/v1/projects/{world.other_project.id}/model-groups/{group['id']}"
    assert client.get(theirs).status_code == 404
    assert ModelVersion.objects.get().approval_status == "pending"


def test_it_describes_the_registry_in_the_schema(world):
    schema = api_client(world.viewer).get("/api/schema/", HTTP_ACCEPT="application/json").json()
    paths = schema["paths"]
    base = "/api/v1/projects/{project_id}"
    assert set(paths[f"{base}/model-groups"]) >= {"get", "post"}
    assert set(paths[f"{base}/model-groups/{{group_id}}"]) >= {"get", "delete"}
    assert set(paths[f"{base}/model-groups/{{group_id}}/versions"]) >= {"get", "post"}
    assert set(paths[f"{base}/model-groups/{{group_id}}/versions/{{version}}"]) >= {"get", "patch", "delete"}
    assert set(paths[f"{base}/models/{{model_id}}"]) >= {"get", "delete"}
    assert "get" in paths[f"{base}/models/{{model_id}}/lineage"]
    patch = paths[f"{base}/model-groups/{{group_id}}/versions/{{version}}"]["patch"]
    assert "requestBody" in patch
