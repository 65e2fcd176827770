"""Async invocations REST API: streamed submit (never request.body), auth by token or invoke key, 413,
tenancy, status and output."""

from __future__ import annotations

import io
import json

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.http import HttpRequest

from studio.core.storage import storage_open
from studio.endpoints import async_invocations as runner
from studio.endpoints import services as endpoint_services
from studio.endpoints.models import AsyncInvocation, Endpoint, EndpointVariant
from tests.conftest import api_client, csv_bytes
from tests.endpoints.test_async_runner import async_endpoint
from tests.endpoints.test_transform_runner import numeric_rows, registry_model
from tests.training.factories import dataset_from_csv

pytestmark = pytest.mark.django_db
MB = 1024 * 1024


@pytest.fixture
def sent(monkeypatch, django_capture_on_commit_callbacks) -> list[str]:
    ids: list[str] = []
    monkeypatch.setattr(runner, "async_invocation_enqueue", lambda *, invocation_id: ids.append(str(invocation_id)))
    return ids


@pytest.fixture
def endpoint(world, models) -> Endpoint:
    return async_endpoint(world, registry_model(world, models, "regressor"))


def submit_url(endpoint) -> str:
    return f"/api/v1/endpoints/{endpoint.id}/async-invocations"


def post(client, endpoint, body: bytes, content_type: str = "application/jsonlines"):
    return client.generic("POST", submit_url(endpoint), body, content_type=content_type)


