"""Endpoint pages (list, new, live detail with test box, snippets and invoke keys) and batch transform pages."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from studio.core.errors import Conflict
from studio.core.naming import unique_name
from studio.core.pages import ProjectAccess, project_access
from studio.datasets.models import DatasetKind, DatasetStatus
from studio.datasets.selectors import dataset_list
from studio.endpoints import forms, selectors, services, transforms
from studio.endpoints.models import Endpoint, EndpointStatus, EndpointType, TransformJob, TransformStatus
from studio.registry.models import Model
from studio.registry.selectors import model_get, model_list

NAV = "endpoints"
TRANSFORM_NAV = "transform"
# The list's requests per second: the last minute of metric intervals, as a dashboard would show "now".
RECENT_SECONDS = 60
ENDPOINT_STATUSES = [status.value for status in EndpointStatus]
TRANSFORM_STATUSES = [status.value for status in TransformStatus]


def _require_member(access: ProjectAccess, what: str) -> None:
    if not access.can_edit:
        raise PermissionDenied(f"{what} needs the member role.")


def _error_dict(exc: ValidationError) -> dict[str, list[str]]:
    return exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}


def _model_or_none(request, project, model_id) -> Model | None:
    if not model_id:
        return None
    try:
        return model_get(user=request.user, project=project, model_id=model_id)
    except Http404:  # a stale link: the form opens without a model rather than failing
        return None


def _project_models(request, project) -> list[Model]:
    return list(model_list(user=request.user, project=project).order_by("-created_at")[:500])


# --- endpoints: list ---------------------------------------------------------------------------------


@login_required
def endpoint_list(request, project_id):
    access = project_access(request, project_id)
    endpoints = selectors.endpoint_list(user=request.user, project=access.project)
    if wanted := request.GET.get("status"):
        endpoints = endpoints.filter(status=wanted)
    endpoints = list(endpoints[:500])
    overview = selectors.endpoint_list_overview(endpoints=endpoints, recent_seconds=RECENT_SECONDS)
    rows = [{"endpoint": endpoint, **overview[endpoint.id]} for endpoint in endpoints]
    return render(request, "endpoints/endpoint_list.html", access.context(
        NAV, rows=rows, status_filter=wanted or "", statuses=ENDPOINT_STATUSES))


# --- endpoints: new ----------------------------------------------------------------------------------


def _variant_rows(values: dict[str, Any], row_errors: list[dict[str, list[str]]]) -> list[dict[str, Any]]:
    rows = []
    for i, row in enumerate(values["variants"]):
        rows.append({"index": i, "values": row, "errors": row_errors[i] if i < len(row_errors) else {}})
    return rows


def _form_context(values: dict[str, Any], errors: dict[str, list[str]], models: list[Model], *,
                  prefix: str = "") -> dict[str, Any]:
    """What the variants editor and the settings fields need, for the new form and the edit form alike."""
    field_errors, row_errors, other = forms.place_errors(errors, fields=forms.ENDPOINT_FIELDS,
                                                         rows=len(values["variants"]))
    return {f"{prefix}values": values, f"{prefix}errors": field_errors, f"{prefix}other_errors": other,
            f"{prefix}variant_rows": _variant_rows(values, row_errors), f"{prefix}has_errors": bool(errors),
            "models": models,
            "type_choices": forms.TYPE_CHOICES}


@login_required
def endpoint_create(request, project_id):
    access = project_access(request, project_id)
    _require_member(access, "Creating an endpoint")
    models = _project_models(request, access.project)
    if request.method != "POST":
        model = _model_or_none(request, access.project, request.GET.get("model"))
        values = forms.initial_endpoint_values(model)
        if values["name"]:
            values["name"] = unique_name(model=Endpoint, project=access.project, base=values["name"])
        return render(request, "endpoints/endpoint_create.html", access.context(
            NAV, from_model=model, **_form_context(values, {}, models)))

    values = forms.endpoint_values_from_post(request.POST)
    if not values["variants"]:
        values["variants"] = [forms.blank_variant(0, endpoint_type=values["type"])]
    try:
        endpoint = services.endpoint_create(user=request.user, project=access.project,
                                            **forms.endpoint_create_kwargs(values))
    except ValidationError as exc:
        return render(request, "endpoints/endpoint_create.html", access.context(
            NAV, **_form_context(values, _error_dict(exc), models)), status=400)
    except IntegrityError:  # another request took the name between the check and the insert
        errors = {"name": [f"An endpoint named '{values['name']}' already exists in this project."]}
        return render(request, "endpoints/endpoint_create.html", access.context(
            NAV, **_form_context(values, errors, models)), status=409)
    messages.success(request, f"Endpoint '{endpoint.name}' created; its instances are starting.")
    return redirect("endpoint-detail", project_id=access.project.id, endpoint_id=endpoint.id)


# --- endpoints: detail -------------------------------------------------------------------------------


def _first_model(endpoint: Endpoint) -> Model | None:
    variant = endpoint.variants.filter(retired=False).select_related("model").order_by("position", "id").first()
    return variant.model if variant is not None else None


def _detail_context(request, access: ProjectAccess, endpoint: Endpoint, *, edit_values: dict | None = None,
                    edit_errors: dict | None = None, **extra) -> dict[str, Any]:
    variants = selectors.variant_list(endpoint=endpoint)
    total_weight = sum(v["weight"] for v in variants)
    for variant in variants:
        variant["percent"] = 100 * variant["weight"] / total_weight if total_weight > 0 else 0
    is_async = endpoint.type == EndpointType.ASYNC
    invocation_url = request.build_absolute_uri(f"/api/v1/endpoints/{endpoint.id}/invocations")
    async_url = request.build_absolute_uri(f"/api/v1/endpoints/{endpoint.id}/async-invocations") if is_async else None
    examples = forms.example_payloads(_first_model(endpoint))
    context = access.context(
        NAV, endpoint=endpoint, variants=variants, summary=selectors.metrics_summary(endpoint=endpoint),
        instances=list(selectors.instance_list(endpoint=endpoint)[:50]),
        scaling_events=list(selectors.scaling_event_list(endpoint=endpoint)[:50]),
        invocation_url=invocation_url, async_url=async_url, examples=examples,
        snippets=forms.invocation_snippets(invocation_url=invocation_url, async_url=async_url,
                                           payload=examples["json"]),
        keys=list(selectors.invoke_key_list(endpoint=endpoint)) if access.can_edit else [],
        can_test=access.can_edit and not is_async and endpoint.status != EndpointStatus.DELETING,
        can_change=access.can_edit and endpoint.status != EndpointStatus.DELETING,
        page_data={
            "id": str(endpoint.id), "type": endpoint.type, "status": services.status_event(endpoint),
            "variants": [v["name"] for v in variants], "examples": examples,
            "test_url": reverse("api-endpoint-test-invocations", args=[access.project.id, endpoint.id]),
        },
        **extra,
    )
    if access.can_edit:
        context.update(_form_context(edit_values or forms.endpoint_values_of(endpoint), edit_errors or {},
                                     _project_models(request, access.project), prefix="edit_"))
        context["edit_open"] = bool(edit_errors)
    return context


def _endpoint(request, access: ProjectAccess, endpoint_id) -> Endpoint:
    return selectors.endpoint_get(user=request.user, project=access.project, endpoint_id=endpoint_id)


@login_required
def endpoint_detail(request, project_id, endpoint_id):
    access = project_access(request, project_id)
    endpoint = _endpoint(request, access, endpoint_id)
    return render(request, "endpoints/endpoint_detail.html", _detail_context(request, access, endpoint))


@login_required
def endpoint_panel(request, project_id, endpoint_id):
    """htmx partial: status, summary, variants and instances, refreshed when the endpoint's stream reports a change."""
    access = project_access(request, project_id)
    endpoint = _endpoint(request, access, endpoint_id)
    return render(request, "endpoints/_endpoint_panel.html", _detail_context(request, access, endpoint))


