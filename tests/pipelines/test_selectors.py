"""Reads are scoped to the user's teams: another team's pipeline or execution is a 404, never a 403."""

from __future__ import annotations

import pytest
from django.http import Http404

from studio.pipelines import selectors, services
from tests.pipelines.conftest import make_pipeline, start

pytestmark = pytest.mark.usefixtures("fake_kinds")

STEPS = [{"name": "a", "type": "emit", "arguments": {"value": 1}}, {"name": "b", "type": "emit", "depends_on": ["a"]}]


@pytest.fixture
def ours(world):
    pipeline = make_pipeline(world, STEPS)
    return pipeline, start(world, pipeline)


@pytest.fixture
def theirs(world):
    from studio.pipelines import engine

    pipeline = services.pipeline_create(user=world.outsider, project=world.other_project, name="theirs",
                                        definition={"steps": STEPS})
    return pipeline, engine.pipeline_execution_start(user=world.outsider, pipeline=pipeline)


def test_it_lists_and_gets_pipelines_of_the_users_projects(world, ours, theirs):
    pipeline, _ = ours
    for user in (world.owner, world.member, world.viewer):
        assert list(selectors.pipeline_list(user=user, project=world.project)) == [pipeline]
        assert selectors.pipeline_get(user=user, project=world.project, pipeline_id=pipeline.id) == pipeline
    assert list(selectors.pipeline_list(user=world.outsider, project=world.project)) == []
    with pytest.raises(Http404):
        selectors.pipeline_get(user=world.outsider, project=world.project, pipeline_id=pipeline.id)
    # Their pipeline through our project (a forged URL) is not found either.
    with pytest.raises(Http404):
        selectors.pipeline_get(user=world.member, project=world.project, pipeline_id=theirs[0].id)
    with pytest.raises(Http404):
        selectors.pipeline_get(user=world.member, project=world.project, pipeline_id="not-a-uuid")


def test_it_lists_and_gets_executions_scoped_the_same_way(world, ours, theirs):
    pipeline, execution = ours
    second = start(world, pipeline)
    other = make_pipeline(world, STEPS, name="other")
    third = start(world, other)
    assert list(selectors.execution_list(user=world.viewer, project=world.project)) == [third, second, execution]
    assert list(selectors.execution_list(user=world.viewer, project=world.project, pipeline=pipeline)) == [
        second, execution]
    assert selectors.execution_get(user=world.viewer, project=world.project, execution_id=execution.id) == execution
    assert list(selectors.execution_list(user=world.outsider, project=world.project)) == []
    with pytest.raises(Http404):
        selectors.execution_get(user=world.outsider, project=world.project, execution_id=execution.id)
    with pytest.raises(Http404):
        selectors.execution_get(user=world.member, project=world.project, execution_id=theirs[1].id)


def test_it_finds_an_execution_by_id_alone_only_for_its_teams(world, ours, theirs):
    execution = ours[1]
    assert selectors.execution_get_any_project(user=world.viewer, execution_id=execution.id) == execution
    assert selectors.execution_get_any_project(user=world.outsider, execution_id=execution.id) is None
    assert selectors.execution_get_any_project(user=world.member, execution_id=theirs[1].id) is None
    assert selectors.execution_get_any_project(user=world.member, execution_id="garbage") is None


def test_it_lists_steps_in_definition_order(world, ours):
    assert [s.name for s in selectors.step_list(execution=ours[1])] == ["a", "b"]
