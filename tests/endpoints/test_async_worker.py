"""An async invocation through the API on a real Celery worker process, against a local instance server."""

from __future__ import annotations

import json

import pytest

from studio.endpoints.predictions import Predictor
from tests.conftest import api_client
from tests.endpoints.test_async_runner import FakeInstance, async_endpoint, publish_routes
from tests.endpoints.test_transform_runner import registry_model
from tests.processes import celery_worker
from tests.training.test_worker import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_it_processes_an_async_invocation_on_a_real_worker(world, models, tmp_path):
    predictor = Predictor.from_directory(models("regressor").directory)
    instance = FakeInstance(predictor)
    endpoint = async_endpoint(world, registry_model(world, models, "regressor"))
    publish_routes(endpoint, [instance.url])
    records = [[i / 10, 1.0, -1.0] for i in range(50)]
    client = api_client(world.member)
    try:
        with celery_worker(tmp_path / "worker.log"):
            response = client.generic("POST", f"/api/v1/endpoints/{endpoint.id}/async-invocations",
                                      "\n".join(json.dumps(r) for r in records).encode(),
                                      content_type="application/jsonlines")
            assert response.status_code == 202, response.content
            done = wait_for(client, response.json()["status_url"], {"completed", "failed"})
    finally:
        instance.close()
    assert done["status"] == "completed", (done, (tmp_path / "worker.log").read_text()[-3000:])
    output = client.get(done["output_url"])
    lines = b"".join(output.streaming_content).decode().splitlines()
    assert [json.loads(line) for line in lines] == predictor.predict_records(records)
    assert done["records"] == 50
