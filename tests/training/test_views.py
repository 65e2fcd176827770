from __future__ import annotations

import re

import numpy as np
import pytest
from django.test import Client

from algorithms import LinearLearner, UnknownAlgorithm, get_algorithm
from studio.training import plots
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


def test_it_offers_the_missing_values_strategies_and_posts_the_chosen_one(world, enqueued):
    dataset = dataset_from_csv(world.project)
    client = signed_in(world.member)
    body = client.get(page(world, "new/")).content.decode()
    for value in ("mean", "median", "zero", "drop_rows", "fail"):
        assert f'<option value="{value}"' in body
    assert '<option value="mean" selected>' in body
    response = client.post(page(world, "new/"), {
        "algorithm": "linear-learner", "name": "dropping", "dataset": str(dataset.id), "target": "price",
        "validation_fraction": "0.2", "missing_values": "drop_rows",
    })
    assert response.status_code == 302
    job = TrainingJob.objects.get(name="dropping")
    assert job.missing_values == "drop_rows"
    shown = signed_in(world.viewer).get(page(world, f"{job.id}/")).content.decode()
    assert "Drop rows with a missing value" in shown and "(drop_rows)" in shown
    bad = client.post(page(world, "new/"), {"algorithm": "linear-learner", "dataset": str(dataset.id),
                                            "target": "price", "missing_values": "guess"})
    assert bad.status_code == 400 and "missing_values must be one of" in bad.content.decode()


def test_it_preselects_the_algorithm_from_the_catalog_link(world):
    dataset_from_csv(world.project)
    body = signed_in(world.member).get(page(world, "new/?algorithm=random-cut-forest")).content.decode()
    assert '<option value="random-cut-forest" selected>' in body
    assert 'name="hp_num_trees"' in body and 'name="hp_epochs"' not in body
    unknown = signed_in(world.member).get(page(world, "new/?algorithm=nope")).content.decode()
    assert '<option value="linear-learner" selected>' in unknown


def test_it_shapes_the_target_field_by_what_the_algorithm_needs(world):
    dataset = dataset_from_csv(world.project, target="price")
    client = signed_in(world.member)
    required = client.get(page(world, f"new/target/?dataset={dataset.id}&algorithm=linear-learner")).content.decode()
    assert '<option value="price" selected>' in required and "(optional)" not in required
    optional = client.get(page(world, f"new/target/?dataset={dataset.id}&algorithm=random-cut-forest")).content.decode()
    assert "(optional)" in optional and '<option value="price" selected>' not in optional
    assert "used only to report AUC" in optional and "except 'price' is a feature" in optional
    # Changing the algorithm swaps its target field too (out of band), keeping the chosen dataset.
    swap = client.get(page(world, f"new/hyperparameters/?algorithm=random-cut-forest&dataset={dataset.id}"
                                  "&target=price"))
    text = swap.content.decode()
    assert 'id="hyperparameters"' in text and 'id="target-field" hx-swap-oob="true"' in text and "(optional)" in text
    assert '<option value="price" selected>' not in text  # the regression target is no anomaly label
    back = client.get(page(world, f"new/hyperparameters/?algorithm=linear-learner&dataset={dataset.id}&target=x1"))
    assert '<option value="x1" selected>' in back.content.decode()


def test_it_hides_the_target_for_an_algorithm_that_takes_none(world):
    try:
        get_algorithm("kmeans")
    except UnknownAlgorithm:
        pytest.skip("kmeans is not registered yet")
    dataset = dataset_from_csv(world.project, target="price")
    body = signed_in(world.member).get(page(world, f"new/?algorithm=kmeans&dataset={dataset.id}")).content.decode()
    assert 'data-testid="no-target"' in body and 'name="target" value=""' in body and 'id="id_target"' not in body
    assert "takes no target" in body and "'price', the dataset's target column, is left out" in body


def test_it_renders_the_result_plots_of_a_completed_job_in_the_panel(world, enqueued):
    job = run_job(new_job(world, name="houses-plots"))
    for suffix in (f"{job.id}/", f"{job.id}/panel/"):  # the panel is what the page swaps in when the job ends
        body = signed_in(world.viewer).get(page(world, suffix)).content.decode()
        assert 'data-testid="result-plots"' in body and "Predicted vs actual" in body
        assert body.count('data-testid="result-plot"') == 2
        assert '<script id="result-plot-0-data" type="application/json">{"data": [' in body
        assert 'data-result-figure="result-plot-1-data"' in body


