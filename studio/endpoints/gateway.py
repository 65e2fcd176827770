"""The invocation hot path: ``POST /api/v1/endpoints/<id>/invocations`` as a raw ASGI app, before Django.

Per request: authenticate (``Authorization: Bearer <token>`` of a member, or the endpoint's own
``X-Api-Key``), read the routing table the agent publishes in Redis, pick a variant by weight (or
``X-Target-Variant``) and its least busy in-service instance, forward the body over a pooled keep-alive
connection and return the instance's JSON as it is. No Django request machinery runs here; the ORM is
reached only on an authentication cache miss (in a thread), and the routing table is cached for 250 ms.

Overload is refused fast: each instance takes at most ``STUDIO_ENDPOINT_INSTANCE_MAX_INFLIGHT`` requests from
this process at a time; when every instance of the chosen variant is full the answer is 429 with
``Retry-After: 1`` at once, so admitted requests keep their latency. Serverless endpoints also hold at most
``max_concurrency`` requests across all gateway processes (a Redis sorted set of requests in flight) and
scale from zero: a request that finds no instance wakes the variant, then waits for the routing table to
list one (the agent keeps a warm spare process for this).

Every forwarded or refused request is counted per variant (:mod:`studio.endpoints.metrics`) and the counts
are flushed to Redis about once a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import random
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import redis.asyncio as aioredis

from studio.endpoints.metrics import MetricsAccumulator, flush_async

logger = logging.getLogger(__name__)

PATH = re.compile(r"^/api/v1/endpoints/([0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?"
                  r"[0-9a-fA-F]{12})/invocations/?$")
ROUTES_KEY = "studio:endpoint:{}:routes"  # written by studio.endpoints.services.endpoint_routes_publish
INFLIGHT_KEY = "studio:endpoint:{}:inflight"  # serverless: requests in flight, across gateway processes
NUDGE_KEY = "studio:endpoints:agent-nudge"  # wakes an agent at once when a cold start is wanted
TOKEN_PREFIX = "stu_"  # studio.accounts.services.TOKEN_PREFIX, without importing Django models here
DEFAULT_MAX_PAYLOAD = 6 * 1024 * 1024
INVOKE_ROLES = ("owner", "admin", "member")

AUTH_TTL = 2.0
ROUTES_TTL = 0.25
COLD_POLL_SECONDS = 0.02
FLUSH_SECONDS = 1.0
WAKE_EVERY_SECONDS = 1.0
MAX_CACHE_ENTRIES = 10_000

# Enter the serverless concurrency limit: drop entries older than the longest request could live, then
# take a slot if one is free. Requests of a crashed gateway expire instead of holding slots forever.
_ENTER_SCRIPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[2]))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""


def is_invocation(scope: dict[str, Any]) -> bool:
    """Whether an ASGI scope is an invocation the gateway serves (everything else goes to Django)."""
    if scope["type"] != "http":
        return False
    path = scope["path"]
    return path.startswith("/api/v1/endpoints/") and path.rstrip("/").endswith("/invocations") and bool(
        PATH.match(path))


@dataclass
class GatewayConfig:
    """Limits and timeouts, from Django settings (STUDIO_ENDPOINT_*) unless given."""

    redis_url: str
    instance_max_inflight: int = 2
    cold_start_timeout: float = 30.0
    invoke_timeout: float = 60.0
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD

    @classmethod
    def from_settings(cls) -> GatewayConfig:
        from django.conf import settings

        return cls(
            redis_url=settings.REDIS_URL,
            instance_max_inflight=int(getattr(settings, "STUDIO_ENDPOINT_INSTANCE_MAX_INFLIGHT", 2)),
            cold_start_timeout=float(getattr(settings, "STUDIO_ENDPOINT_COLD_START_TIMEOUT", 30)),
            invoke_timeout=float(getattr(settings, "STUDIO_ENDPOINT_INVOKE_TIMEOUT", 60)),
        )


@dataclass
class Variant:
    id: int
    name: str
    weight: float
    urls: list[str]


@dataclass
class Routes:
    """A parsed routing table."""

    endpoint: str
    type: str
    team_id: str
    max_concurrency: int | None
    max_payload_bytes: int
    variants: list[Variant]
    by_name: dict[str, Variant] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: bytes) -> Routes:
        doc = orjson.loads(raw)
        variants = [Variant(id=int(v["id"]), name=str(v["name"]), weight=float(v.get("weight") or 0.0),
                            urls=[str(i["url"]).rstrip("/") + "/invocations" for i in v.get("instances") or []
                                  if i.get("url")])
                    for v in doc.get("variants") or []]
        concurrency = doc.get("max_concurrency")
        return cls(endpoint=str(doc.get("endpoint", "")), type=str(doc.get("type", "realtime")),
                   team_id=str(doc.get("team_id", "")),
                   max_concurrency=int(concurrency) if concurrency else None,
                   max_payload_bytes=int(doc.get("max_payload_bytes") or DEFAULT_MAX_PAYLOAD),
                   variants=variants, by_name={v.name: v for v in variants})


class _Reply(Exception):
    """Answer the request now with this status and message (raised from deep in the request path)."""

    def __init__(self, status: int, detail: str, *, retry_after: bool = False) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.retry_after = retry_after


class _TTLCache:
    """Results for a few seconds; concurrent misses of one key share one lookup."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._values: dict[Any, tuple[float, Any]] = {}
        self._pending: dict[Any, asyncio.Future] = {}

    async def get(self, key: Any, load: Any) -> Any:
        hit = self._values.get(key)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            value = await load()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: nobody else may be waiting
            raise
        finally:
            self._pending.pop(key, None)
        if len(self._values) >= MAX_CACHE_ENTRIES:
            self._values.clear()  # random tokens must not grow memory without bound
        self._values[key] = (time.monotonic() + self.ttl, value)
        future.set_result(value)
        return value

    def put(self, key: Any, value: Any) -> None:
        self._values[key] = (time.monotonic() + self.ttl, value)

    def clear(self) -> None:
        self._values.clear()


