"""Training signals a tuning job follows: its trials' status changes and their epochs (median rule)."""

from __future__ import annotations

from django.dispatch import receiver

from studio.training.signals import training_job_epoch, training_job_status_changed
from studio.tuning import services


@receiver(training_job_status_changed, dispatch_uid="tuning-trial-status")
def on_training_job_status(sender, *, job, **kwargs) -> None:
    services.trial_status_changed(training_job=job)


@receiver(training_job_epoch, dispatch_uid="tuning-trial-epoch")
def on_training_job_epoch(sender, *, job, step, metrics, **kwargs) -> str | None:
    return services.trial_early_stop(training_job=job, step=step, metrics=metrics)
