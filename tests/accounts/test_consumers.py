"""The project activity websocket (/ws/projects/<id>/) that keeps lists and the overview live."""

from __future__ import annotations

import time

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections

from studio.accounts import services
from studio.training import services as training_services
from tests.live.test_consumers import receive_all, websocket
from tests.training.factories import new_job

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def close_thread_connections():
    yield
    await sync_to_async(connections.close_all)()


async def project_socket(project_id, user=None, query: str = "") -> WebsocketCommunicator:
    return await websocket(f"/ws/projects/{project_id}/", user, query)


async def test_it_replays_recent_activity_then_streams_new_events(world):
    comm = await project_socket(world.project.id, world.viewer)
    connected, _ = await comm.connect()
    assert connected
    history = await receive_all(comm)
    assert [(e["actor"], e["verb"], e["target"]) for e in history] == [("olivia", "created project", "Churn")]
    await sync_to_async(services.project_update)(user=world.member, project=world.project, description="new")
    live = await receive_all(comm)
    assert [(e["type"], e["actor"], e["verb"]) for e in live] == [("activity", "mark", "updated project")]
    await comm.disconnect()


async def test_it_skips_history_before_since(world):
    comm = await project_socket(world.project.id, world.owner, query=f"since={time.time() + 1}")
    connected, _ = await comm.connect()
    assert connected
    assert await receive_all(comm) == []
    await comm.disconnect()


async def test_it_reports_job_status_changes_of_the_project(world, enqueued):
    job = await sync_to_async(new_job)(world)
    comm = await project_socket(world.project.id, world.member, query=f"since={time.time()}")
    connected, _ = await comm.connect()
    assert connected
    await sync_to_async(training_services.training_job_claim)(job_id=job.id, worker="w1")
    events = [e for e in await receive_all(comm) if e["type"] == "status"]
    assert events and events[-1]["status"] == "running" and events[-1]["id"] == str(job.id)
    assert events[-1]["object"] == "training-job"
    await comm.disconnect()


async def test_it_closes_for_outsiders_and_anonymous_users(world):
    outsider = await project_socket(world.project.id, world.outsider)
    connected, code = await outsider.connect()
    assert not connected and code == 4404
    anonymous = await project_socket(world.project.id)
    connected, code = await anonymous.connect()
    assert not connected and code == 4401
