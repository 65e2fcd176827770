"""Tuning pages: list, new (range editors from the algorithm's declaration), detail with live trials and charts."""

from __future__ import annotations

import contextlib
import math
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Q
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from algorithms import UnknownAlgorithm, get_algorithm, list_algorithms
from studio.core.errors import Conflict
from studio.core.pages import project_access
from studio.datasets.preprocessing import DEFAULT_MISSING_STRATEGY
from studio.training.models import FINAL_STATUSES, MissingValues
from studio.training.views import algorithm_or_default, dataset_or_none, ready_datasets, target_context
from studio.tuning import selectors, services
from studio.tuning.forms import initial_params, params_from_post, range_rows, ranges_and_static, shown_error_keys
from studio.tuning.models import EarlyStopping, Strategy, TuningJob, TuningStatus
from studio.tuning.validation import DEFAULT_MAX_JOBS, DEFAULT_PARALLEL, WARM_START_TYPES

NAV = "tuning"
FIELDS = ("name", "algorithm", "dataset", "target", "validation_fraction", "validation_dataset", "missing_values",
          "objective_metric", "objective_goal", "strategy", "max_jobs", "max_parallel_jobs", "max_runtime_seconds",
          "early_stopping", "completion_target_value", "completion_best_not_improving_jobs", "warm_start_type")
# Validation error keys the form shows next to a field of its own (dots become underscores for templates).
FIELD_ERRORS = ("name", "algorithm", "dataset", "target", "validation_fraction", "validation_dataset",
                "missing_values", "objective", "objective.metric", "objective.goal", "strategy", "max_jobs",
                "max_parallel_jobs", "max_runtime_seconds", "early_stopping", "completion", "completion.target_value",
                "completion.best_not_improving_jobs", "warm_start", "warm_start.parents", "warm_start.type",
                "hyperband", "hyperband.eta", "ranges", "static_hyperparameters")
STATUSES = [status.value for status in TuningStatus]


# --- list ---------------------------------------------------------------------------------------


@login_required
def tuning_job_list(request, project_id):
    access = project_access(request, project_id)
    jobs = selectors.tuning_job_list(user=request.user, project=access.project).annotate(
        finished_trials=Count("trials", filter=Q(trials__training_job__status__in=FINAL_STATUSES)),
    )
    if wanted := request.GET.get("status"):
        jobs = jobs.filter(status=wanted)
    jobs = list(jobs[:500])
    for job in jobs:
        job.planned_trials = selectors.tuning_job_planned_trials(tuning_job=job)
    return render(request, "tuning/job_list.html", access.context(
        NAV, jobs=jobs, status_filter=wanted or "", statuses=STATUSES))


# --- new ----------------------------------------------------------------------------------------


def _finished_parents(request, project) -> list[TuningJob]:
    """Tuning jobs a new one may warm start from: finished ones of the same project."""
    return list(selectors.tuning_job_list(user=request.user, project=project)
                .filter(status__in=(TuningStatus.COMPLETED, TuningStatus.STOPPED))[:100])


def _objective_context(algo, values: dict[str, Any]) -> dict[str, Any]:
    metrics = [{"name": m.name, "direction": m.direction} for m in algo.metrics]
    chosen = values.get("objective_metric") or algo.default_objective
    return {"metrics": metrics, "objective_metric": chosen, "default_objective": algo.default_objective}


def _form_context(request, access, values: dict[str, Any], errors: dict[str, list[str]]) -> dict:
    project = access.project
    algo = algorithm_or_default(values.get("algorithm"))
    dataset = dataset_or_none(request, project, values.get("dataset"))
    shown = shown_error_keys(algo, errors) | set(FIELD_ERRORS)
    field_errors = {key.replace(".", "_"): msgs for key, msgs in errors.items() if key in FIELD_ERRORS}
    # Anything the form has no place for (a new rule in the service) is still shown, with its key.
    other_errors = [(key, msg) for key, msgs in errors.items() if key not in shown for msg in msgs]
    return access.context(
        NAV, values=values, errors=field_errors, other_errors=other_errors,
        algorithms=[a.describe() for a in list_algorithms()], algorithm=algo.describe(),
        budget_parameter=algo.budget_hyperparameter or "",
        ranges=range_rows(algo, values.get("params"), errors), datasets=ready_datasets(request, project),
        missing_value_choices=MissingValues.choices, strategies=Strategy.choices,
        early_stopping_choices=EarlyStopping.choices, warm_start_types=WARM_START_TYPES,
        parents=_finished_parents(request, project), default_max_jobs=DEFAULT_MAX_JOBS,
        default_parallel=DEFAULT_PARALLEL, **_objective_context(algo, values),
        **target_context(algo, dataset, values.get("target")),
    )


