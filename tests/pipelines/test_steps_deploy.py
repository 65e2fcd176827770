"""Register and deploy steps: the registry and endpoint services, and running them again changes nothing."""

from __future__ import annotations

import pytest
from django.utils import timezone

from studio.endpoints import services as endpoint_services
from studio.endpoints.models import Endpoint, EndpointInstance, InstanceStatus
from studio.pipelines.steps import step_kind
from studio.pipelines.steps.base import Done, StepFailed, Waiting
from studio.registry.models import Model, ModelGroup, ModelVersion
from tests.pipelines.test_steps_processing import step_context

pytestmark = pytest.mark.django_db


def make_model(world, name: str = "churn-model") -> Model:
    return Model.objects.create(project=world.project, name=name, algorithm="linear-learner",
                                artifact_prefix=f"projects/{world.project.id}/models/{name}/")


def serve_all(endpoint: Endpoint) -> None:
    """What the agent does once the instances answer, then the autoscaler's status refresh."""
    EndpointInstance.objects.filter(variant__endpoint=endpoint, status=InstanceStatus.PENDING).update(
        status=InstanceStatus.IN_SERVICE, url="http://127.0.0.1:9000", ready_at=timezone.now(),
        heartbeat_at=timezone.now())
    endpoint_services.endpoint_autoscale(endpoint=endpoint)


# --- register ------------------------------------------------------------------------------------------


def test_register_creates_the_group_and_a_version_and_a_rerun_reuses_it(world):
    model = make_model(world)
    kind = step_kind("register")
    arguments = {"model": str(model.id), "model_group": "churn-models", "description": "nightly"}
    done = kind.start(step_context(world, "register", arguments, name="register"))
    version = ModelVersion.objects.get()
    assert done.outputs == {"model_version": str(version.id), "model_group": str(version.group_id),
                            "model": str(model.id)}
    assert (version.version, version.approval_status, version.description) == (1, "pending", "nightly")
    assert version.created_by == world.member and "registered as version 1 of 'churn-models'" in done.message

    again = kind.start(step_context(world, "register", {**arguments, "model_group": "Churn-Models",
                                                         "approve": True}, name="register", number=2))
    version.refresh_from_db()
    assert again.outputs["model_version"] == str(version.id) and ModelVersion.objects.count() == 1
    assert version.approval_status == "approved" and version.approved_by == world.member
    assert "is already version 1" in again.message


def test_register_adds_the_next_version_for_another_model_and_refuses_a_missing_one(world):
    kind = step_kind("register")
    group = ModelGroup.objects.create(project=world.project, name="churn-models", last_version=4)
    done = kind.start(step_context(world, "register", {"model": str(make_model(world).id),
                                                       "model_group": "churn-models", "approve": True}))
    assert ModelVersion.objects.get(id=done.outputs["model_version"]).version == 5
    assert done.outputs["model_group"] == str(group.id)
    with pytest.raises(StepFailed, match="no model 'ghost' in this project"):
        kind.start(step_context(world, "register", {"model": "ghost", "model_group": "g"}, name="two"))
    with pytest.raises(StepFailed, match="This needs the member role"):
        kind.start(step_context(world, "register", {"model": str(make_model(world, "m2").id),
                                                    "model_group": "g"}, name="three", user=world.viewer))
    assert step_kind("register").validate({"model": "x", "model_group": " "}, project=world.project) == {
        "arguments.model_group": "Give the model group a name."}


# --- deploy --------------------------------------------------------------------------------------------


def test_deploy_creates_the_endpoint_and_waits_until_it_serves(world):
    model = make_model(world)
    kind = step_kind("deploy")
    ctx = step_context(world, "deploy", {"model": str(model.id), "endpoint": "churn", "instance_count": 2},
                       name="deploy")
    waiting = kind.start(ctx)
    endpoint = Endpoint.objects.get(name="churn")
    assert isinstance(waiting, Waiting) and waiting.job == {"kind": "endpoint", "id": str(endpoint.id)}
    assert "Created endpoint 'churn' serving model 'churn-model'" in waiting.message
    variant = endpoint.variants.get()
    assert (variant.model_id, variant.min_instances, variant.max_instances) == (model.id, 2, 2)
    assert endpoint.type == "realtime" and endpoint.created_by == world.member
    assert isinstance(kind.poll(ctx), Waiting)

    serve_all(endpoint)
    done = kind.poll(ctx)
    assert isinstance(done, Done) and done.outputs == {"endpoint": str(endpoint.id)}


