from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from studio.endpoints import services
from studio.endpoints.models import (
    Endpoint,
    EndpointInstance,
    EndpointMetric,
    EndpointVariant,
    InstanceStatus,
    InvokeKey,
    ScalingEvent,
)
from studio.registry.models import Model

pytestmark = pytest.mark.django_db


def make_model(project, name: str = "churn-model") -> Model:
    return Model.objects.create(project=project, name=name, algorithm="linear-learner",
                                artifact_prefix=f"projects/{project.id}/models/x/")


def create(world, *, type="realtime", variants=None, **kwargs) -> Endpoint:
    model = Model.objects.filter(project=world.project).first() or make_model(world.project)
    variants = variants or [{"name": "main", "model": str(model.id), "min_instances": 1 if type == "realtime" else 0,
                             "max_instances": 3}]
    return services.endpoint_create(user=world.member, project=world.project, name=kwargs.pop("name", "churn"),
                                    type=type, variants=variants, **kwargs)


def serve(instance: EndpointInstance, port: int = 9000) -> None:
    """What the agent does once an instance's process answers /ping."""
    EndpointInstance.objects.filter(id=instance.id).update(status=InstanceStatus.IN_SERVICE,
                                                           url=f"http://127.0.0.1:{port}", ready_at=timezone.now(),
                                                           heartbeat_at=timezone.now())


def routes(endpoint) -> dict | None:
    raw = redis.Redis.from_url(settings.REDIS_URL).get(services.ROUTES_KEY.format(endpoint.id))
    return json.loads(raw) if raw else None


def traffic(variant, *, rps: float, seconds: float = 10, ago: float = 0) -> None:
    EndpointMetric.objects.create(endpoint=variant.endpoint, variant=variant, ts=time.time() - ago, seconds=seconds,
                                  invocations=int(rps * seconds), p50_ms=2.0, p99_ms=5.0, instances=1)


