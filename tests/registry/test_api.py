from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from algorithms import load_model
from tests.conftest import api_client
from tests.training.factories import new_job, run_job

pytestmark = pytest.mark.django_db

MODEL_FIELDS = {"id", "name", "algorithm", "training_job", "metrics", "size_bytes", "created_at",
                "hyperparameters", "feature_names", "target"}


@pytest.fixture
def model(world, enqueued):
    return run_job(new_job(world, name="houses-v1")).model


def url(world, suffix: str = "") -> str:
    return f"/api/v1/projects/{world.project.id}/models{suffix}"


def test_it_lists_and_shows_models(world, model):
    client = api_client(world.viewer)
    listing = client.get(url(world)).json()
    assert listing["count"] == 1 and listing["results"][0]["id"] == str(model.id)
    body = client.get(url(world, f"/{model.id}")).json()
    assert set(body) == MODEL_FIELDS
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


def test_it_offers_no_writes_on_models(world, model):
    client = api_client(world.viewer)
    assert client.post(url(world), {}, format="json").status_code == 405
    assert client.delete(url(world, f"/{model.id}")).status_code == 405
