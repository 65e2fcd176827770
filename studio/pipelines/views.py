"""Pipeline pages: list, template gallery, builder (with runs, schedules, triggers) and the live execution page.

Views stay thin: the engine validates definitions and runs executions, automation owns schedules and
triggers; here requests are read, services called, and their errors shown where the user typed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError
from django.db.models import Count, OuterRef, Subquery
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from algorithms import list_algorithms
from studio.core.errors import Conflict
from studio.core.naming import unique_name
from studio.core.pages import ProjectAccess, project_access
from studio.datasets.models import DatasetStatus
from studio.datasets.selectors import dataset_list
from studio.endpoints.selectors import endpoint_list
from studio.pipelines import automation, engine, forms, gallery, selectors, services
from studio.pipelines.dag import dag_layout
from studio.pipelines.models import (
    ExecutionStatus,
    Pipeline,
    PipelineExecution,
    StepStatus,
    TriggerEvent,
)
from studio.pipelines.steps import step_palette
from studio.registry.models import ModelVersion
from studio.registry.selectors import model_list

NAV = "pipelines"
EMPTY_DEFINITION: dict[str, Any] = {"parameters": {}, "steps": []}
OBJECT_LIMIT = 500
HISTORY_LIMIT = 100
STOPPABLE = (ExecutionStatus.PENDING, ExecutionStatus.RUNNING)
RETRYABLE = (ExecutionStatus.FAILED, ExecutionStatus.STOPPED)
SCHEDULE_RENAMES = {"name": "schedule_name", "parameters": "schedule_parameters"}
TRIGGER_RENAMES = {"parameters": "trigger_parameters"}


def _require_member(access: ProjectAccess, what: str) -> None:
    if not access.can_edit:
        raise PermissionDenied(f"{what} needs the member role.")


def _pipeline(request, access: ProjectAccess, pipeline_id) -> Pipeline:
    return selectors.pipeline_get(user=request.user, project=access.project, pipeline_id=pipeline_id)


def _execution(request, access: ProjectAccess, pipeline: Pipeline, execution_id) -> PipelineExecution:
    execution = selectors.execution_get(user=request.user, project=access.project, execution_id=execution_id)
    if execution.pipeline_id != pipeline.id:  # an execution id under another pipeline's URL
        raise Http404("No such execution of this pipeline.")
    return execution


def _member_pipeline(request, project_id, pipeline_id, what: str) -> tuple[ProjectAccess, Pipeline]:
    """The project access and the pipeline of a view that changes it; a viewer gets 403 ("<what> needs ...")."""
    access = project_access(request, project_id)
    pipeline = _pipeline(request, access, pipeline_id)
    _require_member(access, what)
    return access, pipeline


# --- list and gallery ---------------------------------------------------------------------------


@login_required
def pipeline_list(request, project_id):
    access = project_access(request, project_id)
    latest = PipelineExecution.objects.filter(pipeline=OuterRef("pk")).order_by("-number")
    pipelines = list(
        selectors.pipeline_list(user=request.user, project=access.project)
        .annotate(execution_count=Count("executions", distinct=True),
                  last_status=Subquery(latest.values("status")[:1]),
                  last_number=Subquery(latest.values("number")[:1]),
                  last_id=Subquery(latest.values("id")[:1]),
                  last_started=Subquery(latest.values("created_at")[:1]))
        .order_by("name")[:OBJECT_LIMIT])
    for pipeline in pipelines:
        steps = (pipeline.definition or {}).get("steps")
        pipeline.step_count = len(steps) if isinstance(steps, list) else 0
    return render(request, "pipelines/pipeline_list.html", access.context(NAV, pipelines=pipelines))


def _gallery_context(access: ProjectAccess, names: dict[str, str] | None = None,
                     errors: dict[str, dict[str, list[str]]] | None = None) -> dict[str, Any]:
    cards = []
    for template in gallery.pipeline_templates():
        definition = template["definition"]
        cards.append({
            **template, "dag": dag_layout(definition),
            "parameters": [(name, forms.parameter_text(value)) for name, value in definition["parameters"].items()],
            "step_count": len(definition["steps"]),
            "default_name": (names or {}).get(template["slug"])
            or unique_name(model=Pipeline, project=access.project, base=template["slug"]),
            "errors": (errors or {}).get(template["slug"], {}),
        })
    return access.context(NAV, templates=cards)


@login_required
def pipeline_gallery(request, project_id):
    access = project_access(request, project_id)
    return render(request, "pipelines/gallery.html", _gallery_context(access))


@login_required
@require_POST
def pipeline_template_use(request, project_id, slug):
    """Copy a template into the project as a new pipeline under the name the user gave, then open the builder."""
    access = project_access(request, project_id)
    _require_member(access, "Creating a pipeline")
    template = gallery.pipeline_template(slug)
    if template is None:
        raise Http404("No such pipeline template.")
    name = request.POST.get("name", "").strip()
    try:
        pipeline = services.pipeline_create(user=request.user, project=access.project, name=name,
                                            definition=template["definition"], description=template["description"])
    except (ValidationError, Conflict, IntegrityError) as exc:
        errors = forms.error_dict(exc) if isinstance(exc, ValidationError) else {
            "name": [f"A pipeline named '{name}' already exists in this project."]}
        return render(request, "pipelines/gallery.html",
                      _gallery_context(access, {slug: name}, {slug: errors}), status=400)
    messages.success(request, f"Pipeline '{pipeline.name}' created from the template: set its parameters and run it.")
    return redirect("pipeline-detail", project_id=access.project.id, pipeline_id=pipeline.id)


# --- builder --------------------------------------------------------------------------------------


def _palette() -> list[dict[str, Any]]:
    """The step types for the builder's script, outputs normalised to a list of ``{name, kind}``."""
    palette = []
    for entry in step_palette():
        outputs = entry.get("outputs") or {}
        if isinstance(outputs, dict):
            outputs = [{"name": name, "kind": kind} for name, kind in outputs.items()]
        palette.append({**entry, "outputs": outputs})
    return palette


