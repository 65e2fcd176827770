"""Walks every route in the URLconf as an outsider pointed at another team's objects: all must be 404.

A route added later without a scoped selector fails here; a route with a new kind of URL argument fails
until this test learns how to fill it, which is the point.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from studio.accounts.services import api_token_create, invitation_create
from studio.datasets.models import Dataset
from studio.endpoints.models import AsyncInvocation, Endpoint, EndpointVariant, InvokeKey, TransformJob
from studio.ops.models import FailedTask
from studio.pipelines.models import Pipeline, PipelineExecution, PipelineSchedule, PipelineTrigger
from studio.registry.models import Model, ModelGroup, ModelVersion
from studio.social.models import Comment, Notification
from studio.training.models import TrainingJob
from studio.tuning.models import TuningJob
from tests.conftest import PASSWORD, api_client

# Routes that name no team object: they answer about the caller's own things.
UNSCOPED = {
    "api-signup", "api-token", "api-me", "api-tokens", "api-teams", "api-projects", "api-algorithms",
    "api-schema", "api-docs", "home", "health", "favicon", "signup", "login", "logout", "tokens", "team-create",
}


def _routes(resolver=None, prefix: str = "", names: tuple[str, ...] = ()):
    resolver = resolver or get_resolver()
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            if pattern.namespace == "admin":
                continue  # staff-only, guarded by Django admin itself
            yield from _routes(pattern, prefix + str(pattern.pattern), names)
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern.name


@pytest.fixture
def victims(world):
    """Objects of world.team, which the outsider must never see."""
    dataset = Dataset.objects.create(project=world.project, name="d", file="x.csv", status="ready")
    job = TrainingJob.objects.create(project=world.project, name="j", algorithm="linear-learner", dataset=dataset)
    model = Model.objects.create(project=world.project, name="m", algorithm="linear-learner", training_job=job,
                                 artifact_prefix="projects/x/")
    tuning = TuningJob.objects.create(project=world.project, name="t", algorithm="linear-learner", dataset=dataset,
                                      objective_metric="validation:loss", objective_goal="minimize",
                                      strategy="random", max_jobs=1, max_parallel_jobs=1)
    endpoint = Endpoint.objects.create(project=world.project, name="e", type="realtime")
    EndpointVariant.objects.create(endpoint=endpoint, name="v", model=model)
    key = InvokeKey.objects.create(endpoint=endpoint, name="k", prefix="sk", key_hash="0" * 64)
    transform = TransformJob.objects.create(project=world.project, name="x", model=model, input_dataset=dataset)
    invocation = AsyncInvocation.objects.create(endpoint=endpoint)
    token, _ = api_token_create(user=world.owner, name="owner's")
    version = ModelVersion.objects.create(group=ModelGroup.objects.create(project=world.project, name="g"), version=1,
                                          model=model)
    pipeline = Pipeline.objects.create(project=world.project, name="p", definition={"parameters": {}, "steps": []})
    execution = PipelineExecution.objects.create(pipeline=pipeline, project=world.project, number=1)
    schedule = PipelineSchedule.objects.create(pipeline=pipeline, cron="0 3 * * *")
    trigger = PipelineTrigger.objects.create(pipeline=pipeline, event="dataset_created")
    # An invite link of world.team. Its secret is a capability (whoever holds it may join), so the outsider
    # here holds a token that is not one: that must be a plain 404.
    invitation, _ = invitation_create(actor=world.owner, team=world.team, role="viewer", link=True)
    comment = Comment.objects.create(project=world.project, target_type="training_job", target_id=str(job.id),
                                     author=world.owner, body="secret plans")
    notification = Notification.objects.create(user=world.owner, project=world.project, kind="other", title="t")
    failed_task = FailedTask.objects.create(task_name="studio.training.tasks.training_job_run_task")  # site admins only
    return {
        "project_id": world.project.id, "slug": world.team.slug, "dataset_id": dataset.id, "job_id": job.id,
        "model_id": model.id, "token_id": token.id, "username": world.member.username,
        "algorithm": "linear-learner", "tuning_job_id": tuning.id,
        "endpoint_id": endpoint.id, "key_id": key.id,
        "transform_job_id": transform.id, "invocation_id": invocation.id,
        "group_id": version.group_id, "version": version.version,
        "pipeline_id": pipeline.id, "execution_id": execution.id, "schedule_id": schedule.id, "trigger_id": trigger.id,
        "invitation_id": invitation.id, "token": "inv_" + "x" * 43,
        "target_type": "training_job", "target_id": job.id, "comment_id": comment.id,
        "notification_id": notification.id,
        "failed_task_id": failed_task.id,
    }


def _fill(route: str, values: dict) -> str:
    import re

    def sub(match):
        name = match.group(2)
        assert name in values, f"tenancy test does not know how to fill <{name}> in {route}: add it to victims"
        return str(values[name])

    return "/" + re.sub(r"<(?:(\w+):)?(\w+)>", sub, route)


def test_it_knows_every_route(world, victims):
    named = [name for _, name in _routes()]
    assert all(named), "every route needs a name so this walk can report it"


@pytest.mark.parametrize("method", ["get", "post", "patch", "put", "delete"])
def test_it_answers_404_to_an_outsider_on_every_scoped_route(world, victims, method):
    api = api_client(world.outsider)
    page = Client()
    page.login(username=world.outsider.username, password=PASSWORD)
    checked = 0
    for route, name in _routes():
        if name in UNSCOPED or "<" not in route:
            continue
        url = _fill(route, victims)
        client = api if route.startswith("api/") else page
        response = getattr(client, method)(url)
        assert response.status_code in (404, 405), (
            f"{method.upper()} {url} ({name}) answered {response.status_code} to an outsider, expected 404"
        )
        checked += 1
    assert checked >= 10


def test_it_does_not_list_other_teams_objects(world, victims):
    client = api_client(world.outsider)
    projects = client.get("/api/v1/projects").json()["results"]
    assert [p["name"] for p in projects] == ["Secret"]
    teams = client.get("/api/v1/teams").json()["results"]
    assert [t["slug"] for t in teams] == [world.other_team.slug]
