"""The gateway's ASGI app driven directly, against fake instance servers and the real routing table in Redis."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import redis
from aiohttp import web
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from studio.accounts import services as account_services
from studio.endpoints import metrics, services
from studio.endpoints.gateway import Gateway, GatewayConfig, is_invocation, with_gateway
from studio.endpoints.models import Endpoint, EndpointInstance, EndpointVariant, InstanceStatus
from studio.registry.models import Model
from tests.processes import free_port

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass
class FakeInstance:
    """An instance server that echoes what it got, can hold requests, or answer 400."""

    name: str
    status: int = 200
    hold: asyncio.Event | None = None
    received: list[tuple[bytes, str]] = field(default_factory=list)
    url: str = ""
    runner: web.AppRunner | None = None

    async def start(self) -> FakeInstance:
        app = web.Application()
        app.router.add_post("/invocations", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        return self

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append((body, request.headers.get("Content-Type", "")))
        if self.hold is not None:
            await self.hold.wait()
        if self.status == 400:
            return web.json_response({"detail": "record 1 has 2 values, the model expects 3"}, status=400)
        return web.json_response({"predictions": [{"score": len(body)}], "variant": self.name})

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: dict


async def call(app: Callable, endpoint_id, *, body: bytes = b'{"instances": [[1, 2, 3]]}', token: str = "",
               api_key: str = "", headers: dict[str, str] | None = None, chunks: list[bytes] | None = None,
               method: str = "POST", content_length: bool = True) -> Reply:
    raw = [(b"content-type", b"application/json")]
    if content_length:
        raw.append((b"content-length", str(len(body)).encode()))
    if token:
        raw.append((b"authorization", f"Bearer {token}".encode()))
    if api_key:
        raw.append((b"x-api-key", api_key.encode()))
    for name, value in (headers or {}).items():
        raw.append((name.lower().encode(), value.encode()))
    pieces = list(chunks if chunks is not None else [body])
    messages = [{"type": "http.request", "body": p, "more_body": i < len(pieces) - 1} for i, p in enumerate(pieces)]
    sent: list[dict] = []

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": f"/api/v1/endpoints/{endpoint_id}/invocations",
             "headers": raw, "query_string": b""}
    await app(scope, receive, send)
    head = {k.decode(): v.decode() for k, v in sent[0]["headers"]}
    return Reply(sent[0]["status"], head, json.loads(sent[1]["body"]))


def make_endpoint(world, *, type: str = "realtime", variants: dict[str, list[str]] | None = None,
                  weights: dict[str, float] | None = None, serverless: dict | None = None) -> Endpoint:
    """An endpoint whose variants have in-service instances at the given URLs; its routes published."""
    model = Model.objects.create(project=world.project, name="m", algorithm="linear-learner", artifact_prefix="x/")
    endpoint = Endpoint.objects.create(project=world.project, name=f"ep-{time.monotonic_ns()}", type=type,
                                       status="in_service", serverless=serverless or {})
    for position, (name, urls) in enumerate((variants or {"blue": []}).items()):
        variant = EndpointVariant.objects.create(endpoint=endpoint, name=name, model=model, position=position,
                                                 weight=(weights or {}).get(name, 1.0), min_instances=0,
                                                 desired_instances=len(urls))
        for url in urls:
            EndpointInstance.objects.create(variant=variant, status=InstanceStatus.IN_SERVICE, url=url,
                                            ready_at=timezone.now())
    services.endpoint_routes_publish(endpoint_id=endpoint.id)
    return endpoint


def token_of(user) -> str:
    return account_services.api_token_create(user=user, name="t")[1]


def gateway(**config) -> Gateway:
    return Gateway(GatewayConfig(redis_url=settings.REDIS_URL, **{"instance_max_inflight": 2,
                                                                 "cold_start_timeout": 10.0, **config}))



@contextlib.asynccontextmanager
async def serving(*instances: FakeInstance):
    """A gateway and started fake instances; both closed, and this thread's DB connection too, afterwards."""
    gw = gateway()
    started = [await instance.start() for instance in instances]
    try:
        yield gw, tuple(started)
    finally:
        await gw.aclose()
        for instance in started:
            await instance.stop()
        await asyncio.to_thread(close_old_connections)

def run(scenario):
    """Run an async scenario in a fresh loop; the gateway's ORM lookups run in threads on committed data."""
    return asyncio.run(scenario())


def test_it_only_takes_the_invocation_path():
    assert is_invocation({"type": "http", "path": "/api/v1/endpoints/0b5c8e1a-3e56-4d8a-9a55-2b1f3c4d5e6f/invocations"})
    assert not is_invocation({"type": "http", "path": "/api/v1/endpoints/0b5c8e1a-3e56-4d8a-9a55-2b1f3c4d5e6f/"
                                                      "async-invocations"})
    assert not is_invocation({"type": "http", "path": "/api/v1/endpoints/not-a-uuid/invocations"})
    assert not is_invocation({"type": "websocket", "path": "/api/v1/endpoints/x/invocations"})


