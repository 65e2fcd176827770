"""Talking to the Celery workers: who answers, which queues each consumes, what each runs; drain and resume.

Everything here goes through the broker's control channel (``app.control``), so it sees workers on every
host. Answers are cached in Redis for a few seconds (as JSON): a dashboard refreshing its panels, or several
admins looking at once, cost one round of broadcasts, not one each. Workers seen earlier but silent now
stay on the list as "not responding" for a while: a worker busy on a long task in a solo pool, or one that
died, is exactly what an admin wants to notice.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import redis
from django.conf import settings

logger = logging.getLogger(__name__)

# The queues studio tasks are routed to (settings.CELERY_TASK_ROUTES, CELERY_TASK_DEFAULT_QUEUE).
QUEUES = ("training", "inference", "default")
SNAPSHOT_KEY = "studio:ops:workers"
SEEN_KEY = "studio:ops:workers-seen"  # hash: worker name -> {"last_seen": ts, "queues": [...]}
DRAINED_KEY = "studio:ops:workers-drained"  # hash: worker name -> [queues an admin drained]


# How long a broadcast waits for answers; how long answers are reused; how long a silent worker stays listed
# (after that it was stopped, not lost).
INSPECT_TIMEOUT_SECONDS = 1.0
CACHE_SECONDS = 5.0
FORGET_SECONDS = 3600.0


def inspect_timeout() -> float:
    return INSPECT_TIMEOUT_SECONDS


def cache_seconds() -> float:
    return CACHE_SECONDS


def forget_seconds() -> float:
    return FORGET_SECONDS


def redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def _app():
    from studio.celery import app

    return app


def inspect_workers(*, timeout: float) -> dict[str, dict[str, Any]]:
    """Ask every worker: ``{name: {"queues": [..] | None, "active": [..], "stats": {..}}}`` for those answering.

    The ping waits the whole timeout (nobody knows how many workers there are); the follow-up questions
    go to the workers that answered and return as soon as each has. ``queues`` is None when a worker
    answered the ping but not that question (it got busy in between): unknown, not drained.
    """
    app = _app()
    names = sorted((app.control.inspect(timeout=timeout).ping() or {}).keys())
    if not names:
        return {}
    targeted = app.control.inspect(destination=names, limit=len(names), timeout=timeout)
    queues = targeted.active_queues() or {}
    active = targeted.active() or {}
    stats = targeted.stats() or {}
    return {
        name: {
            "queues": [q.get("name") for q in queues[name]] if name in queues else None,
            "active": active.get(name) or [],
            "stats": stats.get(name) or {},
        }
        for name in names
    }


def _loads(raw: Any, default: Any) -> Any:
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        return default


def _hash(client: redis.Redis, key: str) -> dict[str, Any]:
    return {k.decode(): _loads(v, None) for k, v in client.hgetall(key).items()}


def _active_row(task: dict[str, Any]) -> dict[str, Any]:
    args = task.get("args")
    return {"id": task.get("id") or "", "name": task.get("name") or "", "args": args if isinstance(args, str)
            else json.dumps(args, default=str)[:200], "started": task.get("time_start")}


def _processed(stats: dict[str, Any]) -> int | None:
    total = stats.get("total")
    return sum(v for v in total.values() if isinstance(v, int)) if isinstance(total, dict) else None


def workers_snapshot(*, refresh: bool = False) -> dict[str, Any]:
    """``{"workers": [...], "checked_at": ts, "error": str | None}``, at most ``cache_seconds`` old.

    Each worker: name, alive, last_seen, queues (consumed now, or last known when silent), drained (queues an
    admin drained and may resume), active tasks, processed (tasks since it started), pool, concurrency, pid.
    """
    client = redis_client()
    if not refresh:
        cached = _loads(client.get(SNAPSHOT_KEY), None)
        if cached is not None:
            return cached
    now = time.time()
    error = None
    try:
        live = inspect_workers(timeout=inspect_timeout())
    except Exception as exc:  # the broker is away: say so on the dashboard instead of failing the page
        logger.warning("could not inspect the Celery workers", exc_info=True)
        live, error = {}, f"Could not reach the workers through the broker: {type(exc).__name__}: {exc}"
    seen = _hash(client, SEEN_KEY)
    for name, info in live.items():
        known = seen.get(name) or {}
        queues = info["queues"] if info["queues"] is not None else known.get("queues") or []
        seen[name] = {"last_seen": now, "queues": queues}
        client.hset(SEEN_KEY, name, json.dumps(seen[name]))
    drained = _hash(client, DRAINED_KEY)
    rows = []
    for name in sorted(seen):
        entry = seen[name] or {}
        info = live.get(name)
        if info is None and now - float(entry.get("last_seen") or 0) > forget_seconds():
            client.hdel(SEEN_KEY, name)
            continue
        stats = (info or {}).get("stats") or {}
        pool = stats.get("pool") or {}
        rows.append({
            "name": name,
            "alive": info is not None,
            "last_seen": entry.get("last_seen"),
            "queues": sorted(entry.get("queues") or []),
            "drained": sorted(drained.get(name) or []),
            "active": [_active_row(t) for t in (info or {}).get("active") or []],
            "processed": _processed(stats),
            "pool": str(pool.get("implementation") or "").rsplit(":", 1)[-1] or None,
            "concurrency": pool.get("max-concurrency"),
            "pid": stats.get("pid"),
        })
    snapshot = {"workers": rows, "checked_at": now, "error": error}
    client.set(SNAPSHOT_KEY, json.dumps(snapshot, default=str), px=max(1, int(cache_seconds() * 1000)))
    return snapshot


def forget_snapshot() -> None:
    """The next look asks the workers again (after a drain or a resume)."""
    redis_client().delete(SNAPSHOT_KEY)


def control_queues(*, worker: str, queues: list[str], consume: bool, timeout: float) -> dict[str, Any]:
    """Tell one worker to stop (``consume=False``) or start consuming each queue: ``{queue: reply or None}``.

    A reply is the worker's ``{"ok": ...}`` or ``{"error": ...}``; None means it did not answer in time (the
    command still reaches it when it next reads its control queue).
    """
    control = _app().control
    replies: dict[str, Any] = {}
    for queue in queues:
        send = control.add_consumer if consume else control.cancel_consumer
        answers = send(queue, destination=[worker], reply=True, timeout=timeout) or []
        replies[queue] = next((answer[worker] for answer in answers if worker in answer), None)
    return replies


def drained_set(*, worker: str, queues: list[str]) -> None:
    client = redis_client()
    if queues:
        client.hset(DRAINED_KEY, worker, json.dumps(sorted(queues)))
    else:
        client.hdel(DRAINED_KEY, worker)


def drained_get(*, worker: str) -> list[str]:
    return list(_loads(redis_client().hget(DRAINED_KEY, worker), None) or [])
