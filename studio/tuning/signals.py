"""Signals other apps listen to, so tuning never imports them (studio.social notifies whoever started a job)."""

from __future__ import annotations

from django.db import transaction
from django.dispatch import Signal

# Sent once a tuning job's final status (completed, failed, stopped) is committed:
# sender=TuningJob, tuning_job=<TuningJob>.
tuning_job_finished = Signal()


def tuning_job_finished_on_commit(tuning_job_id) -> None:
    """Send ``tuning_job_finished`` with the committed row; a failing receiver never fails the tuning job."""
    from studio.tuning.models import TuningJob

    def send() -> None:
        job = TuningJob.objects.select_related("project", "created_by").filter(id=tuning_job_id).first()
        if job is not None:
            tuning_job_finished.send_robust(sender=TuningJob, tuning_job=job)

    transaction.on_commit(send, robust=True)