def test_it_authenticates_members_and_invoke_keys(world):
    tokens = {name: token_of(getattr(world, name)) for name in ("owner", "member", "viewer", "outsider")}

    async def scenario():
        async with serving(FakeInstance("blue")) as (gw, (blue,)):
            endpoint = await asyncio.to_thread(make_endpoint, world, variants={"blue": [blue.url]})
            other = await asyncio.to_thread(make_endpoint, world, variants={"blue": [blue.url]})
            _, secret = await asyncio.to_thread(services.invoke_key_create, user=world.member, endpoint=endpoint)
            _, other_secret = await asyncio.to_thread(services.invoke_key_create, user=world.member, endpoint=other)
            assert (await call(gw, endpoint.id)).status == 401
            assert (await call(gw, endpoint.id, token="stu_nope")).status == 401
            assert (await call(gw, endpoint.id, headers={"Authorization": "Basic abc"})).status == 401
            for name in ("owner", "member"):
                reply = await call(gw, endpoint.id, token=tokens[name])
                assert (reply.status, reply.body["variant"]) == (200, "blue")
            assert (await call(gw, endpoint.id, token=tokens["viewer"])).status == 403
            # Another team's endpoint is absent, as is an unknown one.
            assert (await call(gw, endpoint.id, token=tokens["outsider"])).status == 404
            assert (await call(gw, "0b5c8e1a-3e56-4d8a-9a55-2b1f3c4d5e6f", token=tokens["member"])).status == 404
            assert (await call(gw, endpoint.id, api_key=secret)).status == 200
            assert (await call(gw, endpoint.id, api_key=other_secret)).status == 401
            assert (await call(gw, endpoint.id, api_key="sk-ep-wrong")).status == 401
            key = await asyncio.to_thread(lambda: endpoint.invoke_keys.get())
            await asyncio.to_thread(services.invoke_key_revoke, user=world.member, key=key)
            gw.clear_caches()
            assert (await call(gw, endpoint.id, api_key=secret)).status == 401
            assert (await call(gw, endpoint.id, token=tokens["member"], method="GET")).status == 405

    run(scenario)


def test_it_refuses_payloads_over_six_megabytes(world):
    token = token_of(world.member)

    async def scenario():
        async with serving(FakeInstance("blue")) as (gw, (blue,)):
            endpoint = await asyncio.to_thread(make_endpoint, world, variants={"blue": [blue.url]})
            big = b"x" * (6 * 1024 * 1024 + 1)
            reply = await call(gw, endpoint.id, token=token, body=big)
            assert reply.status == 413 and "6 MB" in reply.body["detail"]
            # Without a Content-Length, counted while reading.
            reply = await call(gw, endpoint.id, token=token, chunks=[big[:4_000_000], big[4_000_000:]],
                               content_length=False)
            assert reply.status == 413
            assert blue.received == []
            reply = await call(gw, endpoint.id, token=token, chunks=[b'{"instances": ', b"[[1, 2]]}"],
                               content_length=False)
            assert reply.status == 200
            assert blue.received == [(b'{"instances": [[1, 2]]}', "application/json")]

    run(scenario)


def test_it_routes_by_weight_and_target_variant(world):
    token = token_of(world.member)

    async def scenario():
        async with serving(FakeInstance("blue"), FakeInstance("green")) as (gw, (blue, green)):
            endpoint = await asyncio.to_thread(make_endpoint, world,
                                               variants={"blue": [blue.url], "green": [green.url]},
                                               weights={"blue": 1.0, "green": 0.0})
            names = [(await call(gw, endpoint.id, token=token)).body["variant"] for _ in range(20)]
            assert names == ["blue"] * 20
            reply = await call(gw, endpoint.id, token=token, headers={"X-Target-Variant": "green"})
            assert (reply.status, reply.body["variant"]) == (200, "green")
            reply = await call(gw, endpoint.id, token=token, headers={"X-Target-Variant": "red"})
            assert reply.status == 400
            assert "'red'" in reply.body["detail"] and "'blue', 'green'" in reply.body["detail"]

    run(scenario)


def test_it_refuses_at_once_when_every_instance_is_busy(world):
    token = token_of(world.member)

    async def scenario():
        async with serving(FakeInstance("blue")) as (gw, (blue,)):
            endpoint = await asyncio.to_thread(make_endpoint, world, variants={"blue": [blue.url]})
            assert (await call(gw, endpoint.id, token=token)).status == 200  # caches warm
            blue.hold = asyncio.Event()
            held = [asyncio.create_task(call(gw, endpoint.id, token=token)) for _ in range(2)]
            while len(blue.received) < 3:
                await asyncio.sleep(0.01)
            reply = await call(gw, endpoint.id, token=token)
            assert reply.status == 429
            assert reply.headers["retry-after"] == "1"
            blue.hold.set()
            assert [r.status for r in await asyncio.gather(*held)] == [200, 200]
            assert (await call(gw, endpoint.id, token=token)).status == 200
            await gw.aclose()  # flushes the counts to Redis
            variant = await asyncio.to_thread(lambda: endpoint.variants.get())
            counts = metrics.take_counts(redis.Redis.from_url(settings.REDIS_URL), [variant.id])[variant.id]
            assert (counts.invocations, counts.throttled, counts.errors, counts.latency.total) == (4, 1, 0, 4)

    run(scenario)


