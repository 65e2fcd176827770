"""A batch transform job through the API on a real Celery worker process (queue routing included)."""

from __future__ import annotations

import pytest

from studio.core.storage import storage_open
from studio.datasets.models import Dataset
from tests.conftest import api_client, csv_bytes
from tests.endpoints.test_transform_runner import numeric_rows, registry_model
from tests.processes import celery_worker
from tests.training.factories import dataset_from_csv
from tests.training.test_worker import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_it_runs_a_transform_job_on_a_real_worker(world, models, tmp_path):
    rows = numeric_rows(300)
    dataset = dataset_from_csv(world.project, name="numbers", content=csv_bytes(rows, ["id", "f1", "f2", "f3", "y"]))
    model = registry_model(world, models, "regressor")
    client = api_client(world.member)
    url = f"/api/v1/projects/{world.project.id}/transform-jobs"
    with celery_worker(tmp_path / "worker.log"):
        created = client.post(url, {"model": str(model.id), "input_dataset": str(dataset.id), "join_source": "input",
                                    "output_filter": "id,score", "max_concurrent": 3}, format="json")
        assert created.status_code == 201, created.content
        done = wait_for(client, f"{url}/{created.json()['id']}", {"completed", "failed", "stopped"})
    log = (tmp_path / "worker.log").read_text()
    assert done["status"] == "completed", (done, log[-3000:])
    assert done["records_done"] == done["records_total"] == 300 and done["progress"] == 1.0
    output = Dataset.objects.get(id=done["output_dataset"])
    with storage_open(output.file) as fh:
        lines = fh.read().decode().splitlines()
    assert lines[0] == "id,score" and [line.split(",")[0] for line in lines[1:]] == [r[0] for r in rows]