def _project_objects(request, project) -> dict[str, list[dict[str, str]]]:
    """What the builder's object selects offer, per argument kind."""
    datasets = dataset_list(user=request.user, project=project).filter(status=DatasetStatus.READY).order_by("name")
    models = model_list(user=request.user, project=project).order_by("-created_at")
    versions = (ModelVersion.objects.filter(group__project=project).select_related("group")
                .order_by("group__name", "-version"))
    endpoints = endpoint_list(user=request.user, project=project).order_by("name")
    return {
        "dataset": [{"id": str(d.id), "name": d.name} for d in datasets[:OBJECT_LIMIT]],
        "model": [{"id": str(m.id), "name": m.name} for m in models[:OBJECT_LIMIT]],
        "model_version": [{"id": str(v.id), "name": f"{v.group.name} v{v.version}"} for v in versions[:OBJECT_LIMIT]],
        "endpoint": [{"id": str(e.id), "name": e.name} for e in endpoints[:OBJECT_LIMIT]],
    }


def _run_objects(request, project) -> list[str]:
    """Names the run form suggests for text parameters: the project's datasets and models (names resolve to ids)."""
    datasets = dataset_list(user=request.user, project=project).filter(status=DatasetStatus.READY)
    models = model_list(user=request.user, project=project)
    names = set(datasets.values_list("name", flat=True)[:OBJECT_LIMIT])
    return sorted(names | set(models.values_list("name", flat=True)[:OBJECT_LIMIT]))


def _algorithm_metrics() -> dict[str, list[str]]:
    return {algo.name: [metric.name for metric in algo.metrics] for algo in list_algorithms()}


def _builder_context(request, access: ProjectAccess, *, pipeline: Pipeline | None, name: str, description: str,
                     definition: Any, text: str | None = None, errors: dict[str, list[str]] | None = None,
                     **extra) -> dict[str, Any]:
    """The builder: ``definition`` is what the step forms start from, ``text`` what the JSON tab shows.

    After invalid JSON was posted the two differ: the forms keep the last definition that parsed and
    the JSON tab keeps what the user typed, with the error next to it.
    """
    errors = errors or {}
    placed = forms.place_errors(errors, definition)
    shown = definition if isinstance(definition, dict) else EMPTY_DEFINITION
    parameters = shown.get("parameters") if isinstance(shown.get("parameters"), dict) else {}
    context = access.context(
        NAV, pipeline=pipeline, name=name, description=description, definition=shown,
        definition_text=text if text is not None else forms.definition_text(shown),
        errors=placed, has_errors=bool(errors), json_error=bool(errors.get("definition")) and text is not None,
        dag=dag_layout(shown), steps=_step_rows(shown),
        parameters=[(n, forms.parameter_text(v), forms.parameter_kind(v)) for n, v in parameters.items()],
        **extra,
    )
    if access.can_edit:
        context["page_data"] = {
            "definition": shown, "errors": placed, "palette": _palette(),
            "objects": _project_objects(request, access.project), "metrics": _algorithm_metrics(),
            "dag_url": reverse("pipeline-dag", args=[access.project.id]),
            "json_active": context["json_error"],
        }
    return context


