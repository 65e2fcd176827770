"""Celery entry points of the admin dashboard: thin and idempotent."""

from __future__ import annotations

from celery import shared_task

from studio.ops import services


@shared_task(acks_late=True, ignore_result=True)
def ops_metrics_sample_task() -> bool:
    """One sample for the live charts (beat, every STUDIO_OPS_SAMPLE_SECONDS); old failures pruned hourly."""
    sample = services.metrics_sample()
    services.failed_tasks_prune()
    return sample is not None
