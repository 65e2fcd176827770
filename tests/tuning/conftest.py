"""Tuning test helpers: trials run in this process as a worker would, the orchestrator is called directly."""

from __future__ import annotations

import pytest

from studio.training.models import ACTIVE_STATUSES, JobStatus
from studio.tuning import services
from studio.tuning.models import TUNING_FINAL_STATUSES, TuningJob
from studio.tuning.tasks import tuning_job_advance_task
from tests.training.factories import enqueued, run_job  # noqa: F401


@pytest.fixture
def advances(monkeypatch) -> list[str]:
    """Tuning job ids handed to the broker for an advance; nothing is sent."""
    sent: list[str] = []
    monkeypatch.setattr(tuning_job_advance_task, "apply_async", lambda args=None, **kw: sent.append(args[0]))
    return sent


def drive(job: TuningJob, *, max_rounds: int = 200, on_round=None) -> TuningJob:
    """Advance the tuning job and run its pending trials, one at a time, until it finishes."""
    for _ in range(max_rounds):
        services.tuning_job_advance(tuning_job_id=job.id)
        job.refresh_from_db()
        if job.status in TUNING_FINAL_STATUSES:
            return job
        pending = [t.training_job for t in job.trials.select_related("training_job")
                   if t.training_job.status == JobStatus.PENDING]
        if on_round is not None:
            on_round(job)
        for training in pending:
            run_job(training)
        if not pending and not job.trials.filter(training_job__status__in=ACTIVE_STATUSES).exists():
            continue
    raise AssertionError(f"tuning job {job.name} did not finish: {job.status}")
