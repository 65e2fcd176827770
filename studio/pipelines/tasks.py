"""Celery entry points for pipelines: thin and idempotent; the decisions live in studio.pipelines.engine."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from studio.pipelines import engine


@shared_task(acks_late=True, max_retries=5, autoretry_for=(OperationalError, InterfaceError), retry_backoff=True,
             retry_backoff_max=30, ignore_result=True)
def pipeline_execution_advance_task(execution_id: str) -> str:
    return engine.pipeline_execution_advance(execution_id=execution_id)


@shared_task(acks_late=True, max_retries=3, autoretry_for=(OperationalError, InterfaceError), retry_backoff=True,
             retry_backoff_max=60, ignore_result=True)
def pipeline_step_run_task(step_id: int, attempt: int | None = None) -> str:
    return engine.pipeline_step_run(step_id=step_id, attempt=attempt)


@shared_task(ignore_result=True)
def pipeline_executions_reconcile_task() -> dict[str, int]:
    return engine.pipeline_executions_reconcile()


# --- automation (schedules): the task each pipeline schedule's beat entry sends ----------------------------


@shared_task(acks_late=True, max_retries=3, autoretry_for=(OperationalError, InterfaceError), retry_backoff=True,
             retry_backoff_max=30, ignore_result=True)
def pipeline_schedule_fire_task(schedule_id: str) -> str | None:
    from studio.pipelines import automation

    execution = automation.schedule_fire(schedule_id=schedule_id)
    return str(execution.id) if execution is not None else None
