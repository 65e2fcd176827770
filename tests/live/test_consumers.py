"""The training job websocket, through the real ASGI stack (origin check, session auth, URL routing)
and the real Redis channel layer."""

from __future__ import annotations

import time

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import connections
from django.test import Client

from studio.asgi import application
from studio.live.publisher import publish
from studio.training import services
from studio.training.models import LogLine, MetricPoint
from tests.conftest import PASSWORD
from tests.training.factories import new_job

pytestmark = pytest.mark.django_db(transaction=True)


def session_cookie(user) -> bytes:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()


async def websocket(path: str, user=None, query: str = "") -> WebsocketCommunicator:
    """A client of the real ASGI app, signed in as ``user`` through a session cookie."""
    headers = [(b"origin", b"http://testserver"), (b"host", b"testserver")]
    if user is not None:
        headers.append((b"cookie", await sync_to_async(session_cookie)(user)))
    return WebsocketCommunicator(application, path + (f"?{query}" if query else ""), headers=headers)


async def communicator(job_id, user=None, query: str = "") -> WebsocketCommunicator:
    return await websocket(f"/ws/training-jobs/{job_id}/", user, query)


async def receive_all(comm: WebsocketCommunicator, quiet: float = 0.3) -> list[dict]:
    """Every message until the socket stays quiet for ``quiet`` seconds.

    receive_nothing, not a receive timeout: a timed-out receive cancels the application.
    """
    events = []
    while not await comm.receive_nothing(timeout=quiet):
        events.append(await comm.receive_json_from())
    return events


@pytest.fixture(autouse=True)
async def close_thread_connections():
    """ORM calls made through sync_to_async run on a shared worker thread; its connections must be
    closed, or PostgreSQL refuses to drop the test database at the end."""
    yield
    await sync_to_async(connections.close_all)()


@pytest.fixture
def job_with_history(world, enqueued):
    job = new_job(world)
    services.training_job_claim(job_id=job.id, worker="w1")
    services.job_metrics_record(job=job, step=1, metrics={"train:loss": 0.9}, ts=1000.0, log_lines=["epoch 1"])
    services.job_metrics_record(job=job, step=2, metrics={"train:loss": 0.5}, ts=2000.0, log_lines=["epoch 2"])
    return job


async def test_it_replays_history_then_streams_live_events_once(world, job_with_history):
    job = job_with_history
    comm = await communicator(job.id, world.viewer)
    connected, _ = await comm.connect()
    assert connected
    history = await receive_all(comm)
    assert history[0] == {"type": "status", "status": "running", "message": "Running on w1"}
    assert [(e["name"], e["step"]) for e in history if e["type"] == "metric"] == [("train:loss", 1), ("train:loss", 2)]
    assert [e["line"] for e in history if e["type"] == "log"][-2:] == ["epoch 1", "epoch 2"]

    # Step 2 was in the history: its live copy is dropped; step 3 is new and arrives.
    step2 = {"type": "metric", "name": "train:loss", "step": 2, "value": 0.5, "ts": 2000.0}
    seq2 = await sync_to_async(lambda: LogLine.objects.get(job=job, line="epoch 2").seq)()
    step3 = {"type": "metric", "name": "train:loss", "step": 3, "value": 0.3, "ts": time.time()}
    await sync_to_async(publish)(kind="training-job", object_id=job.id, events=[
        step2, {"type": "log", "line": "epoch 2", "seq": seq2, "ts": 2000.0}, step3,
        {"type": "status", "status": "completed", "message": "Completed"},
    ])
    live = await receive_all(comm)
    assert live == [step3, {"type": "status", "status": "completed", "message": "Completed"}]
    await comm.disconnect()


async def test_it_sends_only_what_was_missed_since_a_timestamp(world, job_with_history):
    comm = await communicator(job_with_history.id, world.owner, query="since=1500")
    connected, _ = await comm.connect()
    assert connected
    events = await receive_all(comm)
    assert events[0]["type"] == "status"
    assert [(e["step"], e["ts"]) for e in events if e["type"] == "metric"] == [(2, 2000.0)]
    assert "epoch 1" not in [e.get("line") for e in events]
    await comm.disconnect()


async def test_it_streams_a_real_run_to_the_page(world, enqueued):
    job = await sync_to_async(new_job)(world, hyperparameters={"epochs": 3, "early_stopping_patience": 3})
    comm = await communicator(job.id, world.member)
    connected, _ = await comm.connect()
    assert connected
    assert (await comm.receive_json_from())["status"] == "pending"
    from studio.training.runner import training_job_run

    await sync_to_async(training_job_run)(job_id=job.id, worker="w1")
    events = await receive_all(comm)
    statuses = [e["status"] for e in events if e["type"] == "status"]
    assert statuses == ["running", "completed"]
    stored = await sync_to_async(lambda: MetricPoint.objects.filter(job=job).count())()
    assert sum(e["type"] == "metric" for e in events) == stored
    await comm.disconnect()


async def test_it_closes_for_outsiders_and_anonymous_users(world, enqueued):
    job = await sync_to_async(new_job)(world)
    outsider = await communicator(job.id, world.outsider)
    connected, code = await outsider.connect()
    assert not connected and code == 4404
    anonymous = await communicator(job.id)
    connected, code = await anonymous.connect()
    assert not connected and code == 4401
    missing = await communicator("00000000-0000-0000-0000-000000000000", world.owner)
    connected, code = await missing.connect()
    assert not connected and code == 4404