def test_it_renders_a_result_table_as_html(world, enqueued):
    job = new_job(world)
    TrainingJob.objects.filter(id=job.id).update(status="completed", result_plots=[
        {"id": "neighbors", "title": "Nearest neighbors of a sample row", "kind": "table",
         "columns": ["neighbor", "training row", "distance", "label"], "rows": [[1, 17, 0.25, "<b>yes</b>"]],
         "note": "The 1 training rows nearest to validation row 3."},
    ])
    body = signed_in(world.viewer).get(page(world, f"{job.id}/panel/")).content.decode()
    assert 'data-testid="result-table"' in body and "<td class=\"num\">17</td>" in body
    assert "&lt;b&gt;yes&lt;/b&gt;" in body  # labels come from user data: escaped


def test_it_renders_an_image_grid_of_inline_pngs_only(world, enqueued):
    job = new_job(world)
    uri = plots.png_data_uri(np.zeros((4, 4, 3), dtype=np.uint8))
    TrainingJob.objects.filter(id=job.id).update(status="completed", result_plots=[
        {"id": "misclassified", "title": "Misclassified examples", "kind": "images",
         "images": [{"src": uri, "caption": "true <i>a</i> · predicted b (90%)"},
                    {"src": "https://elsewhere.example/x.png", "caption": "outside"}],
         "note": "all 4 validation rows"},
    ])
    body = signed_in(world.viewer).get(page(world, f"{job.id}/panel/")).content.decode()
    assert 'data-testid="result-images"' in body and f'src="{uri}"' in body
    assert "true &lt;i&gt;a&lt;/i&gt; · predicted b (90%)" in body
    assert "elsewhere.example" not in body and "outside" not in body


def test_it_leaves_data_bound_hyperparameters_empty_with_their_rule(world):
    try:
        get_algorithm("pca")
    except UnknownAlgorithm:
        pytest.skip("pca is not registered yet")
    dataset_from_csv(world.project)
    body = signed_in(world.member).get(page(world, "new/?algorithm=pca")).content.decode()
    assert re.search(r'name="hp_num_components" value="" step="1" min="1" max="\d+" placeholder="10"', body)
    assert "Empty: 10, or the number of feature columns when the dataset has fewer." in body


def _media_dataset(world, filename: str, content: bytes, kind: str):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from studio.datasets import services as dataset_services

    return dataset_services.dataset_upload(user=world.member, project=world.project, name=filename.split(".")[0],
                                           kind=kind, upload=SimpleUploadedFile(filename, content))


def test_it_creates_an_image_classification_job_without_a_target_column(world, enqueued,
                                                                        django_capture_on_commit_callbacks):
    from tests.training.factories import colour_images_zip

    dataset = _media_dataset(world, "shapes.zip", colour_images_zip(per_class=4), "image")
    client = signed_in(world.member)
    form = client.get(page(world, f"new/?algorithm=image-classification&dataset={dataset.id}")).content.decode()
    assert 'data-testid="image-labels"' in form and 'id="id_target"' not in form
    partial = client.get(page(world, f"new/target/?algorithm=image-classification&dataset={dataset.id}"))
    assert 'name="target" value=""' in partial.content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(page(world, "new/"), {
            "algorithm": "image-classification", "name": "images-from-form", "dataset": str(dataset.id),
            "target": "", "validation_fraction": "0.25", "hp_epochs": "2", "hp_width": "8",
        })
    job = TrainingJob.objects.get(name="images-from-form")
    assert response.status_code == 302 and job.target == "" and job.hyperparameters["width"] == 8
    assert enqueued == [str(job.id)]

    refused = client.post(page(world, "new/"), {
        "algorithm": "image-classification", "dataset": str(dataset.id), "target": "price",
    })
    assert refused.status_code == 400 and "class folders" in refused.content.decode()


def test_it_preselects_the_label_column_for_a_text_dataset(world):
    from tests.training.factories import reviews_jsonl

    dataset = _media_dataset(world, "reviews.jsonl", reviews_jsonl(n=20), "text")
    body = signed_in(world.member).get(page(world, f"new/target/?algorithm=linear-learner&dataset={dataset.id}"))
    assert 'name="target" value="label"' in body.content.decode()
