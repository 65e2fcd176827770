"""Latency histograms against numpy, the Redis flush and the rollup into EndpointMetric rows."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import numpy as np
import pytest
import redis
import redis.asyncio
from django.conf import settings

from studio.endpoints import metrics
from studio.endpoints.metrics import LatencyHistogram, MetricsAccumulator, VariantCounts
from studio.endpoints.models import Endpoint, EndpointInstance, EndpointMetric, EndpointVariant, InstanceStatus
from studio.registry.models import Model


@pytest.fixture
def client():
    client = redis.Redis.from_url(settings.REDIS_URL)
    keys = [metrics.ACTIVE_KEY, metrics.LAST_ROLLUP_KEY, metrics.ROLLUP_LOCK_KEY,
            *client.keys(metrics.KEY.format("*"))]
    client.delete(*keys)
    yield client
    client.close()


def make_endpoint(project, *, name: str = "churn", variants: tuple[str, ...] = ("blue",)) -> Endpoint:
    model = Model.objects.create(project=project, name=name, algorithm="linear-learner", artifact_prefix="x/")
    endpoint = Endpoint.objects.create(project=project, name=name, type="realtime", status="in_service")
    for position, variant in enumerate(variants):
        EndpointVariant.objects.create(endpoint=endpoint, name=variant, model=model, position=position)
    return endpoint


def test_it_estimates_percentiles_within_five_percent_of_numpy():
    rng = np.random.default_rng(0)
    samples = rng.lognormal(mean=1.0, sigma=0.8, size=20_000)
    histogram = LatencyHistogram()
    for value in samples:
        histogram.add(float(value))
    for q in (50, 90, 99):
        assert histogram.percentile(q) == pytest.approx(np.percentile(samples, q), rel=0.05)
    assert LatencyHistogram().percentile(50) is None


def test_it_merges_histograms_of_several_processes_into_the_one_of_all_requests():
    rng = np.random.default_rng(1)
    fast, slow = rng.gamma(2.0, 1.0, 5000), rng.gamma(2.0, 30.0, 500)
    one, two, both = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    for value in fast:
        one.add(float(value))
        both.add(float(value))
    for value in slow:
        two.add(float(value))
        both.add(float(value))
    one.merge(two)
    assert one.counts == both.counts
    everything = np.concatenate([fast, slow])
    assert one.percentile(99) == pytest.approx(np.percentile(everything, 99), rel=0.05)
    # Extremes land in the first and last buckets instead of failing.
    edge = LatencyHistogram()
    edge.add(0.0)
    edge.add(10**9)
    assert sorted(edge.counts) == [0, metrics.N_BUCKETS - 1]


def test_it_counts_per_variant_and_round_trips_through_redis_fields(client):
    acc = MetricsAccumulator()
    for ms in (1.0, 2.0, 3.0):
        acc.record(7, latency_ms=ms)
    acc.record(7, latency_ms=50.0, error=True)
    acc.record(7, throttled=True)
    acc.record(8, latency_ms=1.0)
    taken = acc.take()
    assert not acc
    assert (taken[7].invocations, taken[7].errors, taken[7].throttled) == (4, 1, 1)
    metrics.flush(client, taken)
    asyncio.run(_flush_async_again(taken))
    back = metrics.take_counts(client, client.smembers(metrics.ACTIVE_KEY))
    assert (back[7].invocations, back[7].errors, back[7].throttled) == (8, 2, 2)
    assert back[7].latency.total == 8
    assert back[8].latency.counts == {k: 2 * v for k, v in taken[8].latency.counts.items()}
    # Taken means gone: the next take finds nothing and the variants leave the active set.
    assert metrics.take_counts(client, client.smembers(metrics.ACTIVE_KEY)) == {}
    assert client.smembers(metrics.ACTIVE_KEY) == set()
    assert VariantCounts.from_fields({b"invocations": b"3", b"nonsense": b"x", b"b12": b"3"}).latency.counts == {12: 3}


async def _flush_async_again(taken):
    client = redis.asyncio.Redis.from_url(settings.REDIS_URL)
    try:
        await metrics.flush_async(client, taken)
    finally:
        await client.aclose()


def test_it_rolls_up_traffic_and_idle_variants_into_rows(world, client, monkeypatch):
    published = []
    monkeypatch.setattr("studio.live.publisher.publish", lambda **kw: published.append(kw))
    endpoint = make_endpoint(world.project, variants=("blue", "green", "idle"))
    blue, green, idle = endpoint.variants.order_by("position")
    ready = datetime.fromtimestamp(1_000_000_001, tz=UTC)
    EndpointInstance.objects.create(variant=blue, status=InstanceStatus.IN_SERVICE, cold_start=True, ready_at=ready)
    EndpointInstance.objects.create(variant=blue, status=InstanceStatus.IN_SERVICE)
    EndpointInstance.objects.create(variant=idle, status=InstanceStatus.IN_SERVICE)
    EndpointInstance.objects.create(variant=idle, status=InstanceStatus.STOPPED)
    acc = MetricsAccumulator()
    latencies = np.random.default_rng(0).gamma(3.0, 2.0, 400)
    for ms in latencies:
        acc.record(blue.id, latency_ms=float(ms))
    acc.record(blue.id, latency_ms=5.0, error=True)
    for _ in range(3):
        acc.record(green.id, throttled=True)
    metrics.flush(client, acc.take())
    client.set(metrics.LAST_ROLLUP_KEY, "1000000000.0")

    rows = metrics.rollup(client=client, now=1_000_000_004.0)
    by_name = {row.variant.name: row for row in rows}
    assert set(by_name) == {"blue", "green", "idle"}
    b = by_name["blue"]
    assert (b.invocations, b.errors, b.throttled, b.instances, b.cold_starts, b.seconds) == (401, 1, 0, 2, 1, 4.0)
    assert b.p50_ms == pytest.approx(np.percentile(np.r_[latencies, 5.0], 50), rel=0.05)
    assert b.p99_ms == pytest.approx(np.percentile(np.r_[latencies, 5.0], 99), rel=0.05)
    g = by_name["green"]
    assert (g.invocations, g.throttled, g.instances, g.p50_ms) == (0, 3, 0, None)
    i = by_name["idle"]
    assert (i.invocations, i.instances, i.p50_ms) == (0, 1, None)
    assert EndpointMetric.objects.filter(endpoint=endpoint).count() == 3
    events = published[0]["events"]
    assert published[0]["kind"] == "endpoint" and published[0]["object_id"] == endpoint.id
    blue_event = next(e for e in events if e["variant"] == "blue")
    assert blue_event["type"] == "metric"
    assert blue_event["rps"] == pytest.approx(401 / 4.0)
    assert {"ts", "invocations", "errors", "throttled", "p50_ms", "p99_ms", "instances", "cold_starts"} <= set(
        blue_event)

    # The next interval starts where this one ended: no traffic counted twice, the cold start not again.
    rows = metrics.rollup(client=client, now=1_000_000_006.0)
    assert {(r.variant.name, r.invocations, r.cold_starts, r.seconds) for r in rows} == {
        ("blue", 0, 0, 2.0), ("idle", 0, 0, 2.0)}


def test_it_lets_one_rollup_run_at_a_time(world, client):
    client.set(metrics.ROLLUP_LOCK_KEY, "1", px=1000)
    assert metrics.rollup(client=client) == []
    client.delete(metrics.ROLLUP_LOCK_KEY)
    make_endpoint(world.project)
    assert metrics.rollup(client=client) == []  # no traffic and no instance: nothing to show
