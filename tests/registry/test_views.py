from __future__ import annotations

import pytest
from django.test import Client

from tests.conftest import PASSWORD
from tests.training.factories import new_job, run_job

pytestmark = pytest.mark.django_db


def signed_in(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def page(world, suffix: str = "") -> str:
    return f"/projects/{world.project.id}/models/{suffix}"


def test_it_shows_an_empty_state_that_points_to_training(world):
    member = signed_in(world.member).get(page(world)).content.decode()
    assert "No models yet" in member and f"/projects/{world.project.id}/training/new/" in member
    viewer = signed_in(world.viewer).get(page(world)).content.decode()
    assert "No models yet" in viewer and "Train a model" not in viewer


def test_it_lists_models_and_shows_one(world, enqueued):
    job = run_job(new_job(world, name="houses-v1"))
    model = job.model
    listing = signed_in(world.viewer).get(page(world)).content.decode()
    assert "houses-v1" in listing and f"{model.metrics['validation:loss']:.4g}" in listing
    detail = signed_in(world.viewer).get(page(world, f"{model.id}/"))
    body = detail.content.decode()
    assert detail.status_code == 200
    assert "manifest.json" in body and "arrays.npz" in body and "x1, x2, x3" in body
    assert "preprocessing.json" in body and 'data-testid="model-preprocessing"' in body
    assert "missing → training mean" in body and "3 columns → 3 features, missing values: mean" in body
    assert f"/projects/{world.project.id}/training/{job.id}/" in body
    assert f"/projects/{world.project.id}/models/{model.id}/download/" in body
    download = signed_in(world.viewer).get(page(world, f"{model.id}/download/"))
    assert download.status_code == 200 and download["Content-Type"] == "application/zip"


def test_it_hides_model_pages_from_outsiders(world, enqueued):
    model = run_job(new_job(world)).model
    client = signed_in(world.outsider)
    for suffix in ("", f"{model.id}/", f"{model.id}/download/"):
        assert client.get(page(world, suffix)).status_code == 404, suffix
