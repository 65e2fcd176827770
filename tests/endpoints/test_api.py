from __future__ import annotations

import pytest

from studio.endpoints.models import Endpoint, EndpointMetric
from tests.endpoints.test_services import make_model

pytestmark = pytest.mark.django_db


def url(world, suffix: str = "") -> str:
    return f"/api/v1/projects/{world.project.id}/endpoints{suffix}"


def create(world, api, **overrides) -> dict:
    model = make_model(world.project)
    body = {"name": "churn", "type": "realtime",
            "variants": [{"name": "main", "model": str(model.id), "weight": 1.0, "min_instances": 1,
                          "max_instances": 2}], **overrides}
    response = api(world.member).post(url(world), body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def test_it_creates_an_endpoint_and_describes_it(world, api):
    body = create(world, api, autoscaling={"target_invocations_per_instance": 5})
    assert body["status"] == "creating" and body["type"] == "realtime"
    assert body["invocation_url"] == f"http://testserver/api/v1/endpoints/{body['id']}/invocations"
    assert body["variants"][0] | {"model": None} == body["variants"][0] | {
        "name": "main", "weight": 1.0, "min_instances": 1, "max_instances": 2, "current_instances": 0,
        "desired_instances": 1, "model": None}
    assert body["metrics"] == {"invocations": 0, "errors": 0, "throttled": 0, "p50_ms": None, "p99_ms": None,
                               "cold_starts": 0}
    assert body["autoscaling"]["target_invocations_per_instance"] == 5.0


def test_it_creates_serverless_and_async_endpoints_with_their_settings(world, api):
    serverless = create(world, api, name="s", type="serverless",
                        variants=[{"model": str(make_model(world.project, "m2").id), "min_instances": 0}],
                        serverless={"max_concurrency": 4, "idle_timeout_seconds": 30})
    assert serverless["serverless"] == {"max_concurrency": 4, "idle_timeout_seconds": 30}
    assert serverless["status"] == "in_service" and serverless["variants"][0]["desired_instances"] == 0
    asynchronous = create(world, api, name="a", type="async", variants=[{"model": str(make_model(world.project,
                                                                                                    "m3").id)}],
                          **{"async": {"max_payload_mb": 500}})
    assert asynchronous["async"]["max_payload_mb"] == 500
    assert asynchronous["async_invocation_url"].endswith(f"/api/v1/endpoints/{asynchronous['id']}/async-invocations")


@pytest.mark.parametrize(("override", "field"), [
    ({"type": "batch"}, "type"),
    ({"variants": []}, "variants"),
    ({"variants": [{"model": "00000000-0000-0000-0000-000000000000"}]}, "variants.0.model"),
    ({"type": "serverless", "serverless": {"max_concurrency": 0}}, "serverless.max_concurrency"),
    ({"autoscaling": {"scale_in_cooldown_seconds": 5}}, "autoscaling.target_invocations_per_instance"),
])
def test_it_answers_bad_requests_with_a_400_naming_the_field(world, api, override, field):
    model = make_model(world.project)
    body = {"name": "churn", "type": "realtime", "variants": [{"model": str(model.id)}], **override}
    if override.get("type") == "serverless":
        body["variants"] = [{"model": str(model.id), "min_instances": 0}]
    response = api(world.member).post(url(world), body, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"], response.json()
    assert not Endpoint.objects.exists()


def test_it_updates_deletes_and_reports_metrics(world, api):
    body = create(world, api)
    client = api(world.member)
    patched = client.patch(url(world, f"/{body['id']}"), {"variants": [
        {"name": "main", "model": body["variants"][0]["model"], "weight": 2.0, "min_instances": 1,
         "max_instances": 4}]}, format="json")
    assert patched.status_code == 200 and patched.json()["variants"][0]["weight"] == 2.0
    endpoint = Endpoint.objects.get()
    EndpointMetric.objects.create(endpoint=endpoint, variant=endpoint.variants.get(), ts=1e12, seconds=5,
                                  invocations=50, errors=1, p50_ms=2.5, p99_ms=9.0, instances=1)
    metrics = client.get(url(world, f"/{body['id']}/metrics")).json()
    assert metrics["summary"]["invocations"] == 50 and metrics["series"][0]["rps"] == 10.0
    instances = client.get(url(world, f"/{body['id']}/instances")).json()
    assert len(instances) == 1 and instances[0]["status"] == "pending"
    assert client.delete(url(world, f"/{body['id']}")).status_code == 204
    assert client.get(url(world, f"/{body['id']}")).json()["status"] == "deleting"


def test_it_creates_lists_and_revokes_invoke_keys(world, api):
    body = create(world, api)
    client = api(world.member)
    created = client.post(url(world, f"/{body['id']}/keys"), {"name": "mobile app"}, format="json")
    assert created.status_code == 201 and created.json()["key"].startswith("sk-ep-")
    listed = api(world.viewer).get(url(world, f"/{body['id']}/keys")).json()
    assert listed[0]["name"] == "mobile app" and "key" not in listed[0]
    assert client.delete(url(world, f"/{body['id']}/keys/{created.json()['id']}")).status_code == 204
    assert api(world.viewer).get(url(world, f"/{body['id']}/keys")).json()[0]["revoked_at"] is not None


def test_it_hides_endpoints_from_other_teams_and_refuses_viewers(world, api):
    body = create(world, api)
    outsider = api(world.outsider)
    for suffix in ("", f"/{body['id']}", f"/{body['id']}/metrics", f"/{body['id']}/keys", f"/{body['id']}/instances"):
        assert outsider.get(url(world, suffix)).status_code == 404
    assert outsider.delete(url(world, f"/{body['id']}")).status_code == 404
    viewer = api(world.viewer)
    assert viewer.get(url(world, f"/{body['id']}")).status_code == 200
    assert viewer.delete(url(world, f"/{body['id']}")).status_code == 403
    assert viewer.post(url(world, f"/{body['id']}/keys"), {}, format="json").status_code == 403
