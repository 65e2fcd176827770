"""Parallel trials: a tuning job with max_parallel_jobs=2 on two real Celery workers vs max_parallel_jobs=1.

Both runs use the same two workers, data, trials and seeds; only the parallelism differs, so the ratio
is what running trials side by side buys (bar: >= 1.7x faster wall clock on this 2-core machine).
Run with ``.venv/bin/python -m pytest tests/benchmarks/bench_tuning_parallel.py -o python_files='bench_*.py' -s``.
"""

from __future__ import annotations

import time
from contextlib import ExitStack

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from studio.datasets.services import dataset_upload
from studio.tuning import services
from studio.tuning.models import TUNING_FINAL_STATUSES, TuningJob
from tests.benchmarks.harness import record
from tests.conftest import classification_csv
from tests.processes import celery_worker

pytestmark = pytest.mark.django_db(transaction=True)

TRIALS = 6
# One BLAS thread per worker: two workers on two cores must not fight over them.
WORKER_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _tune(world, dataset, *, parallel: int, name: str) -> float:
    start = time.perf_counter()
    job = services.tuning_job_create(
        user=world.member, project=world.project, algorithm="linear-learner", dataset=dataset, name=name,
        objective={"metric": "validation:accuracy", "goal": "maximize"},
        ranges={"learning_rate": {"type": "continuous", "min": 0.001, "max": 0.3, "scale": "log"}},
        static_hyperparameters={"epochs": 40, "num_models": 8, "mini_batch_size": 8, "early_stopping_patience": 100},
        strategy="random", max_jobs=TRIALS, max_parallel_jobs=parallel,
    )
    while True:
        job.refresh_from_db()
        if job.status in TUNING_FINAL_STATUSES:
            break
        time.sleep(0.05)
    elapsed = time.perf_counter() - start
    assert job.status == "completed", (job.status, job.failure_reason)
    return elapsed


def test_bench_parallel_trials(world, tmp_path):
    dataset = dataset_upload(user=world.member, project=world.project, name="people", target="churned",
                             upload=SimpleUploadedFile("people.csv", classification_csv(n=20000)))
    with ExitStack() as stack:
        for i in range(2):
            stack.enter_context(celery_worker(tmp_path / f"worker{i}.log", name=f"bench{i}", env=WORKER_ENV))
        _tune(world, dataset, parallel=2, name="warm-up")  # both workers import and connect before timing
        serial_s = _tune(world, dataset, parallel=1, name="serial")
        parallel_s = _tune(world, dataset, parallel=2, name="parallel")
    speedup = serial_s / parallel_s
    trial_s = [j.training_job.duration_seconds for j in TuningJob.objects.get(name="parallel").trials.all()]
    record(
        name="tuning parallel trials (max_parallel_jobs=2, 2 workers)",
        ours_s=parallel_s, reference="same tuning job with max_parallel_jobs=1", reference_s=serial_s,
        quality={"trials": TRIALS, "speedup": round(speedup, 3), "mean_trial_s": round(sum(trial_s) / len(trial_s), 3)},
        bar="speed-up >= 1.7x (ratio <= 0.588)", met=speedup >= 1.7,
    )
