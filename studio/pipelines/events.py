"""Live events of pipeline executions: what the execution page and the websocket show, and their publishing.

The rows are the truth; these events are built from them (also as the websocket's history on connect) and
published after each change is committed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from studio.live.publisher import publish
from studio.pipelines.models import PipelineExecution, PipelineStep
from studio.pipelines.signals import pipeline_execution_finished

LIVE_KIND = "pipeline-execution"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _duration(started: datetime | None, ended: datetime | None) -> float | None:
    if started is None:
        return None
    return max(0.0, ((ended or timezone.now()) - started).total_seconds())


def execution_event(execution: PipelineExecution) -> dict[str, Any]:
    return {
        "type": "execution", "id": str(execution.id), "number": execution.number,
        "pipeline": str(execution.pipeline_id), "status": execution.status,
        "status_message": execution.status_message, "failure_reason": execution.failure_reason,
        "parameters": execution.parameters, "trigger": execution.trigger,
        "created_at": _iso(execution.created_at), "started_at": _iso(execution.started_at),
        "ended_at": _iso(execution.ended_at),
        "duration": _duration(execution.started_at, execution.ended_at) if execution.ended_at else None,
    }


# output or job kind -> (URL name, its id kwarg, label)
_PAGES = {
    "dataset": ("dataset-detail", "dataset_id", "Dataset"),
    "model": ("model-detail", "model_id", "Model"),
    "endpoint": ("endpoint-detail", "endpoint_id", "Endpoint"),
    "model_group": ("model-group-detail", "group_id", "Model group"),
    "training_job": ("training-job-detail", "job_id", "Training job"),
    "tuning_job": ("tuning-job-detail", "tuning_job_id", "Tuning job"),
    "transform_job": ("transform-job-detail", "transform_job_id", "Batch transform job"),
}
# Outputs whose name is not their kind (a split's parts are datasets).
_OUTPUT_PAGES = {"train": "dataset", "validation": "dataset", "test": "dataset"}


def _link(page: str, project_id, object_id, label: str) -> dict[str, str] | None:
    url_name, kwarg, _ = _PAGES[page]
    try:
        return {"label": label, "url": reverse(url_name, kwargs={"project_id": project_id, kwarg: object_id})}
    except NoReverseMatch:
        return None


def step_links(step: PipelineStep, project_id) -> list[dict[str, str]]:
    """Links to the pages of what the step made or waits on: its job, models, datasets, endpoint."""
    links: list[dict[str, str]] = []
    candidates: list[tuple[str, Any, str]] = []
    job = step.job or {}
    if job.get("kind") in _PAGES and job.get("id"):
        candidates.append((job["kind"], job["id"], _PAGES[job["kind"]][2]))
    for name, value in (step.outputs or {}).items():
        if not isinstance(value, str | int) or isinstance(value, bool):
            continue
        page = _OUTPUT_PAGES.get(name, name)
        if page in _PAGES:
            label = _PAGES[page][2] if page == name else f"{_PAGES[page][2]} ({name})"
            candidates.append((page, value, label))
    seen: set[str] = set()
    for page, object_id, label in candidates:
        link = _link(page, project_id, object_id, label)
        if link is not None and link["url"] not in seen:
            seen.add(link["url"])
            links.append(link)
    return links


def step_event(step: PipelineStep) -> dict[str, Any]:
    project_id = step.execution.project_id
    cached_from = None
    if step.cached_from_id is not None:
        source = PipelineStep.objects.filter(id=step.cached_from_id).select_related("execution").first()
        if source is not None:
            cached_from = {"execution": str(source.execution_id), "number": source.execution.number,
                           "pipeline": str(source.execution.pipeline_id), "step": source.name}
    return {
        "type": "step", "name": step.name, "step_type": step.type, "position": step.position,
        "status": step.status, "status_message": step.status_message, "failure_reason": step.failure_reason,
        "started_at": _iso(step.started_at), "ended_at": _iso(step.ended_at),
        "duration": _duration(step.started_at, step.ended_at) if step.started_at else None,
        "outputs": step.outputs, "cached": step.cached, "cached_from": cached_from, "attempts": step.attempts,
        "next_attempt_at": _iso(step.next_attempt_at), "job": step.job, "depends_on": step.depends_on,
        "links": step_links(step, project_id),
    }


def publish_changes(execution: PipelineExecution, steps: list[PipelineStep], *, status_changed: bool) -> None:
    events = [step_event(step) for step in steps] + [execution_event(execution)]
    publish(kind=LIVE_KIND, object_id=execution.id, events=events)
    if status_changed:
        publish(kind="project", object_id=execution.project_id, events=[{
            "type": "status", "status": execution.status,
            "message": execution.failure_reason or execution.status_message, "object": "pipeline-execution",
            "id": str(execution.id), "name": str(execution),
        }])
        if execution.is_final:  # once per final transition, after commit: whoever started the run hears
            pipeline_execution_finished.send_robust(sender=PipelineExecution, execution=execution)


def publish_on_commit(execution_id, step_ids: list[int], *, status_changed: bool) -> None:
    def send() -> None:
        execution = PipelineExecution.objects.select_related("pipeline").filter(id=execution_id).first()
        if execution is None:
            return
        steps = list(PipelineStep.objects.filter(id__in=step_ids).select_related("execution").order_by("position"))
        publish_changes(execution, steps, status_changed=status_changed)

    transaction.on_commit(send)
