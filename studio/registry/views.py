"""Model pages: the list of trained models and one model's metrics, parameters and files."""

from __future__ import annotations

from pathlib import PurePosixPath

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from algorithms import UnknownAlgorithm, get_algorithm
from studio.core.pages import project_access
from studio.registry import selectors, services
from studio.registry.api import model_zip_response


def _objective(model) -> tuple[str, float | None]:
    try:
        objective = get_algorithm(model.algorithm).default_objective
    except UnknownAlgorithm:
        return "", None
    metrics = model.metrics or {}
    if objective in metrics:
        return objective, metrics[objective]
    twin = objective.replace("validation:", "train:", 1)
    return (twin, metrics[twin]) if twin in metrics else (objective, None)


@login_required
def model_list(request, project_id):
    access = project_access(request, project_id)
    models = selectors.model_list(user=request.user, project=access.project).select_related("created_by")
    rows = [{"model": m, "metric": _objective(m)} for m in models[:500]]
    return render(request, "registry/model_list.html", access.context("models", rows=rows))


@login_required
def model_detail(request, project_id, model_id):
    access = project_access(request, project_id)
    model = selectors.model_get(user=request.user, project=access.project, model_id=model_id)
    objective, _ = _objective(model)
    preprocessing = services.model_preprocessing(model=model)
    return render(request, "registry/model_detail.html", access.context(
        "models", model=model, objective=objective, metrics=sorted((model.metrics or {}).items()),
        files=[PurePosixPath(name).name for name in model.artifact_files],
        preprocessing=preprocessing.describe() if preprocessing else None,
        missing_values=preprocessing.missing_values if preprocessing else "",
        n_features=len(preprocessing.output_names) if preprocessing else None,
    ))


@login_required
def model_download(request, project_id, model_id):
    access = project_access(request, project_id)
    return model_zip_response(selectors.model_get(user=request.user, project=access.project, model_id=model_id))
