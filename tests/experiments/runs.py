"""Runs in known states, written straight to the database: the experiments pages only read them."""

from __future__ import annotations

import time
from typing import Any

from studio.training.models import MetricPoint, TrainingJob
from studio.tuning.models import TuningJob, TuningTrial


def make_run(project, name: str, *, algorithm: str = "linear-learner", status: str = "completed",
             metrics: dict[str, float] | None = None, params: dict[str, Any] | None = None,
             tags: list[str] | None = None, user=None) -> TrainingJob:
    return TrainingJob.objects.create(
        project=project, name=name, algorithm=algorithm, status=status, final_metrics=metrics or {},
        hyperparameters=params or {}, tags=tags or [], created_by=user,
    )


def add_points(job: TrainingJob, name: str, values: list[float], *, start: int = 1) -> None:
    now = time.time()
    MetricPoint.objects.bulk_create([MetricPoint(job=job, name=name, step=start + i, value=v, ts=now + i)
                                     for i, v in enumerate(values)])


def make_trial(job: TrainingJob, tuning: TuningJob | None = None, number: int = 1) -> TuningTrial:
    tuning = tuning or TuningJob.objects.create(
        project=job.project, name=f"tune-{job.name}", algorithm=job.algorithm, objective_metric="validation:loss",
        objective_goal="minimize", strategy="random", max_jobs=5, max_parallel_jobs=1)
    return TuningTrial.objects.create(tuning_job=tuning, training_job=job, number=number,
                                      parameters=dict(job.hyperparameters))
