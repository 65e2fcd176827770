"""What each panel of the dashboard shows: workers, queues, jobs (stuck ones first), endpoints, storage, usage."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.http import Http404
from django.utils import timezone

from studio.datasets.models import Dataset
from studio.endpoints.models import AsyncInvocation, EndpointInstance, InstanceStatus, TransformJob
from studio.ops import metrics, selectors, services, workers
from studio.ops.models import FailedTask
from studio.pipelines.models import Pipeline, PipelineExecution, PipelineStep
from studio.training.models import TrainingJob
from studio.tuning.models import TuningJob
from tests.ops.conftest import make_endpoint, make_model, traffic

pytestmark = pytest.mark.django_db


def dataset(project, name: str, size: int, user=None) -> Dataset:
    return Dataset.objects.create(project=project, name=name, file=f"{name}.csv", status="ready", size_bytes=size,
                                  created_by=user)


def training(project, name: str, **fields) -> TrainingJob:
    return TrainingJob.objects.create(project=project, name=name, algorithm="linear-learner", **fields)


# --- workers and queues ---------------------------------------------------------------------------------


def test_it_lists_workers_with_their_queues_tasks_and_pool(admin, fake_workers):
    fake_workers.add("celery@gpu-1", active=[{"id": "t1", "name": "studio.training.tasks.training_job_run_task",
                                              "args": ["3f2a"], "time_start": time.time() - 30}])
    fake_workers.add("celery@cpu-1", queues=["default"], processed=7)
    snapshot = selectors.worker_list(user=admin)
    assert snapshot["error"] is None
    rows = {w["name"]: w for w in snapshot["workers"]}
    assert rows["celery@gpu-1"]["alive"] and rows["celery@gpu-1"]["queues"] == ["default", "inference", "training"]
    assert rows["celery@gpu-1"]["active"][0]["name"].endswith("training_job_run_task")
    assert rows["celery@gpu-1"]["active"][0]["args"] == '["3f2a"]'
    assert rows["celery@cpu-1"]["processed"] == 7 and rows["celery@cpu-1"]["pool"] == "TaskPool"
    assert rows["celery@cpu-1"]["concurrency"] == 2


def test_it_caches_answers_and_keeps_silent_workers_as_not_responding(admin, fake_workers, monkeypatch):
    fake_workers.add("celery@a")
    fake_workers.add("celery@b")
    assert len(selectors.worker_list(user=admin)["workers"]) == 2
    del fake_workers.live["celery@b"]
    # Cached: the workers are not asked again within a few seconds.
    assert [w["alive"] for w in selectors.worker_list(user=admin)["workers"]] == [True, True]
    rows = {w["name"]: w for w in selectors.worker_list(user=admin, refresh=True)["workers"]}
    assert rows["celery@a"]["alive"] and not rows["celery@b"]["alive"]
    assert rows["celery@b"]["queues"] == ["default", "inference", "training"]  # last known
    # Silent for longer than the forget period: off the list.
    monkeypatch.setattr(workers, "forget_seconds", lambda: -1.0)
    assert [w["name"] for w in selectors.worker_list(user=admin, refresh=True)["workers"]] == ["celery@a"]


def test_it_reports_a_broker_it_cannot_reach_instead_of_failing(admin, monkeypatch):
    def unreachable(*, timeout):
        raise ConnectionError("broker down")

    monkeypatch.setattr(workers, "inspect_workers", unreachable)
    snapshot = selectors.worker_list(user=admin)
    assert snapshot["workers"] == [] and "broker down" in snapshot["error"]


def test_it_counts_messages_waiting_in_each_queue(admin):
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.delete(*workers.QUEUES, f"training{metrics.PRIORITY_SEP}3")
    broker.rpush("training", "a", "b")
    broker.rpush(f"training{metrics.PRIORITY_SEP}3", "c")  # sent with a priority
    broker.rpush("default", "d")
    try:
        assert selectors.queue_depths(user=admin) == {"training": 3, "inference": 0, "default": 1}
    finally:
        broker.delete(*workers.QUEUES, f"training{metrics.PRIORITY_SEP}3")


# --- jobs -----------------------------------------------------------------------------------------------


def test_it_lists_active_jobs_of_every_kind_and_team_with_stuck_ones_first(world, admin):
    now = timezone.now()
    fresh = training(world.project, "fresh", status="running", started_at=now, heartbeat_at=now, worker="w1")
    stale = training(world.other_project, "stale", status="running", started_at=now - timedelta(hours=1),
                     heartbeat_at=now - timedelta(seconds=settings.STUDIO_HEARTBEAT_TIMEOUT + 5), worker="w2")
    training(world.project, "done", status="completed")
    waiting = training(world.project, "waiting", status="pending")
    TrainingJob.objects.filter(id=waiting.id).update(
        created_at=now - timedelta(seconds=settings.STUDIO_PENDING_REQUEUE_SECONDS + 60))
    tuning = TuningJob.objects.create(project=world.project, name="tune", algorithm="linear-learner",
                                      objective_metric="validation:loss", objective_goal="minimize",
                                      strategy="random", max_jobs=4, max_parallel_jobs=2, status="running")
    model = make_model(world.project)
    transform = TransformJob.objects.create(project=world.project, name="batch", model=model, status="running",
                                            records_total=100, records_done=40)
    pipeline = Pipeline.objects.create(project=world.project, name="p", definition={"parameters": {}, "steps": []})
    execution = PipelineExecution.objects.create(pipeline=pipeline, project=world.project, number=1,
                                                 status="running")
    PipelineStep.objects.create(execution=execution, name="prepare", type="processing", status="running",
                                executing_since=now - timedelta(minutes=10), heartbeat_at=now - timedelta(minutes=10))

    rows = selectors.job_list(user=admin, now=now)
    kinds = {(r["kind"], r["name"]) for r in rows}
    assert kinds == {("training-job", "fresh"), ("training-job", "stale"), ("training-job", "waiting"),
                     ("tuning-job", "tune"), ("transform-job", "batch"), ("pipeline-execution", "p #1")}
    assert [r["stuck"] for r in rows][:2] == [True, True] and not any(r["stuck"] for r in rows[2:])
    by_id = {r["id"]: r for r in rows}
    assert "No heartbeat from w2" in by_id[stale.id]["stuck_reason"] and by_id[stale.id]["team"] == "rival-inc"
    assert "Step 'prepare'" in by_id[execution.id]["stuck_reason"]
    assert not by_id[fresh.id]["stuck"] and by_id[fresh.id]["worker"] == "w1"
    assert "Waiting for a training worker" in by_id[waiting.id]["note"]
    assert by_id[transform.id]["note"] == "40 of 100 records."
    assert by_id[tuning.id]["admin_url"] == f"/admin/tuning/tuningjob/{tuning.id}/change/"


def test_it_does_not_call_a_step_waiting_on_a_job_stuck(world, admin):
    now = timezone.now()
    pipeline = Pipeline.objects.create(project=world.project, name="p", definition={"parameters": {}, "steps": []})
    execution = PipelineExecution.objects.create(pipeline=pipeline, project=world.project, number=1,
                                                 status="running")
    PipelineStep.objects.create(execution=execution, name="train", type="training", status="running",
                                job={"kind": "training_job", "id": "x"}, executing_since=now - timedelta(hours=1),
                                heartbeat_at=now - timedelta(hours=1))
    assert [r["stuck"] for r in selectors.job_list(user=admin, now=now)] == [False]


# --- endpoints ------------------------------------------------------------------------------------------


def test_it_lists_endpoints_with_instances_and_invocation_rates(world, admin):
    endpoint = make_endpoint(world.project, min_instances=1, max_instances=3)
    quiet = make_endpoint(world.other_project, name="quiet")
    variant = endpoint.variants.get()
    for status in (InstanceStatus.IN_SERVICE, InstanceStatus.IN_SERVICE, InstanceStatus.STARTING,
                   InstanceStatus.STOPPED):
        EndpointInstance.objects.create(variant=variant, status=status)
    traffic(endpoint, rps=5.0, seconds=2.0, ago=10)
    traffic(endpoint, rps=7.0, seconds=2.0, ago=5)
    rows = {r["name"]: r for r in selectors.endpoint_list(user=admin)}
    assert set(rows) == {"churn", "quiet"}
    churn = rows["churn"]
    assert churn["team"] == world.team.slug and churn["in_service"] == 2
    assert churn["variants"] == [{
        "id": variant.id, "name": "main", "model": variant.model_id, "model_name": "churn-model", "weight": 1.0,
        "min_instances": 1, "max_instances": 3, "desired_instances": 1, "in_service": 2, "starting": 1, "draining": 0,
    }]
    assert churn["rps"] == pytest.approx(6.0) and churn["p99_ms"] == 5.0
    assert rows["quiet"]["rps"] is None and rows["quiet"]["team"] == world.other_team.slug
    assert quiet.id in {r["id"] for r in selectors.endpoint_list(user=admin)}


def test_it_samples_invocation_rates_per_endpoint(world, admin, monkeypatch):
    monkeypatch.setattr(metrics, "queue_depths", lambda: {"training": 0, "inference": 4, "default": 0})
    busy = make_endpoint(world.project, name="busy")
    make_endpoint(world.project, name="idle")
    now = time.time()
    traffic(busy, rps=30.0, seconds=2.0, ago=1)  # 60 requests within the 10 s window
    traffic(busy, rps=30.0, seconds=2.0, ago=60)  # too old
    sample = services.metrics_sample(now=now)
    window = metrics.rate_window_seconds()
    assert sample["queues"]["inference"] == 4
    assert sample["invocations"]["total"] == pytest.approx(60 / window)
    assert sample["invocations"]["endpoints"] == {str(busy.id): {"name": "busy", "rps": round(60 / window, 4)}}
    assert selectors.sample_list(user=admin) == [sample]
    assert services.metrics_sample(now=now + 1) is None  # the interval was sampled already


# --- storage and usage ----------------------------------------------------------------------------------


def test_it_sums_storage_per_team_from_datasets_models_and_payloads(world, admin):
    dataset(world.project, "a", 1000, user=world.member)
    dataset(world.project, "b", 500, user=world.member)
    dataset(world.other_project, "c", 7000, user=world.outsider)
    make_model(world.project, "m1", size_bytes=300)
    endpoint = make_endpoint(world.project)
    AsyncInvocation.objects.create(endpoint=endpoint, size_bytes=2000)
    summary = selectors.storage_summary(user=admin)
    assert summary["total_bytes"] == 1000 + 500 + 7000 + 300 + 2000
    teams = {t["slug"]: t for t in summary["teams"]}
    assert teams[world.team.slug] == {"slug": world.team.slug, "name": "Acme ML", "datasets_bytes": 1500,
                                      "models_bytes": 300, "payloads_bytes": 2000, "total_bytes": 3800}
    assert teams[world.other_team.slug]["total_bytes"] == 7000
    assert [t["slug"] for t in summary["teams"]] == [world.other_team.slug, world.team.slug]  # heaviest first


def test_it_lists_teams_and_users_with_their_usage(world, admin):
    dataset(world.project, "a", 1000, user=world.member)
    training(world.project, "j1", status="running", created_by=world.member)
    training(world.project, "j2", status="completed", created_by=world.member)
    teams = {t["slug"]: t for t in selectors.team_usage_list(user=admin)}
    acme = teams[world.team.slug]
    assert (acme["members"], acme["projects"], acme["datasets"], acme["training_jobs"],
            acme["training_jobs_active"]) == (3, 1, 1, 2, 1)
    users = {u["username"]: u for u in selectors.user_usage_list(user=admin)}
    assert (users["mark"]["teams"], users["mark"]["training_jobs"], users["mark"]["datasets"],
            users["mark"]["uploaded_bytes"]) == (1, 2, 1, 1000)
    assert users["ada"]["is_site_admin"] and users["ada"]["teams"] == 0
    assert not users["oscar"]["is_site_admin"]


# --- failed tasks and the actions log -------------------------------------------------------------------


def test_it_lists_failed_tasks_newest_first_and_counts_them_per_task(admin):
    older = FailedTask.objects.create(task_name="studio.a.tasks.one", exception="KeyError: 'x'")
    newer = FailedTask.objects.create(task_name="studio.b.tasks.two", exception="ValueError: y")
    FailedTask.objects.filter(id=older.id).update(created_at=timezone.now() - timedelta(days=2))
    assert list(selectors.failed_task_list(user=admin)) == [newer, older]
    assert list(selectors.failed_task_list(user=admin, task_name="one")) == [older]
    assert selectors.failed_task_counts(user=admin) == {"studio.b.tasks.two": 1}
    assert selectors.failed_task_get(user=admin, failed_task_id=older.id) == older
    with pytest.raises(Http404):
        selectors.failed_task_get(user=admin, failed_task_id=10_000)


def test_it_refuses_every_read_to_someone_who_is_not_a_site_admin(world):
    for read in (selectors.worker_list, selectors.queue_depths, selectors.job_list, selectors.endpoint_list,
                 selectors.storage_summary, selectors.team_usage_list, selectors.user_usage_list,
                 selectors.failed_task_list, selectors.admin_action_list, selectors.dashboard_summary,
                 selectors.sample_list):
        with pytest.raises(Http404):
            read(user=world.owner)
