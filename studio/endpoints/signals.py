"""Signals other apps listen to, so endpoints never import them (studio.social notifies whoever started a job)."""

from __future__ import annotations

from django.db import transaction
from django.dispatch import Signal

# Sent once a batch transform job's final status (completed, failed, stopped) is committed:
# sender=TransformJob, job=<TransformJob>.
transform_job_finished = Signal()


def transform_job_finished_on_commit(job) -> None:
    """Send ``transform_job_finished`` after commit (at once outside a transaction); receivers cannot fail the job."""
    transaction.on_commit(lambda: transform_job_finished.send_robust(sender=type(job), job=job), robust=True)
