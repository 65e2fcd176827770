"""Invocation metrics: counted in each gateway process, summed in Redis, rolled up into EndpointMetric rows.

- :class:`LatencyHistogram` has fixed log-spaced buckets (about 9 % wide, 0.05 ms to 10 min), so histograms
  from any number of gateway processes add up bucket by bucket and p50/p99 stay within ~5 % of the exact
  values whatever the traffic.
- :class:`MetricsAccumulator` counts per variant in process; :func:`flush_async` (gateway, about once a
  second) adds the counts to one Redis hash per variant with HINCRBY: ``studio:endpoint-metrics:<variant id>``.
- :func:`rollup` (the agent, every ~2 s) takes each hash atomically, writes one EndpointMetric row per variant
  that had traffic or has instances (idle time shows on the charts too) and publishes the rows live.

Only :func:`rollup` uses Django, imported when it runs: the gateway imports this module on its hot path.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

KEY = "studio:endpoint-metrics:{}"
ACTIVE_KEY = "studio:endpoint-metrics:active"  # variant ids whose hash may hold counts
LAST_ROLLUP_KEY = "studio:endpoint-metrics:last-rollup"
ROLLUP_LOCK_KEY = "studio:endpoint-metrics:rollup-lock"
# A hash nobody rolls up (no agent running) must not live forever.
KEY_TTL_SECONDS = 24 * 3600
# The interval of the first rollup, when no earlier one left its time in Redis.
DEFAULT_INTERVAL_SECONDS = 2.0
MAX_INTERVAL_SECONDS = 3600.0

MIN_MS = 0.05
BUCKETS_PER_DOUBLING = 8
RATIO = 2.0 ** (1.0 / BUCKETS_PER_DOUBLING)
N_BUCKETS = math.ceil(math.log(600_000 / MIN_MS, RATIO)) + 1
_LOG_RATIO = math.log(RATIO)

COUNTER_FIELDS = ("invocations", "errors", "throttled")

# HGETALL + DEL in one step: a gateway's HINCRBY lands either before (taken now) or after (next time).
# A hash that is gone takes its variant out of the active set, so idle variants cost nothing.
_TAKE_SCRIPT = """
local data = redis.call('HGETALL', KEYS[1])
if #data == 0 then
  redis.call('SREM', KEYS[2], ARGV[1])
  return data