def _step_rows(definition: dict[str, Any]) -> list[dict[str, Any]]:
    """The read-only steps table: name, type, what it waits for and its arguments as JSON."""
    edges = dag_layout(definition)["edges"]
    rows = []
    steps = definition.get("steps") if isinstance(definition.get("steps"), list) else []
    for step in steps:
        if not isinstance(step, dict):
            continue
        name = step.get("name", "")
        rows.append({"name": name, "type": step.get("type", ""),
                     "waits_for": [e["from"] for e in edges if e["to"] == name],
                     "arguments": forms.definition_text(step.get("arguments", {}))})
    return rows


def _detail_extra(request, access: ProjectAccess, pipeline: Pipeline, *, schedule_values=None, schedule_errors=None,
                  trigger_values=None, trigger_errors=None) -> dict[str, Any]:
    """The parts of the pipeline page beside the builder: history, run form, schedules and triggers."""
    executions = list(selectors.execution_list(user=request.user, project=access.project, pipeline=pipeline)
                      [:HISTORY_LIMIT])
    for execution in executions:
        execution.duration_seconds = _seconds_between(execution.started_at, execution.ended_at)
    schedule_placed, schedule_other = forms.automation_errors(schedule_errors or {}, forms.SCHEDULE_FIELDS,
                                                              SCHEDULE_RENAMES)
    trigger_placed, trigger_other = forms.automation_errors(trigger_errors or {}, forms.TRIGGER_FIELDS,
                                                            TRIGGER_RENAMES)
    parameter_names = list((pipeline.definition or {}).get("parameters") or {})
    return {
        "executions": executions, "run_parameters": forms.parameter_rows(pipeline.definition or {}),
        "run_objects": _run_objects(request, access.project) if access.can_edit else [],
        "schedules": list(automation.schedule_list(pipeline=pipeline)),
        "triggers": list(automation.trigger_list(pipeline=pipeline)),
        "schedule_values": schedule_values or {"timezone": "UTC"}, "schedule_errors": schedule_placed,
        "schedule_other_errors": schedule_other, "trigger_values": trigger_values or {},
        "trigger_errors": trigger_placed, "trigger_other_errors": trigger_other,
        "trigger_events": TriggerEvent.choices, "parameter_names": parameter_names,
    }


def _seconds_between(start, end) -> float | None:
    return (end - start).total_seconds() if start is not None and end is not None else None


def _render_detail(request, access: ProjectAccess, pipeline: Pipeline, *, status: int = 200, **builder):
    builder.setdefault("name", pipeline.name)
    builder.setdefault("description", pipeline.description)
    builder.setdefault("definition", pipeline.definition)
    automation_kwargs = {key: builder.pop(key) for key in ("schedule_values", "schedule_errors", "trigger_values",
                                                           "trigger_errors") if key in builder}
    context = _builder_context(request, access, pipeline=pipeline, **builder,
                               **_detail_extra(request, access, pipeline, **automation_kwargs))
    return render(request, "pipelines/pipeline_detail.html", context, status=status)


def _save_posted(request, save: Callable[..., Pipeline]) -> tuple[Pipeline | None, str, str, str, Any,
                                                                   dict[str, list[str]]]:
    """Save the posted builder with ``save(name=, definition=, description=)``: the saved pipeline (None when
    refused), then the posted name, description, JSON text, parsed definition and the errors to show."""
    name = request.POST.get("name", "").strip()
    description = request.POST.get("description", "").strip()
    text = request.POST.get("definition", "")
    definition, errors = forms.definition_from_text(text)
    saved = None
    if not errors:
        try:
            saved = save(name=name, definition=definition, description=description)
        except ValidationError as exc:
            errors = forms.error_dict(exc)
        except (Conflict, IntegrityError):
            errors = {"name": [f"A pipeline named '{name}' already exists in this project."]}
    return saved, name, description, text, definition, errors


