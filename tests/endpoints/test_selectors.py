from __future__ import annotations

import time

import pytest

from studio.endpoints import selectors
from studio.endpoints.models import EndpointMetric
from tests.endpoints.test_services import create, make_model, serve

pytestmark = pytest.mark.django_db


def test_it_sums_up_every_endpoint_of_a_list_in_four_queries(world, django_assert_num_queries):
    endpoints = [create(world, name=f"e{i}", variants=[{"name": "main", "model": str(make_model(world.project,
                                                                                              f"m{i}").id)}])
                 for i in range(3)]
    serve(endpoints[0].variants.get().instances.get())
    variant = endpoints[0].variants.get()
    now = time.time()
    EndpointMetric.objects.create(endpoint=endpoints[0], variant=variant, ts=now - 10, seconds=5, invocations=50,
                                  p50_ms=2, p99_ms=9, instances=1)
    EndpointMetric.objects.create(endpoint=endpoints[0], variant=variant, ts=now - 5, seconds=5, invocations=0,
                                  instances=1)
    with django_assert_num_queries(4):
        overview = selectors.endpoint_list_overview(endpoints=endpoints)
    assert overview[endpoints[0].id] == {"variants": 1, "in_service": 1, "desired": 1, "rps": 5.0, "p99_ms": 9.0}
    assert overview[endpoints[1].id] == {"variants": 1, "in_service": 0, "desired": 1, "rps": None, "p99_ms": None}
