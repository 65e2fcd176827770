"""The endpoint agent in this process (its loop stepped by the test) with real instance processes,
and the real agent process end to end with the gateway (marked worker)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from studio.accounts import services as account_services
from studio.endpoints import services
from studio.endpoints.agent import Agent, AgentConfig
from studio.endpoints.gateway import Gateway, GatewayConfig
from studio.endpoints.models import Endpoint, EndpointInstance, EndpointVariant, InstanceStatus
from studio.registry.models import Model
from studio.registry.services import model_artifacts_store, model_create
from tests.endpoints.conftest import json_body
from tests.endpoints.test_gateway import call
from tests.processes import endpoint_agent


def stored_model(project, directory: Path, *, name: str = "churn", algorithm: str = "linear-learner") -> Model:
    model_id = uuid.uuid4()
    artifacts = model_artifacts_store(project=project, model_id=model_id, directory=directory)
    return model_create(project=project, model_id=model_id, name=name, algorithm=algorithm, artifacts=artifacts,
                        feature_names=["x1", "x2", "city"])


def endpoint_with_pending_instance(project, model: Model, *, type: str = "realtime") -> EndpointInstance:
    endpoint = Endpoint.objects.create(project=project, name=f"ep-{uuid.uuid4().hex[:6]}", type=type,
                                       status="creating")
    variant = EndpointVariant.objects.create(endpoint=endpoint, name="blue", model=model, desired_instances=1)
    return EndpointInstance.objects.create(variant=variant)


def routes(endpoint_id) -> dict | None:
    raw = redis.Redis.from_url(settings.REDIS_URL).get(services.ROUTES_KEY.format(endpoint_id))
    return json.loads(raw) if raw else None


def until(agent: Agent, condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        agent.step()
        if condition():
            return
        agent.wake.wait(0.02)
        agent.wake.clear()
    raise AssertionError("the agent did not get there in time")


def status_of(instance: EndpointInstance) -> str:
    instance.refresh_from_db()
    return instance.status


@pytest.fixture
def agent(tmp_path):
    agent = Agent(AgentConfig(name=f"unit-{uuid.uuid4().hex[:6]}", cache_dir=tmp_path / "cache", autoscale=False,
                              rollup=False))
    yield agent
    agent.stopping.set()
    agent.shutdown()


@pytest.mark.django_db
def test_it_serves_a_pending_instance_from_a_warm_spare_then_drains_it(world, models, agent):
    fitted = models("logistic")
    model = stored_model(world.project, fitted.directory)
    agent.start()
    until(agent, lambda: agent.processes and agent.processes[0].port is not None)  # the spare listens
    spare_pid = agent.processes[0].pid
    instance = endpoint_with_pending_instance(world.project, model)

    until(agent, lambda: status_of(instance) == InstanceStatus.IN_SERVICE)
    assert instance.pid == spare_pid  # the warm spare took the model
    assert instance.agent == agent.config.name
    assert instance.url.startswith("http://127.0.0.1:")
    assert instance.startup_ms is not None and instance.startup_ms > 0
    assert instance.ready_at is not None and instance.heartbeat_at is not None
    assert (agent.config.cache_dir / str(model.id) / "manifest.json").exists()
    assert len([p for p in agent.processes if p.phase == "spare"]) == 1  # a new spare replaces the one taken
    published = routes(instance.variant.endpoint_id)
    assert published["variants"][0]["instances"] == [{"id": str(instance.id), "url": instance.url}]
    request = urllib.request.Request(instance.url + "/invocations", data=json_body(fitted.records),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        out = json.loads(response.read())
    assert out["variant"] == "blue"
    assert [p["label"] for p in out["predictions"]] == fitted.estimator.predict(fitted.X).tolist()

    # Scale-in: the lead's services set the row draining; the agent unpublishes it, then stops the process.
    EndpointInstance.objects.filter(id=instance.id).update(status=InstanceStatus.DRAINING)
    until(agent, lambda: status_of(instance) == InstanceStatus.STOPPED)
    assert instance.stopped_at is not None
    assert routes(instance.variant.endpoint_id)["variants"][0]["instances"] == []
    with pytest.raises(ProcessLookupError):
        os.kill(spare_pid, 0)


@pytest.mark.django_db
def test_it_fails_an_instance_whose_process_dies_and_one_whose_model_cannot_load(world, models, agent, tmp_path):
    model = stored_model(world.project, models("regressor").directory)
    agent.start()
    instance = endpoint_with_pending_instance(world.project, model)
    until(agent, lambda: status_of(instance) == InstanceStatus.IN_SERVICE)
    os.kill(instance.pid, signal.SIGKILL)
    until(agent, lambda: status_of(instance) == InstanceStatus.FAILED)
    assert "exited unexpectedly" in instance.status_message
    assert routes(instance.variant.endpoint_id)["variants"][0]["instances"] == []

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text('{"format": "something else"}')
    instance = endpoint_with_pending_instance(world.project, stored_model(world.project, broken, name="broken"))
    until(agent, lambda: status_of(instance) == InstanceStatus.FAILED)
    assert "could not be loaded" in instance.status_message


@pytest.mark.django_db
def test_it_fails_rows_left_by_an_earlier_run_and_stops_everything_on_shutdown(world, models, agent):
    model = stored_model(world.project, models("regressor").directory)
    left = {status: endpoint_with_pending_instance(world.project, model) for status in
            (InstanceStatus.STARTING, InstanceStatus.IN_SERVICE, InstanceStatus.DRAINING)}
    for status, row in left.items():
        EndpointInstance.objects.filter(id=row.id).update(status=status, agent=agent.config.name)
    other = endpoint_with_pending_instance(world.project, model)
    EndpointInstance.objects.filter(id=other.id).update(status=InstanceStatus.IN_SERVICE, agent="another-agent")
    agent.recover()
    assert [status_of(left[s]) for s in left] == ["failed", "failed", "stopped"]
    assert "restarted" in left[InstanceStatus.IN_SERVICE].status_message
    assert status_of(other) == InstanceStatus.IN_SERVICE

    agent.start()
    instance = endpoint_with_pending_instance(world.project, model)
    until(agent, lambda: status_of(instance) == InstanceStatus.IN_SERVICE)
    pids = [p.pid for p in agent.processes]
    agent.stopping.set()
    agent.shutdown()
    assert status_of(instance) == InstanceStatus.STOPPED
    assert routes(instance.variant.endpoint_id)["variants"][0]["instances"] == []
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


# --- the real agent process, the gateway and a real token ------------------------------------------------------


def wait_for(condition: Callable[[], bool], timeout: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_it_serves_realtime_and_cold_starts_serverless_through_the_gateway(world, models, tmp_path):
    fitted = models("logistic")
    model = stored_model(world.project, fitted.directory)
    _, token = account_services.api_token_create(user=world.member, name="t")
    realtime = services.endpoint_create(user=world.member, project=world.project, name="churn", type="realtime",
                                        variants=[{"name": "blue", "model": str(model.id), "min_instances": 1,
                                                   "max_instances": 2}])
    serverless = services.endpoint_create(user=world.member, project=world.project, name="churn-sl",
                                          type="serverless", serverless={"max_concurrency": 4,
                                                                         "idle_timeout_seconds": 600},
                                          variants=[{"name": "green", "model": str(model.id), "min_instances": 0,
                                                     "max_instances": 1}])
    body = json_body(fitted.records)
    expected = fitted.estimator.predict(fitted.X).tolist()

    with endpoint_agent(tmp_path / "agent.log"):
        def realtime_ready() -> bool:
            realtime.refresh_from_db()
            return realtime.status == "in_service"

        wait_for(realtime_ready, what="the real-time endpoint to be in service")
        instance = EndpointInstance.objects.get(variant__endpoint=realtime)
        assert instance.status == "in_service" and instance.startup_ms > 0 and not instance.cold_start

        async def invoke_both():
            gateway = Gateway(GatewayConfig(redis_url=settings.REDIS_URL, cold_start_timeout=30))
            try:
                first = await call(gateway, realtime.id, body=body, token=token)
                started = time.monotonic()
                cold = await call(gateway, serverless.id, body=body, token=token)
                return first, cold, time.monotonic() - started
            finally:
                await gateway.aclose()

        first, cold, cold_seconds = asyncio.run(invoke_both())
        assert first.status == 200, first.body
        assert first.body["variant"] == "blue"
        assert [p["label"] for p in first.body["predictions"]] == expected
        assert cold.status == 200, cold.body
        assert cold.body["variant"] == "green"
        woken = EndpointInstance.objects.get(variant__endpoint=serverless)
        assert woken.cold_start and woken.status == "in_service"
        assert woken.startup_ms is not None and woken.startup_ms > 0
        print(f"cold start: {cold_seconds * 1000:.0f} ms end to end, startup_ms {woken.startup_ms:.0f}")

        # Metrics reach EndpointMetric rows through the agent's rollup.
        wait_for(lambda: realtime.metrics.filter(invocations__gt=0).exists(), timeout=15, what="a metric row")
        row = realtime.metrics.filter(invocations__gt=0).first()
        assert row.invocations == 1 and row.p50_ms is not None
        # Instances in service when the rollup ran: 1 from then on (a busy machine can roll up a moment early).
        wait_for(lambda: realtime.metrics.filter(instances=1).exists(), timeout=15, what="a row counting the instance")
        wait_for(lambda: serverless.metrics.filter(cold_starts=1).exists(), timeout=15, what="the cold start row")

    # The agent stopped cleanly: its instances are stopped and out of the routing table.
    assert set(EndpointInstance.objects.values_list("status", flat=True)) == {"stopped"}
    assert routes(realtime.id)["variants"][0]["instances"] == []
    assert timezone.now() - EndpointInstance.objects.get(variant__endpoint=realtime).stopped_at \
        < timezone.timedelta(minutes=1)
