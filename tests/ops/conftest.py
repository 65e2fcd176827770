"""Admin dashboard fixtures: a site admin (in no team), clean ops keys in Redis, and workers that answer from a dict."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis
from django.conf import settings
from django.test import Client

from studio.accounts.models import User
from studio.endpoints.models import Endpoint, EndpointMetric, EndpointVariant
from studio.ops import metrics, services, workers
from studio.registry.models import Model
from tests.conftest import PASSWORD, make_user

OPS_KEYS = (workers.SNAPSHOT_KEY, workers.SEEN_KEY, workers.DRAINED_KEY, metrics.SAMPLES_KEY, metrics.LOCK_KEY,
            services.PRUNE_KEY)


@pytest.fixture(autouse=True)
def clean_ops_keys():
    """The test Redis lives as long as the test session: no test sees another's workers, samples or locks."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(*OPS_KEYS)
    yield
    client.delete(*OPS_KEYS)


@pytest.fixture
def admin(world) -> User:
    """A site admin who belongs to no team: staff, not superuser (either one makes a site admin)."""
    user = make_user("ada")
    user.is_staff = True
    user.save()
    return user


def signed_in(user: User | None) -> Client:
    client = Client()
    if user is not None:
        assert client.login(username=user.username, password=PASSWORD)
    return client


class FakeWorkers:
    """What ``inspect_workers`` answers, and the control commands sent (each acknowledged unless told not to)."""

    def __init__(self) -> None:
        self.live: dict[str, dict[str, Any]] = {}
        self.commands: list[tuple[str, str, bool]] = []
        self.silent = False

    def add(self, name: str, *, queues=("training", "inference", "default"), active=(), processed: int = 3) -> None:
        self.live[name] = {"queues": list(queues), "active": list(active),
                           "stats": {"pid": 4242, "pool": {"implementation": "celery.concurrency.prefork:TaskPool",
                                                           "max-concurrency": 2},
                                     "total": {"studio.training.tasks.training_job_run_task": processed}}}

    def inspect(self, *, timeout: float) -> dict[str, dict[str, Any]]:
        return {name: {**info, "queues": list(info["queues"])} for name, info in self.live.items()}

    def control(self, *, worker: str, queues: list[str], consume: bool, timeout: float) -> dict[str, Any]:
        replies = {}
        for queue in queues:
            self.commands.append((worker, queue, consume))
            if self.silent:
                replies[queue] = None
                continue
            current = self.live[worker]["queues"]
            if consume and queue not in current:
                current.append(queue)
            elif not consume and queue in current:
                current.remove(queue)
            replies[queue] = {"ok": f"{'add' if consume else 'no longer'} consuming from {queue}"}
        return replies


@pytest.fixture
def fake_workers(monkeypatch) -> FakeWorkers:
    fake = FakeWorkers()
    monkeypatch.setattr(workers, "inspect_workers", fake.inspect)
    monkeypatch.setattr(workers, "control_queues", fake.control)
    return fake


def make_model(project, name: str = "churn-model", size_bytes: int = 0) -> Model:
    return Model.objects.create(project=project, name=name, algorithm="linear-learner", size_bytes=size_bytes,
                                artifact_prefix=f"projects/{project.id}/models/{name}/")


def make_endpoint(project, *, name: str = "churn", min_instances: int = 1, max_instances: int = 2) -> Endpoint:
    """An endpoint row as the endpoint service leaves it (without starting anything)."""
    endpoint = Endpoint.objects.create(project=project, name=name, type="realtime", status="in_service")
    model = Model.objects.filter(project=project).first() or make_model(project)
    EndpointVariant.objects.create(endpoint=endpoint, name="main", model=model, min_instances=min_instances,
                                   max_instances=max_instances, desired_instances=min_instances)
    return endpoint


def traffic(endpoint: Endpoint, *, rps: float, seconds: float = 2.0, ago: float = 0.0) -> EndpointMetric:
    variant = endpoint.variants.first()
    return EndpointMetric.objects.create(endpoint=endpoint, variant=variant, ts=time.time() - ago, seconds=seconds,
                                         invocations=int(rps * seconds), p50_ms=2.0, p99_ms=5.0, instances=1)
