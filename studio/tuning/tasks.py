"""Celery entry points for tuning: thin and idempotent; the decisions live in services."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from studio.tuning import services


@shared_task(acks_late=True, max_retries=5, autoretry_for=(OperationalError, InterfaceError), retry_backoff=True,
             retry_backoff_max=30, ignore_result=True)
def tuning_job_advance_task(tuning_job_id: str) -> str:
    return services.tuning_job_advance(tuning_job_id=tuning_job_id)


@shared_task(ignore_result=True)
def tuning_jobs_reconcile_task() -> dict[str, int]:
    return services.tuning_jobs_reconcile()
