"""Every write to endpoints: create, update, delete, invoke keys, scaling decisions and the routing table.

The database holds what is wanted (variants, desired instance counts, instance rows) and what is
observed (instance status written by the agent). `endpoints_autoscale` (called every second by the
agent) turns load into desired counts and instance rows; the agent turns pending rows into processes;
`endpoint_routes_publish` tells the gateways which in-service instances may take requests.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import secrets
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

import redis
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from studio.accounts.models import Role
from studio.accounts.permissions import require_role
from studio.accounts.services import audit
from studio.core.errors import Conflict
from studio.endpoints.models import (
    LIVE_INSTANCE_STATUSES,
    Endpoint,
    EndpointInstance,
    EndpointMetric,
    EndpointStatus,
    EndpointType,
    EndpointVariant,
    InstanceStatus,
    InvokeKey,
    ScalingEvent,
)
from studio.endpoints.validation import (
    clean_async,
    clean_autoscaling,
    clean_serverless,
    clean_variants,
    endpoint_validate,
)
from studio.live.publisher import publish
from studio.registry.models import Model

if TYPE_CHECKING:
    from studio.accounts.models import Project, User

logger = logging.getLogger(__name__)

LIVE_KIND = "endpoint"
ROUTES_KEY = "studio:endpoint:{}:routes"
REALTIME_MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
# Instances that fail to start this many times in a row fail a creating endpoint (the model cannot load).
MAX_START_FAILURES = 3
# The load an autoscaler decision looks at: invocations per second over this window.
LOAD_WINDOW_SECONDS = 30


def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


# --- routing table --------------------------------------------------------------------------------


def endpoint_routes(*, endpoint: Endpoint) -> dict[str, Any]:
    """What a gateway needs to route a request: variants, weights and their in-service instances."""
    variants = []
    for variant in endpoint.variants.filter(retired=False).order_by("position", "id"):
        instances = variant.instances.filter(status=InstanceStatus.IN_SERVICE).order_by("created_at")
        variants.append({"id": variant.id, "name": variant.name, "weight": variant.weight,
                         "instances": [{"id": str(i.id), "url": i.url} for i in instances]})
    return {
        "endpoint": str(endpoint.id), "type": endpoint.type, "status": endpoint.status,
        "team_id": str(endpoint.project.team_id), "project_id": str(endpoint.project_id),
        "max_concurrency": (endpoint.serverless or {}).get("max_concurrency"),
        "max_payload_bytes": REALTIME_MAX_PAYLOAD_BYTES, "variants": variants,
    }


def endpoint_routes_publish(*, endpoint_id: UUID | str) -> None:
    """Write the routing table to Redis for the gateways; remove it when the endpoint is gone or deleting."""
    key = ROUTES_KEY.format(endpoint_id)
    endpoint = Endpoint.objects.filter(id=endpoint_id).select_related("project").first()
    client = _redis()
    if endpoint is None or endpoint.status == EndpointStatus.DELETING:
        client.delete(key)
        return
    client.set(key, json.dumps(endpoint_routes(endpoint=endpoint), default=str))


def _routes_publish_on_commit(endpoint_id: UUID) -> None:
    transaction.on_commit(lambda: _safely(endpoint_routes_publish, endpoint_id=endpoint_id))


def _safely(fn, **kwargs) -> None:
    try:
        fn(**kwargs)
    except Exception:
        # Redis briefly away: the agent republishes on its next instance change and every autoscale pass.
        logger.warning("%s(%s) failed", fn.__name__, kwargs, exc_info=True)


# --- live events ----------------------------------------------------------------------------------


def status_event(endpoint: Endpoint) -> dict[str, Any]:
    return {"type": "status", "status": endpoint.status,
            "message": endpoint.failure_reason or endpoint.status_message}


def instances_event(endpoint: Endpoint) -> dict[str, Any]:
    counts = {}
    for variant in endpoint.variants.filter(retired=False):
        live = variant.instances.filter(status__in=LIVE_INSTANCE_STATUSES)
        counts[variant.name] = {"in_service": live.filter(status=InstanceStatus.IN_SERVICE).count(),
                                "starting": live.exclude(status=InstanceStatus.IN_SERVICE).count(),
                                "desired": variant.desired_instances}
    return {"type": "instances", "variants": counts}


def publish_endpoint(*, endpoint: Endpoint, extra: list[dict[str, Any]] | None = None) -> None:
    events = [status_event(endpoint), instances_event(endpoint), *(extra or [])]
    publish(kind=LIVE_KIND, object_id=endpoint.id, events=events)
    publish(kind="project", object_id=endpoint.project_id,
            events=[{**events[0], "object": "endpoint", "id": str(endpoint.id), "name": endpoint.name}])


# --- create, update, delete -----------------------------------------------------------------------


def endpoint_create(*, user: User, project: Project, name: Any, type: Any, variants: Any, serverless: Any = None,
                    autoscaling: Any = None, async_config: Any = None) -> Endpoint:
    """Create an endpoint (member+): its instances start in the background; status goes creating -> in_service."""
    require_role(user=user, team=project.team, role=Role.MEMBER)
    cleaned = endpoint_validate(project=project, name=name, type=type, variants=variants, serverless=serverless,
                                autoscaling=autoscaling, async_config=async_config)
    with transaction.atomic():
        _lock_models(cleaned["variants"])
        endpoint = Endpoint.objects.create(
            project=project, name=cleaned["name"], type=cleaned["type"], serverless=cleaned["serverless"],
            autoscaling=cleaned["autoscaling"], async_config=cleaned["async_config"], created_by=user,
            status_message="Starting instances",
        )
        for position, spec in enumerate(cleaned["variants"]):
            EndpointVariant.objects.create(endpoint=endpoint, position=position, name=spec["name"],
                                           model=spec["model"], weight=spec["weight"],
                                           min_instances=spec["min_instances"], max_instances=spec["max_instances"],
                                           desired_instances=spec["min_instances"])
        _converge(endpoint)
        _refresh_status(endpoint)
        audit(actor=user, verb="created endpoint", project=project, target=endpoint.name,
              data={"endpoint": str(endpoint.id), "type": endpoint.type})
        _routes_publish_on_commit(endpoint.id)
        transaction.on_commit(lambda: publish_endpoint(endpoint=endpoint))
    return endpoint


def endpoint_update(*, user: User, endpoint: Endpoint, variants: Any = None, serverless: Any = None,
                    autoscaling: Any = None, async_config: Any = None) -> Endpoint:
    """Change variants, weights or limits (member+) without dropping requests.

    A variant whose model changes gets new instances first; its old ones drain (finish what they
    hold) only once the new ones are in service. Weights and limits apply at once.
    """
    require_role(user=user, team=endpoint.project.team, role=Role.MEMBER)
    if endpoint.status in (EndpointStatus.DELETING,):
        raise Conflict(f"Endpoint '{endpoint.name}' is being deleted.")
    errors: dict[str, list[str]] = {}
    new_variants = clean_variants(endpoint.project, variants, endpoint_type=endpoint.type, errors=errors) \
        if variants is not None else None
    fields: dict[str, Any] = {}
    if serverless is not None and endpoint.type == EndpointType.SERVERLESS:
        fields["serverless"] = clean_serverless(serverless, errors)
    if autoscaling is not None:
        fields["autoscaling"] = clean_autoscaling(autoscaling, errors)
    if async_config is not None and endpoint.type == EndpointType.ASYNC:
        fields["async_config"] = clean_async(async_config, errors)
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        _lock_models(new_variants or [])
        endpoint = Endpoint.objects.select_for_update().get(id=endpoint.id)
        model_changed = False
        if new_variants is not None:
            existing = {v.name: v for v in endpoint.variants.filter(retired=False)}
            for position, spec in enumerate(new_variants):
                variant = existing.pop(spec["name"], None)
                if variant is None:
                    EndpointVariant.objects.create(endpoint=endpoint, position=position, name=spec["name"],
                                                   model=spec["model"], weight=spec["weight"],
                                                   min_instances=spec["min_instances"],
                                                   max_instances=spec["max_instances"],
                                                   desired_instances=spec["min_instances"])
                    continue
                model_changed |= variant.model_id != spec["model"].id
                variant.model = spec["model"]
                variant.weight = spec["weight"]
                variant.position = position
                variant.min_instances = spec["min_instances"]
                variant.max_instances = spec["max_instances"]
                variant.desired_instances = min(max(variant.desired_instances, spec["min_instances"]),
                                                spec["max_instances"])
                variant.save()
            for gone in existing.values():
                # Out of the routing table first (published below), then drained: nothing in flight is cut.
                EndpointVariant.objects.filter(id=gone.id).update(retired=True, weight=0, desired_instances=0,
                                                                  min_instances=0)
        for key, value in fields.items():
            setattr(endpoint, key, value)
        if model_changed:
            endpoint.config_version += 1
            endpoint.status = EndpointStatus.UPDATING
            endpoint.status_message = "Starting instances of the new model"
        endpoint.save()
        _converge(endpoint)
        _refresh_status(endpoint)
        audit(actor=user, verb="updated endpoint", project=endpoint.project, target=endpoint.name,
              data={"endpoint": str(endpoint.id)})
        _routes_publish_on_commit(endpoint.id)
        transaction.on_commit(lambda: publish_endpoint(endpoint=endpoint))
    return endpoint


def _lock_models(variants: list[dict[str, Any]]) -> None:
    """Lock the served models' rows, as the registry's delete does: neither can slip in between check and write."""
    ids = [spec["model"].id for spec in variants if spec.get("model") is not None]
    if ids:
        list(Model.objects.select_for_update().filter(id__in=ids).values_list("id", flat=True))


def endpoint_delete(*, user: User, endpoint: Endpoint) -> None:
    """Delete an endpoint (member+): gateways stop routing to it, instances drain, then the row goes."""
    require_role(user=user, team=endpoint.project.team, role=Role.MEMBER)
    with transaction.atomic():
        Endpoint.objects.filter(id=endpoint.id).update(status=EndpointStatus.DELETING,
                                                       status_message="Stopping instances")
        EndpointInstance.objects.filter(variant__endpoint=endpoint, status=InstanceStatus.PENDING).update(
            status=InstanceStatus.STOPPED, stopped_at=timezone.now())
        EndpointInstance.objects.filter(variant__endpoint=endpoint, status__in=LIVE_INSTANCE_STATUSES).update(
            status=InstanceStatus.DRAINING)
        EndpointVariant.objects.filter(endpoint=endpoint).update(desired_instances=0)
        audit(actor=user, verb="deleted endpoint", project=endpoint.project, target=endpoint.name,
              data={"endpoint": str(endpoint.id)})
        _routes_publish_on_commit(endpoint.id)
        endpoint_id = endpoint.id
        transaction.on_commit(lambda: _finish_delete(endpoint_id))


def _finish_delete(endpoint_id: UUID) -> None:
    """Remove a deleting endpoint once no instance process is left (the agent stops draining ones)."""
    endpoint = Endpoint.objects.filter(id=endpoint_id, status=EndpointStatus.DELETING).first()
    if endpoint is None:
        return
    busy = EndpointInstance.objects.filter(variant__endpoint=endpoint).exclude(
        status__in=(InstanceStatus.STOPPED, InstanceStatus.FAILED)).exists()
    if busy:
        return
    project_id, name = endpoint.project_id, endpoint.name
    endpoint.delete()
    publish(kind="project", object_id=project_id, events=[{"type": "status", "status": "deleted",
                                                           "object": "endpoint", "id": str(endpoint_id),
                                                           "name": name}])


# --- invoke keys ----------------------------------------------------------------------------------


def invoke_key_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def invoke_key_create(*, user: User, endpoint: Endpoint, name: str = "") -> tuple[InvokeKey, str]:
    """A new key for `X-Api-Key` (member+); the secret is returned once and only its hash is kept."""
    require_role(user=user, team=endpoint.project.team, role=Role.MEMBER)
    secret = "sk-ep-" + secrets.token_urlsafe(32)
    key = InvokeKey.objects.create(endpoint=endpoint, name=(name or "invoke key").strip()[:100], prefix=secret[:12],
                                   key_hash=invoke_key_hash(secret), created_by=user)
    audit(actor=user, verb="created invoke key", project=endpoint.project, target=endpoint.name,
          data={"endpoint": str(endpoint.id), "key": key.prefix})
    return key, secret


def invoke_key_revoke(*, user: User, key: InvokeKey) -> InvokeKey:
    require_role(user=user, team=key.endpoint.project.team, role=Role.MEMBER)
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        audit(actor=user, verb="revoked invoke key", project=key.endpoint.project, target=key.endpoint.name,
              data={"endpoint": str(key.endpoint_id), "key": key.prefix})
    return key


# --- scaling --------------------------------------------------------------------------------------


def endpoint_variant_wake(*, variant_id: int) -> None:
    """Scale a variant from zero for a request that found no instance (idempotent): one pending cold start."""
    now = timezone.now()
    with transaction.atomic():
        variant = EndpointVariant.objects.select_for_update().select_related("endpoint").filter(id=variant_id).first()
        if variant is None or variant.endpoint.status == EndpointStatus.DELETING:
            return
        EndpointVariant.objects.filter(id=variant.id).update(last_invoked_at=now)
        live = variant.instances.filter(status__in=LIVE_INSTANCE_STATUSES,
                                        config_version=variant.endpoint.config_version)
        if live.exists():
            return
        desired = max(1, variant.desired_instances)
        EndpointVariant.objects.filter(id=variant.id).update(desired_instances=desired, last_scaled_at=now)
        EndpointInstance.objects.create(variant=variant, config_version=variant.endpoint.config_version,
                                        cold_start=True, status_message="Cold start: a request is waiting")
        ScalingEvent.objects.create(endpoint=variant.endpoint, variant=variant,
                                    from_instances=variant.desired_instances, to_instances=desired,
                                    reason="A request arrived with no instance running (scale from zero, cold start).")


def _load(variant: EndpointVariant, now) -> float:
    """Invocations per second of a variant over the load window."""
    total = EndpointMetric.objects.filter(variant=variant, ts__gt=now.timestamp() - LOAD_WINDOW_SECONDS).aggregate(
        n=Sum("invocations"), s=Sum("seconds"))
    return float(total["n"] or 0) / max(float(total["s"] or 0), 1.0)


def _idle_seconds(variant: EndpointVariant, now) -> float:
    last = EndpointMetric.objects.filter(variant=variant, invocations__gt=0).order_by("-ts").values_list(
        "ts", flat=True).first()
    stamps = [t for t in (last, variant.last_invoked_at.timestamp() if variant.last_invoked_at else None,
                          variant.last_scaled_at.timestamp() if variant.last_scaled_at else None) if t]
    return now.timestamp() - max(stamps) if stamps else math.inf


def _decide(endpoint: Endpoint, variant: EndpointVariant, now) -> tuple[int, str]:
    """The instance count a variant should have now, and why (empty reason: no change)."""
    current = variant.desired_instances
    low, high = variant.min_instances, variant.max_instances
    if endpoint.type == EndpointType.ASYNC:
        backlog = endpoint.async_invocations.filter(status__in=("queued", "running")).count()
        if backlog == 0:
            return 0, "" if current == 0 else "The async backlog is empty: scale to zero."
        wanted = min(high, max(1, backlog))
        return wanted, "" if wanted == current else f"{backlog} async invocation(s) waiting or running."
    rate = _load(variant, now)
    if endpoint.type == EndpointType.SERVERLESS:
        idle_timeout = (endpoint.serverless or {}).get("idle_timeout_seconds", 300)
        idle = _idle_seconds(variant, now)
        if current > 0 and idle >= idle_timeout:
            return 0, f"No invocation for {idle:.0f} s (idle timeout {idle_timeout} s): scale to zero."
        if current == 0:
            return 0, ""
        low = 1
    target = (endpoint.autoscaling or {}).get("target_invocations_per_instance")
    if not target:
        wanted = min(max(current, low), high)
        return wanted, "" if wanted == current else f"Within min {low} / max {high} instances."
    wanted = min(high, max(low, math.ceil(rate / target) if rate > 0 else low))
    if wanted == current:
        return current, ""
    cooldown_key = "scale_out_cooldown_seconds" if wanted > current else "scale_in_cooldown_seconds"
    cooldown = (endpoint.autoscaling or {}).get(cooldown_key, 0)
    if variant.last_scaled_at and (now - variant.last_scaled_at).total_seconds() < cooldown:
        return current, ""
    direction = "out" if wanted > current else "in"
    return wanted, (f"Scale {direction}: {rate:.2f} invocations/s over the last {LOAD_WINDOW_SECONDS} s at a target "
                    f"of {target:g} per instance -> {wanted} instance(s) (min {low}, max {high}).")


def _converge(endpoint: Endpoint) -> bool:
    """Create or drain instance rows so each variant has its desired count; return whether routes changed."""
    changed = False
    for variant in endpoint.variants.all():
        current = variant.instances.filter(config_version=endpoint.config_version)
        live = list(current.filter(status__in=LIVE_INSTANCE_STATUSES).order_by("created_at"))
        missing = variant.desired_instances - len(live)
        for _ in range(max(0, missing)):
            EndpointInstance.objects.create(variant=variant, config_version=endpoint.config_version)
        if missing < 0:
            # Extra instances go, those not yet serving first, then the newest.
            rank = {InstanceStatus.PENDING: 0, InstanceStatus.STARTING: 1, InstanceStatus.IN_SERVICE: 2}
            extra = sorted(live, key=lambda i: (rank[i.status], -i.created_at.timestamp()))[:-missing]
            for instance in extra:
                pending = instance.status == InstanceStatus.PENDING
                status = InstanceStatus.STOPPED if pending else InstanceStatus.DRAINING
                EndpointInstance.objects.filter(id=instance.id, status=instance.status).update(
                    status=status, stopped_at=timezone.now() if status == InstanceStatus.STOPPED else None)
                changed |= instance.status == InstanceStatus.IN_SERVICE
        # Instances of an older configuration drain once the new ones carry the load.
        old = variant.instances.filter(status__in=LIVE_INSTANCE_STATUSES).exclude(
            config_version=endpoint.config_version)
        serving_new = current.filter(status=InstanceStatus.IN_SERVICE).count()
        if old.exists() and (serving_new >= max(1, variant.desired_instances) or variant.desired_instances == 0):
            changed |= old.filter(status=InstanceStatus.IN_SERVICE).exists()
            old.filter(status=InstanceStatus.PENDING).update(status=InstanceStatus.STOPPED, stopped_at=timezone.now())
            old.update(status=InstanceStatus.DRAINING)
    return changed


def _refresh_status(endpoint: Endpoint) -> None:
    """creating/updating -> in_service when every variant serves; -> failed when instances keep failing."""
    if endpoint.status not in (EndpointStatus.CREATING, EndpointStatus.UPDATING, EndpointStatus.IN_SERVICE):
        return
    new_status, message, reason = endpoint.status, endpoint.status_message, endpoint.failure_reason
    ready = True
    for variant in endpoint.variants.filter(retired=False):
        need = 1 if variant.desired_instances > 0 else 0
        serving = variant.instances.filter(status=InstanceStatus.IN_SERVICE,
                                           config_version=endpoint.config_version).count()
        ready &= serving >= need
        # The latest instances that got somewhere (not those still pending or starting).
        failures = list(variant.instances.filter(config_version=endpoint.config_version)
                        .exclude(status__in=(InstanceStatus.PENDING, InstanceStatus.STARTING))
                        .order_by("-created_at").values_list("status", "status_message")[:MAX_START_FAILURES])
        if (endpoint.status != EndpointStatus.IN_SERVICE and len(failures) == MAX_START_FAILURES
                and all(status == InstanceStatus.FAILED for status, _ in failures)):
            new_status, message = EndpointStatus.FAILED, "Failed"
            reason = (f"Variant '{variant.name}' could not start an instance {MAX_START_FAILURES} times: "
                      f"{failures[0][1] or 'no reason given'}")
            ready = False
            break
    if new_status != EndpointStatus.FAILED and ready:
        new_status, message = EndpointStatus.IN_SERVICE, "In service"
    if (new_status, message, reason) != (endpoint.status, endpoint.status_message, endpoint.failure_reason):
        Endpoint.objects.filter(id=endpoint.id).update(status=new_status, status_message=message,
                                                       failure_reason=reason)
        endpoint.status, endpoint.status_message, endpoint.failure_reason = new_status, message, reason
        if new_status == EndpointStatus.FAILED:
            audit(actor=None, verb="failed", project=endpoint.project, target=endpoint.name,
                  data={"object": "endpoint", "endpoint": str(endpoint.id), "reason": reason[:500]})
            EndpointVariant.objects.filter(endpoint=endpoint).update(desired_instances=0)
            EndpointInstance.objects.filter(variant__endpoint=endpoint, status=InstanceStatus.PENDING).update(
                status=InstanceStatus.STOPPED, stopped_at=timezone.now())
        transaction.on_commit(lambda: publish_endpoint(endpoint=endpoint))


def endpoint_autoscale(*, endpoint: Endpoint, now=None) -> list[ScalingEvent]:
    """Decide each variant's instance count from its load, converge instance rows, refresh the status."""
    now = now or timezone.now()
    events = []
    with transaction.atomic():
        endpoint = Endpoint.objects.select_for_update().select_related("project").get(id=endpoint.id)
        if endpoint.status in (EndpointStatus.DELETING, EndpointStatus.FAILED):
            return []
        for variant in endpoint.variants.all():
            wanted, reason = _decide(endpoint, variant, now)
            if wanted != variant.desired_instances and reason:
                events.append(ScalingEvent.objects.create(
                    endpoint=endpoint, variant=variant, from_instances=variant.desired_instances,
                    to_instances=wanted, reason=reason))
                EndpointVariant.objects.filter(id=variant.id).update(desired_instances=wanted, last_scaled_at=now)
                logger.info("endpoint %s variant %s: %s", endpoint.name, variant.name, reason)
        routes_changed = _converge(endpoint)
        _refresh_status(endpoint)
        if routes_changed:
            _routes_publish_on_commit(endpoint.id)
        if events:
            scaling = [{"type": "scaling", "variant": e.variant.name, "from": e.from_instances, "to": e.to_instances,
                        "reason": e.reason, "ts": now.timestamp()} for e in events]
            transaction.on_commit(lambda: publish_endpoint(endpoint=endpoint, extra=scaling))
    return events


