"""Async invocations processed against a real HTTP server that answers /invocations like an instance.

The server in this file runs the model's own Predictor, so the stored output is compared with the
Predictor's answers for the same records, in order.
"""

from __future__ import annotations

import csv
import io
import json
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import redis
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from studio.core.storage import storage_open
from studio.endpoints import async_invocations as runner
from studio.endpoints import services as endpoint_services
from studio.endpoints.models import AsyncInvocation, AsyncStatus, Endpoint, EndpointVariant
from studio.endpoints.predictions import PayloadError, Predictor
from tests.conftest import csv_bytes
from tests.endpoints.test_transform_runner import numeric_rows, registry_model
from tests.training.factories import dataset_from_csv

pytestmark = pytest.mark.django_db


class FakeInstance:
    """A threaded HTTP server answering POST /invocations with a Predictor, as an endpoint instance does."""

    def __init__(self, predictor: Predictor, *, fail_with: int | None = None) -> None:
        self.predictor = predictor
        self.fail_with = fail_with
        self.requests: list[tuple[str, int]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.requests.append((self.headers.get("Content-Type"), len(body)))
                if outer.fail_with and len(outer.requests) <= outer.fail_with:
                    return self._send(503, {"detail": "busy"})
                try:
                    out = outer.predictor.invoke(body, self.headers.get("Content-Type", ""), variant="blue")
                except PayloadError as exc:
                    return self._send(400, {"detail": str(exc)})
                self._send(200, json.loads(out))

            def _send(self, status, document):
                data = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def publish_routes(endpoint: Endpoint, urls: list[str]) -> None:
    """The routing table the agent publishes (services.endpoint_routes_publish's format)."""
    variants = [{"id": v.id, "name": v.name, "weight": v.weight,
                 "instances": [{"id": f"i{i}", "url": url} for i, url in enumerate(urls)]}
                for v in endpoint.variants.all()]
    redis.Redis.from_url(settings.REDIS_URL).set(runner.ROUTES_KEY.format(endpoint.id),
                                                 json.dumps({"endpoint": str(endpoint.id), "variants": variants}))


def async_endpoint(world, model, **async_config) -> Endpoint:
    endpoint = Endpoint.objects.create(project=world.project, name=f"ep-{Endpoint.objects.count()}", type="async",
                                       status="in_service", async_config=async_config)
    EndpointVariant.objects.create(endpoint=endpoint, name="blue", model=model, min_instances=0, max_instances=2)
    return endpoint


@pytest.fixture
def regressor(world, models):
    return registry_model(world, models, "regressor"), Predictor.from_directory(models("regressor").directory)


@pytest.fixture
def instance(regressor):
    server = FakeInstance(regressor[1])
    yield server
    server.close()


def stored_invocation(endpoint: Endpoint, body: bytes, content_type: str) -> AsyncInvocation:
    invocation = AsyncInvocation.objects.create(endpoint=endpoint, content_type=content_type, size_bytes=len(body))
    name = runner.input_prefix(endpoint=endpoint, invocation_id=invocation.id) + "input"
    invocation.input_file = default_storage.save(name, ContentFile(body))
    invocation.save()
    return invocation


def output_of(invocation: AsyncInvocation) -> list:
    invocation.refresh_from_db()
    assert invocation.status == AsyncStatus.COMPLETED, invocation.failure_reason
    with storage_open(invocation.output_file) as fh:
        return [json.loads(line) for line in fh.read().decode().splitlines()]


def scores(predictor: Predictor, records: list) -> list[float]:
    return [p["score"] for p in predictor.predict_records(records)]


def test_it_predicts_json_lines_in_batches_keeping_the_input_order(world, regressor, instance, monkeypatch):
    monkeypatch.setattr(runner, "BATCH_MAX_RECORDS", 70)
    model, predictor = regressor
    endpoint = async_endpoint(world, model)
    publish_routes(endpoint, [instance.url])
    records = np.random.default_rng(0).normal(size=(1000, 3)).round(5).tolist()
    body = "\n".join(json.dumps(r) if i % 2 else json.dumps(dict(zip(["f1", "f2", "f3"], r, strict=True)))
                     for i, r in enumerate(records)).encode() + b"\n\n"
    invocation = stored_invocation(endpoint, body, "application/jsonlines")
    assert runner.async_invocation_run(invocation_id=invocation.id) == "completed"
    out = output_of(invocation)
    np.testing.assert_allclose([p["score"] for p in out], scores(predictor, records), rtol=1e-12)
    assert invocation.records == 1000 and invocation.variant.name == "blue" and invocation.attempts == 1
    assert invocation.started_at <= invocation.ended_at and invocation.output_file.endswith("output.jsonl")
    assert len(instance.requests) == 15 and {t for t, _ in instance.requests} == {"application/json"}
    assert runner.async_invocation_run(invocation_id=invocation.id) == "not queued"  # a redelivered message


def test_it_sends_csv_rows_as_csv_leaving_out_a_header_row(world, regressor, instance, monkeypatch):
    monkeypatch.setattr(runner, "BATCH_MAX_BYTES", 200)
    model, predictor = regressor
    endpoint = async_endpoint(world, model)
    publish_routes(endpoint, [instance.url])
    rows = np.random.default_rng(1).normal(size=(40, 3)).round(4).tolist()
    for header in (b"f1,f2,f3\n", b""):
        body = header + "\n".join(",".join(str(v) for v in r) for r in rows).encode()  # no final newline
        invocation = stored_invocation(endpoint, body, "text/csv")
        runner.async_invocation_run(invocation_id=invocation.id)
        np.testing.assert_allclose([p["score"] for p in output_of(invocation)], scores(predictor, rows))
        assert invocation.records == 40
    assert all(size <= 200 for _, size in instance.requests) and instance.requests[0][0] == "text/csv"


def test_it_reads_one_json_document_and_a_dataset_of_the_project(world, regressor, instance):
    model, predictor = regressor
    endpoint = async_endpoint(world, model)
    publish_routes(endpoint, [instance.url])
    records = [[1, 2, 3], [0.5, -1, 2]]
    invocation = stored_invocation(endpoint, json.dumps({"instances": records}).encode(), "application/json")
    runner.async_invocation_run(invocation_id=invocation.id)
    assert [p["score"] for p in output_of(invocation)] == scores(predictor, records)

    rows = numeric_rows(25)
    dataset = dataset_from_csv(world.project, name="numbers", content=csv_bytes(rows, ["id", "f1", "f2", "f3", "y"]))
    invocation = AsyncInvocation.objects.create(endpoint=endpoint, input_dataset=dataset, content_type="text/csv")
    runner.async_invocation_run(invocation_id=invocation.id)
    expected = scores(predictor, [dict(zip(["f1", "f2", "f3"], r[1:4], strict=True)) for r in rows])
    np.testing.assert_allclose([p["score"] for p in output_of(invocation)], expected)


def test_a_record_the_instance_refuses_fails_the_invocation_naming_the_records(world, regressor, instance,
                                                                               monkeypatch):
    monkeypatch.setattr(runner, "BATCH_MAX_RECORDS", 10)
    endpoint = async_endpoint(world, regressor[0])
    publish_routes(endpoint, [instance.url])
    lines = [json.dumps([i, 1, 2]) for i in range(30)]
    lines[14] = json.dumps([1, "many", 2])
    invocation = stored_invocation(endpoint, "\n".join(lines).encode(), "application/jsonl")
    assert runner.async_invocation_run(invocation_id=invocation.id) == "failed"
    invocation.refresh_from_db()
    assert invocation.status == AsyncStatus.FAILED and invocation.output_file == ""
    assert invocation.failure_reason.startswith("records 11-20: record 5: column 'f2' must be a number")
    assert invocation.records == 10 and invocation.ended_at is not None


def test_it_retries_an_overloaded_instance(world, regressor, monkeypatch):
    monkeypatch.setattr(runner.time, "sleep", lambda s: None)
    server = FakeInstance(regressor[1], fail_with=2)
    try:
        endpoint = async_endpoint(world, regressor[0])
        publish_routes(endpoint, [server.url])
        invocation = stored_invocation(endpoint, b"[1,2,3]\n", "application/jsonlines")
        runner.async_invocation_run(invocation_id=invocation.id)
        assert len(output_of(invocation)) == 1 and len(server.requests) == 3
    finally:
        server.close()


def test_it_wakes_a_variant_scaled_to_zero_and_waits_for_an_instance(world, regressor, instance, monkeypatch):
    monkeypatch.setattr(runner, "WAKE_POLL_SECONDS", 0.01)
    endpoint = async_endpoint(world, regressor[0])
    publish_routes(endpoint, [instance.url])
    client = redis.Redis.from_url(settings.REDIS_URL)
    key = runner.ROUTES_KEY.format(endpoint.id)
    serving = client.get(key)
    publish_routes(endpoint, [])
    woken = []
    real_wake = endpoint_services.endpoint_variant_wake

    def wake(*, variant_id):
        woken.append(variant_id)
        real_wake(variant_id=variant_id)
        # The agent starts the instance a moment later and publishes the routes.
        threading.Timer(0.1, client.set, args=(key, serving)).start()

    monkeypatch.setattr(endpoint_services, "endpoint_variant_wake", wake)
    invocation = stored_invocation(endpoint, b"[1,2,3]\n[3,2,1]\n", "application/jsonlines")
    runner.async_invocation_run(invocation_id=invocation.id)
    assert len(output_of(invocation)) == 2
    variant = endpoint.variants.get()
    assert woken == [variant.id] and variant.instances.filter(cold_start=True).exists()


def test_it_fails_when_no_instance_comes_into_service_in_time(world, regressor, monkeypatch):
    monkeypatch.setattr(runner, "WAKE_TIMEOUT_SECONDS", 0.05)
    monkeypatch.setattr(runner, "WAKE_POLL_SECONDS", 0.01)
    endpoint = async_endpoint(world, regressor[0])
    publish_routes(endpoint, [])
    invocation = stored_invocation(endpoint, b"[1,2,3]\n", "application/jsonlines")
    assert runner.async_invocation_run(invocation_id=invocation.id) == "failed"
    invocation.refresh_from_db()
    assert f"No instance of endpoint '{endpoint.name}' came into service within 0 s" in invocation.failure_reason


def test_the_reconciler_requeues_a_silent_invocation_then_gives_up(world, regressor, monkeypatch):
    sent = []
    monkeypatch.setattr(runner, "async_invocation_enqueue", lambda *, invocation_id: sent.append(invocation_id))
    endpoint = async_endpoint(world, regressor[0])
    old = timezone.now() - timedelta(seconds=settings.STUDIO_HEARTBEAT_TIMEOUT + 5)
    silent = AsyncInvocation.objects.create(endpoint=endpoint, status="running", heartbeat_at=old, attempts=1)
    hopeless = AsyncInvocation.objects.create(endpoint=endpoint, status="running", heartbeat_at=old, attempts=3)
    lost = AsyncInvocation.objects.create(endpoint=endpoint, status="queued",
                                          heartbeat_at=timezone.now() - timedelta(days=1))
    fresh = AsyncInvocation.objects.create(endpoint=endpoint, status="queued", heartbeat_at=timezone.now())
    alive = AsyncInvocation.objects.create(endpoint=endpoint, status="running", heartbeat_at=timezone.now())
    assert runner.async_invocations_reconcile() == 3
    for invocation in (silent, hopeless, lost, fresh, alive):
        invocation.refresh_from_db()
    assert silent.status == "queued" and hopeless.status == "failed" and alive.status == "running"
    assert "stopped responding 3 times" in hopeless.failure_reason
    assert sorted(map(str, sent)) == sorted([str(silent.id), str(lost.id)])
    assert runner.async_invocations_reconcile() == 0  # the re-sent ones are not sent again at once
    assert endpoint_services.endpoints_reconcile()["async"] == 0  # wired into the lead's reconcile pass


def test_a_worker_that_lost_its_invocation_writes_nothing(world, regressor, instance, monkeypatch):
    endpoint = async_endpoint(world, regressor[0])
    publish_routes(endpoint, [instance.url])
    invocation = stored_invocation(endpoint, b"[1,2,3]\n" * 5, "application/jsonlines")
    real_touch = runner._touch

    def taken_over(inv):
        AsyncInvocation.objects.filter(id=inv.id).update(status="queued")
        real_touch(inv)

    monkeypatch.setattr(runner, "_touch", taken_over)
    assert runner.async_invocation_run(invocation_id=invocation.id) == "lost"
    invocation.refresh_from_db()
    assert invocation.status == "queued" and invocation.output_file == ""


def test_the_output_is_one_json_line_per_record_for_a_classifier(world, models):
    model = registry_model(world, models, "logistic")
    predictor = Predictor.from_directory(models("logistic").directory)
    server = FakeInstance(predictor)
    try:
        endpoint = async_endpoint(world, model)
        publish_routes(endpoint, [server.url])
        records = [[0.5, 1.0, "Paris"], [-2.0, -1.0, "Lyon"], [0.1, 0.1, "Nice"]]
        out_csv = io.StringIO()
        csv.writer(out_csv).writerows(records)
        invocation = stored_invocation(endpoint, ("x1,x2,city\n" + out_csv.getvalue()).encode(), "text/csv")
        runner.async_invocation_run(invocation_id=invocation.id)
        assert output_of(invocation) == json.loads(predictor.invoke(json.dumps(records).encode(),
                                                                    "application/json"))["predictions"]
    finally:
        server.close()


def test_it_sends_a_heartbeat_while_it_works(world, regressor, instance, monkeypatch):
    monkeypatch.setattr(runner, "BATCH_MAX_RECORDS", 1)
    monkeypatch.setattr(runner, "HEARTBEAT_EVERY_SECONDS", 0.0)
    endpoint = async_endpoint(world, regressor[0])
    publish_routes(endpoint, [instance.url])
    beats = []
    real_touch = runner._touch
    monkeypatch.setattr(runner, "_touch", lambda inv: beats.append(time.monotonic()) or real_touch(inv))
    invocation = stored_invocation(endpoint, b"[1,2,3]\n" * 4, "application/jsonlines")
    runner.async_invocation_run(invocation_id=invocation.id)
    assert len(beats) >= 4 and len(output_of(invocation)) == 4
