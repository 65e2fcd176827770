"""Every read of tuning jobs and their trials, scoped to projects the user's teams can see."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import QuerySet
from django.http import Http404

from studio.accounts.selectors import project_list
from studio.tuning.models import TuningJob, TuningTrial

if TYPE_CHECKING:
    from studio.accounts.models import Project, User


def tuning_job_list(*, user: User, project: Project) -> QuerySet[TuningJob]:
    return (
        TuningJob.objects.filter(project=project, project__in=project_list(user=user))
        .select_related("project__team", "dataset", "validation_dataset", "created_by", "best_trial__training_job")
    )


def tuning_job_get(*, user: User, project: Project, tuning_job_id) -> TuningJob:
    try:
        return tuning_job_list(user=user, project=project).get(id=tuning_job_id)
    except (TuningJob.DoesNotExist, ValueError, TypeError):
        raise Http404("No such tuning job in this project.") from None


def tuning_job_get_any_project(*, user: User, tuning_job_id) -> TuningJob | None:
    """For websockets, whose URL carries only the tuning job id."""
    return (
        TuningJob.objects.filter(id=tuning_job_id, project__in=project_list(user=user))
        .select_related("project").first()
    )


def trial_list(*, tuning_job: TuningJob) -> QuerySet[TuningTrial]:
    """Trials of a tuning job the caller already got through a scoped selector."""
    return (
        TuningTrial.objects.filter(tuning_job=tuning_job)
        .select_related("training_job__model", "resumed_from__training_job").order_by("number")
    )


def tuning_job_planned_trials(*, tuning_job: TuningJob) -> int:
    """How many trials the job runs if nothing ends it early: the progress bar's denominator.

    max_jobs, except a grid smaller than it and Hyperband, whose max_jobs counts configurations while each
    rung a configuration reaches is a trial of its own.
    """
    from studio.tuning.strategies import hyperband_brackets
    from studio.tuning.validation import search_space

    if tuning_job.strategy == "hyperband" and tuning_job.hyperband:
        cfg = tuning_job.hyperband
        brackets = hyperband_brackets(cfg["min_resource"], cfg["max_resource"], cfg["eta"],
                                      max_configs=tuning_job.max_jobs)
        return sum(rung["n_configs"] for bracket in brackets for rung in bracket["rungs"])
    if tuning_job.strategy == "grid" and tuning_job.ranges:
        return min(tuning_job.max_jobs, search_space(tuning_job.ranges).grid_size())
    return tuning_job.max_jobs
