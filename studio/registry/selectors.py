"""Every read of models, model groups and versions, scoped to projects the user's teams can see."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db.models import Count, Max, QuerySet
from django.http import Http404
from django.urls import reverse

from studio.accounts.selectors import project_list
from studio.endpoints.models import EndpointVariant, TransformJob
from studio.registry.models import Model, ModelGroup, ModelVersion
from studio.training.models import ACTIVE_STATUSES, TrainingJob
from studio.tuning.models import TuningJob, TuningTrial

if TYPE_CHECKING:
    from studio.accounts.models import Project, User

# Statuses of a transform job that still reads its model's files.
ACTIVE_TRANSFORM_STATUSES = ("pending", "running")


def model_list(*, user: User, project: Project) -> QuerySet[Model]:
    return Model.objects.filter(project=project, project__in=project_list(user=user)).select_related("training_job")


def model_get(*, user: User, project: Project, model_id) -> Model:
    try:
        return model_list(user=user, project=project).get(id=model_id)
    except (Model.DoesNotExist, ValidationError, ValueError, TypeError):
        raise Http404("No such model in this project.") from None


def model_find(*, user: User, project: Project, model_id) -> Model | None:
    """The model, or None when the id is malformed or names no model of ``project`` (for 400s naming the field)."""
    try:
        return model_get(user=user, project=project, model_id=model_id)
    except Http404:
        return None


def model_group_list(*, user: User, project: Project) -> QuerySet[ModelGroup]:
    """The project's groups with ``versions_count`` and ``latest_version`` (the highest existing number)."""
    return (
        ModelGroup.objects.filter(project=project, project__in=project_list(user=user))
        .select_related("created_by")
        .annotate(versions_count=Count("versions"), latest_version=Max("versions__version"))
        .order_by("name")  # Meta.ordering does not apply to aggregated queries
    )


def model_group_get(*, user: User, project: Project, group_id) -> ModelGroup:
    try:
        return model_group_list(user=user, project=project).get(id=group_id)
    except (ModelGroup.DoesNotExist, ValidationError, ValueError, TypeError):
        raise Http404("No such model group in this project.") from None


def model_version_list(*, user: User, group: ModelGroup) -> QuerySet[ModelVersion]:
    """A group's versions, newest first, with their models and who registered and approved them."""
    return (
        ModelVersion.objects.filter(group=group, group__project__in=project_list(user=user))
        .select_related("group", "model", "created_by", "approved_by", "status_changed_by")
        .order_by("-version")
    )


def model_version_get(*, user: User, group: ModelGroup, version) -> ModelVersion:
    try:
        return model_version_list(user=user, group=group).get(version=int(version))
    except (ModelVersion.DoesNotExist, ValueError, TypeError):
        raise Http404(f"Model group '{group.name}' has no version {version}.") from None


def model_versions_of(*, model: Model) -> QuerySet[ModelVersion]:
    """Where ``model`` is registered: one version per group at most (the caller has already scoped the model)."""
    return (
        ModelVersion.objects.filter(model=model)
        .select_related("group", "created_by", "approved_by", "status_changed_by")
        .order_by("group__name")
    )


def model_endpoint_variant(*, model: Model) -> EndpointVariant | None:
    """A variant of an endpoint serving ``model``, if any (the oldest endpoint first)."""
    # A live variant first: a retired one (draining after an update) is named only when nothing else uses the model.
    return (model.endpoint_variants.select_related("endpoint")
            .order_by("retired", "endpoint__created_at", "id").first())


def model_active_transform_job(*, model: Model) -> TransformJob | None:
    return model.transform_jobs.filter(status__in=ACTIVE_TRANSFORM_STATUSES).order_by("created_at").first()


def model_resuming_job(*, model: Model) -> TrainingJob | None:
    """A pending or running training job set to continue from ``model`` (a Hyperband rung's next step)."""
    if model.training_job_id is None:
        return None
    return (TrainingJob.objects.filter(resume_from_id=model.training_job_id, status__in=ACTIVE_STATUSES)
            .order_by("created_at").first())


def model_group_deployed_version(*, group: ModelGroup) -> tuple[ModelVersion, EndpointVariant] | None:
    """A version of ``group`` whose model an endpoint serves, with that endpoint's variant; None if none is."""
    variant = (EndpointVariant.objects.filter(model__versions__group=group).select_related("endpoint", "model")
               .order_by("retired", "endpoint__created_at", "id").first())
    if variant is None:
        return None
    version = ModelVersion.objects.select_related("group").get(group=group, model=variant.model)
    return version, variant


