"""The project activity feed (/ws/projects/<id>/) hears who uploaded, trained, tuned, approved, deployed and what
failed: each of these writes an AuditEvent that reaches the project's websocket live."""

from __future__ import annotations

import time

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from studio.endpoints import services as endpoint_services
from studio.endpoints import transforms
from studio.endpoints.models import TransformJob
from studio.registry import services as registry_services
from studio.registry.models import Model
from studio.training import services as training_services
from studio.tuning import services as tuning_services
from studio.tuning.tasks import tuning_job_advance_task
from tests.conftest import regression_csv
from tests.live.test_consumers import receive_all, websocket
from tests.training.factories import classification_dataset, dataset_from_csv, new_job, uploaded_dataset

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def close_thread_connections():
    yield
    await sync_to_async(connections.close_all)()


@pytest.fixture(autouse=True)
def no_webhooks(monkeypatch):
    from studio.social import services

    monkeypatch.setattr(services, "webhook_delivery_enqueue", lambda **kw: None)


async def activity_of(world, action) -> list[tuple[str | None, str, str]]:
    """(actor, verb, target) of the activity events the project socket receives while ``action`` runs."""
    comm = await websocket(f"/ws/projects/{world.project.id}/", world.viewer, f"since={time.time()}")
    connected, _ = await comm.connect()
    assert connected
    await receive_all(comm)
    await sync_to_async(action)()
    events = [e for e in await receive_all(comm) if e["type"] == "activity"]
    await comm.disconnect()
    return [(e["actor"], e["verb"], e["target"]) for e in events]


def model(world) -> Model:
    return Model.objects.create(project=world.project, name="churn-model", algorithm="linear-learner",
                                artifact_prefix=f"projects/{world.project.id}/models/x/")


async def test_it_shows_who_uploaded(world):
    events = await activity_of(world, lambda: uploaded_dataset(world, regression_csv(), name="houses"))
    assert ("mark", "uploaded dataset", "houses") in events


async def test_it_shows_who_trained(world, enqueued):
    events = await activity_of(world, lambda: new_job(world, name="houses-1"))
    assert ("mark", "created training job", "houses-1") in events


async def test_it_shows_who_tuned(world, enqueued, monkeypatch):
    monkeypatch.setattr(tuning_job_advance_task, "apply_async", lambda *a, **kw: None)
    dataset = await sync_to_async(classification_dataset)(world.project)

    def tune():
        tuning_services.tuning_job_create(
            user=world.member, project=world.project, algorithm="linear-learner", dataset=dataset, name="sweep",
            strategy="random", max_jobs=2, max_parallel_jobs=1, static_hyperparameters={"epochs": 1},
            ranges={"learning_rate": {"type": "continuous", "min": 0.01, "max": 0.1}})

    assert ("mark", "created tuning job", "sweep") in await activity_of(world, tune)


async def test_it_shows_who_approved(world):
    def approve():
        group = registry_services.model_group_create(user=world.member, project=world.project, name="churn")
        version = registry_services.model_version_create(user=world.member, group=group, model=model(world))
        registry_services.model_version_update(user=world.owner, version=version, approval_status="approved")

    assert ("olivia", "approved model version", "churn v1") in await activity_of(world, approve)


async def test_it_shows_who_deployed(world):
    def deploy():
        endpoint_services.endpoint_create(user=world.member, project=world.project, name="churn-api",
                                          type="realtime", variants=[{"name": "main", "model": str(model(world).id),
                                                                      "min_instances": 1, "max_instances": 1}])

    assert ("mark", "created endpoint", "churn-api") in await activity_of(world, deploy)


async def test_it_shows_a_failed_training_job(world, enqueued):
    job = await sync_to_async(new_job)(world, name="houses-1")

    def fail():
        training_services.training_job_claim(job_id=job.id, worker="w1")
        training_services.training_job_finish(job=job, status="failed", failure_reason="boom")

    assert (None, "failed", "houses-1") in await activity_of(world, fail)


async def test_it_shows_a_failed_batch_transform(world):
    def make():
        return TransformJob.objects.create(project=world.project, name="score", model=model(world),
                                           input_dataset=dataset_from_csv(world.project), created_by=world.member,
                                           status="running")

    job = await sync_to_async(make)()
    events = await activity_of(world, lambda: transforms.transform_job_fail(job_id=job.id, reason="bad record"))
    assert (None, "failed", "score") in events


async def test_it_shows_a_failed_tuning_job(world, monkeypatch):
    from studio.tuning.models import TuningJob

    monkeypatch.setattr(tuning_services, "tuning_job_enqueue", lambda **kw: None)
    tuning = await sync_to_async(TuningJob.objects.create)(
        project=world.project, name="sweep", algorithm="linear-learner", objective_metric="validation:loss",
        objective_goal="minimize", strategy="random", max_jobs=1, max_parallel_jobs=1, created_by=world.member,
        ranges={"learning_rate": {"type": "continuous", "min": 0.01, "max": 0.1, "scale": "linear"}})
    events = await activity_of(world, lambda: tuning_services.tuning_job_advance(tuning_job_id=tuning.id))
    assert (None, "failed", "sweep") in events


async def test_it_shows_a_failed_pipeline_execution(world):
    from studio.pipelines import engine
    from studio.pipelines.models import Pipeline, PipelineExecution, PipelineStep

    def make():
        pipeline = Pipeline.objects.create(project=world.project, name="nightly",
                                           definition={"parameters": {}, "steps": []})
        run = PipelineExecution.objects.create(pipeline=pipeline, project=world.project, number=1, status="running",
                                               created_by=world.member)
        PipelineStep.objects.create(execution=run, name="train", type="training", status="failed")
        return run

    run = await sync_to_async(make)()
    events = await activity_of(world, lambda: engine.pipeline_execution_advance(execution_id=run.id))
    assert (None, "failed", "nightly #1") in events


async def test_it_shows_a_failed_endpoint(world):
    from studio.endpoints.models import EndpointInstance

    def make():
        return endpoint_services.endpoint_create(
            user=world.member, project=world.project, name="churn-api", type="realtime",
            variants=[{"name": "main", "model": str(model(world).id), "min_instances": 1, "max_instances": 1}])

    endpoint = await sync_to_async(make)()

    def instances_keep_failing():
        for _ in range(endpoint_services.MAX_START_FAILURES):
            EndpointInstance.objects.filter(variant__endpoint=endpoint, status="pending").update(
                status="failed", status_message="arrays.npz is missing")
            endpoint_services.endpoint_autoscale(endpoint=endpoint)

    assert (None, "failed", "churn-api") in await activity_of(world, instances_keep_failing)
