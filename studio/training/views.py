"""Training pages: list, new (form generated from the algorithm's declaration), detail with live charts."""

from __future__ import annotations

import contextlib
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from algorithms import UnknownAlgorithm, get_algorithm, list_algorithms
from studio.core.errors import Conflict
from studio.core.pages import project_access
from studio.datasets.preprocessing import DEFAULT_MISSING_STRATEGY
from studio.datasets.selectors import dataset_get, dataset_list
from studio.registry.services import model_load
from studio.training import selectors, services
from studio.training.forms import (
    debugger_rule_fields,
    debugger_rules_from_post,
    hyperparameter_fields,
    hyperparameters_from_post,
)
from studio.training.models import MissingValues

DEFAULT_ALGORITHM = "linear-learner"
FIELDS = ("name", "algorithm", "dataset", "target", "validation_fraction", "validation_dataset",
          "max_runtime_seconds", "missing_values")


def algorithm_or_default(name: str | None):
    try:
        return get_algorithm(name or DEFAULT_ALGORITHM)
    except UnknownAlgorithm:
        return list_algorithms()[0]


def _key_metric(job) -> tuple[str, float | None]:
    """The algorithm's default objective, falling back to its train-channel twin without validation."""
    try:
        objective = get_algorithm(job.algorithm).default_objective
    except UnknownAlgorithm:
        return "", None
    metrics = job.final_metrics or {}
    if objective in metrics:
        return objective, metrics[objective]
    twin = objective.replace("validation:", "train:", 1)
    return (twin, metrics[twin]) if twin in metrics else (objective, None)


@login_required
def training_job_list(request, project_id):
    access = project_access(request, project_id)
    jobs = selectors.training_job_list(user=request.user, project=access.project)
    if wanted := request.GET.get("status"):
        jobs = jobs.filter(status=wanted)
    rows = []
    for job in jobs[:500]:
        name, value = _key_metric(job)
        rows.append({"job": job, "metric_name": name, "metric_value": value})
    return render(request, "training/job_list.html", access.context(
        "training", rows=rows, status_filter=wanted or "",
        statuses=["pending", "running", "completed", "failed", "stopped"]))


def ready_datasets(request, project):
    return dataset_list(user=request.user, project=project).filter(status="ready").order_by("name")


def dataset_or_none(request, project, dataset_id):
    if not dataset_id:
        return None
    try:
        return dataset_get(user=request.user, project=project, dataset_id=dataset_id)
    except Http404:  # a stale or mistyped id in the form: show "choose a dataset" rather than a 404 page
        return None


def _default_target(algo, dataset, chosen: str | None) -> str:
    """What the target select shows: the user's choice, else the dataset's target for supervised algorithms.

    An anomaly detector's labels are optional and must be 0/1, so the dataset's target is not guessed for it.
    """
    if dataset is not None and dataset.kind != "tabular":
        # Text labels live in the 'label' column; image labels come from the ZIP's folders (no target).
        return "label" if dataset.kind == "text" and algo.target != "none" else ""
    if chosen:
        return chosen
    return dataset.target if dataset is not None and algo.target == "required" else ""


def target_context(algo, dataset, chosen: str | None) -> dict[str, Any]:
    tabular = dataset is None or dataset.kind == "tabular"
    excluded = dataset.target if tabular and dataset is not None and algo.target != "required" and dataset.target \
        else ""
    return {"dataset": dataset, "target": _default_target(algo, dataset, chosen), "target_mode": algo.target,
            "excluded_column": excluded, "dataset_kind": dataset.kind if dataset is not None else ""}


def _form_context(request, access, values: dict[str, Any], errors: dict[str, list[str]]) -> dict:
    project = access.project
    algo = algorithm_or_default(values.get("algorithm"))
    hp_errors = {key.split(".", 1)[1]: msgs for key, msgs in errors.items() if key.startswith("hyperparameters.")}
    field_errors = {key: msgs for key, msgs in errors.items() if not key.startswith("hyperparameters.")}
    dataset = dataset_or_none(request, project, values.get("dataset"))
    return access.context(
        "training", values=values, errors=field_errors, algorithms=[a.describe() for a in list_algorithms()],
        algorithm=algo.describe(),
        hyperparameters=hyperparameter_fields(algo, values.get("hyperparameters"), hp_errors),
        datasets=ready_datasets(request, project), missing_value_choices=MissingValues.choices,
        debugger_rules=debugger_rule_fields(values.get("debugger_rules"), errors),
        debugger_rules_open=bool(values.get("debugger_rules")),
        **target_context(algo, dataset, values.get("target")),
    )


@login_required
def training_job_create(request, project_id):
    access = project_access(request, project_id)
    if not access.can_edit:
        raise PermissionDenied("Training a model needs the member role.")
    if request.method != "POST":
        # ?algorithm= comes from the algorithm catalog's "Train with this algorithm".
        values = {"algorithm": algorithm_or_default(request.GET.get("algorithm")).name,
                  "dataset": request.GET.get("dataset", ""), "validation_fraction": "0.2",
                  "missing_values": DEFAULT_MISSING_STRATEGY}
        return render(request, "training/job_create.html", _form_context(request, access, values, {}))

    values = {field: request.POST.get(field, "").strip() for field in FIELDS}
    algo = algorithm_or_default(values["algorithm"])
    values["hyperparameters"] = hyperparameters_from_post(algo, request.POST)
    values["debugger_rules"] = debugger_rules_from_post(request.POST)
    try:
        job = services.training_job_create(
            user=request.user, project=access.project, algorithm=values["algorithm"],
            dataset=values["dataset"] or None, target=values["target"], name=values["name"] or None,
            validation_dataset=values["validation_dataset"] or None,
            validation_fraction=values["validation_fraction"] or None,
            hyperparameters=values["hyperparameters"], max_runtime_seconds=values["max_runtime_seconds"] or None,
            missing_values=values["missing_values"] or None, debugger_rules=values["debugger_rules"],
        )
    except ValidationError as exc:
        errors = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        return render(request, "training/job_create.html", _form_context(request, access, values, errors),
                      status=400)
    except Conflict as exc:
        return render(request, "training/job_create.html",
                      _form_context(request, access, values, {"name": [str(exc)]}), status=409)
    messages.success(request, f"Training job '{job.name}' created; it starts as soon as a worker is free.")
    return redirect("training-job-detail", project_id=access.project.id, job_id=job.id)