def endpoints_autoscale(*, now=None) -> None:
    """Every active endpoint, one pass (the agent calls this about once a second)."""
    for endpoint in Endpoint.objects.exclude(status__in=(EndpointStatus.DELETING, EndpointStatus.FAILED)):
        try:
            endpoint_autoscale(endpoint=endpoint, now=now)
        except Exception:
            logger.exception("autoscaling endpoint %s failed", endpoint.id)


def endpoints_reconcile(*, now=None) -> dict[str, int]:
    """Fail instances whose agent went silent, finish deletes, and reconcile async invocations."""
    now = now or timezone.now()
    timeout = timedelta(seconds=getattr(settings, "STUDIO_ENDPOINT_HEARTBEAT_TIMEOUT", 30))
    stale = EndpointInstance.objects.filter(
        Q(status__in=(InstanceStatus.STARTING, InstanceStatus.IN_SERVICE, InstanceStatus.DRAINING)),
        Q(heartbeat_at__lt=now - timeout) | Q(heartbeat_at__isnull=True, created_at__lt=now - timeout),
    )
    failed = 0
    for instance in stale.select_related("variant"):
        if EndpointInstance.objects.filter(id=instance.id, status=instance.status).update(
                status=InstanceStatus.FAILED, stopped_at=now,
                status_message=f"Agent {instance.agent or 'unknown'} stopped reporting; the instance was replaced."):
            failed += 1
            _safely(endpoint_routes_publish, endpoint_id=instance.variant.endpoint_id)
    for endpoint_id in Endpoint.objects.filter(status=EndpointStatus.DELETING).values_list("id", flat=True):
        _finish_delete(endpoint_id)
    async_count = 0
    try:
        from studio.endpoints.async_invocations import async_invocations_reconcile
    except ImportError:  # pragma: no cover - shipped with async invocations
        pass
    else:
        async_count = int(async_invocations_reconcile() or 0)
    return {"instances_failed": failed, "async": async_count}