@login_required
def pipeline_create(request, project_id):
    """The builder for a pipeline not saved yet; Save creates it."""
    access = project_access(request, project_id)
    _require_member(access, "Creating a pipeline")
    if request.method != "POST":
        context = _builder_context(request, access, pipeline=None, description="", definition=EMPTY_DEFINITION,
                                   name=unique_name(model=Pipeline, project=access.project, base="pipeline"))
        return render(request, "pipelines/pipeline_detail.html", context)
    pipeline, name, description, text, definition, errors = _save_posted(
        request, lambda **fields: services.pipeline_create(user=request.user, project=access.project, **fields))
    if pipeline is not None:
        messages.success(request, f"Pipeline '{pipeline.name}' saved.")
        return redirect("pipeline-detail", project_id=access.project.id, pipeline_id=pipeline.id)
    previous = definition if definition is not None else _last_parsable(request)
    context = _builder_context(request, access, pipeline=None, name=name, description=description,
                               definition=previous, text=text, errors=errors)
    return render(request, "pipelines/pipeline_detail.html", context, status=400)


def _last_parsable(request) -> dict[str, Any]:
    """The step forms' definition when the JSON tab held broken JSON: the script posts it alongside."""
    definition, errors = forms.definition_from_text(request.POST.get("last_valid_definition", ""))
    return definition if not errors and isinstance(definition, dict) else EMPTY_DEFINITION


@login_required
def pipeline_detail(request, project_id, pipeline_id):
    """The builder of a saved pipeline (read-only for viewers) with its runs, schedules and triggers; POST saves."""
    access = project_access(request, project_id)
    pipeline = _pipeline(request, access, pipeline_id)
    if request.method != "POST":
        return _render_detail(request, access, pipeline)
    _require_member(access, "Changing a pipeline")
    saved, name, description, text, definition, errors = _save_posted(
        request, lambda **fields: services.pipeline_update(user=request.user, pipeline=pipeline, **fields))
    if saved is not None:
        messages.success(request, f"Pipeline saved (version {saved.version}).")
        return redirect("pipeline-detail", project_id=access.project.id, pipeline_id=saved.id)
    if definition is not None:
        shown = definition
    elif request.POST.get("last_valid_definition"):
        shown = _last_parsable(request)
    else:
        shown = pipeline.definition
    return _render_detail(request, access, pipeline, status=400, name=name, description=description,
                          definition=shown, text=text, errors=errors)


@login_required
@require_POST
def pipeline_dag(request, project_id):
    """htmx partial: the DAG of the definition the builder holds, drawn as the server lays it out."""
    access = project_access(request, project_id)
    _require_member(access, "Editing a pipeline")
    definition, _ = forms.definition_from_text(request.POST.get("definition", ""))
    return render(request, "pipelines/_dag.html", {"dag": dag_layout(definition)})


@login_required
@require_POST
def pipeline_delete(request, project_id, pipeline_id):
    access = project_access(request, project_id)
    _require_member(access, "Deleting a pipeline")
    pipeline = _pipeline(request, access, pipeline_id)
    try:
        services.pipeline_delete(user=request.user, pipeline=pipeline)
    except Conflict as exc:
        messages.error(request, str(exc))
        return redirect("pipeline-detail", project_id=access.project.id, pipeline_id=pipeline.id)
    messages.success(request, f"Pipeline '{pipeline.name}' deleted with its executions.")
    return redirect("pipeline-list", project_id=access.project.id)


# --- run ------------------------------------------------------------------------------------------