def test_it_streams_a_body_larger_than_django_would_read_into_memory(world, endpoint, sent, settings, monkeypatch,
                                                                     django_capture_on_commit_callbacks):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1 * MB
    monkeypatch.setattr(HttpRequest, "body", property(lambda self: pytest.fail("the view read request.body")))
    blocks: list[int] = []
    real_read = runner._LimitedReader.read
    monkeypatch.setattr(runner._LimitedReader, "read", lambda self, size=-1: (
        lambda block: blocks.append(len(block)) or block)(real_read(self, size)))
    line = json.dumps([1.25, -2.5, 3.75]).encode() + b"\n"
    body = line * (5 * MB // len(line) + 1)
    with django_capture_on_commit_callbacks(execute=True):
        response = post(api_client(world.member), endpoint, body)
    assert response.status_code == 202, response.json()
    data = response.json()
    invocation = AsyncInvocation.objects.get()
    assert data["id"] == str(invocation.id) and data["status"] == "queued"
    assert data["status_url"] == f"http://testserver/api/v1/async-invocations/{invocation.id}"
    assert data["output_url"] == data["status_url"] + "/output"
    assert invocation.size_bytes == len(body) and invocation.content_type == "application/jsonlines"
    assert invocation.input_file == (f"projects/{world.project.id}/endpoints/{endpoint.id}/async/"
                                     f"{invocation.id}/input")
    with storage_open(invocation.input_file) as fh:
        assert fh.read() == body
    assert max(blocks) <= runner.READ_CHUNK and len(blocks) > 5  # read in chunks, never whole
    assert sent == [str(invocation.id)] and invocation.created_by == world.member


def test_it_answers_413_above_the_endpoints_limit_and_stores_nothing(world, models, sent, settings):
    endpoint = async_endpoint(world, registry_model(world, models, "regressor"), max_payload_mb=1)
    client = api_client(world.member)
    response = post(client, endpoint, b"[1,2,3]\n" * (MB // 8 + 1))
    assert response.status_code == 413 and "1 MB" in response.json()["detail"]
    settings.STUDIO_ASYNC_MAX_PAYLOAD_MB = 0
    assert post(client, endpoint, b"[1,2,3]\n").status_code == 413
    assert not AsyncInvocation.objects.exists() and sent == []
    assert not default_storage.exists(f"projects/{world.project.id}/endpoints/{endpoint.id}/async")


def test_a_body_longer_than_announced_is_cut_off_while_streaming():
    reader = runner._LimitedReader(io.BytesIO(b"x" * (2 * MB)), limit=MB)
    with pytest.raises(runner.PayloadTooLarge):
        while reader.read(runner.READ_CHUNK):
            pass
    assert reader.size <= MB + runner.READ_CHUNK


def test_it_takes_an_input_dataset_of_the_endpoints_project(world, endpoint, sent):
    dataset = dataset_from_csv(world.project, name="numbers",
                               content=csv_bytes(numeric_rows(5), ["id", "f1", "f2", "f3", "y"]))
    client = api_client(world.member)
    response = post(client, endpoint, json.dumps({"input_dataset": str(dataset.id)}).encode(), "application/json")
    assert response.status_code == 202
    invocation = AsyncInvocation.objects.get()
    assert invocation.input_dataset == dataset and invocation.input_file == "" and invocation.content_type == "text/csv"
    theirs = dataset_from_csv(world.other_project, name="theirs")
    response = post(client, endpoint, json.dumps({"input_dataset": str(theirs.id)}).encode(), "application/json")
    assert response.status_code == 400 and "No dataset" in response.json()["errors"]["input_dataset"][0]
    small = post(client, endpoint, json.dumps({"instances": [[1, 2, 3]]}).encode(), "application/json")
    assert small.status_code == 202
    with storage_open(AsyncInvocation.objects.get(id=small.json()["id"]).input_file) as fh:
        assert json.loads(fh.read()) == {"instances": [[1, 2, 3]]}


def test_it_refuses_an_empty_body_an_unknown_type_and_a_realtime_endpoint(world, endpoint, models, sent):
    client = api_client(world.member)
    response = post(client, endpoint, b"")
    assert response.status_code == 400 and "empty" in response.json()["errors"]["body"][0]
    response = post(client, endpoint, b"<xml/>", "application/xml")
    assert response.status_code == 400 and "text/csv" in response.json()["errors"]["Content-Type"][0]
    realtime = Endpoint.objects.create(project=world.project, name="rt", type="realtime", status="in_service")
    EndpointVariant.objects.create(endpoint=realtime, name="a", model=endpoint.variants.get().model)
    response = post(client, realtime, b"[1,2,3]\n")
    assert response.status_code == 400
    assert f"/api/v1/endpoints/{realtime.id}/invocations" in response.json()["errors"]["endpoint"][0]
    assert not AsyncInvocation.objects.exists()


def test_it_accepts_an_invoke_key_of_this_endpoint_only(world, endpoint, models, sent):
    key, secret = endpoint_services.invoke_key_create(user=world.member, endpoint=endpoint)
    other = async_endpoint(world, endpoint.variants.get().model)
    client = api_client()
    client.credentials(HTTP_X_API_KEY=secret)
    response = post(client, endpoint, b"[1,2,3]\n")
    assert response.status_code == 202
    invocation_id = response.json()["id"]
    assert client.get(f"/api/v1/async-invocations/{invocation_id}").json()["status"] == "queued"
    assert post(client, other, b"[1,2,3]\n").status_code == 404
    theirs = AsyncInvocation.objects.create(endpoint=other)
    assert client.get(f"/api/v1/async-invocations/{theirs.id}").status_code == 404
    key.refresh_from_db()
    assert key.last_used_at is not None and AsyncInvocation.objects.get(id=invocation_id).created_by is None
    endpoint_services.invoke_key_revoke(user=world.member, key=key)
    assert post(client, endpoint, b"[1,2,3]\n").status_code == 401
    client.credentials(HTTP_X_API_KEY="sk-ep-nonsense")
    assert post(client, endpoint, b"[1,2,3]\n").status_code == 401
    assert post(api_client(), endpoint, b"[1,2,3]\n").status_code == 401


def test_it_answers_403_to_a_viewer_and_404_to_an_outsider(world, endpoint, sent):
    assert post(api_client(world.viewer), endpoint, b"[1,2,3]\n").status_code == 403
    assert post(api_client(world.outsider), endpoint, b"[1,2,3]\n").status_code == 404
    invocation = AsyncInvocation.objects.create(endpoint=endpoint)
    assert api_client(world.viewer).get(f"/api/v1/async-invocations/{invocation.id}").status_code == 200
    assert api_client(world.outsider).get(f"/api/v1/async-invocations/{invocation.id}").status_code == 404
    assert api_client(world.outsider).get(f"/api/v1/async-invocations/{invocation.id}/output").status_code == 404
    assert not AsyncInvocation.objects.exclude(id=invocation.id).exists()


def test_the_output_is_404_until_completed_409_when_failed_then_streamed(world, endpoint):
    client = api_client(world.viewer)
    invocation = AsyncInvocation.objects.create(endpoint=endpoint, status="running")
    url = f"/api/v1/async-invocations/{invocation.id}"
    assert client.get(url + "/output").status_code == 404
    detail = client.get(url).json()
    assert detail["status"] == "running" and detail["output_url"].endswith(url + "/output")
    assert {"id", "endpoint", "status", "output_url", "failure_reason", "records", "size_bytes", "created_at",
            "started_at", "ended_at"} <= set(detail)
    name = runner.input_prefix(endpoint=endpoint, invocation_id=invocation.id) + "output.jsonl"
    stored = default_storage.save(name, ContentFile(b'{"score":1.5}\n{"score":2.5}\n'))
    AsyncInvocation.objects.filter(id=invocation.id).update(status="completed", output_file=stored, records=2)
    response = client.get(url + "/output")
    assert response.status_code == 200 and response["Content-Type"] == "application/jsonlines"
    assert b"".join(response.streaming_content) == b'{"score":1.5}\n{"score":2.5}\n'
    AsyncInvocation.objects.filter(id=invocation.id).update(status="failed", failure_reason="records 1-2: bad")
    response = client.get(url + "/output")
    assert response.status_code == 409 and "records 1-2: bad" in response.json()["detail"]