def test_it_creates_a_realtime_endpoint_with_its_minimum_instances(world, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        endpoint = create(world, variants=[{"name": "main", "model": str(make_model(world.project).id),
                                            "min_instances": 2, "max_instances": 4}])
    variant = endpoint.variants.get()
    assert endpoint.status == "creating" and variant.desired_instances == 2
    assert list(variant.instances.values_list("status", flat=True)) == ["pending", "pending"]
    published = routes(endpoint)
    assert published["type"] == "realtime" and published["variants"][0]["instances"] == []
    assert published["team_id"] == str(world.team.id)


def test_it_goes_in_service_when_every_variant_serves(world, django_capture_on_commit_callbacks):
    endpoint = create(world)
    serve(endpoint.variants.get().instances.get())
    with django_capture_on_commit_callbacks(execute=True):
        services.endpoint_autoscale(endpoint=endpoint)
    endpoint.refresh_from_db()
    assert endpoint.status == "in_service"
    services.endpoint_routes_publish(endpoint_id=endpoint.id)
    assert routes(endpoint)["variants"][0]["instances"][0]["url"] == "http://127.0.0.1:9000"


@pytest.mark.parametrize(("variants", "field", "words"), [
    ([{"name": "a", "model": "00000000-0000-0000-0000-000000000000"}], "variants.0.model", "No model"),
    ([{"name": "a", "model": None, "min_instances": 3, "max_instances": 2}], "variants.0.max_instances", "below"),
    ([], "variants", "non-empty"),
    ([{"name": "a b", "model": None}], "variants.0.name", "letters"),
])
def test_it_names_the_variant_field_at_fault(world, variants, field, words):
    model = make_model(world.project)
    for v in variants:
        if "model" in v and v["model"] is None:
            v["model"] = str(model.id)
    with pytest.raises(ValidationError) as excinfo:
        services.endpoint_create(user=world.member, project=world.project, name="x", type="realtime",
                                 variants=variants)
    assert words in excinfo.value.message_dict[field][0]
    assert not Endpoint.objects.exists()


def test_it_refuses_another_projects_model_and_a_viewer(world):
    theirs = make_model(world.other_project)
    with pytest.raises(ValidationError) as excinfo:
        services.endpoint_create(user=world.member, project=world.project, name="x", type="realtime",
                                 variants=[{"model": str(theirs.id)}])
    assert excinfo.value.message_dict["variants.0.model"] == [f"No model '{theirs.id}' in this project."]
    with pytest.raises(PermissionDenied):
        services.endpoint_create(user=world.viewer, project=world.project, name="x", type="realtime",
                                 variants=[{"model": str(make_model(world.project).id)}])


def test_it_keeps_serverless_at_zero_until_a_request_wakes_it(world):
    endpoint = create(world, type="serverless", serverless={"max_concurrency": 5, "idle_timeout_seconds": 60})
    variant = endpoint.variants.get()
    assert endpoint.status == "in_service" and variant.desired_instances == 0 and not variant.instances.exists()
    services.endpoint_variant_wake(variant_id=variant.id)
    services.endpoint_variant_wake(variant_id=variant.id)  # a second waiting request adds nothing
    instance = variant.instances.get()
    assert instance.cold_start and instance.status == "pending"
    variant.refresh_from_db()
    assert variant.desired_instances == 1
    assert "scale from zero" in ScalingEvent.objects.get(variant=variant).reason


def test_it_scales_serverless_to_zero_after_the_idle_timeout(world):
    endpoint = create(world, type="serverless", serverless={"idle_timeout_seconds": 60})
    variant = endpoint.variants.get()
    services.endpoint_variant_wake(variant_id=variant.id)
    serve(variant.instances.get())
    services.endpoint_autoscale(endpoint=endpoint)
    variant.refresh_from_db()
    assert variant.desired_instances == 1  # just woken: not idle yet
    later = timezone.now() + timedelta(seconds=61)
    services.endpoint_autoscale(endpoint=endpoint, now=later)
    variant.refresh_from_db()
    assert variant.desired_instances == 0
    assert variant.instances.get().status == "draining"
    assert "idle timeout 60 s" in ScalingEvent.objects.filter(variant=variant).first().reason


def test_it_scales_out_and_in_with_the_load_and_its_cooldowns(world):
    endpoint = create(world, autoscaling={"target_invocations_per_instance": 10, "scale_out_cooldown_seconds": 0,
                                          "scale_in_cooldown_seconds": 300})
    variant = endpoint.variants.get()
    traffic(variant, rps=25)
    services.endpoint_autoscale(endpoint=endpoint)
    variant.refresh_from_db()
    assert variant.desired_instances == 3  # ceil(25 / 10), within max 3
    assert variant.instances.filter(status="pending").count() == 3
    event = ScalingEvent.objects.get(variant=variant)
    assert event.from_instances == 1 and event.to_instances == 3 and "25.00 invocations/s" in event.reason
    EndpointMetric.objects.all().delete()
    traffic(variant, rps=1)
    services.endpoint_autoscale(endpoint=endpoint)
    variant.refresh_from_db()
    assert variant.desired_instances == 3  # scale-in cooldown of 300 s not over
    services.endpoint_autoscale(endpoint=endpoint, now=timezone.now() + timedelta(seconds=301))
    variant.refresh_from_db()
    assert variant.desired_instances == 1
    assert variant.instances.filter(status__in=("pending", "starting", "in_service")).count() == 1


def test_it_scales_async_endpoints_with_their_backlog(world):
    from studio.endpoints.models import AsyncInvocation

    endpoint = create(world, type="async", async_config={"max_payload_mb": 100})
    variant = endpoint.variants.get()
    AsyncInvocation.objects.create(endpoint=endpoint, status="queued")
    services.endpoint_autoscale(endpoint=endpoint)
    variant.refresh_from_db()
    assert variant.desired_instances == 1
    AsyncInvocation.objects.update(status="completed")
    services.endpoint_autoscale(endpoint=endpoint)
    variant.refresh_from_db()
    assert variant.desired_instances == 0
    assert "backlog is empty" in ScalingEvent.objects.filter(variant=variant).first().reason


def test_it_replaces_a_model_without_dropping_requests(world, django_capture_on_commit_callbacks):
    endpoint = create(world)
    variant = endpoint.variants.get()
    old = variant.instances.get()
    serve(old)
    services.endpoint_autoscale(endpoint=endpoint)
    new_model = make_model(world.project, "v2")
    with django_capture_on_commit_callbacks(execute=True):
        endpoint = services.endpoint_update(user=world.member, endpoint=endpoint, variants=[
            {"name": "main", "model": str(new_model.id), "min_instances": 1, "max_instances": 3}])
    assert endpoint.status == "updating" and endpoint.config_version == 2
    old.refresh_from_db()
    assert old.status == "in_service"  # keeps serving while the new instance starts
    fresh = variant.instances.get(config_version=2)
    assert routes(endpoint)["variants"][0]["instances"][0]["id"] == str(old.id)
    serve(fresh, port=9001)
    with django_capture_on_commit_callbacks(execute=True):
        services.endpoint_autoscale(endpoint=endpoint)
    old.refresh_from_db()
    endpoint.refresh_from_db()
    assert old.status == "draining" and endpoint.status == "in_service"
    assert [i["id"] for i in routes(endpoint)["variants"][0]["instances"]] == [str(fresh.id)]


def test_it_changes_weights_and_retires_a_removed_variant(world, django_capture_on_commit_callbacks):
    a, b = make_model(world.project, "a"), make_model(world.project, "b")
    endpoint = create(world, variants=[{"name": "a", "model": str(a.id)}, {"name": "b", "model": str(b.id)}])
    for instance in EndpointInstance.objects.all():
        serve(instance)
    with django_capture_on_commit_callbacks(execute=True):
        services.endpoint_update(user=world.member, endpoint=endpoint,
                                 variants=[{"name": "a", "model": str(a.id), "weight": 3.0}])
    published = routes(endpoint)
    assert [(v["name"], v["weight"]) for v in published["variants"]] == [("a", 3.0)]
    retired = EndpointVariant.objects.get(name="b")
    assert retired.retired and retired.instances.get().status == "draining"


def test_it_deletes_once_instances_have_stopped(world, django_capture_on_commit_callbacks):
    endpoint = create(world)
    serve(endpoint.variants.get().instances.get())
    with django_capture_on_commit_callbacks(execute=True):
        services.endpoint_delete(user=world.member, endpoint=endpoint)
    endpoint.refresh_from_db()
    assert endpoint.status == "deleting" and routes(endpoint) is None
    assert EndpointInstance.objects.get().status == "draining"
    EndpointInstance.objects.update(status="stopped")
    services.endpoints_reconcile()
    assert not Endpoint.objects.exists()


def test_it_fails_an_endpoint_whose_instances_cannot_start(world):
    endpoint = create(world)
    variant = endpoint.variants.get()
    for _ in range(3):
        EndpointInstance.objects.filter(variant=variant, status="pending").update(
            status="failed", status_message="arrays.npz is missing")
        services.endpoint_autoscale(endpoint=endpoint)
    endpoint.refresh_from_db()
    assert endpoint.status == "failed" and "arrays.npz is missing" in endpoint.failure_reason


def test_it_fails_instances_whose_agent_went_silent(world):
    endpoint = create(world)
    instance = endpoint.variants.get().instances.get()
    serve(instance)
    EndpointInstance.objects.filter(id=instance.id).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    assert services.endpoints_reconcile()["instances_failed"] == 1
    instance.refresh_from_db()
    assert instance.status == "failed" and "stopped reporting" in instance.status_message
    services.endpoint_autoscale(endpoint=endpoint)
    assert endpoint.variants.get().instances.filter(status="pending").count() == 1  # replaced


def test_it_keeps_only_the_hash_of_invoke_keys_and_revokes_them(world):
    endpoint = create(world)
    key, secret = services.invoke_key_create(user=world.member, endpoint=endpoint, name="app")
    assert secret.startswith("sk-ep-") and key.prefix == secret[:12]
    assert InvokeKey.objects.get().key_hash == services.invoke_key_hash(secret) != secret
    services.invoke_key_revoke(user=world.member, key=key)
    assert InvokeKey.objects.get().revoked_at is not None
    with pytest.raises(PermissionDenied):
        services.invoke_key_create(user=world.viewer, endpoint=endpoint)


@pytest.fixture
def fake_instance():
    """A tiny HTTP server answering /invocations like an instance: echoes the record count."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if not isinstance(body.get("instances"), list):
                self.send_response(400)
                answer = {"detail": "instances must be a list"}
            else:
                self.send_response(200)
                answer = {"predictions": [{"score": 1.0}] * len(body["instances"]), "variant": "main"}
            payload = json.dumps(answer).encode()
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


def test_it_test_invokes_through_an_in_service_instance(world, fake_instance):
    endpoint = create(world)
    serve(endpoint.variants.get().instances.get(), port=fake_instance)
    status, body = services.endpoint_test_invoke(user=world.member, endpoint=endpoint, content_type="application/json",
                                                 body=b'{"instances": [[1, 2], [3, 4]]}')
    assert status == 200 and json.loads(body)["predictions"] == [{"score": 1.0}, {"score": 1.0}]
    from studio.endpoints.metrics import take_counts

    variant = endpoint.variants.get()
    counted = take_counts(redis.Redis.from_url(settings.REDIS_URL), [variant.id])[variant.id]
    assert counted.invocations == 1 and counted.errors == 0  # shown on the charts like gateway traffic
    status, body = services.endpoint_test_invoke(user=world.member, endpoint=endpoint, body=b'{"rows": 1}',
                                                 content_type="application/json")
    assert status == 400 and "instances must be a list" in body.decode()
    status, body = services.endpoint_test_invoke(user=world.member, endpoint=endpoint, body=b"{}",
                                                 content_type="application/json", target_variant="nope")
    assert status == 400 and "variants: main" in body.decode()
    with pytest.raises(PermissionDenied):
        services.endpoint_test_invoke(user=world.viewer, endpoint=endpoint, body=b"{}", content_type="")