@login_required
@require_POST
def endpoint_edit(request, project_id, endpoint_id):
    access = project_access(request, project_id)
    _require_member(access, "Changing an endpoint")
    endpoint = _endpoint(request, access, endpoint_id)
    values = forms.endpoint_values_from_post(request.POST)
    values["type"], values["name"] = endpoint.type, endpoint.name
    try:
        services.endpoint_update(user=request.user, endpoint=endpoint,
                                 **forms.endpoint_update_kwargs(values, endpoint.type))
    except ValidationError as exc:
        return render(request, "endpoints/endpoint_detail.html", _detail_context(
            request, access, endpoint, edit_values=values, edit_errors=_error_dict(exc)), status=400)
    except Conflict as exc:
        messages.error(request, str(exc))
        return redirect("endpoint-detail", project_id=access.project.id, endpoint_id=endpoint.id)
    messages.success(request, "Endpoint updated: weights and limits apply now; a new model takes traffic once its "
                              "instances are in service.")
    return redirect("endpoint-detail", project_id=access.project.id, endpoint_id=endpoint.id)


@login_required
@require_POST
def endpoint_delete(request, project_id, endpoint_id):
    access = project_access(request, project_id)
    _require_member(access, "Deleting an endpoint")
    endpoint = _endpoint(request, access, endpoint_id)
    services.endpoint_delete(user=request.user, endpoint=endpoint)
    messages.success(request, f"Endpoint '{endpoint.name}' is being deleted: it takes no new requests and its "
                              "instances stop once they have answered the ones in flight.")
    return redirect("endpoint-list", project_id=access.project.id)