def _number_or_raw(raw: str) -> Any:
    """A float for a numeric text, else the text itself, for the validation to name as not a number."""
    try:
        number = float(raw)
    except ValueError:
        return raw
    return number if math.isfinite(number) else raw


def _request_from(values: dict[str, Any], parents: list[str], autotune: bool, algo) -> dict[str, Any]:
    """The keyword arguments of services.tuning_job_create for what the form posted."""
    ranges, static = ranges_and_static(algo, values["params"])
    completion: dict[str, Any] = {}
    if values["completion_target_value"]:
        completion["target_value"] = _number_or_raw(values["completion_target_value"])
    if values["completion_best_not_improving_jobs"]:
        completion["best_not_improving_jobs"] = values["completion_best_not_improving_jobs"]
    objective = {"metric": values["objective_metric"] or None, "goal": values["objective_goal"] or None}
    return {
        "algorithm": values["algorithm"], "dataset": values["dataset"] or None, "target": values["target"],
        "name": values["name"] or None, "validation_dataset": values["validation_dataset"] or None,
        "validation_fraction": values["validation_fraction"] or None,
        "missing_values": values["missing_values"] or None, "objective": objective, "ranges": ranges,
        "static_hyperparameters": static, "autotune": autotune, "strategy": values["strategy"] or None,
        "max_jobs": values["max_jobs"] or None, "max_parallel_jobs": values["max_parallel_jobs"] or None,
        "max_runtime_seconds": values["max_runtime_seconds"] or None,
        "early_stopping": values["early_stopping"] or None, "completion": completion or None,
        "warm_start": {"parents": parents, "type": values["warm_start_type"] or None} if parents else None,
    }


@login_required
def tuning_job_create(request, project_id):
    access = project_access(request, project_id)
    if not access.can_edit:
        raise PermissionDenied("Starting a tuning job needs the member role.")
    if request.method != "POST":
        algo = algorithm_or_default(request.GET.get("algorithm"))
        values = {"algorithm": algo.name, "dataset": request.GET.get("dataset", ""), "validation_fraction": "0.2",
                  "missing_values": DEFAULT_MISSING_STRATEGY, "params": initial_params(algo), "parents": [],
                  "autotune": False}
        return render(request, "tuning/job_create.html", _form_context(request, access, values, {}))

    values: dict[str, Any] = {field: request.POST.get(field, "").strip() for field in FIELDS}
    algo = algorithm_or_default(values["algorithm"])
    values["params"] = params_from_post(algo, request.POST)
    values["parents"] = [p for p in request.POST.getlist("warm_start_parents") if p]
    values["autotune"] = bool(request.POST.get("autotune"))
    try:
        job = services.tuning_job_create(user=request.user, project=access.project,
                                         **_request_from(values, values["parents"], values["autotune"], algo))
    except ValidationError as exc:
        errors = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        return render(request, "tuning/job_create.html", _form_context(request, access, values, errors), status=400)
    except Conflict as exc:
        return render(request, "tuning/job_create.html",
                      _form_context(request, access, values, {"name": [str(exc)]}), status=409)
    messages.success(request, f"Tuning job '{job.name}' created; its first trials start as soon as workers are free.")
    return redirect("tuning-job-detail", project_id=access.project.id, tuning_job_id=job.id)


@login_required
def tuning_job_ranges(request, project_id):
    """htmx partial: the range editors of the chosen algorithm, and (out of band) its objective and target fields."""
    access = project_access(request, project_id)
    algo = algorithm_or_default(request.GET.get("algorithm"))
    dataset = dataset_or_none(request, access.project, request.GET.get("dataset"))
    chosen = request.GET.get("target") if algo.target == "required" else ""
    return render(request, "tuning/_ranges.html", access.context(
        NAV, algorithm=algo.describe(), budget_parameter=algo.budget_hyperparameter or "",
        ranges=range_rows(algo), errors={}, oob=True, target_oob=True, values={},
        **_objective_context(algo, {}), **target_context(algo, dataset, chosen)))


# --- detail -------------------------------------------------------------------------------------


