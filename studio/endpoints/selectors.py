"""Every read of endpoints, their instances, keys, metrics and scaling events, scoped to the user's teams."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from django.db.models import Count, Max, Q, QuerySet, Sum
from django.http import Http404

from studio.accounts.selectors import project_list
from studio.endpoints.models import Endpoint, EndpointInstance, EndpointMetric, InstanceStatus, InvokeKey, ScalingEvent

if TYPE_CHECKING:
    from studio.accounts.models import Project, User

# The latency the endpoint summary reports: the last few minutes, as an on-call engineer would read it.
LATENCY_WINDOW_SECONDS = 300


def endpoint_list(*, user: User, project: Project) -> QuerySet[Endpoint]:
    return Endpoint.objects.filter(project=project, project__in=project_list(user=user)).select_related(
        "project__team", "created_by")


def endpoint_get(*, user: User, project: Project, endpoint_id) -> Endpoint:
    try:
        return endpoint_list(user=user, project=project).get(id=endpoint_id)
    except (Endpoint.DoesNotExist, ValueError, TypeError):
        raise Http404("No such endpoint in this project.") from None


def endpoint_get_any_project(*, user: User, endpoint_id) -> Endpoint | None:
    """For websockets and invocation URLs, which carry only the endpoint id."""
    return Endpoint.objects.filter(id=endpoint_id, project__in=project_list(user=user)).select_related(
        "project__team").first()


def variant_list(*, endpoint: Endpoint) -> list[dict[str, Any]]:
    """Variants with their instance counts, as the API and the page show them."""
    rows = []
    variants = endpoint.variants.filter(retired=False).select_related("model").annotate(
        in_service=Count("instances", filter=Q(instances__status=InstanceStatus.IN_SERVICE)),
        starting=Count("instances", filter=Q(instances__status__in=(InstanceStatus.PENDING, InstanceStatus.STARTING))),
    )
    for variant in variants:
        rows.append({"id": variant.id, "name": variant.name, "model": variant.model_id,
                     "model_name": variant.model.name, "weight": variant.weight,
                     "min_instances": variant.min_instances, "max_instances": variant.max_instances,
                     "desired_instances": variant.desired_instances, "current_instances": variant.in_service,
                     "starting_instances": variant.starting})
    return rows


def instance_list(*, endpoint: Endpoint) -> QuerySet[EndpointInstance]:
    return EndpointInstance.objects.filter(variant__endpoint=endpoint).select_related("variant").order_by(
        "-created_at")


def metrics_summary(*, endpoint: Endpoint) -> dict[str, Any]:
    """``{invocations, errors, throttled, cold_starts}`` since creation and p50/p99 over the last minutes."""
    totals = EndpointMetric.objects.filter(endpoint=endpoint).aggregate(
        invocations=Sum("invocations"), errors=Sum("errors"), throttled=Sum("throttled"))
    recent = EndpointMetric.objects.filter(endpoint=endpoint, ts__gt=time.time() - LATENCY_WINDOW_SECONDS,
                                           invocations__gt=0).order_by("-ts")
    p50 = p99 = None
    weights = [(row.invocations, row.p50_ms, row.p99_ms) for row in recent[:200] if row.p50_ms is not None]
    if weights:
        n = sum(w for w, _, _ in weights)
        p50 = sum(w * v for w, v, _ in weights) / n
        p99 = max(v for _, _, v in weights if v is not None)
    cold = EndpointInstance.objects.filter(variant__endpoint=endpoint, cold_start=True, ready_at__isnull=False)
    return {"invocations": totals["invocations"] or 0, "errors": totals["errors"] or 0,
            "throttled": totals["throttled"] or 0, "p50_ms": p50, "p99_ms": p99, "cold_starts": cold.count()}


def metric_rows(*, endpoint: Endpoint, since: float | None = None) -> QuerySet[EndpointMetric]:
    rows = EndpointMetric.objects.filter(endpoint=endpoint).select_related("variant")
    if since is not None:
        rows = rows.filter(ts__gt=since)
    return rows.order_by("ts", "id")


def metric_event(row: EndpointMetric) -> dict[str, Any]:
    return {"type": "metric", "variant": row.variant.name, "ts": row.ts, "invocations": row.invocations,
            "errors": row.errors, "throttled": row.throttled, "rps": row.invocations / row.seconds if row.seconds
            else 0.0, "p50_ms": row.p50_ms, "p99_ms": row.p99_ms, "instances": row.instances,
            "cold_starts": row.cold_starts}


def scaling_event_list(*, endpoint: Endpoint) -> QuerySet[ScalingEvent]:
    return ScalingEvent.objects.filter(endpoint=endpoint).select_related("variant").order_by("-created_at")


def invoke_key_list(*, endpoint: Endpoint) -> QuerySet[InvokeKey]:
    return InvokeKey.objects.filter(endpoint=endpoint).select_related("created_by").order_by("-created_at")


def invoke_key_get(*, endpoint: Endpoint, key_id) -> InvokeKey:
    try:
        return invoke_key_list(endpoint=endpoint).get(id=key_id)
    except (InvokeKey.DoesNotExist, ValueError, TypeError):
        raise Http404("No such invoke key on this endpoint.") from None


def endpoint_list_overview(*, endpoints: list[Endpoint], recent_seconds: float = 60.0) -> dict[Any, dict[str, Any]]:
    """For a list page, in four queries whatever the number of endpoints: per endpoint id, its variants count,
    instances in service and desired, invocations per second over ``recent_seconds`` (None without traffic rows)
    and the p99 latency over the last minutes (None without traffic)."""
    from studio.endpoints.models import EndpointVariant

    ids = [endpoint.id for endpoint in endpoints]
    out: dict[Any, dict[str, Any]] = {i: {"variants": 0, "in_service": 0, "desired": 0, "rps": None, "p99_ms": None}
                                      for i in ids}
    for row in EndpointVariant.objects.filter(endpoint__in=ids, retired=False).values("endpoint_id").annotate(
            n=Count("id"), desired=Sum("desired_instances")):
        out[row["endpoint_id"]].update(variants=row["n"], desired=row["desired"] or 0)
    for row in EndpointInstance.objects.filter(variant__endpoint__in=ids, variant__retired=False,
                                               status=InstanceStatus.IN_SERVICE).values(
            "variant__endpoint_id").annotate(n=Count("id")):
        out[row["variant__endpoint_id"]]["in_service"] = row["n"]
    now = time.time()
    per_variant: dict[tuple[Any, int], list[float]] = {}
    for endpoint_id, variant_id, invocations, seconds in EndpointMetric.objects.filter(
            endpoint__in=ids, ts__gt=now - recent_seconds).values_list("endpoint_id", "variant_id", "invocations",
                                                                       "seconds"):
        totals = per_variant.setdefault((endpoint_id, variant_id), [0.0, 0.0])
        totals[0] += invocations
        totals[1] += seconds
    for (endpoint_id, _), (invocations, seconds) in per_variant.items():
        rate = invocations / seconds if seconds > 0 else 0.0
        out[endpoint_id]["rps"] = (out[endpoint_id]["rps"] or 0.0) + rate
    for row in EndpointMetric.objects.filter(endpoint__in=ids, ts__gt=now - LATENCY_WINDOW_SECONDS,
                                             invocations__gt=0).values("endpoint_id").annotate(p99=Max("p99_ms")):
        out[row["endpoint_id"]]["p99_ms"] = row["p99"]
    return out
