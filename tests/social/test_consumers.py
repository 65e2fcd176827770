"""Websockets of the social layer through the real ASGI stack: comment threads and each user's notifications."""

from __future__ import annotations

import time

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from studio.social import services
from studio.training.models import TrainingJob
from tests.live.test_consumers import receive_all, websocket

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def close_thread_connections():
    yield
    await sync_to_async(connections.close_all)()


@pytest.fixture
def job(world):
    return TrainingJob.objects.create(project=world.project, name="run-1", algorithm="linear-learner",
                                      created_by=world.member)


def thread_path(world, target_type: str, target_id) -> str:
    return f"/ws/projects/{world.project.id}/comments/{target_type}/{target_id}/"


async def test_it_shows_a_new_comment_to_everyone_watching_the_thread(world, job):
    viewer = await websocket(thread_path(world, "training_job", job.id), world.viewer, f"since={time.time()}")
    connected, _ = await viewer.connect()
    assert connected
    assert await receive_all(viewer) == []
    comment = await sync_to_async(services.comment_create)(user=world.owner, project=world.project,
                                                           target_type="training_job", target_id=job.id, body="hi")
    events = await receive_all(viewer)
    assert [(e["type"], e["action"], e["id"], e["author"]) for e in events] == [
        ("comment", "created", str(comment.id), "olivia")]
    assert "body" not in events[0]  # pages re-read the thread from the server, escaped
    await sync_to_async(services.comment_delete)(user=world.owner, comment=comment)
    assert [e["action"] for e in await receive_all(viewer)] == ["deleted"]
    await viewer.disconnect()


async def test_it_announces_what_changed_since_the_page_was_rendered(world, job):
    rendered = time.time() - 5
    await sync_to_async(services.comment_create)(user=world.member, project=world.project,
                                                 target_type="training_job", target_id=job.id, body="meanwhile")
    comm = await websocket(thread_path(world, "training_job", job.id), world.member, f"since={rendered}")
    connected, _ = await comm.connect()
    assert connected
    assert [e["type"] for e in await receive_all(comm)] == ["comment"]
    await comm.disconnect()


async def test_it_closes_a_thread_for_outsiders_anonymous_users_and_unknown_targets(world, job):
    for user, path, code in (
        (world.outsider, thread_path(world, "training_job", job.id), 4404),
        (None, thread_path(world, "training_job", job.id), 4401),
        (world.member, thread_path(world, "dataset", job.id), 4404),
        (world.member, thread_path(world, "model", job.id), 4404),
        (world.member, thread_path(world, "training_job", "not-a-uuid"), 4404),
    ):
        comm = await websocket(path, user)
        connected, close_code = await comm.connect()
        assert not connected and close_code == code, path


async def test_it_streams_a_users_own_notifications_and_unread_count(world, monkeypatch):
    monkeypatch.setattr(services, "webhook_delivery_enqueue", lambda **kw: None)
    await sync_to_async(services.notify)(user=world.member, kind="other", title="earlier")
    comm = await websocket("/ws/notifications/", world.member)
    connected, _ = await comm.connect()
    assert connected
    assert await receive_all(comm) == [{"type": "unread", "count": 1}]
    notification = await sync_to_async(services.notify)(user=world.member, project=world.project,
                                                        kind="training_job.completed", title="Training job x completed")
    await sync_to_async(services.notify)(user=world.owner, kind="other", title="for olivia only")
    events = await receive_all(comm)
    assert [e["type"] for e in events] == ["notification", "unread"]
    assert events[0]["id"] == str(notification.id) and events[0]["title"] == "Training job x completed"
    assert events[1] == {"type": "unread", "count": 2}
    await sync_to_async(services.notifications_mark_all_read)(user=world.member)
    assert await receive_all(comm) == [{"type": "unread", "count": 0}]
    await comm.disconnect()


async def test_it_replays_notifications_missed_since_a_time(world, monkeypatch):
    monkeypatch.setattr(services, "webhook_delivery_enqueue", lambda **kw: None)
    since = time.time() - 5
    await sync_to_async(services.notify)(user=world.member, kind="other", title="while away")
    comm = await websocket("/ws/notifications/", world.member, f"since={since}")
    connected, _ = await comm.connect()
    assert connected
    events = await receive_all(comm)
    assert [(e["type"], e.get("title")) for e in events] == [("notification", "while away"), ("unread", None)]
    await comm.disconnect()


async def test_the_notification_stream_needs_a_sign_in(world):
    comm = await websocket("/ws/notifications/")
    connected, code = await comm.connect()
    assert not connected and code == 4401
