"""Every read of the admin dashboard. Site admins see every team; anyone else gets a 404 from each function.

Team-scoped selectors of the other apps would hide exactly what an operator needs (another team's stuck
job), so these read the models directly; the check that only site admins get here is the first line of
each function, whatever view or consumer calls it.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db.models import Count, Q, QuerySet, Sum
from django.http import Http404
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from studio.accounts.models import AuditEvent, Team, User
from studio.datasets.models import Dataset
from studio.endpoints.models import (
    AsyncInvocation,
    Endpoint,
    EndpointInstance,
    EndpointStatus,
    EndpointVariant,
    InstanceStatus,
    TransformJob,
)
from studio.endpoints.selectors import endpoint_list_overview
from studio.endpoints.transforms import ACTIVE_STATUSES as TRANSFORM_ACTIVE
from studio.ops import metrics, workers
from studio.ops.access import require_site_admin
from studio.ops.models import FailedTask
from studio.pipelines.models import ExecutionStatus, PipelineExecution, PipelineStep, StepStatus
from studio.registry.models import Model
from studio.training.models import ACTIVE_STATUSES as TRAINING_ACTIVE
from studio.training.models import JobStatus, TrainingJob
from studio.tuning.models import TuningJob, TuningStatus

if TYPE_CHECKING:
    from datetime import datetime

# What the dashboard can cancel, and the model behind each kind.
JOB_KINDS = {
    "training-job": TrainingJob,
    "tuning-job": TuningJob,
    "transform-job": TransformJob,
    "pipeline-execution": PipelineExecution,
}
PIPELINE_ACTIVE = (ExecutionStatus.PENDING, ExecutionStatus.RUNNING, ExecutionStatus.STOPPING)
# Rows per kind on the jobs panel: an installation with more running jobs than this has other problems.
MAX_JOBS_PER_KIND = 200
# Verbs of the actions this dashboard takes (recorded with data.ops = true).
ACTION_MARK = "ops"


def _admin_url(obj: Any) -> str:
    """The Django admin page of an object: the pages of a team's project are for its members."""
    meta = obj._meta
    try:
        return reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])
    except NoReverseMatch:
        return ""


# --- workers and queues ---------------------------------------------------------------------------------


def worker_list(*, user: User, refresh: bool = False) -> dict[str, Any]:
    """``{"workers": [...], "checked_at", "error"}``: see studio.ops.workers.workers_snapshot."""
    require_site_admin(user)
    return workers.workers_snapshot(refresh=refresh)


def queue_depths(*, user: User) -> dict[str, int | None]:
    require_site_admin(user)
    return metrics.queue_depths()


def sample_list(*, user: User, since: float | None = None, minutes: float | None = None) -> list[dict[str, Any]]:
    require_site_admin(user)
    return metrics.samples_since(since=since, minutes=minutes)


# --- running and stuck jobs -----------------------------------------------------------------------------


def _job_row(kind: str, job: Any, *, team: Team, project_name: str, worker: str = "",
             heartbeat_at: datetime | None = None, stuck: str = "", note: str = "") -> dict[str, Any]:
    return {
        "kind": kind, "id": job.id, "name": str(job), "status": job.status,
        "status_message": getattr(job, "status_message", "") or "",
        "team": team.slug, "team_name": team.name, "project": project_name, "project_id": job.project_id,
        "created_at": job.created_at, "started_at": job.started_at, "worker": worker, "heartbeat_at": heartbeat_at,
        "stuck": bool(stuck), "stuck_reason": stuck, "note": note, "admin_url": _admin_url(job),
    }


def _age(then: datetime | None, now: datetime) -> str:
    if then is None:
        return "never"
    seconds = int((now - then).total_seconds())
    return f"{seconds} s" if seconds < 120 else f"{seconds // 60} min"


def training_job_stuck_reason(job: TrainingJob, *, now: datetime) -> str:
    """The training reconciler's notion (studio.training.services.training_jobs_reconcile): a running job whose
    heartbeat is older than STUDIO_HEARTBEAT_TIMEOUT lost its worker, and the next reconcile fails it."""
    if job.status != JobStatus.RUNNING:
        return ""
    timeout = timedelta(seconds=settings.STUDIO_HEARTBEAT_TIMEOUT)
    if job.heartbeat_at is None or job.heartbeat_at < now - timeout:
        return (f"No heartbeat from {job.worker or 'its worker'} for {_age(job.heartbeat_at, now)} "
                f"(limit {settings.STUDIO_HEARTBEAT_TIMEOUT} s): the reconciler will mark it failed.")
    return ""


