"""Debugger rules follow training jobs through studio.training.signals (connected in TrainingConfig.ready).

A receiver's failure would surface in the worker's epoch or in a status change, so every hook here
logs its errors and carries on: the debugger watches a job, it never breaks one.
"""

from __future__ import annotations

import logging

from django.dispatch import receiver

from studio.training import rules_service
from studio.training.models import FINAL_STATUSES, JobStatus
from studio.training.signals import training_job_epoch, training_job_status_changed

logger = logging.getLogger(__name__)


@receiver(training_job_epoch, dispatch_uid="debugger-rules-epoch")
def on_training_job_epoch(sender, *, job, step, metrics, **kwargs) -> str | None:
    if not job.debugger_rules:
        return None
    try:
        return rules_service.rules_on_epoch(job=job, step=step, metrics=metrics)
    except Exception:
        logger.exception("debugger rules of training job %s failed at step %s", job.id, step)
        return None


@receiver(training_job_status_changed, dispatch_uid="debugger-rules-status")
def on_training_job_status(sender, *, job, **kwargs) -> None:
    if not job.debugger_rules:
        return
    try:
        if job.status == JobStatus.RUNNING:
            rules_service.rules_on_start(job=job)
        elif job.status in FINAL_STATUSES:
            rules_service.rules_on_end(job=job)
    except Exception:
        logger.exception("debugger rules of training job %s failed on status %s", job.id, job.status)
