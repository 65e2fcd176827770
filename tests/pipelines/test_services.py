"""Creating, changing and deleting pipelines: validation, names, versions, roles."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from studio.accounts.models import AuditEvent
from studio.core.errors import Conflict
from studio.pipelines import engine, services
from studio.pipelines.models import Pipeline, PipelineExecution
from tests.pipelines.conftest import drive, make_pipeline, start

pytestmark = pytest.mark.usefixtures("fake_kinds")

DEFINITION = {"parameters": {"n": 1},
              "steps": [{"name": "a", "type": "emit", "arguments": {"value": {"ref": "parameters.n"}}}]}


def test_it_creates_a_pipeline_with_its_normalized_definition(world):
    pipeline = services.pipeline_create(user=world.member, project=world.project, name="  Churn flow ",
                                        definition=DEFINITION, description="weekly")
    assert pipeline.name == "Churn flow" and pipeline.version == 1 and pipeline.created_by == world.member
    assert pipeline.definition["steps"][0]["retry"]["max_attempts"] == 1
    assert AuditEvent.objects.filter(verb="created pipeline", target="Churn flow").exists()


def test_it_reports_name_and_definition_problems_together(world):
    make_pipeline(world, DEFINITION["steps"], parameters={"n": 1}, name="taken")
    with pytest.raises(ValidationError) as caught:
        services.pipeline_create(user=world.member, project=world.project, name="taken",
                                 definition={"steps": [{"name": "a", "type": "nope"}]})
    assert set(caught.value.message_dict) == {"name", "definition.steps.a.type"}
    assert "already exists" in caught.value.message_dict["name"][0]
    with pytest.raises(ValidationError) as caught:
        services.pipeline_create(user=world.member, project=world.project, name=" ", definition=DEFINITION)
    assert list(caught.value.message_dict) == ["name"]
    # The same name in another project is fine.
    services.pipeline_create(user=world.outsider, project=world.other_project, name="taken", definition=DEFINITION)


def test_it_refuses_viewers(world):
    with pytest.raises(PermissionDenied):
        services.pipeline_create(user=world.viewer, project=world.project, name="x", definition=DEFINITION)
    pipeline = make_pipeline(world, DEFINITION["steps"], parameters={"n": 1})
    with pytest.raises(PermissionDenied):
        services.pipeline_update(user=world.viewer, pipeline=pipeline, name="y")
    with pytest.raises(PermissionDenied):
        services.pipeline_delete(user=world.viewer, pipeline=pipeline)


def test_it_bumps_the_version_only_when_the_definition_changes(world, pipeline_tasks):
    pipeline = make_pipeline(world, DEFINITION["steps"], parameters={"n": 1})
    first = start(world, pipeline)
    same = services.pipeline_update(user=world.member, pipeline=pipeline, definition=pipeline.definition,
                                    description="now described")
    assert same.version == 1 and same.description == "now described"
    changed = services.pipeline_update(user=world.member, pipeline=pipeline, definition={
        "parameters": {"n": 2}, "steps": DEFINITION["steps"]})
    assert changed.version == 2 and changed.definition["parameters"] == {"n": 2}
    # A running execution keeps the definition it started with.
    first.refresh_from_db()
    assert first.definition["parameters"] == {"n": 1} and first.pipeline_version == 1
    assert drive(first, pipeline_tasks).steps.get(name="a").outputs["value"] == 1
    assert start(world, pipeline).pipeline_version == 2


def test_it_validates_updates_and_keeps_names_unique(world):
    make_pipeline(world, DEFINITION["steps"], parameters={"n": 1}, name="other")
    pipeline = make_pipeline(world, DEFINITION["steps"], parameters={"n": 1}, name="mine")
    with pytest.raises(ValidationError) as caught:
        services.pipeline_update(user=world.member, pipeline=pipeline, name="other",
                                 definition={"steps": [{"name": "a", "type": "emit", "depends_on": ["zz"]}]})
    assert set(caught.value.message_dict) == {"name", "definition.steps.a.depends_on"}
    pipeline.refresh_from_db()
    assert pipeline.name == "mine" and pipeline.version == 1
    assert services.pipeline_update(user=world.member, pipeline=pipeline, name="mine").name == "mine"
    assert services.pipeline_update(user=world.member, pipeline=pipeline, name="renamed").name == "renamed"


def test_it_refuses_to_delete_a_pipeline_while_it_runs(world, pipeline_tasks):
    pipeline = make_pipeline(world, DEFINITION["steps"], parameters={"n": 1})
    execution = start(world, pipeline)
    with pytest.raises(Conflict, match="#1"):
        services.pipeline_delete(user=world.member, pipeline=pipeline)
    engine.pipeline_execution_stop(user=world.member, execution=execution)
    services.pipeline_delete(user=world.member, pipeline=pipeline)
    assert not Pipeline.objects.filter(id=pipeline.id).exists()
    assert not PipelineExecution.objects.filter(id=execution.id).exists()


def test_it_deletes_the_beat_entries_of_the_pipelines_schedules(world):
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    from studio.pipelines.models import PipelineSchedule

    pipeline = make_pipeline(world, DEFINITION["steps"], parameters={"n": 1})
    crontab = CrontabSchedule.objects.create(minute="0", hour="*")
    task = PeriodicTask.objects.create(name="pipeline-schedule:test", task="x", crontab=crontab)
    PipelineSchedule.objects.create(pipeline=pipeline, cron="0 * * * *", periodic_task=task)
    services.pipeline_delete(user=world.owner, pipeline=pipeline)
    assert not PeriodicTask.objects.filter(id=task.id).exists()