def _keys_response(request, access: ProjectAccess, endpoint: Endpoint, status: int = 200, **extra):
    if request.htmx:
        return render(request, "endpoints/_invoke_keys.html", access.context(
            NAV, endpoint=endpoint, keys=list(selectors.invoke_key_list(endpoint=endpoint)), **extra), status=status)
    return render(request, "endpoints/endpoint_detail.html", _detail_context(request, access, endpoint, **extra),
                  status=status)


@login_required
@require_POST
def invoke_key_create(request, project_id, endpoint_id):
    """Create a key and show its secret in this response only: it is stored as a hash and never shown again."""
    access = project_access(request, project_id)
    _require_member(access, "Creating an invoke key")
    endpoint = _endpoint(request, access, endpoint_id)
    key, secret = services.invoke_key_create(user=request.user, endpoint=endpoint,
                                             name=str(request.POST.get("name", "")).strip())
    return _keys_response(request, access, endpoint, new_key=key, new_secret=secret)


@login_required
@require_POST
def invoke_key_revoke(request, project_id, endpoint_id, key_id):
    access = project_access(request, project_id)
    _require_member(access, "Revoking an invoke key")
    endpoint = _endpoint(request, access, endpoint_id)
    key = services.invoke_key_revoke(user=request.user,
                                      key=selectors.invoke_key_get(endpoint=endpoint, key_id=key_id))
    if request.htmx:
        return _keys_response(request, access, endpoint, revoked_key=key)
    messages.success(request, f"Invoke key {key.prefix}… revoked.")
    return redirect("endpoint-detail", project_id=access.project.id, endpoint_id=endpoint.id)


# --- batch transform ---------------------------------------------------------------------------------


def _transform_inputs(request, project) -> list:
    return list(dataset_list(user=request.user, project=project)
                .filter(status=DatasetStatus.READY, kind__in=(DatasetKind.TABULAR, DatasetKind.TEXT))
                .order_by("name")[:500])


