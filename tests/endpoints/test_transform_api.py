"""Batch transform REST API: create (201, 400 naming each field, 403, 404, 409), list, detail and stop."""

from __future__ import annotations

import pytest

from studio.endpoints import transforms
from studio.endpoints.models import TransformJob
from tests.conftest import api_client, csv_bytes
from tests.endpoints.test_transform_runner import numeric_rows, registry_model
from tests.training.factories import dataset_from_csv

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch, django_capture_on_commit_callbacks) -> list[tuple]:
    calls: list[tuple] = []
    monkeypatch.setattr(transforms, "transform_task_send", lambda *args, **kw: calls.append(args))
    return calls


@pytest.fixture
def inputs(world, models):
    dataset = dataset_from_csv(world.project, name="numbers",
                               content=csv_bytes(numeric_rows(10), ["id", "f1", "f2", "f3", "y"]))
    return registry_model(world, models, "regressor"), dataset


def url(world, *rest: str) -> str:
    return "/".join([f"/api/v1/projects/{world.project.id}/transform-jobs", *rest])


def test_it_creates_a_pending_job_and_hands_it_to_a_worker(world, inputs, sent, django_capture_on_commit_callbacks):
    model, dataset = inputs
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client(world.member).post(url(world), {"model": str(model.id),
                                                              "input_dataset": str(dataset.id)}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "pending" and body["name"].startswith("transform-")
    assert (body["split_type"], body["batch_strategy"], body["max_payload_mb"], body["max_concurrent"],
            body["join_source"]) == ("line", "multi_record", 6, 2, "none")
    assert body["model"] == str(model.id) and body["input_dataset"] == str(dataset.id)
    assert body["output_dataset"] is None and body["progress"] == 0.0 and body["created_by"] == "mark"
    assert sent == [("plan", TransformJob.objects.get().id)]

    listed = api_client(world.viewer).get(url(world)).json()
    assert [j["id"] for j in listed["results"]] == [body["id"]]
    assert api_client(world.viewer).get(url(world, body["id"])).json()["name"] == body["name"]
    assert api_client(world.viewer).get(url(world) + "?status=completed").json()["count"] == 0


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"split_type": "words"}, "split_type", "must be one of line, none"),
    ({"batch_strategy": "all"}, "batch_strategy", "single_record, multi_record"),
    ({"max_payload_mb": 0}, "max_payload_mb", "from 1 to 100"),
    ({"max_payload_mb": 101}, "max_payload_mb", "from 1 to 100"),
    ({"max_payload_mb": "six"}, "max_payload_mb", "whole number"),
    ({"max_concurrent": 33}, "max_concurrent", "from 1 to 32"),
    ({"join_source": "output"}, "join_source", "none, input"),
    ({"input_filter": "$[x]"}, "input_filter", "not a column position"),
    ({"input_filter": "$[0]"}, "input_filter", "reads column(s) f1, f2, f3, which the input filter leaves out"),
    ({"input_filter": "f1,nope"}, "input_filter", "no column 'nope'"),
    ({"output_filter": "$[1:2:3]"}, "output_filter", "not a slice"),
    ({"name": "bad name!"}, "name", "letters, digits"),
])
def test_it_refuses_bad_fields_naming_them(world, inputs, sent, change, field, message):
    model, dataset = inputs
    response = api_client(world.member).post(url(world), {"model": str(model.id), "input_dataset": str(dataset.id),
                                                          **change}, format="json")
    assert response.status_code == 400
    assert message in " ".join(response.json()["errors"][field])
    assert not TransformJob.objects.exists()


def test_it_refuses_a_model_or_dataset_of_another_project_and_the_wrong_kind(world, inputs, sent, models):
    model, dataset = inputs
    theirs = dataset_from_csv(world.other_project, name="theirs")
    client = api_client(world.member)
    response = client.post(url(world), {"model": str(model.id), "input_dataset": str(theirs.id)}, format="json")
    assert response.status_code == 400 and "No dataset" in response.json()["errors"]["input_dataset"][0]
    response = client.post(url(world), {"model": "5d0c5ad4-1c84-4c55-9d0a-3d29a7a1e0a1",
                                        "input_dataset": str(dataset.id)}, format="json")
    assert response.status_code == 400 and "No model" in response.json()["errors"]["model"][0]
    lacking = dataset_from_csv(world.project, name="lacking", content=csv_bytes([[1, 2]], ["f1", "f2"]))
    response = client.post(url(world), {"model": str(model.id), "input_dataset": str(lacking.id)}, format="json")
    assert response.status_code == 400
    assert "reads column(s) f3, which the input lacks" in response.json()["errors"]["input_dataset"][0]
    text_model = registry_model(world, models, "text-classification")
    response = client.post(url(world), {"model": str(text_model.id), "input_dataset": str(dataset.id)}, format="json")
    assert response.status_code == 400 and "takes text data" in response.json()["errors"]["input_dataset"][0]
    image_model = registry_model(world, models, "image-classification")
    response = client.post(url(world), {"model": str(image_model.id), "input_dataset": str(dataset.id)},
                           format="json")
    assert response.status_code == 400 and "takes images" in response.json()["errors"]["model"][0]


def test_split_none_refuses_a_dataset_over_the_payload_limit(world, inputs, sent):
    model, dataset = inputs
    dataset.size_bytes = 2 * 1024 * 1024
    dataset.save()
    response = api_client(world.member).post(url(world), {"model": str(model.id), "input_dataset": str(dataset.id),
                                                          "split_type": "none", "max_payload_mb": 1}, format="json")
    assert response.status_code == 400 and "use 'line'" in response.json()["errors"]["split_type"][0]


def test_it_answers_403_to_a_viewer_404_to_an_outsider_and_409_to_a_taken_name(world, inputs, sent):
    model, dataset = inputs
    body = {"name": "nightly", "model": str(model.id), "input_dataset": str(dataset.id)}
    assert api_client(world.viewer).post(url(world), body, format="json").status_code == 403
    assert api_client(world.outsider).post(url(world), body, format="json").status_code == 404
    assert api_client(world.member).post(url(world), body, format="json").status_code == 201
    assert api_client(world.member).post(url(world), body, format="json").status_code == 409
    job = TransformJob.objects.get()
    assert api_client(world.outsider).get(url(world, str(job.id))).status_code == 404
    assert api_client(world.outsider).post(url(world, str(job.id), "stop")).status_code == 404
    assert api_client(world.viewer).post(url(world, str(job.id), "stop")).status_code == 403


def test_stop_answers_202_then_409(world, inputs, sent):
    model, dataset = inputs
    job = transforms.transform_job_create(user=world.member, project=world.project, model=model.id,
                                          input_dataset=dataset.id)
    response = api_client(world.member).post(url(world, str(job.id), "stop"))
    assert response.status_code == 202 and response.json()["status"] == "stopped"
    assert response.json()["status_message"] == "Stopped by mark"
    response = api_client(world.member).post(url(world, str(job.id), "stop"))
    assert response.status_code == 409 and "already finished (stopped)" in response.json()["detail"]


def test_a_finished_job_keeps_its_record_after_its_model_goes(world, inputs, sent):
    model, dataset = inputs
    job = transforms.transform_job_create(user=world.member, project=world.project, model=model.id,
                                          input_dataset=dataset.id)
    TransformJob.objects.filter(id=job.id).update(status="completed", model=None)
    body = api_client(world.viewer).get(url(world, str(job.id))).json()
    assert body["model"] is None and body["status"] == "completed"
