"""The template gallery: every template validates as it stands, and the main one runs end to end."""

from __future__ import annotations

import pytest

from studio.endpoints.models import Endpoint, EndpointStatus
from studio.pipelines import services
from studio.pipelines.definition import definition_validate
from studio.pipelines.gallery import pipeline_template, pipeline_templates
from studio.registry.models import ApprovalStatus, ModelVersion
from tests.pipelines.conftest import drive, start, statuses
from tests.training.factories import classification_dataset

pytestmark = pytest.mark.django_db

MAIN = "train-evaluate-register-deploy"


def test_it_offers_the_templates_with_what_the_gallery_shows():
    templates = pipeline_templates()
    slugs = [t["slug"] for t in templates]
    assert slugs[0] == MAIN and len(slugs) == len(set(slugs))
    assert {"preprocess-and-train", "batch-scoring"} <= set(slugs)
    for template in templates:
        assert set(template) == {"slug", "name", "description", "definition"}
        assert template["name"] and len(template["description"]) > 40


@pytest.mark.parametrize("slug", [t["slug"] for t in pipeline_templates()])
def test_it_ships_templates_that_pass_validation_as_they_stand(world, slug):
    definition = pipeline_template(slug)["definition"]
    normalized = definition_validate(project=world.project, definition=definition)
    assert [s["name"] for s in normalized["steps"]] == [s["name"] for s in definition["steps"]]
    assert normalized["parameters"] == definition["parameters"]


def test_it_chains_split_train_evaluate_register_deploy_with_a_fail_branch():
    definition = pipeline_template(MAIN)["definition"]
    assert set(definition["parameters"]) == {"dataset", "target", "algorithm", "threshold", "model_group", "endpoint"}
    assert definition["parameters"]["algorithm"] == "linear-learner"
    steps = {s["name"]: s for s in definition["steps"]}
    assert [(s["name"], s["type"]) for s in definition["steps"]] == [
        ("split", "processing"), ("train", "training"), ("evaluate", "condition"), ("register", "register"),
        ("deploy", "deploy"), ("too-weak", "fail")]
    evaluate = steps["evaluate"]["arguments"]
    assert evaluate["left"] == {"ref": "steps.train.metrics.validation:accuracy"}
    assert (evaluate["op"], evaluate["right"]) == (">=", {"ref": "parameters.threshold"})
    assert (evaluate["if_true"], evaluate["if_false"]) == (["register"], ["too-weak"])
    assert steps["register"]["arguments"]["approve"] is True


def test_it_hands_out_copies_so_callers_cannot_change_the_gallery():
    first = pipeline_template(MAIN)
    first["definition"]["steps"].clear()
    pipeline_templates()[0]["definition"]["parameters"]["threshold"] = 0
    assert len(pipeline_template(MAIN)["definition"]["steps"]) == 6
    assert pipeline_template(MAIN)["definition"]["parameters"]["threshold"] == 0.7
    assert pipeline_template("no-such-template") is None


def _endpoints_come_up(execution) -> None:
    # No endpoint agent runs in unit tests: the endpoint a deploy step made is put in service by hand.
    Endpoint.objects.filter(project=execution.project).update(status=EndpointStatus.IN_SERVICE)


def test_it_runs_the_main_template_to_a_deployed_endpoint_and_then_from_cache(world, pipeline_tasks):
    dataset = classification_dataset(world.project)
    template = pipeline_template(MAIN)
    pipeline = services.pipeline_create(user=world.member, project=world.project, name="churn-flow",
                                        definition=template["definition"])
    parameters = {"dataset": dataset.name, "target": "churned", "threshold": 0.6}
    first = drive(start(world, pipeline, parameters=parameters), pipeline_tasks, on_round=_endpoints_come_up)
    assert first.status == "completed", first.failure_reason
    assert statuses(first) == {"split": "completed", "train": "completed", "evaluate": "completed",
                               "register": "completed", "deploy": "completed", "too-weak": "skipped"}
    version = ModelVersion.objects.get(group__name="pipeline-models")
    assert version.approval_status == ApprovalStatus.APPROVED
    endpoint = Endpoint.objects.get(project=world.project, name="pipeline-endpoint")
    assert first.steps.get(name="deploy").outputs == {"endpoint": str(endpoint.id)}

    second = drive(start(world, pipeline, parameters=parameters), pipeline_tasks, on_round=_endpoints_come_up)
    assert second.status == "completed"
    assert statuses(second)["split"] == "cached" and statuses(second)["train"] == "cached"
    assert second.steps.get(name="train").outputs["model"] == first.steps.get(name="train").outputs["model"]
    assert ModelVersion.objects.filter(group__name="pipeline-models").count() == 1


def test_it_fails_the_main_template_on_a_weak_model_without_registering(world, pipeline_tasks):
    dataset = classification_dataset(world.project)
    pipeline = services.pipeline_create(user=world.member, project=world.project, name="strict",
                                        definition=pipeline_template(MAIN)["definition"])
    execution = drive(start(world, pipeline, parameters={"dataset": str(dataset.id), "threshold": 1.01}),
                      pipeline_tasks)
    assert execution.status == "failed"
    assert statuses(execution) == {"split": "completed", "train": "completed", "evaluate": "completed",
                                   "register": "skipped", "deploy": "skipped", "too-weak": "failed"}
    assert "below the threshold" in execution.failure_reason
    assert not ModelVersion.objects.exists() and not Endpoint.objects.exists()