# Stages of the lineage graph, left to right; the page draws one column per stage.
LINEAGE_KINDS = ("dataset", "tuning_job", "training_job", "model", "model_version", "endpoint")


def endpoint_page_url(*, project_id, endpoint_id) -> str:
    # A plain string: the endpoint pages live in another app that may not be routed yet.
    return f"/projects/{project_id}/endpoints/{endpoint_id}/"


def model_lineage(*, model: Model) -> dict[str, list[dict[str, Any]]]:
    """Where ``model`` came from and where it went: ``{"nodes": [...], "edges": [...]}``.

    Nodes are ``{id, kind, label, url}`` with ``kind`` one of :data:`LINEAGE_KINDS` and ``id`` ``"<kind>:<pk>"``;
    edges are ``{"from": id, "to": id}``. Built from the model's training job (its training and validation
    datasets, its tuning job when it was a trial), the model's versions and the endpoints whose variants
    serve it. Only objects of the model's project are shown, whatever the rows point at.
    """
    project_id = model.project_id
    nodes: dict[str, dict[str, Any]] = {}
    edges: list[dict[str, str]] = []

    def node(kind: str, pk, label: str, url: str) -> str:
        node_id = f"{kind}:{pk}"
        nodes.setdefault(node_id, {"id": node_id, "kind": kind, "label": label, "url": url})
        return node_id

    def edge(source: str, target: str) -> None:
        if {"from": source, "to": target} not in edges:
            edges.append({"from": source, "to": target})

    def dataset_node(dataset) -> str | None:
        if dataset is None or dataset.project_id != project_id:
            return None
        return node("dataset", dataset.id, dataset.name, reverse("dataset-detail", args=[project_id, dataset.id]))

    model_node = node("model", model.id, model.name, reverse("model-detail", args=[project_id, model.id]))
    job, tuning = _lineage_jobs(model)
    if job is not None:
        job_node = node("training_job", job.id, job.name, reverse("training-job-detail", args=[project_id, job.id]))
        edge(job_node, model_node)
        for dataset in (job.dataset, job.validation_dataset):
            if (source := dataset_node(dataset)) is not None:
                edge(source, job_node)
    if job is not None and tuning is not None:
        tuning_node = node("tuning_job", tuning.id, tuning.name,
                           reverse("tuning-job-detail", args=[project_id, tuning.id]))
        edge(tuning_node, job_node)
        for dataset in (tuning.dataset, tuning.validation_dataset):
            if (source := dataset_node(dataset)) is not None:
                edge(source, tuning_node)
    for version in model_versions_of(model=model).filter(group__project_id=project_id):
        url = reverse("model-group-detail", args=[project_id, version.group_id]) + f"#version-{version.version}"
        edge(model_node, node("model_version", version.id, f"{version.group.name} v{version.version}", url))
    variants = model.endpoint_variants.filter(endpoint__project_id=project_id).select_related("endpoint")
    for variant in variants.order_by("endpoint__created_at", "id"):
        endpoint = variant.endpoint
        edge(model_node, node("endpoint", endpoint.id, endpoint.name,
                              endpoint_page_url(project_id=project_id, endpoint_id=endpoint.id)))
    rank = {kind: i for i, kind in enumerate(LINEAGE_KINDS)}
    ordered = sorted(nodes.values(), key=lambda n: rank[n["kind"]])  # stable: first seen first within a stage
    return {"nodes": ordered, "edges": edges}


def _lineage_jobs(model: Model) -> tuple[TrainingJob | None, TuningJob | None]:
    """The model's training job and, when that job was a trial, its tuning job (both of the model's project)."""
    if model.training_job_id is None:
        return None, None
    job = (TrainingJob.objects.filter(id=model.training_job_id, project_id=model.project_id)
           .select_related("dataset", "validation_dataset").first())
    if job is None:
        return None, None
    trial = (TuningTrial.objects.filter(training_job=job, tuning_job__project_id=model.project_id)
             .select_related("tuning_job__dataset", "tuning_job__validation_dataset").first())
    return job, trial.tuning_job if trial is not None else None
