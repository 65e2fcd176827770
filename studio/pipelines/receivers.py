"""Signals pipelines follow: a job a step waits on changed status (wake its execution now, not at the next
poll); new datasets and approved model versions fire triggers (studio.pipelines.automation)."""

from __future__ import annotations

from django.db.models.signals import post_delete
from django.dispatch import receiver

from studio.datasets.signals import dataset_ready
from studio.pipelines.models import PipelineSchedule
from studio.registry.signals import model_version_approved
from studio.training.models import ACTIVE_STATUSES
from studio.training.signals import training_job_status_changed


@receiver(training_job_status_changed, dispatch_uid="pipeline-step-training-job")
def on_training_job_status(sender, *, job, **kwargs) -> None:
    if job.status in ACTIVE_STATUSES:
        return
    from studio.pipelines import engine

    engine.pipeline_steps_job_changed(kind="training_job", job_id=job.id)


# --- automation: triggers and schedules' beat entries ---------------------------------------------------


@receiver(dataset_ready, dispatch_uid="pipeline-triggers-dataset-ready")
def on_dataset_ready(sender, *, dataset, **kwargs) -> None:
    from studio.pipelines import automation

    automation.triggers_on_dataset_ready(dataset=dataset)


@receiver(model_version_approved, dispatch_uid="pipeline-triggers-model-version-approved")
def on_model_version_approved(sender, *, version, **kwargs) -> None:
    from studio.pipelines import automation

    automation.triggers_on_model_version_approved(version=version)


@receiver(post_delete, sender=PipelineSchedule, dispatch_uid="pipeline-schedule-beat-entry")
def on_schedule_deleted(sender, *, instance, **kwargs) -> None:
    # Also when the schedule goes with its pipeline (a cascade): a beat entry must not outlive it.
    from studio.pipelines import automation

    automation.schedule_periodic_task_delete(periodic_task_id=instance.periodic_task_id)
