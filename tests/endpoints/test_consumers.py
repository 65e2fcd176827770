"""The endpoint websocket through the real ASGI stack and Redis channel layer."""

from __future__ import annotations

import time

import pytest
from channels.db import database_sync_to_async

from studio.endpoints.models import EndpointMetric
from studio.live.publisher import publish
from tests.endpoints.test_services import create
from tests.live.test_consumers import websocket

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def make_endpoint(world):
    endpoint = create(world)
    EndpointMetric.objects.create(endpoint=endpoint, variant=endpoint.variants.get(), ts=time.time() - 5, seconds=5,
                                  invocations=20, errors=1, p50_ms=2.0, p99_ms=7.5, instances=1)
    return endpoint


async def test_it_replays_status_instances_and_traffic_then_streams(world):
    endpoint = await make_endpoint(world)
    client = await websocket(f"/ws/endpoints/{endpoint.id}/", world.viewer)
    connected, _ = await client.connect()
    assert connected
    status = await client.receive_json_from(timeout=5)
    instances = await client.receive_json_from(timeout=5)
    metric = await client.receive_json_from(timeout=5)
    assert status == {"type": "status", "status": "creating", "message": "Starting instances"}
    assert instances["variants"]["main"] == {"in_service": 0, "starting": 1, "desired": 1}
    assert metric["type"] == "metric" and metric["rps"] == 4.0 and metric["p99_ms"] == 7.5
    await database_sync_to_async(publish)(kind="endpoint", object_id=endpoint.id,
                                          events=[{"type": "scaling", "variant": "main", "from": 1, "to": 2,
                                                   "reason": "load", "ts": time.time()}])
    assert (await client.receive_json_from(timeout=5))["type"] == "scaling"
    await client.disconnect()


@pytest.mark.parametrize("who", ["outsider", None])
async def test_it_closes_for_outsiders_and_anonymous_users(world, who):
    endpoint = await make_endpoint(world)
    client = await websocket(f"/ws/endpoints/{endpoint.id}/", getattr(world, who) if who else None)
    connected, code = await client.connect()
    assert not connected and code == (4404 if who else 4401)