# --- ORM lookups (run in a thread on a cache miss) -----------------------------------------------


def _db_token_grants(key_hash: str) -> dict[str, str] | None:
    """{team id: role} of the active user owning this API token hash, or None for an unknown token."""
    from django.db import close_old_connections
    from django.utils import timezone

    from studio.accounts.models import ApiToken, Membership

    close_old_connections()
    token = ApiToken.objects.select_related("user").filter(key_hash=key_hash).first()
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(id=token.id).update(last_used_at=now)
    return {str(team): role for team, role in Membership.objects.filter(user_id=token.user_id)
            .values_list("team_id", "role")}


def _db_invoke_key_endpoint(key_hash: str) -> str | None:
    """The endpoint id of a valid (not revoked) invoke key with this hash, or None."""
    from django.db import close_old_connections
    from django.utils import timezone

    from studio.endpoints.models import InvokeKey

    close_old_connections()
    row = InvokeKey.objects.filter(key_hash=key_hash, revoked_at__isnull=True).values_list(
        "id", "endpoint_id", "last_used_at").first()
    if row is None:
        return None
    key_id, endpoint_id, last_used = row
    now = timezone.now()
    if last_used is None or (now - last_used).total_seconds() > 60:
        InvokeKey.objects.filter(id=key_id).update(last_used_at=now)
    return str(endpoint_id)


def _db_wake(variant_id: int) -> None:
    from django.db import close_old_connections

    from studio.endpoints.services import endpoint_variant_wake

    close_old_connections()
    endpoint_variant_wake(variant_id=variant_id)


async def _in_thread(fn: Any, *args: Any) -> Any:
    from asgiref.sync import sync_to_async

    return await sync_to_async(fn, thread_sensitive=False)(*args)


# --- per event loop state -----------------------------------------------------------------------


class _LoopState:
    """What belongs to one event loop: Redis and HTTP clients, counters and the flush task."""

    def __init__(self, config: GatewayConfig) -> None:
        self.redis = aioredis.Redis.from_url(config.redis_url)
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30, ttl_dns_cache=None)
        self.http = aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                          skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
                                          timeout=aiohttp.ClientTimeout(total=config.invoke_timeout))
        self.enter_script = self.redis.register_script(_ENTER_SCRIPT)
        self.metrics = MetricsAccumulator()
        self.inflight: dict[str, int] = {}
        self.woken: dict[int, float] = {}
        self.flusher = asyncio.get_running_loop().create_task(self._flush_forever())

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            await self.flush()

    async def flush(self) -> None:
        taken = self.metrics.take()
        if not taken:
            return
        try:
            await flush_async(self.redis, taken)
        except Exception:
            logger.warning("could not flush invocation metrics to Redis", exc_info=True)

    async def close(self) -> None:
        self.flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.flusher
        await self.flush()
        await self.http.close()
        await self.redis.aclose()


