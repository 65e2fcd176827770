"""Schedules (django-celery-beat entries) and triggers (new datasets, approved versions) start executions."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django_celery_beat import schedulers
from django_celery_beat.models import CrontabSchedule, PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler

from studio.accounts.models import Membership
from studio.celery import app as celery_app
from studio.datasets import services as dataset_services
from studio.endpoints import transforms
from studio.endpoints.models import TransformJob
from studio.pipelines import automation
from studio.pipelines.models import (
    Pipeline,
    PipelineExecution,
    PipelineSchedule,
    PipelineStep,
    PipelineTrigger,
    StepStatus,
)
from studio.registry import services as registry_services
from tests.conftest import classification_csv
from tests.processes import ROOT, _stop, celery_worker, process_env
from tests.registry.conftest import bare_model
from tests.training.factories import dataset_from_csv

DEFINITION = {
    "parameters": {"dataset": "", "model": "", "threshold": 0.5, "label": "nightly"},
    "steps": [
        {"name": "gate", "type": "condition", "depends_on": [],
         "arguments": {"left": {"ref": "parameters.threshold"}, "op": ">=", "right": 0.3,
                       "if_true": [], "if_false": ["stop"]}},
        {"name": "stop", "type": "fail", "depends_on": [], "arguments": {"message": "below the threshold"}},
    ],
}


def make_pipeline(project, name: str = "nightly", user=None) -> Pipeline:
    # Rows, not pipeline_create: these tests are about what starts runs, not about definitions.
    return Pipeline.objects.create(project=project, name=name, definition=json.loads(json.dumps(DEFINITION)),
                                   created_by=user)


@pytest.fixture
def pipeline(world) -> Pipeline:
    return make_pipeline(world.project, user=world.member)


def upload(world, name: str, project=None):
    return dataset_services.dataset_upload(user=world.member, project=project or world.project, name=name,
                                           upload=SimpleUploadedFile(f"{name}.csv", classification_csv(n=40)))


def runs(pipeline: Pipeline) -> list[PipelineExecution]:
    return list(PipelineExecution.objects.filter(pipeline=pipeline).order_by("number"))


# --- cron ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "fields"), [
    ("*/15 * * * *", ("*/15", "*", "*", "*", "*")),
    (" 0  3 * * 1-5 ", ("0", "3", "*", "*", "1-5")),
    ("30 9 1,15 * mon-fri", ("30", "9", "1,15", "*", "mon-fri")),
    ("@daily", ("0", "0", "*", "*", "*")),
    ("@WEEKLY", ("0", "0", "*", "*", "0")),
])
def test_it_reads_a_cron_line_into_crontab_fields(line, fields):
    parsed = automation.cron_parse(line)
    assert tuple(parsed[f] for f in ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")) == fields


@pytest.mark.parametrize(("line", "words"), [
    ("", "required"),
    (None, "required"),
    ("* * * *", "5 fields"),
    ("* * * * * *", "5 fields"),
    ("61 * * * *", "minute field '61'"),
    ("* 24 * * *", "hour field '24'"),
    ("* * 0 * *", "day-of-month field '0'"),
    ("* * * 13 *", "month field '13'"),
    ("* * * * funday", "day-of-week field 'funday'"),
    ("*/0 * * * *", "minute field '*/0'"),
    ("a * * * *", "minute field 'a' may only use numbers"),
])
def test_it_refuses_a_bad_cron_line_naming_the_field(line, words):
    with pytest.raises(ValidationError) as caught:
        automation.cron_parse(line)
    assert list(caught.value.message_dict) == ["cron"]
    assert words in caught.value.message_dict["cron"][0]


def test_it_computes_the_next_run_in_the_schedule_time_zone():
    now = datetime(2025, 1, 4, 10, 15, 30, tzinfo=UTC)  # a Saturday
    paris = PipelineSchedule(cron="0 3 * * *", timezone="Europe/Paris", enabled=True)
    weekdays = PipelineSchedule(cron="30 9 * * 1-5", timezone="UTC", enabled=True)
    assert automation.schedule_next_run(paris, now=now) == datetime(2025, 1, 5, 2, 0, tzinfo=UTC)
    assert automation.schedule_next_run(weekdays, now=now) == datetime(2025, 1, 6, 9, 30, tzinfo=UTC)
    assert automation.schedule_next_run(PipelineSchedule(cron="* * * * *", enabled=False), now=now) is None


# --- schedules ----------------------------------------------------------------------------------


def test_it_creates_a_beat_entry_with_the_schedule_crontab(world, pipeline):
    schedule = automation.schedule_create(user=world.member, pipeline=pipeline, cron="*/15 6-18 * * 1-5",
                                          timezone="Europe/Paris", parameters={"threshold": 0.9}, name="work hours")
    task = PeriodicTask.objects.get(name=f"pipeline-schedule:{schedule.id}")
    assert schedule.periodic_task == task and task.enabled
    assert task.task == "studio.pipelines.tasks.pipeline_schedule_fire_task"
    assert json.loads(task.kwargs) == {"schedule_id": str(schedule.id)}
    cron = task.crontab
    assert (cron.minute, cron.hour, cron.day_of_month, cron.month_of_year, cron.day_of_week) == \
        ("*/15", "6-18", "*", "*", "1-5")
    assert str(cron.timezone) == "Europe/Paris"
    assert schedule.cron == "*/15 6-18 * * 1-5" and schedule.parameters == {"threshold": 0.9}


def test_it_moves_the_beat_entry_when_the_schedule_changes_and_drops_it_on_delete(world, pipeline):
    schedule = automation.schedule_create(user=world.member, pipeline=pipeline, cron="0 3 * * *")
    old_crontab = schedule.periodic_task.crontab_id
    schedule = automation.schedule_update(user=world.member, schedule=schedule, cron="@hourly", enabled=False,
                                          timezone="Asia/Tokyo")
    task = PeriodicTask.objects.get(id=schedule.periodic_task_id)
    assert (task.crontab.minute, task.crontab.hour, str(task.crontab.timezone)) == ("0", "*", "Asia/Tokyo")
    assert not task.enabled and schedule.cron == "0 * * * *"
    assert not CrontabSchedule.objects.filter(id=old_crontab).exists()  # nothing else used it
    automation.schedule_delete(user=world.member, schedule=schedule)
    assert not PeriodicTask.objects.filter(name__startswith="pipeline-schedule:").exists()
    assert not CrontabSchedule.objects.filter(id=task.crontab_id).exists()


def test_it_drops_the_beat_entries_of_a_deleted_pipeline(world, pipeline):
    automation.schedule_create(user=world.member, pipeline=pipeline, cron="0 3 * * *")
    automation.schedule_create(user=world.member, pipeline=pipeline, cron="0 4 * * *")
    assert PeriodicTask.objects.filter(name__startswith="pipeline-schedule:").count() == 2
    pipeline.delete()
    assert not PeriodicTask.objects.filter(name__startswith="pipeline-schedule:").exists()


@pytest.mark.parametrize(("changes", "field"), [
    ({"cron": "0 25 * * *"}, "cron"),
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"parameters": {"nope": 1}}, "parameters.nope"),
    ({"parameters": {"threshold": "high"}}, "parameters.threshold"),
    ({"parameters": [1, 2]}, "parameters"),
    ({"enabled": "yes"}, "enabled"),
])
def test_it_refuses_bad_schedules_naming_the_field(world, pipeline, changes, field):
    with pytest.raises(ValidationError) as caught:
        automation.schedule_create(user=world.member, pipeline=pipeline, **{"cron": "0 3 * * *", **changes})
    assert field in caught.value.message_dict
    assert not PipelineSchedule.objects.exists() and not PeriodicTask.objects.exists()


def test_it_lets_only_members_manage_schedules_and_triggers(world, pipeline):
    with pytest.raises(PermissionDenied):
        automation.schedule_create(user=world.viewer, pipeline=pipeline, cron="0 3 * * *")
    with pytest.raises(PermissionDenied):
        automation.trigger_create(user=world.viewer, pipeline=pipeline, event="dataset_created")
    schedule = automation.schedule_create(user=world.owner, pipeline=pipeline, cron="0 3 * * *")
    with pytest.raises(PermissionDenied):
        automation.schedule_delete(user=world.viewer, schedule=schedule)


def test_the_database_scheduler_sees_the_entry_and_it_is_due_after_the_next_cron_minute(world, pipeline,
                                                                                       monkeypatch):
    # Beat closes connections it thinks are stale; the test's connection sits in a transaction that must stay.
    monkeypatch.setattr(schedulers, "close_old_connections", lambda: None)
    schedule = automation.schedule_create(user=world.member, pipeline=pipeline, cron="*/15 * * * *")
    scheduler = DatabaseScheduler(app=celery_app)  # also syncs CELERY_BEAT_SCHEDULE into the database
    entries = scheduler.all_as_schedule()
    assert {"reconcile-training-jobs", "reconcile-tuning-jobs"} <= set(entries)  # the reconcilers still run
    entry = entries[f"pipeline-schedule:{schedule.id}"]
    assert entry.task == automation.SCHEDULE_TASK and entry.kwargs == {"schedule_id": str(schedule.id)}
    last_run = datetime(2025, 1, 4, 10, 14, 10, tzinfo=UTC)
    for now, due in [(datetime(2025, 1, 4, 10, 14, 50, tzinfo=UTC), False),
                     (datetime(2025, 1, 4, 10, 15, 1, tzinfo=UTC), True)]:
        entry.schedule.nowfun = lambda now=now: now
        state = entry.schedule.is_due(last_run)
        assert state.is_due is due
    entry.schedule.nowfun = lambda: datetime(2025, 1, 4, 10, 14, 50, tzinfo=UTC)
    assert entry.schedule.remaining_estimate(last_run) == timedelta(seconds=10)
    automation.schedule_update(user=world.member, schedule=schedule, enabled=False)
    assert f"pipeline-schedule:{schedule.id}" not in DatabaseScheduler(app=celery_app).all_as_schedule()


def test_schedule_fire_starts_an_execution_once_per_firing(world, pipeline):
    schedule = automation.schedule_create(user=world.member, pipeline=pipeline, cron="* * * * *",
                                          parameters={"threshold": 0.9})
    execution = automation.schedule_fire(schedule_id=schedule.id)
    assert execution is not None and execution.trigger == "schedule"
    assert execution.trigger_detail == {"schedule": str(schedule.id)}
    assert execution.parameters["threshold"] == 0.9 and execution.created_by == world.member
    schedule.refresh_from_db()
    assert schedule.last_run_at is not None
    # The same beat message delivered twice (a worker lost before its ack) starts nothing more.
    assert automation.schedule_fire(schedule_id=schedule.id) is None
    assert len(runs(pipeline)) == 1


def test_schedule_fire_does_nothing_for_a_disabled_or_deleted_schedule_or_a_lost_owner(world, pipeline):
    disabled = automation.schedule_create(user=world.member, pipeline=pipeline, cron="* * * * *", enabled=False)
    assert automation.schedule_fire(schedule_id=disabled.id) is None
    deleted = automation.schedule_create(user=world.member, pipeline=pipeline, cron="* * * * *")
    automation.schedule_delete(user=world.member, schedule=deleted)
    assert automation.schedule_fire(schedule_id=deleted.id) is None
    orphan = automation.schedule_create(user=world.member, pipeline=pipeline, cron="* * * * *")
    Membership.objects.filter(user=world.member).delete()  # the owner left the team
    assert automation.schedule_fire(schedule_id=orphan.id) is None
    assert runs(pipeline) == []


# --- triggers -----------------------------------------------------------------------------------


def test_it_validates_triggers_naming_the_field(world, pipeline):
    cases = [
        ({"event": "dataset_deleted"}, "event"),
        ({"event": "dataset_created", "filter": {"model_group": "g"}}, "filter.model_group"),
        ({"event": "model_version_approved", "filter": {"name_pattern": "x*"}}, "filter.name_pattern"),
        ({"event": "dataset_created", "filter": "x*"}, "filter"),
        ({"event": "dataset_created", "parameter": "nope"}, "parameter"),
        ({"event": "dataset_created", "parameter": "threshold"}, "parameter"),  # a number cannot take an id
        ({"event": "dataset_created", "parameters": {"zzz": 1}}, "parameters.zzz"),
        ({"event": "dataset_created", "parameter": "dataset", "parameters": {"dataset": "x"}}, "parameters.dataset"),
    ]
    for kwargs, field in cases:
        with pytest.raises(ValidationError) as caught:
            automation.trigger_create(user=world.member, pipeline=pipeline, **kwargs)
        assert field in caught.value.message_dict, (kwargs, caught.value.message_dict)
    assert not PipelineTrigger.objects.exists()


def test_a_new_dataset_starts_the_pipelines_whose_trigger_matches_it(world, django_capture_on_commit_callbacks):
    customers = make_pipeline(world.project, "customers", user=world.member)
    anything = make_pipeline(world.project, "anything", user=world.member)
    elsewhere = make_pipeline(world.other_project, "elsewhere", user=world.outsider)
    automation.trigger_create(user=world.member, pipeline=customers, event="dataset_created",
                              filter={"name_pattern": "customers-*"}, parameter="dataset",
                              parameters={"label": "fresh"})
    automation.trigger_create(user=world.member, pipeline=anything, event="dataset_created")
    automation.trigger_create(user=world.outsider, pipeline=elsewhere, event="dataset_created")
    off = automation.trigger_create(user=world.member, pipeline=anything, event="dataset_created", enabled=False)
    with django_capture_on_commit_callbacks(execute=True):
        orders = upload(world, "orders")
    assert runs(customers) == [] and len(runs(anything)) == 1 and runs(elsewhere) == []
    with django_capture_on_commit_callbacks(execute=True):
        fresh = upload(world, "customers-2025")
    [run] = runs(customers)
    assert run.trigger == "dataset" and run.created_by == world.member
    assert run.parameters["dataset"] == str(fresh.id) and run.parameters["label"] == "fresh"
    assert run.trigger_detail["dataset"] == str(fresh.id) and "chain" not in run.trigger_detail
    assert len(runs(anything)) == 2 and runs(elsewhere) == []
    assert all(r.trigger_detail["trigger"] != str(off.id) for r in runs(anything))
    assert PipelineTrigger.objects.get(pipeline=customers).last_fired_at is not None
    assert orders.id != fresh.id


def test_one_trigger_that_cannot_start_does_not_stop_the_others(world, django_capture_on_commit_callbacks):
    first = make_pipeline(world.project, "first", user=world.member)
    second = make_pipeline(world.project, "second", user=world.member)
    automation.trigger_create(user=world.member, pipeline=first, event="dataset_created", parameter="dataset")
    automation.trigger_create(user=world.member, pipeline=second, event="dataset_created", parameter="dataset")
    # The first pipeline's definition changed since: its trigger's parameter is gone, so its start is refused.
    first.definition = {**first.definition, "parameters": {"threshold": 0.5}}
    first.save()
    with django_capture_on_commit_callbacks(execute=True):
        upload(world, "any")
    assert runs(first) == [] and len(runs(second)) == 1


def test_a_batch_transform_output_counts_as_a_new_dataset_once_its_job_completes(
        world, django_capture_on_commit_callbacks):
    scored = make_pipeline(world.project, "scored", user=world.member)
    automation.trigger_create(user=world.member, pipeline=scored, event="dataset_created", parameter="dataset",
                              filter={"name_pattern": "*-output"})
    source = dataset_from_csv(world.project, name="source")
    job = TransformJob.objects.create(project=world.project, name="nightly", model=bare_model(world.project),
                                      input_dataset=source, status="running", created_by=world.member)
    output = dataset_from_csv(world.project, name="nightly-output")  # written by the finalize step, not ready yet
    assert runs(scored) == []
    with django_capture_on_commit_callbacks(execute=True):
        assert transforms.transform_job_complete(job=job, output_dataset=output)
    [run] = runs(scored)
    assert run.parameters["dataset"] == str(output.id) and run.trigger == "dataset"


def test_an_approved_version_starts_the_pipelines_whose_trigger_matches_its_group(
        world, django_capture_on_commit_callbacks):
    deploy = make_pipeline(world.project, "deploy", user=world.member)
    automation.trigger_create(user=world.member, pipeline=deploy, event="model_version_approved",
                              filter={"model_group": "churn"}, parameter="model")
    model = bare_model(world.project, "m1")
    churn = registry_services.model_group_create(user=world.member, project=world.project, name="churn")
    other = registry_services.model_group_create(user=world.member, project=world.project, name="fraud")
    in_churn = registry_services.model_version_create(user=world.member, group=churn, model=model)
    in_other = registry_services.model_version_create(user=world.member, group=other, model=model)
    with django_capture_on_commit_callbacks(execute=True):
        registry_services.model_version_set_approval(user=world.owner, version=in_other, approval_status="approved")
        registry_services.model_version_set_approval(user=world.owner, version=in_churn, approval_status="rejected")
    assert runs(deploy) == []
    with django_capture_on_commit_callbacks(execute=True):
        registry_services.model_version_set_approval(user=world.owner, version=in_churn, approval_status="approved")
    [run] = runs(deploy)
    assert run.trigger == "model_approved" and run.parameters["model"] == str(model.id)
    assert run.trigger_detail["model_version"] == str(in_churn.id)
    with django_capture_on_commit_callbacks(execute=True):  # approving what is approved changes nothing
        registry_services.model_version_set_approval(user=world.owner, version=in_churn, approval_status="approved")
    assert len(runs(deploy)) == 1


def test_objects_a_pipeline_makes_do_not_start_it_again_but_start_others(world, django_capture_on_commit_callbacks):
    loop = make_pipeline(world.project, "loop", user=world.member)
    downstream = make_pipeline(world.project, "downstream", user=world.member)
    for p in (loop, downstream):
        automation.trigger_create(user=world.member, pipeline=p, event="dataset_created", parameter="dataset")
        automation.trigger_create(user=world.member, pipeline=p, event="model_version_approved")
    running = PipelineExecution.objects.create(pipeline=loop, project=world.project, number=1, status="running",
                                               created_by=world.member)
    with django_capture_on_commit_callbacks(execute=True), automation.acting_for(running.id):
        made = upload(world, "loop-split-1")  # as a processing step of the running execution would
    assert runs(loop) == [running]
    [started] = runs(downstream)
    assert started.trigger_detail["chain"] == [str(loop.id)] and started.parameters["dataset"] == str(made.id)
    # The downstream run's own outputs must not start the loop pipeline again (a cycle through two pipelines).
    with django_capture_on_commit_callbacks(execute=True), automation.acting_for(started.id):
        upload(world, "downstream-output")
    assert runs(loop) == [running] and runs(downstream) == [started]
    # An approval by a register step counts the same way.
    group = registry_services.model_group_create(user=world.member, project=world.project, name="g")
    version = registry_services.model_version_create(user=world.member, group=group, model=bare_model(world.project))
    with django_capture_on_commit_callbacks(execute=True), automation.acting_for(running.id):
        registry_services.model_version_set_approval(user=world.member, version=version, approval_status="approved")
    assert runs(loop) == [running] and len(runs(downstream)) == 2


def test_the_loop_guard_also_knows_step_made_objects_without_the_step_context(
        world, django_capture_on_commit_callbacks):
    loop = make_pipeline(world.project, "loop", user=world.member)
    automation.trigger_create(user=world.member, pipeline=loop, event="dataset_created")
    automation.trigger_create(user=world.member, pipeline=loop, event="model_version_approved")
    running = PipelineExecution.objects.create(pipeline=loop, project=world.project, number=1, status="running",
                                               created_by=world.member)
    source = upload(world, "source")  # no trigger fires: its on_commit callbacks are not run
    model = bare_model(world.project)
    transform = TransformJob.objects.create(project=world.project, name="scoring", model=model, input_dataset=source)
    PipelineStep.objects.create(execution=running, name="score", type="transform", status=StepStatus.RUNNING,
                                job={"kind": "transform_job", "id": str(transform.id)})
    output = upload(world, "scoring-output")
    TransformJob.objects.filter(id=transform.id).update(output_dataset=output)
    assert automation.triggers_on_dataset_ready(dataset=output) == []
    # A processing step running for the dataset's creator since before the dataset existed made it.
    PipelineStep.objects.create(execution=running, name="split", type="processing", status=StepStatus.RUNNING,
                                started_at=datetime.now(UTC) - timedelta(seconds=5))
    with django_capture_on_commit_callbacks(execute=True):
        upload(world, "source-split-1")
    # A register step running with the version's model approved it.
    PipelineStep.objects.create(execution=running, name="register", type="register", status=StepStatus.RUNNING,
                                arguments={"model": str(model.id), "model_group": "g"})
    group = registry_services.model_group_create(user=world.member, project=world.project, name="g")
    version = registry_services.model_version_create(user=world.member, group=group, model=model)
    with django_capture_on_commit_callbacks(execute=True):
        registry_services.model_version_set_approval(user=world.member, version=version, approval_status="approved")
    assert runs(loop) == [running]
    # Another user's upload meanwhile is theirs, not the step's: it starts a run.
    with django_capture_on_commit_callbacks(execute=True):
        dataset_services.dataset_upload(user=world.owner, project=world.project, name="by-owner",
                                        upload=SimpleUploadedFile("o.csv", classification_csv(n=40)))
    assert len(runs(loop)) == 2


# --- by themselves: real beat and worker processes ------------------------------------------------


@contextmanager
def celery_beat(log_path):
    """`celery beat` reading its entries from the database, as runstudio starts it."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "studio", "beat", "--loglevel", "INFO",
             "-S", "django_celery_beat.schedulers:DatabaseScheduler", "--max-interval", "1"],
            cwd=ROOT, env=process_env(), stdout=log, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            _stop(proc)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_beat_and_a_worker_run_a_schedule_by_themselves(world, tmp_path):
    pipeline = make_pipeline(world.project, user=world.member)
    # Every minute: the first firing comes at the next minute boundary, so this waits up to about a minute.
    schedule = automation.schedule_create(user=world.member, pipeline=pipeline, cron="* * * * *",
                                          parameters={"threshold": 0.9})
    with celery_worker(tmp_path / "worker.log"), celery_beat(tmp_path / "beat.log"):
        deadline = time.monotonic() + 100
        execution = None
        while time.monotonic() < deadline:
            execution = PipelineExecution.objects.filter(pipeline=pipeline).first()
            if execution is not None and execution.is_final:
                break
            time.sleep(0.5)
    logs = (tmp_path / "beat.log").read_text()[-2000:] + (tmp_path / "worker.log").read_text()[-3000:]
    assert execution is not None, logs
    assert execution.trigger == "schedule" and execution.trigger_detail == {"schedule": str(schedule.id)}
    assert execution.parameters["threshold"] == 0.9
    assert execution.status == "completed", (execution.status, execution.failure_reason, logs)
    schedule.refresh_from_db()
    assert schedule.last_run_at is not None
