"""The numbers behind the live charts: queue depths and invocation rates, sampled every few seconds.

A beat task (studio.ops.tasks) takes one sample, appends it to a capped Redis list and publishes it on the
dashboard's websocket group. Redis, not a table: samples are many, short-lived and worthless after an hour,
and every web process on every host reads the same list. When several beat processes run, a lock lets
one sample per interval through.
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis
from django.conf import settings
from django.db.models import Sum

from studio.ops.workers import QUEUES, redis_client

SAMPLES_KEY = "studio:ops:samples"
LOCK_KEY = "studio:ops:sample-lock"
LIVE_KIND = "ops"
BEAT_ENTRY = "ops-metrics-sample"
BOARD = "dashboard"
# kombu's Redis transport keeps messages sent with a priority in sibling lists named queue + SEP + priority.
PRIORITY_SEP = "\x06\x16"
PRIORITY_STEPS = (3, 6, 9)
KEEP_MINUTES = 60.0
# Endpoints named in one sample: the busiest; the total covers all of them.
MAX_ENDPOINTS = 8


def sample_seconds() -> float:
    """The beat entry's interval (settings.CELERY_BEAT_SCHEDULE, from STUDIO_OPS_SAMPLE_SECONDS): one source."""
    entry = (getattr(settings, "CELERY_BEAT_SCHEDULE", {}) or {}).get(BEAT_ENTRY) or {}
    try:
        return max(0.1, float(entry.get("schedule", 5)))
    except (TypeError, ValueError):  # a crontab or timedelta schedule: sample as if every 5 s
        return 5.0


def keep_minutes() -> float:
    """How far back the charts can look: an hour of samples is kept."""
    return KEEP_MINUTES


def rate_window_seconds() -> float:
    # Invocation rows come from the endpoint agent's rollup every ~2 s: a window of several rollups keeps the
    # rate from jumping with the phase between rollup and sample.
    return max(10.0, 2 * sample_seconds())


def queue_depths() -> dict[str, int | None]:
    """Messages waiting in each studio queue (LLEN on the broker); None for all when the broker is not Redis."""
    url = str(getattr(settings, "CELERY_BROKER_URL", "") or settings.REDIS_URL)
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return {queue: None for queue in QUEUES}
    client = redis.Redis.from_url(url)
    pipe = client.pipeline(transaction=False)
    for queue in QUEUES:
        pipe.llen(queue)
        for step in PRIORITY_STEPS:
            pipe.llen(f"{queue}{PRIORITY_SEP}{step}")
    counts = pipe.execute()
    per_queue = 1 + len(PRIORITY_STEPS)
    return {queue: int(sum(counts[i * per_queue:(i + 1) * per_queue])) for i, queue in enumerate(QUEUES)}


def invocation_rates(*, now: float) -> dict[str, Any]:
    """Requests per second over the last window: ``{"total": rps, "endpoints": {id: {"name", "rps"}}}``."""
    from studio.endpoints.models import EndpointMetric

    window = rate_window_seconds()
    rows = (EndpointMetric.objects.filter(ts__gt=now - window, ts__lte=now).values("endpoint_id", "endpoint__name")
            .annotate(n=Sum("invocations")).order_by("-n"))
    per_endpoint = [(str(r["endpoint_id"]), r["endpoint__name"], (r["n"] or 0) / window) for r in rows]
    return {"total": round(sum(rate for _, _, rate in per_endpoint), 4),
            "endpoints": {eid: {"name": name, "rps": round(rate, 4)}
                          for eid, name, rate in per_endpoint[:MAX_ENDPOINTS]}}


def sample_take(*, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    return {"type": "sample", "ts": round(now, 3), "queues": queue_depths(), "invocations": invocation_rates(now=now)}


def sample_store(sample: dict[str, Any]) -> None:
    keep = max(10, int(keep_minutes() * 60 / max(sample_seconds(), 0.1)))
    pipe = redis_client().pipeline(transaction=True)
    pipe.rpush(SAMPLES_KEY, json.dumps(sample))
    pipe.ltrim(SAMPLES_KEY, -keep, -1)
    pipe.execute()


def sample_lock() -> bool:
    """True for the one caller per interval allowed to sample (several beats, a retried task)."""
    ttl_ms = max(100, int(sample_seconds() * 800))
    return bool(redis_client().set(LOCK_KEY, "1", nx=True, px=ttl_ms))


def samples_since(*, since: float | None = None, minutes: float | None = None) -> list[dict[str, Any]]:
    """Stored samples, oldest first: after ``since`` (a unix time) and within the last ``minutes``."""
    cutoff = time.time() - 60 * (minutes if minutes is not None else keep_minutes())
    if since is not None:
        cutoff = max(cutoff, since)
    out = []
    for raw in redis_client().lrange(SAMPLES_KEY, 0, -1):
        try:
            sample = json.loads(raw)
        except ValueError:
            continue
        if isinstance(sample, dict) and float(sample.get("ts") or 0) > cutoff:
            out.append(sample)
    return out
