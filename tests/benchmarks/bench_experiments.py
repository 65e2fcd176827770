"""The runs table with 5,000 runs: filtered and sorted by JSON metrics and hyperparameters in the database.

Run with ``make bench`` or
``.venv/bin/python -m pytest tests/benchmarks/bench_experiments.py -o python_files='bench_*.py' -q -s``.

One project holds 5,000 runs (two algorithms, five statuses, tags, a final metric and hyperparameters each).
The query filters by a metric range, a hyperparameter range and a tag, and sorts by the metric:

1. ``GET /api/v1/projects/{pid}/runs?...`` (count + one page of 50, serialized) against the plainest listing
   there is, ``list(TrainingJob.objects.filter(project=...)[:50])``, timed in the same run.
   Bar: at most 50 ms per request, and at most 15x the plain listing.
2. The runs page (``/projects/{pid}/experiments/?...``, a full HTML render with nine columns) against the same
   reference. Bar: at most 150 ms.
3. The same API query against filtering and sorting in Python after loading every run, the approach the
   database expressions replace; quality checks both give the same count and the same first page.
   Bar: ours faster.
"""

from __future__ import annotations

import math
import random

import pytest
from django.test import Client

from studio.training.models import TrainingJob
from tests.benchmarks.harness import alternate, record
from tests.conftest import PASSWORD, api_client

pytestmark = pytest.mark.django_db

RUNS = 5_000
PAGE = 50
QUERY = {"metric": "validation:accuracy>=0.8", "param": "learning_rate<0.1", "tag": "sweep",
         "sort": "-metric:validation:accuracy"}
COLUMNS = ("algorithm,status,tags,tuning_job,created_by,duration,metric:validation:accuracy,metric:validation:loss,"
           "param:learning_rate")


def make_runs(world) -> None:
    rng = random.Random(0)
    statuses = ["completed"] * 6 + ["failed", "stopped", "running", "pending"]
    jobs = []
    for i in range(RUNS):
        algorithm = "linear-learner" if i % 4 else "knn"
        params = ({"learning_rate": round(10 ** rng.uniform(-4, 0), 6), "epochs": rng.choice([5, 10, 20]),
                   "optimizer": rng.choice(["adam", "sgd"])} if algorithm == "linear-learner"
                  else {"k": rng.randint(1, 50), "learning_rate": "n/a"})
        status = rng.choice(statuses)
        metrics = ({"validation:accuracy": round(rng.uniform(0.5, 1.0), 5), "validation:loss": round(rng.random(), 5)}
                   if status == "completed" else {})
        tags = rng.sample(["sweep", "baseline", "prod", "ablation"], k=rng.randint(0, 2))
        jobs.append(TrainingJob(project=world.project, name=f"run-{i:05d}", algorithm=algorithm, status=status,
                                hyperparameters=params, final_metrics=metrics, tags=tags, created_by=world.member))
    TrainingJob.objects.bulk_create(jobs, batch_size=1_000)


def python_side(world) -> tuple[int, list[str]]:
    """What the database does for QUERY, done in Python over every run of the project (the reference)."""
    def number(mapping, key):
        value = mapping.get(key)
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        return value if ok else None

    rows = []
    for job in TrainingJob.objects.filter(project=world.project).select_related("created_by"):
        accuracy = number(job.final_metrics, "validation:accuracy")
        rate = number(job.hyperparameters, "learning_rate")
        if accuracy is not None and accuracy >= 0.8 and rate is not None and rate < 0.1 and "sweep" in job.tags:
            rows.append((accuracy, job))
    rows.sort(key=lambda pair: (-pair[0], -pair[1].created_at.timestamp(), str(pair[1].id)))
    page = [job for _, job in rows[:PAGE]]
    [(job.name, job.hyperparameters, job.final_metrics, job.created_by.username) for job in page]
    return len(rows), [job.name for job in page]


def test_bench_runs_table_with_5000_runs(world):
    make_runs(world)
    api = api_client(world.viewer)
    url = f"/api/v1/projects/{world.project.id}/runs"
    page_client = Client()
    assert page_client.login(username=world.viewer.username, password=PASSWORD)
    page_url = f"/projects/{world.project.id}/experiments/"

    def ours_api():
        response = api.get(url, QUERY)
        assert response.status_code == 200
        return response.json()

    def ours_page():
        response = page_client.get(page_url, {**QUERY, "cols": COLUMNS})
        assert response.status_code == 200
        return response.content

    def plain_listing():
        return list(TrainingJob.objects.filter(project=world.project)[:PAGE])

    api_s, body, plain_s, _ = alternate(ours_api, plain_listing, rounds=3, repeats=5)
    page_s, html, plain_page_s, _ = alternate(ours_page, plain_listing, rounds=3, repeats=5)
    api_again_s, _, python_s, (count, names) = alternate(ours_api, lambda: python_side(world), rounds=2, repeats=3)
    same = body["count"] == count and [r["name"] for r in body["results"]] == names

    record(name=f"runs API, {RUNS} runs, metric+param+tag filter, sort by metric", ours_s=api_s,
           reference="plain 50-row listing", reference_s=plain_s,
           quality={"runs": RUNS, "matching": body["count"], "page": len(body["results"])},
           bar="<= 50 ms and <= 15x the plain listing", met=api_s <= 0.05 and api_s <= 15 * plain_s)
    record(name=f"runs page, {RUNS} runs, 9 columns", ours_s=page_s, reference="plain 50-row listing",
           reference_s=plain_page_s, quality={"bytes": len(html), "rows": html.count(b'data-testid="run-name"')},
           bar="<= 150 ms", met=page_s <= 0.15)
    record(name=f"runs API, {RUNS} runs, filter+sort in SQL vs in Python", ours_s=api_again_s,
           reference="load every run, filter and sort in Python", reference_s=python_s,
           quality={"same_count_and_first_page": same, "matching": count},
           bar="faster than Python, same results", met=api_again_s < python_s and same)
    assert same