@login_required
def training_job_hyperparameters(request, project_id):
    """htmx partial: the hyperparameter fields of the chosen algorithm, and (out of band) its target field,
    which changes with it: hidden for clustering, optional for anomaly detection."""
    access = project_access(request, project_id)
    algo = algorithm_or_default(request.GET.get("algorithm"))
    dataset = dataset_or_none(request, access.project, request.GET.get("dataset"))
    # A target chosen for a supervised algorithm is no anomaly label: only carry it over to another supervised one.
    chosen = request.GET.get("target") if algo.target == "required" else ""
    return render(request, "training/_hyperparameters.html", access.context(
        "training", algorithm=algo.describe(), hyperparameters=hyperparameter_fields(algo), errors={},
        target_oob=True, **target_context(algo, dataset, chosen)))


@login_required
def training_job_target_field(request, project_id):
    """htmx partial: the target select filled with the chosen dataset's columns."""
    access = project_access(request, project_id)
    algo = algorithm_or_default(request.GET.get("algorithm"))
    dataset = dataset_or_none(request, access.project, request.GET.get("dataset"))
    return render(request, "training/_target_field.html", access.context(
        "training", algorithm=algo.describe(), errors={}, **target_context(algo, dataset, request.GET.get("target"))))


def _detail_context(request, access, job) -> dict:
    algo = None
    with contextlib.suppress(UnknownAlgorithm):
        algo = get_algorithm(job.algorithm)
    key_name, key_value = _key_metric(job)
    model = getattr(job, "model", None)
    return access.context(
        "training", job=job, model=model, algorithm=algo.describe() if algo else None,
        key_metric_name=key_name, key_metric_value=key_value,
        final_metrics=sorted((job.final_metrics or {}).items()),
        can_stop=access.can_edit and job.is_active,
        result_plots=_result_plots(job),
    )


PNG_DATA_URI = "data:image/png;base64,"


def _result_plots(job) -> list[dict[str, Any]]:
    """The stored plots with a DOM id each, so the page script can find the figure JSON of every chart."""
    plots = []
    for i, plot in enumerate(job.result_plots or []):
        if isinstance(plot, dict) and plot.get("kind") in ("figure", "table", "images"):
            if plot["kind"] == "images":
                # Inline PNGs only: a stored src never points the page anywhere else.
                plot = {**plot, "images": [image for image in plot.get("images") or []
                                           if isinstance(image, dict)
                                           and str(image.get("src", "")).startswith(PNG_DATA_URI)]}
            plots.append({**plot, "dom_id": f"result-plot-{i}", "data_id": f"result-plot-{i}-data"})
    return plots


@login_required
def training_job_detail(request, project_id, job_id):
    access = project_access(request, project_id)
    job = selectors.training_job_get(user=request.user, project=access.project, job_id=job_id)
    return render(request, "training/job_detail.html", _detail_context(request, access, job))


NEAREST_WORDS = 10


@login_required
def training_job_nearest_words(request, project_id, job_id):
    """htmx partial: the neighbours of any word in a word2vec job's model (read-only, so viewers may ask)."""
    access = project_access(request, project_id)
    job = selectors.training_job_get(user=request.user, project=access.project, job_id=job_id)
    model = getattr(job, "model", None)
    if job.algorithm != "word2vec" or model is None:
        raise Http404("Only a completed word2vec job answers nearest-word questions.")
    word = request.GET.get("word", "").strip()[:100]
    context: dict[str, Any] = {"word": word}
    if not word:
        context["error"] = "Type a word."
        return render(request, "training/_nearest_words.html", context, status=400)
    estimator = model_load(model=model)
    try:
        context["neighbours"] = estimator.nearest(word, NEAREST_WORDS)
    except KeyError:
        context["error"] = f"'{word}' is not in the model's vocabulary of {len(estimator.vocabulary_):,} words."
    return render(request, "training/_nearest_words.html", context)


@login_required
def training_job_panel(request, project_id, job_id):
    """htmx partial: the summary, metrics and model link, refreshed when the job's status changes."""
    access = project_access(request, project_id)
    job = selectors.training_job_get(user=request.user, project=access.project, job_id=job_id)
    return render(request, "training/_job_panel.html", _detail_context(request, access, job))


@login_required
@require_POST
def training_job_stop(request, project_id, job_id):
    access = project_access(request, project_id)
    job = selectors.training_job_get(user=request.user, project=access.project, job_id=job_id)
    error = ""
    try:
        job = services.training_job_stop(user=request.user, job=job)
    except PermissionDenied:
        raise
    except Conflict as exc:
        error = str(exc)
    if request.htmx:
        context = _detail_context(request, access, job)
        context["stop_error"] = error
        return render(request, "training/_job_panel.html", context, status=409 if error else 200)
    if error:
        messages.error(request, error)
    else:
        messages.success(request, "Stop requested." if job.status == "running" else "Job stopped.")
    return redirect("training-job-detail", project_id=access.project.id, job_id=job.id)