def test_it_passes_instance_errors_through_and_retries_a_dead_instance(world):
    token = token_of(world.member)
    dead = f"http://127.0.0.1:{free_port()}"

    async def scenario():
        async with serving(FakeInstance("blue", status=400), FakeInstance("green")) as (gw, (bad, good)):
            endpoint = await asyncio.to_thread(make_endpoint, world, variants={"blue": [bad.url]})
            reply = await call(gw, endpoint.id, token=token)
            assert reply.status == 400
            assert reply.body == {"detail": "record 1 has 2 values, the model expects 3"}

            endpoint = await asyncio.to_thread(make_endpoint, world, variants={"green": [dead, good.url]})
            statuses = [(await call(gw, endpoint.id, token=token)).status for _ in range(6)]
            assert statuses == [200] * 6  # the dead instance's requests went to the other one

            endpoint = await asyncio.to_thread(make_endpoint, world, variants={"green": [dead]})
            reply = await call(gw, endpoint.id, token=token)
            assert reply.status == 503 and reply.headers["retry-after"] == "1"

            endpoint = await asyncio.to_thread(make_endpoint, world, variants={"green": []})
            reply = await call(gw, endpoint.id, token=token)
            assert reply.status == 503 and "in service" in reply.body["detail"]

            endpoint = await asyncio.to_thread(make_endpoint, world, type="async", variants={"green": [good.url]})
            reply = await call(gw, endpoint.id, token=token)
            assert reply.status == 400
            assert reply.body["detail"].startswith("This endpoint is asynchronous: POST the payload to "
                                                   f"/api/v1/endpoints/{endpoint.id}/async-invocations")

    run(scenario)


def test_it_caps_serverless_concurrency_across_gateways(world):
    token = token_of(world.member)

    async def scenario():
        one, two = gateway(), gateway()
        blue = await FakeInstance("blue", hold=asyncio.Event()).start()
        try:
            endpoint = await asyncio.to_thread(make_endpoint, world, type="serverless", variants={"blue": [blue.url]},
                                               serverless={"max_concurrency": 1, "idle_timeout_seconds": 60})
            first = asyncio.create_task(call(one, endpoint.id, token=token))
            while not blue.received:
                await asyncio.sleep(0.01)
            reply = await call(two, endpoint.id, token=token)  # another process: the limit is in Redis
            assert reply.status == 429 and "maximum concurrency (1)" in reply.body["detail"]
            blue.hold.set()
            assert (await first).status == 200
            assert (await call(two, endpoint.id, token=token)).status == 200
        finally:
            await one.aclose()
            await two.aclose()
            await blue.stop()
            await asyncio.to_thread(close_old_connections)

    run(scenario)


def test_it_wakes_a_serverless_variant_and_waits_for_its_cold_start(world):
    token = token_of(world.member)

    async def scenario():
        gw = gateway()
        blue = await FakeInstance("blue").start()
        stop = threading.Event()

        def fake_agent():
            # What the agent does: take the pending row, start the process, mark it in service, publish.
            try:
                while not stop.is_set():
                    pending = EndpointInstance.objects.filter(status=InstanceStatus.PENDING).first()
                    if pending is not None:
                        time.sleep(0.1)
                        EndpointInstance.objects.filter(id=pending.id).update(
                            status=InstanceStatus.IN_SERVICE, url=blue.url, ready_at=timezone.now())
                        services.endpoint_routes_publish(endpoint_id=pending.variant.endpoint_id)
                        return
                    time.sleep(0.02)
            finally:
                close_old_connections()

        try:
            endpoint = await asyncio.to_thread(make_endpoint, world, type="serverless", variants={"blue": []},
                                               serverless={"max_concurrency": 5, "idle_timeout_seconds": 60})
            agent = threading.Thread(target=fake_agent)
            agent.start()
            started = time.monotonic()
            replies = await asyncio.gather(*(call(gw, endpoint.id, token=token) for _ in range(3)))
            assert [r.status for r in replies] == [200, 200, 200]
            assert time.monotonic() - started < 5
            instances = await asyncio.to_thread(lambda: list(EndpointInstance.objects.filter(
                variant__endpoint=endpoint).values_list("cold_start", flat=True)))
            assert instances == [True]  # three waiting requests, one cold start
            stop.set()
            agent.join()
        finally:
            stop.set()
            await gw.aclose()
            await blue.stop()
            await asyncio.to_thread(close_old_connections)

    run(scenario)


def test_it_leaves_everything_else_to_django():
    seen = []

    async def app(scope, receive, send):
        seen.append(scope["path"])

    async def scenario():
        router = with_gateway(app, gateway())
        await router({"type": "http", "path": "/api/v1/endpoints/", "method": "GET", "headers": []}, None, None)
        sent = []

        async def send(message):
            sent.append(message)
        queue = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

        async def receive():
            return queue.pop(0)
        await router({"type": "lifespan"}, receive, send)
        assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]

    run(scenario)
    assert seen == ["/api/v1/endpoints/"]
