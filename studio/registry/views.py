"""Model pages: the list of trained models and model groups, one model (metrics, parameters, files, where it is
registered, its lineage graph), one group (its versions, approval actions), and the forms that change them."""

from __future__ import annotations

from pathlib import PurePosixPath

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from algorithms import UnknownAlgorithm, get_algorithm
from studio.core.errors import Conflict
from studio.core.pages import project_access
from studio.registry import selectors, services
from studio.registry.api import model_zip_response
from studio.registry.figures import lineage_figure
from studio.registry.models import ApprovalStatus


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


def deploy_url(*, project_id, model_id) -> str:
    # A plain string: the endpoint pages live in another app that may not be routed yet.
    return f"/projects/{project_id}/endpoints/new/?model={model_id}"


def _messages_of(exc: ValidationError) -> str:
    return " ".join(exc.messages)


@login_required
def model_list(request, project_id):
    access = project_access(request, project_id)
    models = selectors.model_list(user=request.user, project=access.project).select_related("created_by")
    rows = [{"model": m, "metric": _objective(m)} for m in models[:500]]
    groups = selectors.model_group_list(user=request.user, project=access.project)[:500]
    return render(request, "registry/model_list.html", access.context("models", rows=rows, groups=groups))


@login_required
def model_detail(request, project_id, model_id):
    access = project_access(request, project_id)
    model = selectors.model_get(user=request.user, project=access.project, model_id=model_id)
    objective, _ = _objective(model)
    preprocessing = services.model_preprocessing(model=model)
    lineage = selectors.model_lineage(model=model)
    versions = list(selectors.model_versions_of(model=model))
    free_groups = (selectors.model_group_list(user=request.user, project=access.project)
                   .exclude(versions__model=model) if access.can_edit else [])
    return render(request, "registry/model_detail.html", access.context(
        "models", model=model, objective=objective, metrics=sorted((model.metrics or {}).items()),
        files=[PurePosixPath(name).name for name in model.artifact_files],
        preprocessing=preprocessing.describe() if preprocessing else None,
        missing_values=preprocessing.missing_values if preprocessing else "",
        n_features=len(preprocessing.output_names) if preprocessing else None,
        versions=versions, free_groups=free_groups, lineage=lineage, lineage_figure=lineage_figure(lineage),
        deploy_url=deploy_url(project_id=access.project.id, model_id=model.id),
    ))


@login_required
def model_download(request, project_id, model_id):
    access = project_access(request, project_id)
    return model_zip_response(selectors.model_get(user=request.user, project=access.project, model_id=model_id))


@login_required
@require_POST
def model_delete(request, project_id, model_id):
    access = project_access(request, project_id)
    model = selectors.model_get(user=request.user, project=access.project, model_id=model_id)
    try:
        services.model_delete(user=request.user, model=model)
    except Conflict as exc:
        messages.error(request, f"Cannot delete: {exc}")
        return redirect("model-detail", project_id=access.project.id, model_id=model.id)
    messages.success(request, f"Model '{model.name}' and its files deleted.")
    return redirect("model-list", project_id=access.project.id)


@login_required
@require_POST
def model_register(request, project_id, model_id):
    """Register the model in a chosen group, or in a new group named in the same form."""
    access = project_access(request, project_id)
    model = selectors.model_get(user=request.user, project=access.project, model_id=model_id)
    group_id = request.POST.get("group", "").strip()
    group = None
    if group_id:
        try:
            group = selectors.model_group_get(user=request.user, project=access.project, group_id=group_id)
        except Http404:
            messages.error(request, "That model group no longer exists; choose another.")
            return redirect("model-detail", project_id=access.project.id, model_id=model.id)
    try:
        version = services.model_register(user=request.user, model=model, group=group,
                                          group_name=request.POST.get("group_name", ""),
                                          description=request.POST.get("description", ""))
    except ValidationError as exc:
        messages.error(request, _messages_of(exc))
    except Conflict as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Registered as version {version.version} of model group "
                                  f"'{version.group.name}', pending approval.")
    return redirect("model-detail", project_id=access.project.id, model_id=model.id)


@login_required
@require_POST
def model_group_create(request, project_id):
    access = project_access(request, project_id)
    try:
        group = services.model_group_create(user=request.user, project=access.project,
                                            name=request.POST.get("name", ""),
                                            description=request.POST.get("description", ""))
    except ValidationError as exc:
        messages.error(request, _messages_of(exc))
    except Conflict as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Model group '{group.name}' created; register models in it from their pages.")
        return redirect("model-group-detail", project_id=access.project.id, group_id=group.id)
    return redirect("model-list", project_id=access.project.id)


def _version_row(access, version) -> dict:
    metric_name, metric_value = _objective(version.model)
    return {"version": version, "metric_name": metric_name, "metric_value": metric_value,
            "deploy_url": deploy_url(project_id=access.project.id, model_id=version.model_id)}


@login_required
def model_group_detail(request, project_id, group_id):
    access = project_access(request, project_id)
    group = selectors.model_group_get(user=request.user, project=access.project, group_id=group_id)
    rows = [_version_row(access, v) for v in selectors.model_version_list(user=request.user, group=group)[:500]]
    return render(request, "registry/group_detail.html", access.context("models", group=group, rows=rows))


@login_required
@require_POST
def model_group_delete(request, project_id, group_id):
    access = project_access(request, project_id)
    group = selectors.model_group_get(user=request.user, project=access.project, group_id=group_id)
    try:
        services.model_group_delete(user=request.user, group=group)
    except Conflict as exc:
        messages.error(request, f"Cannot delete: {exc}")
        return redirect("model-group-detail", project_id=access.project.id, group_id=group.id)
    messages.success(request, f"Model group '{group.name}' deleted; its models stay.")
    return redirect("model-list", project_id=access.project.id)


@login_required
@require_POST
def model_version_approval(request, project_id, group_id, version):
    """Approve, reject or return a version to pending; htmx gets the re-rendered table row."""
    access = project_access(request, project_id)
    group = selectors.model_group_get(user=request.user, project=access.project, group_id=group_id)
    found = selectors.model_version_get(user=request.user, group=group, version=version)
    wanted = request.POST.get("approval_status", "")
    try:
        services.model_version_set_approval(user=request.user, version=found, approval_status=wanted)
    except ValidationError as exc:
        if request.htmx:
            return render(request, "registry/_version_row.html", access.context(
                "models", group=group, row=_version_row(access, found), row_error=_messages_of(exc)), status=400)
        messages.error(request, _messages_of(exc))
        return redirect("model-group-detail", project_id=access.project.id, group_id=group.id)
    found = selectors.model_version_get(user=request.user, group=group, version=version)
    if request.htmx:
        return render(request, "registry/_version_row.html", access.context(
            "models", group=group, row=_version_row(access, found)))
    label = ApprovalStatus(found.approval_status).label.lower()
    messages.success(request, f"Version {found.version} of '{group.name}' is now {label}.")
    return redirect("model-group-detail", project_id=access.project.id, group_id=group.id)
