"""A rule firing reaches the job's websocket (the page's Debugger panel) through the real ASGI stack and Redis."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from studio.training import services
from studio.training.models import TrainingJob
from studio.training.signals import training_job_epoch
from tests.live.test_consumers import communicator, receive_all
from tests.training.factories import new_job

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def close_thread_connections():
    yield
    await sync_to_async(connections.close_all)()


def running_job_with_rule(world) -> TrainingJob:
    job = new_job(world, debugger_rules=[{"rule": "exploding_loss", "parameters": {"factor": 2}}])
    return services.training_job_claim(job_id=job.id, worker="w1")


def epoch(job: TrainingJob, step: int, loss: float) -> None:
    services.job_metrics_record(job=job, step=step, metrics={"train:loss": loss})
    training_job_epoch.send(sender=TrainingJob, job=job, step=step, metrics={"train:loss": loss})


async def test_it_streams_a_fired_rule_to_a_viewer(world, enqueued):
    job = await sync_to_async(running_job_with_rule)(world)
    comm = await communicator(job.id, world.viewer)
    connected, _ = await comm.connect()
    assert connected
    await receive_all(comm)  # the history
    await sync_to_async(epoch)(job, 1, 1.0)
    await sync_to_async(epoch)(job, 2, 3.0)
    events = await receive_all(comm)
    rules = [e for e in events if e["type"] == "rules"]
    assert len(rules) == 1
    (entry,) = rules[0]["rule_results"]
    assert (entry["rule"], entry["status"], entry["step"]) == ("exploding_loss", "issues_found", 2)
    assert any(e["type"] == "log" and e["line"].startswith("Debugger rule exploding_loss: issues found at step 2")
               for e in events)
    await comm.disconnect()


async def test_it_keeps_the_rules_stream_from_an_outsider(world, enqueued):
    job = await sync_to_async(running_job_with_rule)(world)
    comm = await communicator(job.id, world.outsider)
    connected, code = await comm.connect()
    assert not connected and code == 4404