end
redis.call('DEL', KEYS[1])
return data
"""


def bucket_of(ms: float) -> int:
    """Index of the bucket holding a latency in milliseconds (below 0.05 ms -> 0, above 10 min -> the last)."""
    if ms <= MIN_MS:
        return 0
    return min(N_BUCKETS - 1, int(math.log(ms / MIN_MS) / _LOG_RATIO))


def bucket_bounds(index: int) -> tuple[float, float]:
    """``[low, high)`` in milliseconds of bucket ``index``."""
    return MIN_MS * RATIO ** index, MIN_MS * RATIO ** (index + 1)


@dataclass
class LatencyHistogram:
    """Counts per fixed log-spaced bucket; add histograms of several processes with :meth:`merge`."""

    counts: dict[int, int] = field(default_factory=dict)

    def add(self, ms: float) -> None:
        index = bucket_of(ms)
        self.counts[index] = self.counts.get(index, 0) + 1

    def merge(self, other: LatencyHistogram | Mapping[int, int]) -> None:
        counts = other.counts if isinstance(other, LatencyHistogram) else other
        for index, count in counts.items():
            self.counts[index] = self.counts.get(index, 0) + int(count)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def percentile(self, q: float) -> float | None:
        """The ``q``-th percentile (0-100) in milliseconds, interpolated in log space inside its bucket.

        Returns None for an empty histogram.
        """
        total = self.total
        if total == 0:
            return None
        rank = min(max(q, 0.0), 100.0) / 100.0 * total
        seen = 0
        for index in sorted(self.counts):
            count = self.counts[index]
            if count <= 0:
                continue
            if seen + count >= rank:
                low, _ = bucket_bounds(index)
                fraction = (rank - seen) / count
                return low * RATIO ** fraction
            seen += count
        return bucket_bounds(max(self.counts))[1]


@dataclass
class VariantCounts:
    """What one variant saw over an interval."""

    invocations: int = 0
    errors: int = 0
    throttled: int = 0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)

    def fields(self) -> dict[str, int]:
        """The Redis hash fields to add: counters and ``b<bucket>`` latency counts."""
        out = {name: getattr(self, name) for name in COUNTER_FIELDS if getattr(self, name)}
        out.update({f"b{index}": count for index, count in self.latency.counts.items() if count})
        return out

    @classmethod
    def from_fields(cls, raw: Mapping[Any, Any]) -> VariantCounts:
        """Parse a Redis hash (bytes or str keys and values) back into counts; unknown fields are ignored."""
        counts = cls()
        for key, value in raw.items():
            name = key.decode() if isinstance(key, bytes) else str(key)
            try:
                number = int(value)
            except (TypeError, ValueError):
                continue
            if name in COUNTER_FIELDS:
                setattr(counts, name, number)
            elif name.startswith("b") and name[1:].isdigit():
                counts.latency.counts[int(name[1:])] = number
        return counts


class MetricsAccumulator:
    """Per-variant counts of one process, taken and reset by :meth:`take` at each flush."""

    def __init__(self) -> None:
        self._variants: dict[int, VariantCounts] = {}

    def record(self, variant_id: int, *, latency_ms: float | None = None, error: bool = False,
               throttled: bool = False) -> None:
        """Count one request: forwarded to an instance (``latency_ms``; ``error`` when it failed) or refused 429."""
        counts = self._variants.get(variant_id)
        if counts is None:
            counts = self._variants[variant_id] = VariantCounts()
        if throttled:
            counts.throttled += 1
            return
        counts.invocations += 1
        if error:
            counts.errors += 1
        if latency_ms is not None:
            counts.latency.add(latency_ms)

    def take(self) -> dict[int, VariantCounts]:
        taken, self._variants = self._variants, {}
        return taken

    def __bool__(self) -> bool:
        return bool(self._variants)


def _queue_flush(pipe: Any, taken: Mapping[int, VariantCounts]) -> None:
    for variant_id, counts in taken.items():
        key = KEY.format(variant_id)
        for name, value in counts.fields().items():
            pipe.hincrby(key, name, value)
        pipe.expire(key, KEY_TTL_SECONDS)
        pipe.sadd(ACTIVE_KEY, variant_id)


async def flush_async(client: Any, taken: Mapping[int, VariantCounts]) -> None:
    """Add counts to Redis from a gateway (redis.asyncio client), one round trip for all variants."""
    if not taken:
        return
    pipe = client.pipeline(transaction=False)
    _queue_flush(pipe, taken)
    await pipe.execute()


def flush(client: Any, taken: Mapping[int, VariantCounts]) -> None:
    """Same as :func:`flush_async` with a synchronous redis client."""
    if not taken:
        return
    pipe = client.pipeline(transaction=False)
    _queue_flush(pipe, taken)
    pipe.execute()


def take_counts(client: Any, variant_ids: Iterable[Any]) -> dict[int, VariantCounts]:
    """Atomically take (read and delete) the Redis counts of these variants."""
    script = client.register_script(_TAKE_SCRIPT)
    out: dict[int, VariantCounts] = {}
    for raw_id in variant_ids:
        try:
            variant_id = int(raw_id)
        except (TypeError, ValueError):
            client.srem(ACTIVE_KEY, raw_id)
            continue
        data = script(keys=[KEY.format(variant_id), ACTIVE_KEY], args=[variant_id])
        if data:
            out[variant_id] = VariantCounts.from_fields(dict(zip(data[::2], data[1::2], strict=True)))
    return out


def rollup(*, client: Any = None, now: float | None = None) -> list[Any]:
    """Turn the counts gathered since the last rollup into EndpointMetric rows and live events.

    One row per variant that had traffic or has an instance in service: ``ts`` (now), ``seconds`` since the
    previous rollup, invocations, errors, throttled, p50/p99 latency, in-service instances and cold starts
    (instances with ``cold_start`` that became ready in the interval). Rows are published on the endpoint's
    live stream as ``{"type": "metric", ...}`` events. When several agents call this at once, only one runs.

    Parameters
    ----------
    client : redis.Redis, optional
        Defaults to one for ``settings.REDIS_URL``.
    now : float, optional
        Unix time of the interval's end (tests).

    Returns
    -------
    list of EndpointMetric
        The rows written (empty when another agent holds the rollup lock).
    """
    import datetime as dt

    import redis
    from django.conf import settings
    from django.db.models import Count

    from studio.endpoints import selectors
    from studio.endpoints.models import EndpointInstance, EndpointMetric, EndpointVariant, InstanceStatus
    from studio.live.publisher import publish

    client = client or redis.Redis.from_url(settings.REDIS_URL)
    if not client.set(ROLLUP_LOCK_KEY, "1", nx=True, px=1500):
        return []
    try:
        now = time.time() if now is None else now
        previous = client.getset(LAST_ROLLUP_KEY, repr(now))
        try:
            last = float(previous) if previous is not None else now - DEFAULT_INTERVAL_SECONDS
        except ValueError:
            last = now - DEFAULT_INTERVAL_SECONDS
        seconds = min(max(now - last, 1e-3), MAX_INTERVAL_SECONDS)
        last = now - seconds
        taken = take_counts(client, client.smembers(ACTIVE_KEY))

        serving = dict(EndpointInstance.objects.filter(status=InstanceStatus.IN_SERVICE)
                       .values_list("variant_id").annotate(n=Count("id")).values_list("variant_id", "n"))
        start, end = (dt.datetime.fromtimestamp(t, tz=dt.UTC) for t in (last, now))
        cold = dict(EndpointInstance.objects.filter(cold_start=True, ready_at__gt=start, ready_at__lte=end)
                    .values_list("variant_id").annotate(n=Count("id")).values_list("variant_id", "n"))
        wanted = set(taken) | set(serving) | set(cold)
        variants = EndpointVariant.objects.filter(id__in=wanted).select_related("endpoint")
        rows = []
        for variant in variants:
            counts = taken.get(variant.id, VariantCounts())
            rows.append(EndpointMetric(
                endpoint_id=variant.endpoint_id, variant=variant, ts=now, seconds=seconds,
                invocations=counts.invocations, errors=counts.errors, throttled=counts.throttled,
                p50_ms=counts.latency.percentile(50), p99_ms=counts.latency.percentile(99),
                instances=serving.get(variant.id, 0), cold_starts=cold.get(variant.id, 0),
            ))
        EndpointMetric.objects.bulk_create(rows)
    finally:
        client.delete(ROLLUP_LOCK_KEY)
    by_endpoint: dict[Any, list[dict[str, Any]]] = {}
    for row in rows:
        by_endpoint.setdefault(row.endpoint_id, []).append(selectors.metric_event(row))
    for endpoint_id, events in by_endpoint.items():
        publish(kind="endpoint", object_id=endpoint_id, events=events)
    return rows
