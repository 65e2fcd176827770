"""Every read of pipelines, their executions and steps, scoped to projects the user's teams can see."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import Http404

from studio.accounts.selectors import project_list
from studio.pipelines.models import Pipeline, PipelineExecution, PipelineStep

if TYPE_CHECKING:
    from studio.accounts.models import Project, User


def pipeline_list(*, user: User, project: Project) -> QuerySet[Pipeline]:
    return Pipeline.objects.filter(project=project, project__in=project_list(user=user)).select_related(
        "project__team", "created_by")


def pipeline_get(*, user: User, project: Project, pipeline_id) -> Pipeline:
    try:
        return pipeline_list(user=user, project=project).get(id=pipeline_id)
    except (Pipeline.DoesNotExist, ValueError, TypeError, ValidationError):
        raise Http404("No such pipeline in this project.") from None


def execution_list(*, user: User, project: Project, pipeline: Pipeline | None = None) -> QuerySet[PipelineExecution]:
    """Newest first; of one pipeline when given."""
    executions = PipelineExecution.objects.filter(project=project, project__in=project_list(user=user))
    if pipeline is not None:
        executions = executions.filter(pipeline=pipeline)
    return executions.select_related("pipeline", "project__team", "created_by").order_by("-created_at", "-number")


def execution_get(*, user: User, project: Project, execution_id) -> PipelineExecution:
    try:
        return execution_list(user=user, project=project).get(id=execution_id)
    except (PipelineExecution.DoesNotExist, ValueError, TypeError, ValidationError):
        raise Http404("No such pipeline execution in this project.") from None


def execution_get_any_project(*, user: User, execution_id) -> PipelineExecution | None:
    """For websockets, whose URL carries only the execution id."""
    try:
        return (PipelineExecution.objects.filter(id=execution_id, project__in=project_list(user=user))
                .select_related("pipeline", "project").first())
    except (ValueError, TypeError, ValidationError):
        return None


def step_list(*, execution: PipelineExecution) -> QuerySet[PipelineStep]:
    """Steps of an execution the caller already got through a scoped selector, in definition order."""
    return PipelineStep.objects.filter(execution=execution).select_related("execution", "cached_from__execution") \
        .order_by("position")