@login_required
def pipeline_run(request, project_id, pipeline_id):
    """A form with one input per parameter (defaults filled in); POST starts an execution and opens it."""
    access, pipeline = _member_pipeline(request, project_id, pipeline_id, "Running a pipeline")
    definition = pipeline.definition or {}
    if request.method != "POST":
        return render(request, "pipelines/pipeline_run.html", access.context(
            NAV, pipeline=pipeline, run_parameters=forms.parameter_rows(definition),
            run_objects=_run_objects(request, access.project)))
    values = forms.parameters_from_post(definition, request.POST)
    try:
        execution = engine.pipeline_execution_start(user=request.user, pipeline=pipeline, parameters=values)
    except (ValidationError, Conflict) as exc:
        errors = forms.error_dict(exc) if isinstance(exc, ValidationError) else {"non_field_errors": [str(exc)]}
        shown = {name: request.POST.getlist(f"param_{name}")[-1] for name in definition.get("parameters") or {}
                 if request.POST.getlist(f"param_{name}")}
        rows = forms.parameter_rows(definition, {**values, **shown}, errors)
        known = {f"parameters.{row['name']}" for row in rows}
        other = [(key, message) for key, msgs in errors.items() if key not in known for message in msgs]
        return render(request, "pipelines/pipeline_run.html", access.context(
            NAV, pipeline=pipeline, run_parameters=rows, other_errors=other,
            run_objects=_run_objects(request, access.project)), status=400)
    messages.success(request, f"Execution #{execution.number} started.")
    return redirect("pipeline-execution-detail", project_id=access.project.id, pipeline_id=pipeline.id,
                    execution_id=execution.id)


# --- schedules and triggers -------------------------------------------------------------------------


def _automation_done(request, access: ProjectAccess, pipeline: Pipeline, message: str):
    messages.success(request, message)
    return redirect(reverse("pipeline-detail", args=[access.project.id, pipeline.id]) + "#automation")


def _automation_add(request, project_id, pipeline_id, *, kind: str, what: str, values_of, kwargs_of, create, done):
    """Add a schedule or trigger (``kind``) from the posted form; its errors show on the pipeline page's form."""
    access, pipeline = _member_pipeline(request, project_id, pipeline_id, what)
    values = values_of(request.POST)
    try:
        create(user=request.user, pipeline=pipeline, **kwargs_of(values))
    except ValidationError as exc:
        return _render_detail(request, access, pipeline, status=400,
                              **{f"{kind}_values": values, f"{kind}_errors": forms.error_dict(exc)})
    return _automation_done(request, access, pipeline, done(values))


@login_required
@require_POST
def schedule_create(request, project_id, pipeline_id):
    return _automation_add(request, project_id, pipeline_id, kind="schedule", what="Scheduling a pipeline",
                           values_of=forms.schedule_values, kwargs_of=forms.schedule_create_kwargs,
                           create=automation.schedule_create,
                           done=lambda values: f"Schedule '{values['cron']}' added: runs start by themselves.")


@login_required
@require_POST
def schedule_delete(request, project_id, pipeline_id, schedule_id):
    access, pipeline = _member_pipeline(request, project_id, pipeline_id, "Removing a schedule")
    schedule = automation.schedule_get(pipeline=pipeline, schedule_id=schedule_id)
    automation.schedule_delete(user=request.user, schedule=schedule)
    return _automation_done(request, access, pipeline, "Schedule removed.")


@login_required
@require_POST
def schedule_toggle(request, project_id, pipeline_id, schedule_id):
    """Pause or resume a schedule without losing its cron and parameters."""
    access, pipeline = _member_pipeline(request, project_id, pipeline_id, "Changing a schedule")
    schedule = automation.schedule_get(pipeline=pipeline, schedule_id=schedule_id)
    schedule = automation.schedule_update(user=request.user, schedule=schedule, enabled=not schedule.enabled)
    return _automation_done(request, access, pipeline,
                            f"Schedule '{schedule.cron}' {'resumed' if schedule.enabled else 'paused'}.")


@login_required
@require_POST
def trigger_create(request, project_id, pipeline_id):
    return _automation_add(request, project_id, pipeline_id, kind="trigger", what="Adding a trigger",
                           values_of=forms.trigger_values, kwargs_of=forms.trigger_create_kwargs,
                           create=automation.trigger_create,
                           done=lambda values: "Trigger added: matching events start runs by themselves.")


@login_required
@require_POST
def trigger_delete(request, project_id, pipeline_id, trigger_id):
    access, pipeline = _member_pipeline(request, project_id, pipeline_id, "Removing a trigger")
    trigger = automation.trigger_get(pipeline=pipeline, trigger_id=trigger_id)
    automation.trigger_delete(user=request.user, trigger=trigger)
    return _automation_done(request, access, pipeline, "Trigger removed.")


