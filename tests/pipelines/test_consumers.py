"""The pipeline execution websocket, through the real ASGI stack and the real Redis channel layer."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async as sync_to_async

from studio.pipelines import engine, services
from tests.live.test_consumers import close_thread_connections, receive_all, websocket  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)

DEFINITION = {
    "parameters": {"value": 3},
    "steps": [
        {"name": "first", "type": "emit", "arguments": {"value": {"ref": "parameters.value"}}},
        {"name": "second", "type": "emit", "arguments": {"value": {"ref": "steps.first.value"}}},
    ],
}


def start(world):
    pipeline = services.pipeline_create(user=world.member, project=world.project, name="flow", definition=DEFINITION)
    return engine.pipeline_execution_start(user=world.member, pipeline=pipeline)


async def test_it_sends_the_execution_then_every_step_then_live_changes(world, fake_kinds, pipeline_tasks):
    execution = await sync_to_async(start)(world)
    client = await websocket(f"/ws/pipeline-executions/{execution.id}/", world.viewer)
    connected, _ = await client.connect()
    assert connected
    head = await client.receive_json_from(timeout=5)
    assert head["type"] == "execution" and head["id"] == str(execution.id) and head["status"] == "pending"
    assert head["number"] == 1 and head["parameters"] == {"value": 3}
    steps = [await client.receive_json_from(timeout=5) for _ in range(2)]
    assert [(s["type"], s["name"], s["status"]) for s in steps] == [("step", "first", "pending"),
                                                                   ("step", "second", "pending")]
    assert steps[1]["depends_on"] == ["first"]
    # A worker advances the execution: "first" is claimed, and the page hears of it at once.
    await sync_to_async(engine.pipeline_execution_advance)(execution_id=execution.id)
    live = await receive_all(client)
    first = [e for e in live if e["type"] == "step" and e["name"] == "first"]
    assert first and first[-1]["status"] == "running" and first[-1]["attempts"] == 1
    assert any(e["type"] == "execution" and e["status"] == "running" for e in live)
    step_id, attempt = pipeline_tasks.runs[0]
    await sync_to_async(engine.pipeline_step_run)(step_id=step_id, attempt=attempt)
    done = [e for e in await receive_all(client) if e["type"] == "step" and e["name"] == "first"]
    assert done[-1]["status"] == "completed" and done[-1]["outputs"]["value"] == 3
    assert done[-1]["duration"] is not None
    await client.disconnect()


async def test_a_reconnecting_page_gets_the_current_state_of_each_step(world, fake_kinds, pipeline_tasks):
    execution = await sync_to_async(start)(world)
    await sync_to_async(engine.pipeline_execution_advance)(execution_id=execution.id)
    step_id, attempt = pipeline_tasks.runs[0]
    await sync_to_async(engine.pipeline_step_run)(step_id=step_id, attempt=attempt)
    client = await websocket(f"/ws/pipeline-executions/{execution.id}/", world.member)
    connected, _ = await client.connect()
    assert connected
    history = await receive_all(client)
    assert history[0]["type"] == "execution" and history[0]["status"] == "running"
    assert [(e["name"], e["status"]) for e in history[1:]] == [("first", "completed"), ("second", "pending")]
    await client.disconnect()


@pytest.mark.parametrize("who", ["outsider", None])
async def test_it_closes_for_outsiders_and_anonymous_users(world, fake_kinds, who):
    execution = await sync_to_async(start)(world)
    user = getattr(world, who) if who else None
    client = await websocket(f"/ws/pipeline-executions/{execution.id}/", user)
    connected, code = await client.connect()
    assert not connected and code == (4404 if who else 4401)