def _stuck_pipeline_steps(execution_ids: list[Any], *, now: datetime) -> dict[Any, str]:
    """The pipeline reconciler's notion: a step running on a worker (no job to wait on) whose heartbeat is older
    than STUDIO_PIPELINE_STEP_STALE_SECONDS lost that worker."""
    stale = now - timedelta(seconds=float(getattr(settings, "STUDIO_PIPELINE_STEP_STALE_SECONDS", 120)))
    out: dict[Any, str] = {}
    steps = PipelineStep.objects.filter(execution_id__in=execution_ids, status=StepStatus.RUNNING,
                                        executing_since__isnull=False).filter(
        Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True))
    for execution_id, name, heartbeat_at, job in steps.values_list("execution_id", "name", "heartbeat_at", "job"):
        if job:
            continue  # a step waiting on a job lives as long as the job; the job's own row says if it is stuck
        out.setdefault(execution_id, f"Step '{name}' has sent no heartbeat for {_age(heartbeat_at, now)}: "
                                     "its worker is gone; the reconciler retries or fails it.")
    return out


def job_list(*, user: User, now: datetime | None = None) -> list[dict[str, Any]]:
    """Every pending or running training job, tuning job, transform job and pipeline execution of every team,
    stuck ones first, then the newest."""
    require_site_admin(user)
    now = now or timezone.now()
    rows: list[dict[str, Any]] = []
    pending_limit = timedelta(seconds=settings.STUDIO_PENDING_REQUEUE_SECONDS)
    for job in (TrainingJob.objects.filter(status__in=TRAINING_ACTIVE).select_related("project__team")
                .order_by("-created_at")[:MAX_JOBS_PER_KIND]):
        note = ""
        if job.status == JobStatus.PENDING and job.created_at < now - pending_limit:
            note = f"Waiting for a training worker for {_age(job.created_at, now)}."
        elif job.stop_requested:
            note = "Stop requested: it stops after its current epoch."
        rows.append(_job_row("training-job", job, team=job.project.team, project_name=job.project.name,
                             worker=job.worker, heartbeat_at=job.heartbeat_at,
                             stuck=training_job_stuck_reason(job, now=now), note=note))
    for job in (TuningJob.objects.filter(status__in=(TuningStatus.PENDING, TuningStatus.RUNNING))
                .select_related("project__team").annotate(n_trials=Count("trials"))
                .order_by("-created_at")[:MAX_JOBS_PER_KIND]):
        rows.append(_job_row("tuning-job", job, team=job.project.team, project_name=job.project.name,
                             note=f"{job.n_trials} of {job.max_jobs} trials started."))
    for job in (TransformJob.objects.filter(status__in=TRANSFORM_ACTIVE).select_related("project__team")
                .order_by("-created_at")[:MAX_JOBS_PER_KIND]):
        note = f"{job.records_done} of {job.records_total} records." if job.records_total is not None else ""
        rows.append(_job_row("transform-job", job, team=job.project.team, project_name=job.project.name, note=note))
    executions = list(PipelineExecution.objects.filter(status__in=PIPELINE_ACTIVE)
                      .select_related("project__team", "pipeline").order_by("-created_at")[:MAX_JOBS_PER_KIND])
    stuck_steps = _stuck_pipeline_steps([e.id for e in executions], now=now)
    for execution in executions:
        rows.append(_job_row("pipeline-execution", execution, team=execution.project.team,
                             project_name=execution.project.name, stuck=stuck_steps.get(execution.id, "")))
    rows.sort(key=lambda r: (not r["stuck"], -r["created_at"].timestamp()))
    return rows


def job_get(*, user: User, kind: str, job_id: Any) -> Any:
    """A job of any team by kind and id (404 when there is none)."""
    require_site_admin(user)
    model = JOB_KINDS.get(kind)
    if model is None:
        raise Http404(f"No job kind '{kind}'.")
    try:
        return model.objects.select_related("project__team").get(id=job_id)
    except (model.DoesNotExist, ValueError, TypeError):
        raise Http404(f"No such {kind.replace('-', ' ')}.") from None


# --- endpoints ------------------------------------------------------------------------------------------


def endpoint_list(*, user: User) -> list[dict[str, Any]]:
    """Every endpoint of every team (up to 500) with its variants (limits, desired and in-service instances),
    instances starting, requests per second over the last minute and p99 latency."""
    require_site_admin(user)
    return _endpoint_rows(list(Endpoint.objects.select_related("project__team")
                               .order_by("project__team__name", "name")[:500]))