# --- executions ------------------------------------------------------------------------------------


def _shown_metrics(outputs: dict[str, Any] | None) -> dict[str, Any]:
    """The validation metrics a step reported (the ones conditions compare), else whatever it reported."""
    metrics = (outputs or {}).get("metrics")
    if not isinstance(metrics, dict):
        return {"metrics": [], "more_metrics": 0}
    chosen = [(k, v) for k, v in metrics.items() if k.startswith("validation:")] or list(metrics.items())
    return {"metrics": sorted(chosen), "more_metrics": len(metrics) - len(chosen)}


def _execution_context(request, access: ProjectAccess, pipeline: Pipeline, execution: PipelineExecution,
                       **extra) -> dict[str, Any]:
    steps = list(selectors.step_list(execution=execution))
    events = [engine.step_event(step) for step in steps]
    by_name = {event["name"]: event for event in events}
    dag = dag_layout(execution.definition)
    for node in dag["nodes"]:
        event = by_name.get(node["name"], {})
        node["status"] = event.get("status", StepStatus.PENDING)
        node["cached"] = bool(event.get("cached"))
        node["duration"] = event.get("duration")
        links = event.get("links") or []
        node["url"] = links[0]["url"] if links else ""
    rows = [{"step": step, "event": event, "has_result": isinstance((step.outputs or {}).get("result"), bool),
             **_shown_metrics(step.outputs)} for step, event in zip(steps, events, strict=True)]
    return access.context(
        NAV, pipeline=pipeline, execution=execution, rows=rows, dag=dag,
        parameters=[(name, forms.parameter_text(value)) for name, value in (execution.parameters or {}).items()],
        can_stop=access.can_edit and execution.status in STOPPABLE,
        can_retry=access.can_edit and execution.status in RETRYABLE,
        page_data={"execution": engine.execution_event(execution), "steps": events,
                   "ws": f"/ws/pipeline-executions/{execution.id}/",
                   "panel_url": reverse("pipeline-execution-panel",
                                        args=[access.project.id, pipeline.id, execution.id])},
        **extra,
    )


@login_required
def execution_detail(request, project_id, pipeline_id, execution_id):
    access = project_access(request, project_id)
    pipeline = _pipeline(request, access, pipeline_id)
    execution = _execution(request, access, pipeline, execution_id)
    return render(request, "pipelines/execution_detail.html",
                  _execution_context(request, access, pipeline, execution))


@login_required
def execution_panel(request, project_id, pipeline_id, execution_id):
    """htmx partial: status banner, Stop/Retry, steps table, refreshed when the execution's stream reports a change."""
    access = project_access(request, project_id)
    pipeline = _pipeline(request, access, pipeline_id)
    execution = _execution(request, access, pipeline, execution_id)
    return render(request, "pipelines/_execution_panel.html",
                  _execution_context(request, access, pipeline, execution))


def _execution_action(request, project_id, pipeline_id, execution_id, *, action, what: str, done: str):
    access, pipeline = _member_pipeline(request, project_id, pipeline_id, what)
    execution = _execution(request, access, pipeline, execution_id)
    error = ""
    try:
        action(user=request.user, execution=execution)
    except Conflict as exc:
        error = str(exc)
    execution.refresh_from_db()
    if request.htmx:
        context = _execution_context(request, access, pipeline, execution, action_error=error)
        return render(request, "pipelines/_execution_panel.html", context, status=409 if error else 200)
    if error:
        messages.error(request, error)
    else:
        messages.success(request, done)
    return redirect("pipeline-execution-detail", project_id=access.project.id, pipeline_id=pipeline.id,
                    execution_id=execution.id)


@login_required
@require_POST
def execution_stop(request, project_id, pipeline_id, execution_id):
    return _execution_action(request, project_id, pipeline_id, execution_id, action=engine.pipeline_execution_stop,
                             what="Stopping an execution",
                             done="Execution stopping: running steps stop and nothing new starts.")


@login_required
@require_POST
def execution_retry(request, project_id, pipeline_id, execution_id):
    return _execution_action(request, project_id, pipeline_id, execution_id, action=engine.pipeline_execution_retry,
                             what="Retrying an execution",
                             done="Execution resumed from its failed steps; completed steps are kept.")
