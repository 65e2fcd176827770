"""Every write to pipelines themselves: create, update (a new version of the definition), delete.

Runs (executions) are started, stopped and retried by studio.pipelines.engine; schedules and triggers
live in studio.pipelines.automation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from studio.accounts.models import Role
from studio.accounts.permissions import require_role
from studio.accounts.services import audit
from studio.core.errors import Conflict
from studio.pipelines.definition import definition_validate
from studio.pipelines.models import ExecutionStatus, Pipeline, PipelineExecution

if TYPE_CHECKING:
    from studio.accounts.models import Project, User

MAX_NAME = 200
_RUNNING = (ExecutionStatus.PENDING, ExecutionStatus.RUNNING, ExecutionStatus.STOPPING)


def _duplicate(name: str) -> ValidationError:
    return ValidationError({"name": [f"A pipeline named '{name}' already exists in this project."]})


def _clean(*, project: Project, name: Any, definition: Any, description: Any, pipeline: Pipeline | None = None,
           check_name: bool = True, check_definition: bool = True) -> tuple[str, dict[str, Any] | None, str]:
    """Name, normalized definition and description, every problem reported at once."""
    errors: dict[str, list[str]] = {}
    clean_name = ""
    if check_name:
        clean_name = name.strip() if isinstance(name, str) else ""
        if not clean_name:
            errors["name"] = ["A pipeline needs a name."]
        elif len(clean_name) > MAX_NAME:
            errors["name"] = [f"A name is at most {MAX_NAME} characters."]
        else:
            others = Pipeline.objects.filter(project=project, name=clean_name)
            if pipeline is not None:
                others = others.exclude(id=pipeline.id)
            if others.exists():
                errors.update(_duplicate(clean_name).message_dict)
    clean_description = ""
    if description is not None:
        if not isinstance(description, str):
            errors["description"] = ["A description is text."]
        else:
            clean_description = description.strip()
    clean_definition = None
    if check_definition:
        try:
            clean_definition = definition_validate(project=project, definition=definition)
        except ValidationError as exc:
            errors.update(exc.message_dict)
    if errors:
        raise ValidationError(errors)
    return clean_name, clean_definition, clean_description


def pipeline_create(*, user: User, project: Project, name: str, definition: Any, description: str = "") -> Pipeline:
    """A new pipeline (member+) with a validated definition; 400 naming each problem."""
    require_role(user=user, team=project.team, role=Role.MEMBER)
    clean_name, clean_definition, clean_description = _clean(project=project, name=name, definition=definition,
                                                             description=description or "")
    try:
        with transaction.atomic():
            pipeline = Pipeline.objects.create(project=project, name=clean_name, description=clean_description,
                                               definition=clean_definition, created_by=user)
            audit(actor=user, verb="created pipeline", project=project, target=pipeline.name,
                  data={"pipeline": str(pipeline.id), "steps": len(clean_definition["steps"])})
    except IntegrityError:
        raise _duplicate(clean_name) from None
    return pipeline


def pipeline_update(*, user: User, pipeline: Pipeline, name: str | None = None, definition: Any = None,
                    description: str | None = None) -> Pipeline:
    """Change a pipeline (member+); a changed definition is a new version (running executions keep theirs)."""
    require_role(user=user, team=pipeline.project.team, role=Role.MEMBER)
    clean_name, clean_definition, clean_description = _clean(
        project=pipeline.project, name=name, definition=definition, description=description, pipeline=pipeline,
        check_name=name is not None, check_definition=definition is not None)
    changed: list[str] = []
    if name is not None and clean_name != pipeline.name:
        pipeline.name = clean_name
        changed.append("name")
    if description is not None and clean_description != pipeline.description:
        pipeline.description = clean_description
        changed.append("description")
    if clean_definition is not None and clean_definition != pipeline.definition:
        pipeline.definition = clean_definition
        pipeline.version += 1
        changed += ["definition", "version"]
    if not changed:
        return pipeline
    try:
        with transaction.atomic():
            pipeline.save(update_fields=[*changed, "updated_at"])
            audit(actor=user, verb="updated pipeline", project=pipeline.project, target=pipeline.name,
                  data={"pipeline": str(pipeline.id), "changed": changed, "version": pipeline.version})
    except IntegrityError:
        raise _duplicate(pipeline.name) from None
    return pipeline


def pipeline_delete(*, user: User, pipeline: Pipeline) -> None:
    """Delete a pipeline with its history, schedules (and their beat entries) and triggers (member+); 409 while
    an execution runs."""
    require_role(user=user, team=pipeline.project.team, role=Role.MEMBER)
    with transaction.atomic():
        # Starting a run locks the pipeline row too: no execution can begin between this check and the delete.
        Pipeline.objects.select_for_update().filter(id=pipeline.id).first()
        running = PipelineExecution.objects.filter(pipeline=pipeline, status__in=_RUNNING).order_by("number").first()
        if running is not None:
            raise Conflict(f"Execution #{running.number} of pipeline '{pipeline.name}' is {running.status}; stop "
                           "it before deleting the pipeline.")
        audit(actor=user, verb="deleted pipeline", project=pipeline.project, target=pipeline.name,
              data={"pipeline": str(pipeline.id)})
        pipeline.delete()