def test_deploy_leaves_an_endpoint_already_serving_the_model_and_updates_one_serving_another(world):
    old, new = make_model(world, "old"), make_model(world, "new")
    kind = step_kind("deploy")
    kind.start(step_context(world, "deploy", {"model": str(old.id), "endpoint": "churn"}, name="d1"))
    endpoint = Endpoint.objects.get()
    serve_all(endpoint)
    endpoint.refresh_from_db()
    version = endpoint.config_version

    same = kind.start(step_context(world, "deploy", {"model": str(old.id), "endpoint": "churn"}, name="d2"))
    endpoint.refresh_from_db()
    assert isinstance(same, Done) and endpoint.config_version == version
    assert "already serves model 'old'" in same.message

    ctx = step_context(world, "deploy", {"model": str(new.id), "endpoint": "churn"}, name="d3")
    updating = kind.start(ctx)
    endpoint.refresh_from_db()
    assert isinstance(updating, Waiting) and endpoint.status == "updating"
    assert endpoint.variants.get(retired=False).model_id == new.id and Endpoint.objects.count() == 1
    serve_all(endpoint)
    assert kind.poll(ctx).outputs == {"endpoint": str(endpoint.id)}


def test_deploy_serverless_is_in_service_at_once_and_an_endpoint_keeps_its_type(world):
    model = make_model(world)
    kind = step_kind("deploy")
    done = kind.start(step_context(world, "deploy", {"model": str(model.id), "endpoint": "lazy",
                                                     "type": "serverless", "max_instances": 3,
                                                     "serverless": {"max_concurrency": 5}}))
    endpoint = Endpoint.objects.get(name="lazy")
    assert isinstance(done, Done) and endpoint.serverless["max_concurrency"] == 5
    assert (endpoint.variants.get().min_instances, endpoint.variants.get().max_instances) == (0, 3)
    with pytest.raises(StepFailed, match="endpoint 'lazy' is serverless, the step asks for realtime"):
        kind.start(step_context(world, "deploy", {"model": str(model.id), "endpoint": "lazy", "type": "realtime"},
                                name="two"))


def test_deploy_fails_when_the_endpoint_fails_or_the_request_is_refused(world):
    model = make_model(world)
    kind = step_kind("deploy")
    ctx = step_context(world, "deploy", {"model": str(model.id), "endpoint": "churn"})
    kind.start(ctx)
    Endpoint.objects.update(status="failed", failure_reason="could not start an instance 3 times")
    with pytest.raises(StepFailed, match="endpoint 'churn' failed: could not start an instance 3 times"):
        kind.poll(ctx)
    with pytest.raises(StepFailed, match=r"creating endpoint 'x': variants\.0\.min_instances: a serverless endpoint"):
        kind.start(step_context(world, "deploy", {"model": str(model.id), "endpoint": "x", "type": "serverless",
                                                  "min_instances": 2}, name="two"))


@pytest.mark.parametrize(("arguments", "field"), [
    ({"endpoint": "bad name"}, "arguments.endpoint"),
    ({"instance_count": 0}, "arguments.instance_count"),
    ({"instance_count": 2, "max_instances": 3}, "arguments.instance_count"),
    ({"max_instances": 1.5}, "arguments.max_instances"),
    ({"variants": []}, "arguments.variants"),
])
def test_deploy_validate_names_the_argument(world, arguments, field):
    errors = step_kind("deploy").validate({"model": "m", "endpoint": "ok", **arguments}, project=world.project)
    assert list(errors) == [field]
