"""Text and image jobs: target rules of the service, and the runner's path without tabular preprocessing."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from algorithms import ImageClassification
from studio.datasets import services as dataset_services
from studio.registry.services import model_load_bundle
from studio.training import plots, services
from studio.training.models import JobStatus
from tests.conftest import PASSWORD
from tests.training.factories import (
    DETECTION_SIZE,
    IMAGE_SIZE,
    colour_images_zip,
    documents_jsonl,
    reviews_jsonl,
    run_job,
    squares_detection_zip,
)

pytestmark = pytest.mark.django_db


def media_dataset(world, filename: str, content: bytes, kind: str, **kwargs):
    return dataset_services.dataset_upload(user=world.member, project=world.project, name=filename.split(".")[0],
                                           kind=kind, upload=SimpleUploadedFile(filename, content), **kwargs)


def test_image_jobs_take_their_labels_from_the_folders(world):
    dataset = media_dataset(world, "shapes.zip", colour_images_zip(per_class=4), "image", image_size=IMAGE_SIZE)
    cleaned = services.training_job_validate(project=world.project, algorithm="image-classification",
                                             dataset=dataset, target="label")
    assert cleaned["target"] == ""
    with pytest.raises(ValidationError) as exc:
        services.training_job_validate(project=world.project, algorithm="image-classification", dataset=dataset,
                                       target="colour")
    assert "class folders" in exc.value.message_dict["target"][0]


def test_tabular_algorithms_refuse_image_datasets_in_words(world):
    dataset = media_dataset(world, "shapes.zip", colour_images_zip(per_class=4), "image", image_size=IMAGE_SIZE)
    with pytest.raises(ValidationError) as exc:
        services.training_job_validate(project=world.project, algorithm="linear-learner", dataset=dataset)
    assert "trains on tabular datasets" in exc.value.message_dict["dataset"][0]


def test_it_trains_an_image_classifier_and_saves_it_without_preprocessing(world, enqueued):
    dataset = media_dataset(world, "shapes.zip", colour_images_zip(), "image", image_size=IMAGE_SIZE)
    job = services.training_job_create(
        user=world.member, project=world.project, algorithm="image-classification", dataset=dataset,
        validation_fraction=0.25,
        hyperparameters={"epochs": 2, "width": 8, "num_layers": 1, "mini_batch_size": 16},
    )
    job = run_job(job)
    log = "\n".join(job.log_lines.order_by("seq").values_list("line", flat=True))
    assert job.status == JobStatus.COMPLETED, (job.failure_reason, log)
    assert f"Loaded 48 images {IMAGE_SIZE}×{IMAGE_SIZE} from dataset 'shapes'" in log  # noqa: RUF001
    assert "Training image-classification on 36 images, validating on 12." in log
    assert {"train:accuracy", "validation:accuracy"} <= set(job.final_metrics)
    assert {p["id"] for p in job.result_plots} >= {"confusion_matrix", "roc", "misclassified"}
    assert "Drew 3 result plot(s) on validation rows: confusion matrix, roc curve, misclassified examples." in log

    model = job.model
    assert model.feature_names == [] and not any(name.endswith("preprocessing.json") for name in model.artifact_files)
    loaded = model_load_bundle(model=model)
    assert loaded.preprocessor is None and loaded.input_names == []
    images = np.zeros((3, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    assert len(loaded.predict(images)) == 3

    # The model and job pages cope with a model that has no tabular features.
    client = Client()
    assert client.login(username=world.member.username, password=PASSWORD)
    assert client.get(f"/projects/{world.project.id}/models/{model.id}/").status_code == 200
    assert client.get(f"/projects/{world.project.id}/training/{job.id}/").status_code == 200


def test_prediction_plots_draw_a_confusion_matrix_from_images():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 255, size=(20, 8, 8, 3), dtype=np.uint8)
    y = np.array(["a", "b"] * 10)
    model = ImageClassification(epochs=1, width=4, num_layers=1, mini_batch_size=10).fit(X, y)
    drawn = plots.prediction_plots(model, X, y, channel="validation")
    assert [p["id"] for p in drawn][:1] == ["confusion_matrix"]
    assert plots.prediction_plots(model, X, None) == []


def test_text_jobs_use_the_label_column(world):
    dataset = media_dataset(world, "reviews.jsonl", reviews_jsonl(n=20), "text")
    with pytest.raises(ValidationError) as exc:
        services.training_job_validate(project=world.project, algorithm="linear-learner", dataset=dataset)
    assert "trains on tabular datasets" in exc.value.message_dict["dataset"][0]


def test_it_trains_word2vec_on_the_texts_alone(world, enqueued):
    dataset = media_dataset(world, "reviews.jsonl", reviews_jsonl(n=40), "text")
    job = services.training_job_create(user=world.member, project=world.project, algorithm="word2vec",
                                       dataset=dataset, hyperparameters={"epochs": 2, "vector_dim": 8})
    assert job.target == ""
    job = run_job(job)
    log = "\n".join(job.log_lines.order_by("seq").values_list("line", flat=True))
    assert job.status == JobStatus.COMPLETED, (job.failure_reason, log)
    assert "Loaded 40 texts from dataset 'reviews'." in log
    assert "Training word2vec on 32 texts, validating on 8." in log
    assert job.model.feature_names == [] and "train:loss" in job.final_metrics
    drawn = {p["id"]: p for p in job.result_plots}
    assert list(drawn) == ["embedding_map", "nearest_words"]
    assert set(drawn["embedding_map"]["figure"]["data"][0]["text"]) <= set(loaded_vocabulary(job))
    client = Client()
    assert client.login(username=world.member.username, password=PASSWORD)
    body = client.get(f"/projects/{world.project.id}/training/{job.id}/").content.decode()
    assert "Word vectors on two principal components" in body and 'data-testid="result-table"' in body
    assert 'data-testid="nearest-words-form"' in body

    # Any word can be asked about, by a viewer too (it only reads the model).
    word = loaded_vocabulary(job)[0]
    viewer = Client()
    assert viewer.login(username=world.viewer.username, password=PASSWORD)
    url = f"/projects/{world.project.id}/training/{job.id}/nearest-words/"
    answer = viewer.get(url, {"word": word})
    assert answer.status_code == 200 and b'data-testid="nearest-words-table"' in answer.content
    unknown = viewer.get(url, {"word": "zzzunknownzzz"}).content.decode()
    assert "is not in the model&#x27;s vocabulary" in unknown
    assert viewer.get(url, {"word": ""}).status_code == 400
    outsider = Client()
    assert outsider.login(username=world.outsider.username, password=PASSWORD)
    assert outsider.get(url, {"word": word}).status_code == 404


def test_it_answers_nearest_words_only_for_word2vec_jobs(world, enqueued):
    from tests.training.factories import new_job

    job = run_job(new_job(world, hyperparameters={"epochs": 1}))
    client = Client()
    assert client.login(username=world.member.username, password=PASSWORD)
    response = client.get(f"/projects/{world.project.id}/training/{job.id}/nearest-words/", {"word": "x"})
    assert response.status_code == 404


def loaded_vocabulary(job) -> list[str]:
    return model_load_bundle(model=job.model).estimator.vocabulary_.tolist()


def test_a_classifier_on_a_detection_dataset_fails_in_words(world, enqueued):
    from tests.training.factories import DETECTION_SIZE, squares_detection_zip

    dataset = media_dataset(world, "squares.zip", squares_detection_zip(n=6), "image", image_size=DETECTION_SIZE)
    job = run_job(services.training_job_create(user=world.member, project=world.project,
                                               algorithm="image-classification", dataset=dataset))
    assert job.status == JobStatus.FAILED and "upload a ZIP of class folders" in job.failure_reason


def test_detection_and_summarization_jobs_store_their_result_entries(world, enqueued):
    squares = media_dataset(world, "squares.zip", squares_detection_zip(), "image", image_size=DETECTION_SIZE)
    job = run_job(services.training_job_create(
        user=world.member, project=world.project, algorithm="object-detection", dataset=squares,
        validation_fraction=0.25, hyperparameters={"epochs": 2, "mini_batch_size": 8, "base_filters": 4}))
    assert job.status == JobStatus.COMPLETED, job.failure_reason
    drawn = {p["id"]: p for p in job.result_plots}
    assert list(drawn) == ["detections", "class_ap"]
    assert len(drawn["detections"]["images"]) == 6  # a quarter of 24 images held out
    assert all(image["src"].startswith("data:image/png;base64,") for image in drawn["detections"]["images"])

    documents = media_dataset(world, "documents.jsonl", documents_jsonl(), "text")
    job = run_job(services.training_job_create(
        user=world.member, project=world.project, algorithm="summarization", dataset=documents, target="label",
        validation_fraction=0.25))
    assert job.status == JobStatus.COMPLETED, job.failure_reason
    table = {p["id"]: p for p in job.result_plots}["summaries"]
    assert table["columns"] == ["document", "summary", "ROUGE-1"] and len(table["rows"]) == 3

    client = Client()
    assert client.login(username=world.member.username, password=PASSWORD)
    body = client.get(f"/projects/{world.project.id}/training/{job.id}/").content.decode()
    assert "Sample summaries" in body