def endpoint_detail(*, user: User, endpoint: Endpoint) -> dict[str, Any]:
    """One endpoint as ``endpoint_list`` shows it."""
    require_site_admin(user)
    return _endpoint_rows([endpoint])[0]


def _endpoint_rows(endpoints: list[Endpoint]) -> list[dict[str, Any]]:
    overview = endpoint_list_overview(endpoints=endpoints, recent_seconds=60.0)
    counts: dict[int, dict[str, int]] = {}
    for variant_id, status, n in (EndpointInstance.objects.filter(variant__endpoint__in=endpoints)
                                  .values_list("variant_id", "status").annotate(n=Count("id"))):
        counts.setdefault(variant_id, {})[status] = n
    by_endpoint: dict[Any, list[dict[str, Any]]] = {}
    for variant in (EndpointVariant.objects.filter(endpoint__in=endpoints, retired=False)
                    .select_related("model").order_by("position", "id")):
        mine = counts.get(variant.id, {})
        by_endpoint.setdefault(variant.endpoint_id, []).append({
            "id": variant.id, "name": variant.name, "model": variant.model_id, "model_name": variant.model.name,
            "weight": variant.weight, "min_instances": variant.min_instances, "max_instances": variant.max_instances,
            "desired_instances": variant.desired_instances,
            "in_service": mine.get(InstanceStatus.IN_SERVICE, 0),
            "starting": mine.get(InstanceStatus.PENDING, 0) + mine.get(InstanceStatus.STARTING, 0),
            "draining": mine.get(InstanceStatus.DRAINING, 0),
        })
    rows = []
    for endpoint in endpoints:
        summary = overview[endpoint.id]
        rows.append({
            "id": endpoint.id, "name": endpoint.name, "type": endpoint.type, "status": endpoint.status,
            "team": endpoint.project.team.slug, "team_name": endpoint.project.team.name,
            "project": endpoint.project.name, "project_id": endpoint.project_id,
            "variants": by_endpoint.get(endpoint.id, []), "in_service": summary["in_service"],
            "desired": summary["desired"], "rps": summary["rps"], "p99_ms": summary["p99_ms"],
            "admin_url": _admin_url(endpoint),
        })
    return rows


def endpoint_get(*, user: User, endpoint_id: Any) -> Endpoint:
    require_site_admin(user)
    try:
        return Endpoint.objects.select_related("project__team").get(id=endpoint_id)
    except (Endpoint.DoesNotExist, ValueError, TypeError):
        raise Http404("No such endpoint.") from None


# --- teams, storage, users --------------------------------------------------------------------------------


def _per_team(queryset: QuerySet, team_field: str, **aggregates) -> dict[Any, dict[str, Any]]:
    return {row.pop(team_field): row for row in queryset.values(team_field).annotate(**aggregates).order_by()}


def team_usage_list(*, user: User) -> list[dict[str, Any]]:
    """Every team with members, projects, jobs, endpoints and the bytes it stores (datasets, model artifacts,
    async request payloads), the heaviest first. A handful of grouped queries, whatever the number of teams."""
    require_site_admin(user)
    datasets = _per_team(Dataset.objects.all(), "project__team_id", n=Count("id"), bytes=Sum("size_bytes"))
    models = _per_team(Model.objects.all(), "project__team_id", n=Count("id"), bytes=Sum("size_bytes"))
    payloads = _per_team(AsyncInvocation.objects.all(), "endpoint__project__team_id", n=Count("id"),
                         bytes=Sum("size_bytes"))
    training = _per_team(TrainingJob.objects.all(), "project__team_id", n=Count("id"),
                         running=Count("id", filter=Q(status__in=TRAINING_ACTIVE)))
    tuning = _per_team(TuningJob.objects.all(), "project__team_id", n=Count("id"))
    endpoints = _per_team(Endpoint.objects.all(), "project__team_id", n=Count("id"))
    teams = Team.objects.annotate(n_members=Count("memberships", distinct=True),
                                  n_projects=Count("projects", distinct=True)).order_by("name")
    rows = []
    for team in teams:
        d, m, p = (source.get(team.id, {}) for source in (datasets, models, payloads))
        storage = {"datasets_bytes": d.get("bytes") or 0, "models_bytes": m.get("bytes") or 0,
                   "payloads_bytes": p.get("bytes") or 0}
        storage["total_bytes"] = sum(storage.values())
        rows.append({
            "id": team.id, "slug": team.slug, "name": team.name, "members": team.n_members,
            "projects": team.n_projects, "datasets": d.get("n") or 0, "models": m.get("n") or 0,
            "async_invocations": p.get("n") or 0, "training_jobs": training.get(team.id, {}).get("n") or 0,
            "training_jobs_active": training.get(team.id, {}).get("running") or 0,
            "tuning_jobs": tuning.get(team.id, {}).get("n") or 0, "endpoints": endpoints.get(team.id, {}).get("n") or 0,
            "storage": storage, "admin_url": _admin_url(team),
        })
    rows.sort(key=lambda r: (-r["storage"]["total_bytes"], r["name"]))
    return rows


