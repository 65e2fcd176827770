"""Celery workers SIGKILLed mid-training, mid-tuning and mid-pipeline: every job ends (failed with the reason, or
completed on the worker started afterwards) and nothing is made twice.

Three "victim" workers pick up a plain training job, the first trial of a tuning job and the training step of a
pipeline; each victim is killed as soon as its job has written a metric (mid-epoch loop, model not saved). Two
fresh workers then take over while beat runs the reconcilers: the heartbeat timeout fails the orphaned jobs, the
tuning job goes on with new trials, the pipeline fails on its lost job and a retry from the failed step completes.
"""

from __future__ import annotations

import signal

import numpy as np
import pytest

from tests.conftest import csv_bytes
from tests.faults.conftest import count, ended, ok, sql, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.worker]

# ~80 ms an epoch with one-row mini-batches on 3,200 rows: 40 epochs last a few seconds, long enough to be killed
# in the middle, short enough for the trials that follow.
SLOW = {"predictor_type": "regressor", "epochs": 40, "mini_batch_size": 1, "early_stopping_patience": 1000}


def regression_rows(n: int = 4000) -> bytes:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, 4)).round(4)
    y = (x @ np.array([1.5, -2.0, 0.5, 3.0]) + rng.normal(scale=0.1, size=n)).round(4)
    return csv_bytes(np.column_stack([x, y]).tolist(), ["a", "b", "c", "d", "y"])


def pipeline_definition(dataset: str) -> dict:
    return {
        "parameters": {},
        "steps": [
            {"name": "train", "type": "training", "arguments": {
                "algorithm": "linear-learner", "dataset": dataset, "target": "y", "hyperparameters": SLOW}},
            {"name": "register", "type": "register", "arguments": {
                "model": {"ref": "steps.train.model"}, "model_group": "kill-proof"}},
        ],
    }


def test_it_ends_every_job_when_workers_are_killed_mid_training_tuning_and_pipeline(stack):
    db = stack.database
    stack.web()
    stack.beat()
    me = stack.account()
    api, pid = stack.api(me.token), me.project
    dataset = ok(api.upload(pid, "houses", regression_rows(), target="y"), 201)["id"]
    pipeline = ok(api.post(f"/api/v1/projects/{pid}/pipelines",
                           {"name": "train-register", "definition": pipeline_definition(dataset)}), 201)["id"]
    victims = {name: stack.worker(name) for name in ("victim-1", "victim-2", "victim-3")}

    job = ok(api.post(f"/api/v1/projects/{pid}/training-jobs", {
        "name": "plain", "algorithm": "linear-learner", "dataset": dataset, "target": "y",
        "hyperparameters": SLOW}), 201)["id"]
    tuning = ok(api.post(f"/api/v1/projects/{pid}/tuning-jobs", {
        "name": "tune", "algorithm": "linear-learner", "dataset": dataset, "target": "y",
        "objective": {"metric": "validation:rmse", "goal": "minimize"}, "strategy": "random",
        "ranges": {"learning_rate": {"type": "continuous", "min": 0.01, "max": 0.2, "scale": "log"}},
        "static_hyperparameters": SLOW, "max_jobs": 3, "max_parallel_jobs": 1}), 201)["id"]
    execution = ok(api.post(f"/api/v1/projects/{pid}/pipelines/{pipeline}/executions", {}), 201)["id"]

    # Kill each victim as soon as the training job it runs has stored a metric: mid-training, model not saved.
    killed: dict[str, str] = {}  # training job id -> victim

    def kill_busy_victims() -> bool:
        rows = sql(db, "SELECT j.id::text, j.worker FROM training_trainingjob j WHERE j.status = 'running' AND "
                       "EXISTS (SELECT 1 FROM training_metricpoint m WHERE m.job_id = j.id)")
        for job_id, worker in rows:
            for name, proc in victims.items():
                if worker.startswith(f"{name}-") and proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    killed[job_id] = name
        return all(proc.poll() is not None for proc in victims.values())

    wait_for(kill_busy_victims, timeout=90, what="each victim to be busy training, then killed", every=0.1)
    killed_jobs = sql(db, "SELECT j.id::text, j.name, j.status, (SELECT count(*) FROM training_metricpoint m "
                          "WHERE m.job_id = j.id) FROM training_trainingjob j WHERE j.id::text = ANY(%s)",
                      list(killed))
    assert len(killed_jobs) == 3 and all(status == "running" and points > 0 for _, _, status, points in killed_jobs)
    # The three killed jobs are the plain job, a trial of the tuning job and the pipeline's training job.
    names = {name for _, name, _, _ in killed_jobs}
    assert "plain" in names, names
    assert count(db, "SELECT count(*) FROM tuning_tuningtrial WHERE training_job_id::text = ANY(%s)", list(killed)) == 1
    assert count(db, "SELECT count(*) FROM training_trainingjob WHERE id::text = ANY(%s) AND name LIKE "
                     "'train-register-%%'", list(killed)) == 1

    stack.worker("survivor-1")
    stack.worker("survivor-2")
    base = f"/api/v1/projects/{pid}"

    plain = wait_for(lambda: ended(api, f"{base}/training-jobs/{job}"), timeout=60, what="the plain job to end")
    assert plain["status"] == "failed" and "stopped responding" in plain["failure_reason"], plain
    tuned = wait_for(lambda: ended(api, f"{base}/tuning-jobs/{tuning}"), timeout=120, what="the tuning job to end")
    assert tuned["status"] == "completed", (tuned, stack.logs())
    assert tuned["counts"]["failed"] == 1 and tuned["counts"]["completed"] >= 2, tuned["counts"]
    run = wait_for(lambda: ended(api, f"{base}/pipelines/{pipeline}/executions/{execution}"), timeout=60,
                   what="the pipeline execution to end")
    assert run["status"] == "failed" and "stopped responding" in run["failure_reason"], run
    # Retry from the failed step: it completes on the surviving workers.
    ok(api.post(f"{base}/pipelines/{pipeline}/executions/{execution}/retry", {}), 200, 201, 202)
    run = wait_for(lambda: ended(api, f"{base}/pipelines/{pipeline}/executions/{execution}"), timeout=90,
                   what="the retried execution to end")
    assert run["status"] == "completed", (run, stack.logs())

    # Nothing twice: one model per completed job and none for failed ones, one version for the one registration.
    assert sql(db, "SELECT j.status, count(m.id) FROM training_trainingjob j LEFT JOIN registry_model m "
                   "ON m.training_job_id = j.id GROUP BY j.id, j.status HAVING count(m.id) != "
                   "(CASE WHEN j.status = 'completed' THEN 1 ELSE 0 END)") == []
    assert count(db, "SELECT count(*) FROM training_trainingjob WHERE status NOT IN ('completed', 'failed')") == 0
    assert count(db, "SELECT count(*) FROM tuning_tuningtrial WHERE tuning_job_id = %s", tuning) == 3
    assert sql(db, "SELECT v.version FROM registry_modelversion v JOIN registry_modelgroup g ON g.id = v.group_id "
                   "WHERE g.name = 'kill-proof'") == [(1,)]
    assert count(db, "SELECT count(*) FROM training_trainingjob WHERE name LIKE 'train-register-%%'") == 2
