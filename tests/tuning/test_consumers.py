from __future__ import annotations

import pytest
from channels.db import database_sync_to_async as sync_to_async

from studio.tuning import services
from tests.live.test_consumers import websocket
from tests.training.factories import classification_dataset

pytestmark = pytest.mark.django_db(transaction=True)


def make_job(world):
    return services.tuning_job_create(
        user=world.member, project=world.project, algorithm="linear-learner",
        dataset=classification_dataset(world.project), strategy="random", max_jobs=2, max_parallel_jobs=2,
        ranges={"learning_rate": {"type": "continuous", "min": 0.01, "max": 0.1}},
        static_hyperparameters={"epochs": 1})


async def test_it_sends_the_status_then_every_trial_then_live_changes(world, enqueued, advances):
    job = await sync_to_async(make_job)(world)
    await sync_to_async(services.tuning_job_advance)(tuning_job_id=job.id)
    client = await websocket(f"/ws/tuning-jobs/{job.id}/", world.viewer)
    connected, _ = await client.connect()
    assert connected
    status = await client.receive_json_from(timeout=5)
    assert status["type"] == "status" and status["status"] == "running" and status["counts"]["pending"] == 2
    trials = [await client.receive_json_from(timeout=5) for _ in range(2)]
    assert [t["number"] for t in trials] == [1, 2] and all(t["type"] == "trial" for t in trials)
    await sync_to_async(services.tuning_job_stop)(user=world.member, tuning_job=job)
    seen = [await client.receive_json_from(timeout=5) for _ in range(3)]
    assert {e["type"] for e in seen} == {"trial", "status"}
    assert any(e["type"] == "status" and e["status"] == "stopped" for e in seen)
    await client.disconnect()


@pytest.mark.parametrize("who", ["outsider", None])
async def test_it_closes_for_outsiders_and_anonymous_users(world, advances, who):
    job = await sync_to_async(make_job)(world)
    user = getattr(world, who) if who else None
    client = await websocket(f"/ws/tuning-jobs/{job.id}/", user)
    connected, code = await client.connect()
    assert not connected and code == (4404 if who else 4401)
