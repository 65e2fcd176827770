"""Helpers shared by training, registry and live tests: stored datasets and jobs in known states."""

from __future__ import annotations

import io

import pytest

from studio.core.storage import storage_save_stream
from studio.datasets.models import Dataset
from studio.training import services
from studio.training.models import TrainingJob
from studio.training.tasks import training_job_run_task
from tests.conftest import classification_csv, regression_csv


def dataset_from_csv(project, *, name: str = "houses", content: bytes | None = None, target: str = "",
                     status: str = "ready") -> Dataset:
    """A ready tabular dataset whose CSV is really stored, without going through the upload service."""
    content = regression_csv() if content is None else content
    header = content.decode().splitlines()[0].split(",")
    stored, size, sha = storage_save_stream(name=f"projects/{project.id}/datasets/{name}.csv",
                                            stream=io.BytesIO(content))
    rows = len(content.decode().strip().splitlines()) - 1
    return Dataset.objects.create(
        project=project, name=name, kind="tabular", status=status, file=stored, original_filename=f"{name}.csv",
        size_bytes=size, sha256=sha, rows=rows, columns=[{"name": c, "dtype": "float"} for c in header],
        target=target,
    )


def classification_dataset(project, name: str = "churn") -> Dataset:
    return dataset_from_csv(project, name=name, content=classification_csv(), target="churned")


def new_job(world, *, dataset: Dataset | None = None, user=None, **kwargs) -> TrainingJob:
    dataset = dataset or Dataset.objects.filter(project=world.project, name="houses").first() or dataset_from_csv(
        world.project)
    kwargs.setdefault("target", "price")
    kwargs.setdefault("hyperparameters", {"epochs": 4})
    return services.training_job_create(user=user or world.member, project=world.project,
                                        algorithm=kwargs.pop("algorithm", "linear-learner"), dataset=dataset, **kwargs)


def run_job(job: TrainingJob) -> TrainingJob:
    """Run the Celery task in this process, as a worker would."""
    training_job_run_task.apply(args=[str(job.id)])
    job.refresh_from_db()
    return job


@pytest.fixture
def enqueued(monkeypatch) -> list[str]:
    """Job ids handed to the broker; nothing is sent, so no worker or broker is needed."""
    sent: list[str] = []
    monkeypatch.setattr(training_job_run_task, "apply_async", lambda args=None, **kw: sent.append(args[0]))
    return sent