def _brackets(trials) -> list[dict[str, Any]]:
    """Hyperband's brackets, rung by rung: budget, trials, finished, best objective so far."""
    brackets: dict[int, dict[int, dict[str, Any]]] = {}
    for trial in trials:
        if trial.bracket is None or trial.rung is None:
            continue
        rung = brackets.setdefault(trial.bracket, {}).setdefault(
            trial.rung, {"rung": trial.rung, "budget": trial.budget, "trials": 0, "finished": 0, "values": []})
        rung["trials"] += 1
        if trial.training_job.status in FINAL_STATUSES:
            rung["finished"] += 1
        if trial.objective_value is not None:
            rung["values"].append(trial.objective_value)
    return [{"bracket": b, "rungs": [rungs[r] for r in sorted(rungs)]} for b, rungs in sorted(brackets.items())]


def _display(value: Any) -> str:
    """A hyperparameter value as the trials table shows it (the same text the page script writes)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _best_of(values: list[float], goal: str) -> float | None:
    if not values:
        return None
    return max(values) if goal == "maximize" else min(values)


def _detail_context(request, access, job: TuningJob) -> dict:
    trials = list(selectors.trial_list(tuning_job=job))
    status = services.tuning_status_event(job)
    counts = status["counts"]
    finished = counts["completed"] + counts["failed"] + counts["stopped"]
    planned = selectors.tuning_job_planned_trials(tuning_job=job)
    algo = None
    with contextlib.suppress(UnknownAlgorithm):
        algo = get_algorithm(job.algorithm)
    best = job.best_trial
    best_model = getattr(best.training_job, "model", None) if best is not None else None
    brackets = _brackets(trials) if job.strategy == Strategy.HYPERBAND else []
    for bracket in brackets:
        for rung in bracket["rungs"]:
            rung["best"] = _best_of(rung.pop("values"), job.objective_goal)
    tuned = list(job.ranges)
    rows = [{"trial": t, "job": t.training_job, "values": [_display(t.parameters.get(name)) for name in tuned],
             "is_best": best is not None and t.id == best.id} for t in trials]
    parents = list(TuningJob.objects.filter(project=job.project, id__in=(job.warm_start or {}).get("parents") or [])
                   .only("id", "name"))
    return access.context(
        NAV, job=job, algorithm=algo.describe() if algo else None, counts=counts, finished=finished,
        planned=planned, progress_percent=min(100, round(100 * finished / planned)) if planned else 0,
        best=best, best_model=best_model,
        best_parameters=[(name, _display(value)) for name, value in (best.parameters if best else {}).items()],
        brackets=brackets, tuned=tuned, rows=rows, parents=parents,
        can_stop=access.can_edit and job.is_active,
        page_data={
            "status": status,
            "trials": [services.trial_event(t) for t in trials],
            "ranges": job.ranges, "objective": {"metric": job.objective_metric, "goal": job.objective_goal},
            "strategy": job.strategy, "max_jobs": job.max_jobs, "planned": planned,
        },
    )


@login_required
def tuning_job_detail(request, project_id, tuning_job_id):
    access = project_access(request, project_id)
    job = selectors.tuning_job_get(user=request.user, project=access.project, tuning_job_id=tuning_job_id)
    return render(request, "tuning/job_detail.html", _detail_context(request, access, job))


@login_required
def tuning_job_panel(request, project_id, tuning_job_id):
    """htmx partial: status, progress, best trial, Autotune report and brackets, refreshed as the job moves on."""
    access = project_access(request, project_id)
    job = selectors.tuning_job_get(user=request.user, project=access.project, tuning_job_id=tuning_job_id)
    return render(request, "tuning/_job_panel.html", _detail_context(request, access, job))


@login_required
@require_POST
def tuning_job_stop(request, project_id, tuning_job_id):
    access = project_access(request, project_id)
    job = selectors.tuning_job_get(user=request.user, project=access.project, tuning_job_id=tuning_job_id)
    error = ""
    try:
        job = services.tuning_job_stop(user=request.user, tuning_job=job)
    except Conflict as exc:
        error = str(exc)
    job = selectors.tuning_job_get(user=request.user, project=access.project, tuning_job_id=job.id)
    if request.htmx:
        context = _detail_context(request, access, job)
        context["stop_error"] = error
        return render(request, "tuning/_job_panel.html", context, status=409 if error else 200)
    if error:
        messages.error(request, error)
    else:
        messages.success(request, "Tuning job stopped; its running trials are stopping.")
    return redirect("tuning-job-detail", project_id=access.project.id, tuning_job_id=job.id)
