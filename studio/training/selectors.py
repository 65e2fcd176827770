"""Every read of training jobs, metrics and logs, scoped to projects the user's teams can see."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import QuerySet
from django.http import Http404

from studio.accounts.selectors import project_list
from studio.training.models import LogLine, MetricPoint, TrainingJob

if TYPE_CHECKING:
    from studio.accounts.models import Project, User


def training_job_list(*, user: User, project: Project) -> QuerySet[TrainingJob]:
    return (
        TrainingJob.objects.filter(project=project, project__in=project_list(user=user))
        .select_related("project__team", "dataset", "validation_dataset", "created_by", "model")
    )


def training_job_get(*, user: User, project: Project, job_id) -> TrainingJob:
    try:
        return training_job_list(user=user, project=project).get(id=job_id)
    except (TrainingJob.DoesNotExist, ValueError, TypeError):
        raise Http404("No such training job in this project.") from None


def training_job_get_any_project(*, user: User, job_id) -> TrainingJob | None:
    """For websockets, whose URL carries only the job id."""
    return (
        TrainingJob.objects.filter(id=job_id, project__in=project_list(user=user)).select_related("project").first()
    )


def metric_points(*, job: TrainingJob, since: float | None = None) -> QuerySet[MetricPoint]:
    points = MetricPoint.objects.filter(job=job)
    if since is not None:
        points = points.filter(ts__gt=since)
    return points.order_by("step", "id")


def metric_series(*, job: TrainingJob) -> dict[str, list[list[float]]]:
    """``{"train:loss": [[step, value, ts], ...]}`` ordered by step, for the API and result pages."""
    series: dict[str, list[list[float]]] = {}
    for name, step, value, ts in metric_points(job=job).values_list("name", "step", "value", "ts"):
        series.setdefault(name, []).append([step, value, ts])
    return series


def log_lines(*, job: TrainingJob, since: float | None = None) -> QuerySet[LogLine]:
    lines = LogLine.objects.filter(job=job)
    if since is not None:
        lines = lines.filter(ts__gt=since)
    return lines.order_by("seq")


def log_text(*, job: TrainingJob) -> str:
    return "".join(f"{line}\n" for line in log_lines(job=job).values_list("line", flat=True))