def storage_summary(*, user: User, teams: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Bytes stored per team and in all, from the database's record of each file (no storage listing).
    ``teams``: rows of ``team_usage_list`` the caller already has."""
    require_site_admin(user)
    teams = team_usage_list(user=user) if teams is None else teams
    totals = {key: sum(t["storage"][key] for t in teams)
              for key in ("datasets_bytes", "models_bytes", "payloads_bytes", "total_bytes")}
    return {**totals, "teams": [{"slug": t["slug"], "name": t["name"], **t["storage"]} for t in teams]}


def user_usage_list(*, user: User) -> list[dict[str, Any]]:
    """Every user with their teams and what they started, the most recently signed in first."""
    require_site_admin(user)
    started = {
        "training_jobs": dict(TrainingJob.objects.values_list("created_by").annotate(n=Count("id")).order_by()),
        "tuning_jobs": dict(TuningJob.objects.values_list("created_by").annotate(n=Count("id")).order_by()),
        "endpoints": dict(Endpoint.objects.values_list("created_by").annotate(n=Count("id")).order_by()),
        "datasets": dict(Dataset.objects.values_list("created_by").annotate(n=Count("id")).order_by()),
    }
    uploaded = dict(Dataset.objects.values_list("created_by").annotate(n=Sum("size_bytes")).order_by())
    rows = []
    for person in User.objects.annotate(n_teams=Count("memberships", distinct=True)).order_by(
            "-last_login", "username"):
        rows.append({
            "id": person.id, "username": person.username, "email": person.email, "is_active": person.is_active,
            "is_site_admin": person.is_staff or person.is_superuser, "teams": person.n_teams,
            **{key: counts.get(person.id, 0) for key, counts in started.items()},
            "uploaded_bytes": uploaded.get(person.id) or 0,
            "last_login": person.last_login, "date_joined": person.date_joined, "admin_url": _admin_url(person),
        })
    return rows


# --- failed tasks and the actions log ---------------------------------------------------------------------


def failed_task_list(*, user: User, task_name: str = "") -> QuerySet[FailedTask]:
    require_site_admin(user)
    tasks = FailedTask.objects.all()
    if task_name:
        tasks = tasks.filter(task_name__icontains=task_name)
    return tasks.order_by("-created_at", "-id")


def failed_task_get(*, user: User, failed_task_id: Any) -> FailedTask:
    try:
        return failed_task_list(user=user).get(id=failed_task_id)
    except (FailedTask.DoesNotExist, ValueError, TypeError):
        raise Http404("No such failed task.") from None


def failed_task_counts(*, user: User, hours: float = 24) -> dict[str, int]:
    """Failures per task name over the last ``hours``: the panel's summary line."""
    require_site_admin(user)
    since = timezone.now() - timedelta(hours=hours)
    return dict(FailedTask.objects.filter(created_at__gte=since).values_list("task_name")
                .annotate(n=Count("id")).order_by("-n"))


def admin_action_list(*, user: User) -> QuerySet[AuditEvent]:
    """What site admins did from this dashboard (cancels, drains, resumes, scaling), newest first."""
    require_site_admin(user)
    return AuditEvent.objects.filter(data__ops=True).select_related("actor", "project", "team").order_by(
        "-created_at", "-id")


def dashboard_summary(*, user: User) -> dict[str, Any]:
    """The counters at the top of the page."""
    require_site_admin(user)
    return {
        "training_running": TrainingJob.objects.filter(status=JobStatus.RUNNING).count(),
        "pending": TrainingJob.objects.filter(status=JobStatus.PENDING).count(),
        "endpoints_in_service": Endpoint.objects.filter(status=EndpointStatus.IN_SERVICE).count(),
        "instances_in_service": EndpointInstance.objects.filter(status=InstanceStatus.IN_SERVICE).count(),
        "failed_tasks_24h": FailedTask.objects.filter(created_at__gte=timezone.now() - timedelta(hours=24)).count(),
        "teams": Team.objects.count(), "users": User.objects.count(), "at": time.time(),
    }