# --- a test invocation from the endpoint page -----------------------------------------------------

TEST_INVOKE_TIMEOUT = 30.0


def endpoint_test_invoke(*, user: User, endpoint: Endpoint, body: bytes, content_type: str,
                         target_variant: str = "") -> tuple[int, bytes]:
    """Invoke an endpoint on behalf of a signed-in member (the page's test box): (HTTP status, JSON body).

    Clients use the gateway (POST /api/v1/endpoints/<id>/invocations); this path exists because a page
    holds a session, not a token. It routes like the gateway: a variant by weight (or the one asked for),
    an in-service instance of it, waking a serverless variant first.
    """
    import random
    import time as _time
    import urllib.error
    import urllib.request

    require_role(user=user, team=endpoint.project.team, role=Role.MEMBER)
    if endpoint.type == EndpointType.ASYNC:
        return 400, json.dumps({"detail": "This endpoint is asynchronous: POST the payload to "
                                          f"/api/v1/endpoints/{endpoint.id}/async-invocations."}).encode()
    if len(body) > REALTIME_MAX_PAYLOAD_BYTES:
        return 413, json.dumps({"detail": "The payload is over 6 MB, the limit of real-time endpoints."}).encode()
    variants = list(endpoint.variants.filter(retired=False))
    if target_variant:
        chosen = [v for v in variants if v.name == target_variant]
        if not chosen:
            names = ", ".join(v.name for v in variants)
            return 400, json.dumps({"detail": f"No variant '{target_variant}'; variants: {names}."}).encode()
        variant = chosen[0]
    else:
        weighted = [v for v in variants if v.weight > 0]
        if not weighted:
            return 503, json.dumps({"detail": "No variant takes traffic (every weight is 0)."}).encode()
        variant = random.choices(weighted, weights=[v.weight for v in weighted])[0]
    deadline = _time.monotonic() + TEST_INVOKE_TIMEOUT
    woken = False
    while True:
        instance = variant.instances.filter(status=InstanceStatus.IN_SERVICE).order_by("?").first()
        if instance is not None:
            break
        if endpoint.type != EndpointType.SERVERLESS:
            # As the gateway answers: only a serverless variant is worth waiting for (a cold start); holding a
            # web thread for 30 s on a real-time endpoint still starting would let a few requests tie up them all.
            return 503, json.dumps({"detail": f"No instance of variant '{variant.name}' is in service yet; "
                                              "try again in a moment."}).encode()
        if not woken:
            endpoint_variant_wake(variant_id=variant.id)
            woken = True
        if _time.monotonic() > deadline:
            return 503, json.dumps({"detail": f"No instance of variant '{variant.name}' is in service yet; "
                                              "try again in a moment."}).encode()
        _time.sleep(0.1)
    if not instance.url.startswith(("http://", "https://")):
        return 503, json.dumps({"detail": "The instance has no HTTP address yet."}).encode()
    # The URL is one the agent wrote for its own instance process, checked to be http(s) just above.
    request = urllib.request.Request(instance.url.rstrip("/") + "/invocations", data=body, method="POST",  # noqa: S310
                                     headers={"Content-Type": content_type or "application/json"})
    started = _time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=TEST_INVOKE_TIMEOUT) as response:  # noqa: S310  # nosec B310
            result = response.status, response.read()
    except urllib.error.HTTPError as exc:
        result = exc.code, exc.read()
    except OSError as exc:
        result = 503, json.dumps({"detail": f"The instance did not answer: {exc}."}).encode()
    # Counted like gateway traffic, so a test from the page shows on the endpoint's charts.
    _count_invocation(variant_id=variant.id, latency_ms=(_time.perf_counter() - started) * 1000,
                      error=result[0] >= 400)
    return result


def _count_invocation(*, variant_id: int, latency_ms: float, error: bool) -> None:
    from studio.endpoints.metrics import MetricsAccumulator, flush

    counts = MetricsAccumulator()
    counts.record(variant_id, latency_ms=latency_ms, error=error)
    _safely(lambda: flush(_redis(), counts.take()))
