"""Finished jobs notify whoever started them: training, tuning, batch transform and pipeline runs.

Each app sends its own signal (studio.<app>.signals) so none of them imports this one. A receiver never
raises into the sender: a notification that cannot be written is logged, and the job carries on.
"""

from __future__ import annotations

import logging

from django.dispatch import receiver
from django.urls import NoReverseMatch, reverse

from studio.endpoints.signals import transform_job_finished
from studio.pipelines.signals import pipeline_execution_finished
from studio.social import services
from studio.training.signals import training_job_status_changed
from studio.tuning.signals import tuning_job_finished

logger = logging.getLogger(__name__)

NOTIFIED_STATUSES = ("completed", "failed", "stopped")


def _url(name: str, *args) -> str:
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return ""


def _stopped_by_self(obj) -> bool:
    """A run its own creator stopped: they know already (stops by others, limits or rules are worth telling)."""
    creator = obj.created_by
    # "Stopped by olivia" (jobs), "Stopped: requested by olivia" (pipeline executions).
    return obj.status == "stopped" and creator is not None and obj.status_message.endswith(f"by {creator.username}")


def _notify_finished(*, obj, what: str, kind_prefix: str, name: str, url: str) -> None:
    if obj.status not in NOTIFIED_STATUSES or obj.created_by_id is None or _stopped_by_self(obj):
        return
    reason = obj.failure_reason or obj.status_message or ""
    title = f"{what} {name} {obj.status}"
    try:
        services.notify(user=obj.created_by, project=obj.project, kind=f"{kind_prefix}.{obj.status}", title=title,
                        body=reason, url=url)
    except Exception:
        logger.exception("could not notify %s about %s %s", obj.created_by_id, kind_prefix, obj.pk)


def _is_step(kind: str, job) -> bool:
    """A job a pipeline step ran (``kind`` as the step records it): its execution reports it, not the job."""
    from studio.pipelines.models import PipelineStep

    return PipelineStep.objects.filter(job__kind=kind, job__id=str(job.id)).exists()


def _is_trial_or_step(job) -> bool:
    """Trials and pipeline steps are reported by their tuning job or execution, not one by one."""
    from studio.tuning.models import TuningTrial

    return TuningTrial.objects.filter(training_job_id=job.id).exists() or _is_step("training_job", job)


@receiver(training_job_status_changed, dispatch_uid="social-training-job-finished")
def on_training_job_status(sender, *, job, **kwargs) -> None:
    if job.status not in NOTIFIED_STATUSES:
        return
    try:
        if _is_trial_or_step(job):
            return
    except Exception:
        logger.exception("could not tell whether training job %s is a trial", job.id)
        return
    _notify_finished(obj=job, what="Training job", kind_prefix="training_job", name=job.name,
                     url=_url("training-job-detail", job.project_id, job.id))


@receiver(tuning_job_finished, dispatch_uid="social-tuning-job-finished")
def on_tuning_job_finished(sender, *, tuning_job, **kwargs) -> None:
    if _is_step("tuning_job", tuning_job):
        return
    _notify_finished(obj=tuning_job, what="Tuning job", kind_prefix="tuning_job", name=tuning_job.name,
                     url=_url("tuning-job-detail", tuning_job.project_id, tuning_job.id))


@receiver(transform_job_finished, dispatch_uid="social-transform-job-finished")
def on_transform_job_finished(sender, *, job, **kwargs) -> None:
    if _is_step("transform_job", job):
        return
    _notify_finished(obj=job, what="Batch transform job", kind_prefix="transform_job", name=job.name,
                     url=_url("transform-job-detail", job.project_id, job.id))


@receiver(pipeline_execution_finished, dispatch_uid="social-pipeline-execution-finished")
def on_pipeline_execution_finished(sender, *, execution, **kwargs) -> None:
    _notify_finished(obj=execution, what="Pipeline execution", kind_prefix="pipeline_execution", name=str(execution),
                     url=_url("pipeline-execution-detail", execution.project_id, execution.pipeline_id, execution.id))
