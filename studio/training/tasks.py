"""Celery entry points for training: thin, idempotent, the work is in runner and services."""

from __future__ import annotations

import socket

from celery import shared_task
from django.db import InterfaceError, OperationalError

from studio.training import services


@shared_task(
    bind=True,
    acks_late=True,
    max_retries=3,
    # The database being briefly unreachable before the claim is worth a retry; after the claim
    # the runner records every error on the job itself, and a retry finds nothing to claim.
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    retry_backoff_max=60,
)
def training_job_run_task(self, job_id: str) -> str:
    from studio.training.runner import training_job_run

    return training_job_run(job_id=job_id, worker=self.request.hostname or socket.gethostname())


@shared_task(ignore_result=True)
def training_jobs_reconcile_task() -> dict[str, int]:
    return services.training_jobs_reconcile()


@shared_task(ignore_result=True, acks_late=True)
def stalled_training_check_task() -> dict[str, int]:
    """Debugger rule stalled_training on running jobs (a stalled job has no epoch to evaluate it on)."""
    from studio.training.rules_service import stalled_rules_check

    return stalled_rules_check()
