"""Celery entry points of the endpoints app: thin and idempotent; the work lives in services and runners.

Inference work (async invocations, batch transform steps) runs on the ``inference`` queue (see
CELERY_TASK_ROUTES), so a long training job never delays a prediction; reconcilers run on ``default``.
"""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

# The database being briefly unreachable is worth a retry; every other error is recorded on the row by
# the runner, and a retry of a finished step finds nothing to claim.
_RETRY = {"autoretry_for": (OperationalError, InterfaceError), "retry_backoff": True, "retry_backoff_max": 30,
          "max_retries": 3, "acks_late": True, "ignore_result": True}


@shared_task(**_RETRY)
def transform_job_plan_task(job_id: str) -> str:
    from studio.endpoints.transform_runner import run_plan

    return run_plan(job_id=job_id)


@shared_task(**_RETRY)
def transform_part_run_task(job_id: str, index: int) -> str:
    from studio.endpoints.transform_runner import run_part

    return run_part(job_id=job_id, index=int(index))


@shared_task(**_RETRY)
def transform_job_finalize_task(job_id: str) -> str:
    from studio.endpoints.transform_runner import run_finalize

    return run_finalize(job_id=job_id)


@shared_task(ignore_result=True)
def transform_jobs_reconcile_task() -> dict[str, int]:
    from studio.endpoints.transforms import transform_jobs_reconcile

    return transform_jobs_reconcile()


@shared_task(ignore_result=True)
def endpoints_reconcile_task() -> dict[str, int]:
    from studio.endpoints.services import endpoints_reconcile

    return endpoints_reconcile()


@shared_task(**_RETRY)
def async_invocation_run_task(invocation_id: str) -> str:
    from studio.endpoints.async_invocations import async_invocation_run

    return async_invocation_run(invocation_id=invocation_id)