@login_required
def transform_job_list(request, project_id):
    access = project_access(request, project_id)
    jobs = transforms.transform_job_list(user=request.user, project=access.project)
    if wanted := request.GET.get("status"):
        jobs = jobs.filter(status=wanted)
    jobs = list(jobs[:500])
    for job in jobs:
        job.percent = round(100 * transforms.transform_job_progress(job))
    return render(request, "endpoints/transform_list.html", access.context(
        TRANSFORM_NAV, jobs=jobs, status_filter=wanted or "", statuses=TRANSFORM_STATUSES))


def _transform_form_context(request, access: ProjectAccess, values: dict[str, str],
                            errors: dict[str, list[str]]) -> dict[str, Any]:
    field_errors, _, other = forms.place_errors(errors, fields=forms.TRANSFORM_FIELDS)
    return access.context(TRANSFORM_NAV, values=values, errors=field_errors, other_errors=other,
                          models=_project_models(request, access.project),
                          datasets=_transform_inputs(request, access.project),
                          split_types=transforms.SPLIT_TYPES, batch_strategies=transforms.BATCH_STRATEGIES,
                          join_sources=transforms.JOIN_SOURCES)


@login_required
def transform_job_create(request, project_id):
    access = project_access(request, project_id)
    _require_member(access, "Starting a transform job")
    if request.method != "POST":
        values = forms.initial_transform_values(model_id=request.GET.get("model", ""),
                                                dataset_id=request.GET.get("dataset", ""))
        return render(request, "endpoints/transform_create.html",
                      _transform_form_context(request, access, values, {}))
    values = forms.transform_values_from_post(request.POST)
    try:
        job = transforms.transform_job_create(user=request.user, project=access.project, **values)
    except ValidationError as exc:
        return render(request, "endpoints/transform_create.html",
                      _transform_form_context(request, access, values, _error_dict(exc)), status=400)
    except Conflict as exc:
        return render(request, "endpoints/transform_create.html",
                      _transform_form_context(request, access, values, {"name": [str(exc)]}), status=409)
    messages.success(request, f"Transform job '{job.name}' created; it starts as soon as a worker is free.")
    return redirect("transform-job-detail", project_id=access.project.id, transform_job_id=job.id)


def _transform_context(access: ProjectAccess, job: TransformJob, **extra) -> dict[str, Any]:
    active = job.status in transforms.ACTIVE_STATUSES
    return access.context(TRANSFORM_NAV, job=job, active=active, can_stop=access.can_edit and active,
                          percent=round(100 * transforms.transform_job_progress(job), 1), **extra)


def _transform_job(request, access: ProjectAccess, job_id) -> TransformJob:
    return transforms.transform_job_get(user=request.user, project=access.project, job_id=job_id)


@login_required
def transform_job_detail(request, project_id, transform_job_id):
    access = project_access(request, project_id)
    job = _transform_job(request, access, transform_job_id)
    return render(request, "endpoints/transform_detail.html", _transform_context(access, job))


@login_required
def transform_job_panel(request, project_id, transform_job_id):
    """htmx partial: status, progress and output; polled while the job runs (and on its project events)."""
    access = project_access(request, project_id)
    job = _transform_job(request, access, transform_job_id)
    return render(request, "endpoints/_transform_panel.html", _transform_context(access, job))


@login_required
@require_POST
def transform_job_stop(request, project_id, transform_job_id):
    access = project_access(request, project_id)
    _require_member(access, "Stopping a transform job")
    job = _transform_job(request, access, transform_job_id)
    error = ""
    try:
        job = transforms.transform_job_stop(user=request.user, job=job)
    except Conflict as exc:
        error = str(exc)
    job = _transform_job(request, access, job.id)
    if request.htmx:
        return render(request, "endpoints/_transform_panel.html", _transform_context(access, job, stop_error=error),
                      status=409 if error else 200)
    if error:
        messages.error(request, error)
    else:
        messages.success(request, "Transform job stopped; parts not yet started will not run.")
    return redirect("transform-job-detail", project_id=access.project.id, transform_job_id=job.id)