def _headers(status: int, body: bytes, retry_after: bool = False) -> list[tuple[bytes, bytes]]:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if retry_after:
        headers.append((b"retry-after", b"1"))
    return headers


async def _send(send: Any, status: int, body: bytes, retry_after: bool = False) -> None:
    await send({"type": "http.response.start", "status": status, "headers": _headers(status, body, retry_after)})
    await send({"type": "http.response.body", "body": body})


class Gateway:
    """The ASGI application of invocations; one per process (see :func:`with_gateway`).

    Parameters
    ----------
    config : GatewayConfig, optional
        Defaults to the Django settings, read on the first request.
    """

    def __init__(self, config: GatewayConfig | None = None) -> None:
        self._config = config
        self._state: _LoopState | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tokens = _TTLCache(AUTH_TTL)
        self._keys = _TTLCache(AUTH_TTL)
        self._routes = _TTLCache(ROUTES_TTL)
        self._seq = 0
        self._member = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"

    @property
    def config(self) -> GatewayConfig:
        if self._config is None:
            self._config = GatewayConfig.from_settings()
        return self._config

    def _loop_state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        if self._state is None or self._loop is not loop:
            # A new loop (tests run one per test): clients bound to the old one cannot be used.
            self._state, self._loop = _LoopState(self.config), loop
            self._routes.clear()
        return self._state

    async def aclose(self) -> None:
        """Flush the counts and close the clients of the current loop (tests, shutdown)."""
        if self._state is not None and self._loop is asyncio.get_running_loop():
            await self._state.close()
        self._state = self._loop = None

    def clear_caches(self) -> None:
        """Forget cached credentials and routing tables (tests that change them under the gateway)."""
        self._tokens.clear()
        self._keys.clear()
        self._routes.clear()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        match = PATH.match(scope["path"])
        if match is None:
            await _send(send, 404, b'{"detail":"Not found."}')
            return
        if scope["method"] != "POST":
            await _send(send, 405, b'{"detail":"POST the payload to this URL."}')
            return
        state = self._loop_state()
        answered = []

        async def tracked(message: dict[str, Any]) -> None:
            answered.append(True)
            await send(message)

        try:
            await self._invoke(state, str(uuid.UUID(match.group(1))), scope, receive, tracked)
        except _Reply as reply:
            await _send(send, reply.status, orjson.dumps({"detail": reply.detail}), reply.retry_after)
        except Exception:
            # Redis or the database briefly away: the client may retry; never a bare 500 from here.
            logger.exception("invocation of endpoint %s failed in the gateway", match.group(1))
            if not answered:
                await _send(send, 503, b'{"detail":"The gateway cannot serve this request right now; retry '
                                       b'shortly."}', True)

    # --- the request ------------------------------------------------------------------------------

    async def _invoke(self, state: _LoopState, endpoint_id: str, scope: dict[str, Any], receive: Any,
                      send: Any) -> None:
        started = time.perf_counter()
        bearer = api_key = content_type = target = ""
        length = -1
        for name, value in scope["headers"]:
            if name == b"authorization":
                bearer = value.decode("latin-1")
            elif name == b"x-api-key":
                api_key = value.decode("latin-1").strip()
            elif name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"content-length":
                length = int(value) if value.isdigit() else -1
            elif name == b"x-target-variant":
                target = value.decode("latin-1").strip()
        limit = self.config.max_payload_bytes
        if length > limit:
            raise _Reply(413, f"The payload is over {limit // (1024 * 1024)} MB, the limit of real-time and "
                              "serverless endpoints; use async invocations for larger payloads.")
        await self._authorize(state, endpoint_id, bearer, api_key)
        routes = await self._routes_of(state, endpoint_id)
        if routes is None:
            raise _Reply(404, "No such endpoint.")
        if routes.type == "async":
            raise _Reply(400, "This endpoint is asynchronous: POST the payload to "
                              f"/api/v1/endpoints/{endpoint_id}/async-invocations.")
        body = await _read_body(receive, min(limit, routes.max_payload_bytes))
        variant = self._choose_variant(routes, target)
        slot = None
        if routes.type == "serverless" and routes.max_concurrency:
            slot = await self._enter_concurrency(state, routes)
            if slot is None:
                state.metrics.record(variant.id, throttled=True)
                raise _Reply(429, f"The endpoint is at its maximum concurrency ({routes.max_concurrency}); "
                                  "retry shortly.", retry_after=True)
        try:
            if not variant.urls:
                variant = await self._wait_for_instance(state, routes, variant)
            # A serverless endpoint admits by its own concurrency limit; real-time instances by their cap.
            capped = not (routes.type == "serverless" and routes.max_concurrency)
            status, payload = await self._forward(state, variant, body, content_type, capped=capped)
        finally:
            if slot is not None:
                with contextlib.suppress(Exception):
                    await state.redis.zrem(INFLIGHT_KEY.format(routes.endpoint), slot)
        state.metrics.record(variant.id, latency_ms=(time.perf_counter() - started) * 1000.0, error=status != 200)
        await send({"type": "http.response.start", "status": status, "headers": _headers(status, payload)})
        await send({"type": "http.response.body", "body": payload})

    async def _authorize(self, state: _LoopState, endpoint_id: str, bearer: str, api_key: str) -> None:
        if bearer:
            scheme, _, secret = bearer.partition(" ")
            secret = secret.strip()
            if scheme.lower() != "bearer" or not secret:
                raise _Reply(401, "Malformed Authorization header: use 'Bearer <token>'.")
            if not secret.startswith(TOKEN_PREFIX):
                raise _Reply(401, "Invalid or revoked API token.")
            key_hash = hashlib.sha256(secret.encode()).hexdigest()
            grants = await self._tokens.get(key_hash, lambda: _in_thread(_db_token_grants, key_hash))
            if grants is None:
                raise _Reply(401, "Invalid or revoked API token.")
            routes = await self._routes_of(state, endpoint_id)
            role = grants.get(routes.team_id) if routes is not None else None
            if role is None:
                raise _Reply(404, "No such endpoint.")  # never reveal another team's endpoint
            if role not in INVOKE_ROLES:
                raise _Reply(403, "Viewers cannot invoke endpoints; a member, admin or owner can.")
            return
        if api_key:
            key_hash = hashlib.sha256(api_key.encode()).hexdigest()
            owner = await self._keys.get(key_hash, lambda: _in_thread(_db_invoke_key_endpoint, key_hash))
            if owner != endpoint_id:
                raise _Reply(401, "Invalid or revoked invoke key for this endpoint.")
            return
        raise _Reply(401, "Authentication required: send 'Authorization: Bearer <token>' or the endpoint's "
                          "'X-Api-Key'.")

    async def _routes_of(self, state: _LoopState, endpoint_id: str) -> Routes | None:
        async def load() -> Routes | None:
            raw = await state.redis.get(ROUTES_KEY.format(endpoint_id))
            return Routes.parse(raw) if raw else None

        return await self._routes.get(endpoint_id, load)

    def _choose_variant(self, routes: Routes, target: str) -> Variant:
        if target:
            variant = routes.by_name.get(target)
            if variant is None:
                names = ", ".join(f"'{v.name}'" for v in routes.variants) or "none"
                raise _Reply(400, f"X-Target-Variant '{target}' is not a variant of this endpoint; variants: {names}.")
            return variant
        weighted = [v for v in routes.variants if v.weight > 0]
        if routes.type != "serverless":
            # Real-time: traffic goes where instances are; a variant still starting takes none yet.
            serving = [v for v in weighted if v.urls]
            if not serving:
                raise _Reply(503, "No instance of this endpoint is in service yet; retry shortly.", retry_after=True)
            weighted = serving
        if not weighted:
            raise _Reply(503, "No variant of this endpoint takes traffic (every weight is 0).", retry_after=True)
        if len(weighted) == 1:
            return weighted[0]
        return random.choices(weighted, weights=[v.weight for v in weighted])[0]

    async def _enter_concurrency(self, state: _LoopState, routes: Routes) -> str | None:
        self._seq += 1
        member = f"{self._member}-{self._seq}"
        stale_ms = int((self.config.invoke_timeout + self.config.cold_start_timeout + 30) * 1000)
        taken = await state.enter_script(keys=[INFLIGHT_KEY.format(routes.endpoint)],
                                         args=[int(time.time() * 1000), stale_ms, routes.max_concurrency, member])
        return member if taken else None

    async def _wait_for_instance(self, state: _LoopState, routes: Routes, variant: Variant) -> Variant:
        if routes.type != "serverless":
            raise _Reply(503, f"No instance of variant '{variant.name}' is in service yet; retry shortly.",
                         retry_after=True)
        now = time.monotonic()
        if now - state.woken.get(variant.id, -1e9) > WAKE_EVERY_SECONDS:
            state.woken[variant.id] = now
            await _in_thread(_db_wake, variant.id)
            with contextlib.suppress(Exception):
                await state.redis.lpush(NUDGE_KEY, variant.id)
        deadline = now + self.config.cold_start_timeout
        key = ROUTES_KEY.format(routes.endpoint)
        while time.monotonic() < deadline:
            raw = await state.redis.get(key)
            if raw is None:
                raise _Reply(404, "No such endpoint.")
            fresh = Routes.parse(raw)
            found = next((v for v in fresh.variants if v.id == variant.id), None)
            if found is None:
                raise _Reply(503, f"Variant '{variant.name}' was removed; retry.", retry_after=True)
            if found.urls:
                self._routes.put(routes.endpoint, fresh)
                return found
            await asyncio.sleep(COLD_POLL_SECONDS)
        raise _Reply(503, f"Variant '{variant.name}' did not start within {self.config.cold_start_timeout:g} s "
                          "(cold start); retry shortly.", retry_after=True)

    def _pick(self, state: _LoopState, variant: Variant, avoid: str | None = None, capped: bool = True
              ) -> str | None:
        best, best_load = None, self.config.instance_max_inflight if capped else 1 << 30
        for url in variant.urls:
            if url == avoid:
                continue
            load = state.inflight.get(url, 0)
            if load < best_load:
                best, best_load = url, load
        return best

    async def _forward(self, state: _LoopState, variant: Variant, body: bytes, content_type: str, *,
                       capped: bool = True) -> tuple[int, bytes]:
        url = self._pick(state, variant, capped=capped)
        if url is None:
            state.metrics.record(variant.id, throttled=True)
            raise _Reply(429, f"Every instance of variant '{variant.name}' is busy; retry shortly.", retry_after=True)
        headers = {"Content-Type": content_type or "application/json"}
        for attempt in (1, 2):
            state.inflight[url] = state.inflight.get(url, 0) + 1
            try:
                async with state.http.post(url, data=body, headers=headers) as response:
                    payload = await response.read()
                    status = response.status
                if status != 503:
                    return status, payload
                failure = "the instance is not ready"
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
                failure = f"the instance did not answer ({type(exc).__name__})"
            except TimeoutError:
                state.metrics.record(variant.id, error=True)
                raise _Reply(504, f"The model did not answer within {self.config.invoke_timeout:g} s.") from None
            finally:
                count = state.inflight.get(url, 1) - 1
                if count > 0:
                    state.inflight[url] = count
                else:
                    state.inflight.pop(url, None)
            # Predictions have no side effects, so one retry on another instance is safe.
            retry = self._pick(state, variant, avoid=url, capped=capped) if attempt == 1 else None
            if retry is None:
                break
            url = retry
        state.metrics.record(variant.id, error=True)
        raise _Reply(503, f"Variant '{variant.name}' could not answer: {failure}; retry shortly.", retry_after=True)


async def _read_body(receive: Any, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Reply(400, "The client went away before sending the whole body.")
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise _Reply(413, f"The payload is over {limit // (1024 * 1024)} MB, the limit of real-time "
                                  "and serverless endpoints; use async invocations for larger payloads.")
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _lifespan(gateway: Gateway, receive: Any, send: Any) -> None:
    """Servers that speak ASGI lifespan (uvicorn) get the last counts flushed at shutdown."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            with contextlib.suppress(Exception):
                await gateway.aclose()
            await send({"type": "lifespan.shutdown.complete"})
            return


def with_gateway(app: Any, gateway: Gateway | None = None) -> Any:
    """Wrap the studio's ASGI app: invocations go to the gateway, everything else to ``app``."""
    gateway = gateway or Gateway()

    async def router(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if is_invocation(scope):
            await gateway(scope, receive, send)
        elif scope["type"] == "lifespan":
            await _lifespan(gateway, receive, send)
        else:
            await app(scope, receive, send)

    router.gateway = gateway  # type: ignore[attr-defined]
    return router
