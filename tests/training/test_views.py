from __future__ import annotations

import re

import pytest
from django.test import Client

from algorithms import LinearLearner
from studio.training.models import TrainingJob
from tests.conftest import PASSWORD
from tests.training.factories import dataset_from_csv, new_job, run_job

pytestmark = pytest.mark.django_db


def signed_in(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def page(world, suffix: str = "") -> str:
    return f"/projects/{world.project.id}/training/{suffix}"


def test_it_shows_an_empty_state_with_a_next_step(world):
    body = signed_in(world.member).get(page(world)).content.decode()
    assert "No training jobs yet" in body and "Train a model" in body
    viewer = signed_in(world.viewer).get(page(world)).content.decode()
    assert "No training jobs yet" in viewer and "Train a model</a>" not in viewer


def test_it_lists_jobs_with_status_and_key_metric(world, enqueued):
    done = run_job(new_job(world, name="houses-done"))
    new_job(world, name="houses-waiting")
    response = signed_in(world.viewer).get(page(world))
    body = response.content.decode()
    assert response.status_code == 200
    assert "houses-done" in body and "houses-waiting" in body
    assert '<span class="badge completed">completed</span>' in body and '<span class="badge pending">' in body
    assert "validation:loss" in body and f"{done.final_metrics['validation:loss']:.4g}" in body
    filtered = signed_in(world.viewer).get(page(world) + "?status=pending").content.decode()
    assert "houses-waiting" in filtered and "houses-done" not in filtered


def test_it_generates_the_form_from_the_algorithms_declaration(world):
    dataset = dataset_from_csv(world.project, target="price")
    response = signed_in(world.member).get(page(world, f"new/?dataset={dataset.id}"))
    body = response.content.decode()
    assert response.status_code == 200
    for hp in LinearLearner.hyperparameters:
        assert f'name="hp_{hp.name}"' in body, hp.name
    assert re.search(r'name="hp_epochs" value="15" step="1" min="1" max="1000"', body)
    assert '<input type="checkbox" id="id_hp_use_bias" name="hp_use_bias" value="true" checked>' in body
    assert '<option value="sgd">sgd</option>' in body
    assert f'<option value="{dataset.id}" selected>' in body  # ?dataset= preselects
    assert '<option value="price" selected>' in body  # and its target column


def test_it_tells_the_viewer_the_form_is_not_for_them(world):
    assert signed_in(world.viewer).get(page(world, "new/")).status_code == 403
    assert signed_in(world.viewer).post(page(world, "new/"), {"algorithm": "linear-learner"}).status_code == 403


def test_it_creates_a_job_from_the_form(world, enqueued, django_capture_on_commit_callbacks):
    dataset = dataset_from_csv(world.project)
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in(world.member).post(page(world, "new/"), {
            "algorithm": "linear-learner", "name": "from-form", "dataset": str(dataset.id), "target": "price",
            "validation_fraction": "0.3", "max_runtime_seconds": "", "hp_epochs": "9", "hp_learning_rate": "",
            "hp_use_bias": ["false"], "hp_normalize_data": ["false", "true"], "hp_optimizer": "sgd",
        })
    job = TrainingJob.objects.get(name="from-form")
    assert response.status_code == 302 and response.url == page(world, f"{job.id}/")
    assert job.hyperparameters["epochs"] == 9 and job.hyperparameters["learning_rate"] == 0.1
    assert job.hyperparameters["use_bias"] is False and job.hyperparameters["normalize_data"] is True
    assert job.hyperparameters["optimizer"] == "sgd" and job.validation_fraction == 0.3
    assert job.max_runtime_seconds is None and enqueued == [str(job.id)]


def test_it_re_renders_the_form_with_errors_next_to_the_fields(world):
    dataset = dataset_from_csv(world.project)
    response = signed_in(world.member).post(page(world, "new/"), {
        "algorithm": "linear-learner", "dataset": str(dataset.id), "target": "missing",
        "validation_fraction": "0.9", "hp_epochs": "0", "hp_mini_batch_size": "12",
    })
    body = response.content.decode()
    assert response.status_code == 400
    assert "epochs must be between 1 and 1000 (got &#x27;0&#x27;)" in body
    assert "validation_fraction must be between 0 and 0.5" in body and "is not a column" in body
    assert 'name="hp_mini_batch_size" value="12"' in body  # what the user typed is kept
    assert not TrainingJob.objects.exists()


def test_it_serves_the_htmx_partials(world):
    dataset = dataset_from_csv(world.project)
    client = signed_in(world.member)
    hps = client.get(page(world, "new/hyperparameters/?algorithm=linear-learner"), HTTP_HX_REQUEST="true")
    assert hps.status_code == 200 and 'id="hyperparameters"' in hps.content.decode()
    assert "<html" not in hps.content.decode()
    target = client.get(page(world, f"new/target/?dataset={dataset.id}")).content.decode()
    for column in ("x1", "x2", "x3", "price"):
        assert f'<option value="{column}"' in target
    assert "Choose a dataset first" in client.get(page(world, "new/target/?dataset=")).content.decode()


def test_it_shows_a_completed_job_with_its_model_and_charts(world, enqueued):
    job = run_job(new_job(world, name="houses-1"))
    response = signed_in(world.viewer).get(page(world, f"{job.id}/"))
    body = response.content.decode()
    assert response.status_code == 200
    assert 'data-testid="job-status">completed</span>' in body
    assert f'/projects/{world.project.id}/models/{job.model.id}/' in body
    assert f'data-ws="/ws/training-jobs/{job.id}/"' in body and "plotly/plotly.min.js" in body
    assert "studio/training.js" in body and "validation:r2" in body and "learning_rate" in body
    assert 'data-testid="stop-job"' not in body


def test_it_shows_the_failure_reason_in_words(world, enqueued):
    job = new_job(world)
    TrainingJob.objects.filter(id=job.id).update(status="failed", failure_reason="column 'x1' has non-numeric values")
    body = signed_in(world.viewer).get(page(world, f"{job.id}/")).content.decode()
    assert '<div class="alert error" data-testid="failure-reason"><b>Training failed.</b> column &#x27;x1&#x27;' in body


def test_it_offers_stop_to_members_only_and_stops_with_htmx(world, enqueued):
    job = new_job(world)
    assert 'data-testid="stop-job"' not in signed_in(world.viewer).get(page(world, f"{job.id}/")).content.decode()
    client = signed_in(world.member)
    assert 'data-testid="stop-job"' in client.get(page(world, f"{job.id}/")).content.decode()
    response = client.post(page(world, f"{job.id}/stop/"), HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and 'id="job-panel"' in response.content.decode()
    assert "Stopped by mark" in response.content.decode()
    again = client.post(page(world, f"{job.id}/stop/"))
    assert again.status_code == 302  # without htmx: back to the page with a message
    assert signed_in(world.viewer).post(page(world, f"{job.id}/stop/")).status_code == 403


def test_it_serves_the_panel_partial(world, enqueued):
    job = new_job(world)
    response = signed_in(world.viewer).get(page(world, f"{job.id}/panel/"))
    assert response.status_code == 200 and "Waiting for a training worker" in response.content.decode()


def test_it_hides_every_training_page_from_outsiders(world, enqueued):
    job = new_job(world)
    client = signed_in(world.outsider)
    for suffix in ("", "new/", "new/hyperparameters/", "new/target/", f"{job.id}/", f"{job.id}/panel/"):
        assert client.get(page(world, suffix)).status_code == 404, suffix
    assert client.post(page(world, f"{job.id}/stop/")).status_code == 404
    assert client.post(page(world, "new/"), {"algorithm": "linear-learner"}).status_code == 404
