"""The dashboard's actions: cancel any team's job through its own stop service, drain and resume workers, scale
an endpoint through its update service; each audited, none leaving the admin a trace of team membership."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.http import Http404
from django.utils import timezone

from studio.accounts.models import AuditEvent, Membership, Role
from studio.core.errors import Conflict
from studio.endpoints.models import EndpointInstance, TransformJob
from studio.ops import services, workers
from studio.ops.models import FailedTask
from studio.pipelines.models import Pipeline, PipelineExecution, PipelineStep
from studio.training.models import LogLine, TrainingJob
from studio.tuning.models import TuningJob, TuningTrial
from tests.ops.conftest import make_endpoint, make_model

pytestmark = pytest.mark.django_db


def training(project, name: str = "job", **fields) -> TrainingJob:
    return TrainingJob.objects.create(project=project, name=name, algorithm="linear-learner", **fields)


def ops_events():
    return list(AuditEvent.objects.filter(data__ops=True).values_list("verb", "target"))


# --- cancel ---------------------------------------------------------------------------------------------


def test_it_cancels_a_running_training_job_of_a_team_it_is_not_in(world, admin):
    job = training(world.other_project, status="running", started_at=timezone.now(), heartbeat_at=timezone.now())
    cancelled = services.job_cancel(user=admin, kind="training-job", job_id=str(job.id))
    assert cancelled.status == "running" and cancelled.stop_requested  # it stops after its current epoch
    assert cancelled.stop_message == "Stopped by ada"
    assert LogLine.objects.filter(job=job, line__contains="Stop requested by ada").exists()
    # The team's feed has the stop as its own service wrote it; the dashboard's log has the admin action.
    assert AuditEvent.objects.filter(verb="stopped training job", actor=admin, project=world.other_project).exists()
    assert ops_events() == [("cancelled training job", "job")]
    assert not Membership.objects.filter(user=admin).exists()


def test_it_stops_a_pending_training_job_at_once(world, admin):
    job = training(world.project, status="pending")
    assert services.job_cancel(user=admin, kind="training-job", job_id=job.id).status == "stopped"


def test_it_keeps_an_admin_who_is_a_viewer_a_viewer(world, admin):
    Membership.objects.create(team=world.team, user=admin, role=Role.VIEWER)
    job = training(world.project, status="pending")
    services.job_cancel(user=admin, kind="training-job", job_id=job.id)
    assert Membership.objects.get(user=admin).role == Role.VIEWER


def test_it_leaves_no_membership_behind_when_the_stop_fails(world, admin, monkeypatch):
    from studio.training import services as training_services

    def racing(*, user, job):
        raise Conflict("finished meanwhile")

    monkeypatch.setattr(training_services, "training_job_stop", racing)
    job = training(world.project, status="running")
    with pytest.raises(Conflict):
        services.job_cancel(user=admin, kind="training-job", job_id=job.id)
    assert not Membership.objects.filter(user=admin).exists()
    assert ops_events() == []


def test_it_cancels_a_tuning_job_and_its_trials(world, admin):
    tuning = TuningJob.objects.create(project=world.other_project, name="tune", algorithm="linear-learner",
                                      objective_metric="validation:loss", objective_goal="minimize",
                                      strategy="random", max_jobs=4, max_parallel_jobs=2, status="running")
    trial_job = training(world.other_project, "trial-1", status="pending")
    TuningTrial.objects.create(tuning_job=tuning, training_job=trial_job, number=1)
    cancelled = services.job_cancel(user=admin, kind="tuning-job", job_id=tuning.id)
    assert cancelled.status == "stopped" and cancelled.status_message == "Stopped by ada"
    trial_job.refresh_from_db()
    assert trial_job.status == "stopped"


def test_it_cancels_a_transform_job(world, admin):
    job = TransformJob.objects.create(project=world.project, name="batch", model=make_model(world.project),
                                      status="running")
    assert services.job_cancel(user=admin, kind="transform-job", job_id=job.id).status == "stopped"


def test_it_cancels_a_pipeline_execution_and_its_steps(world, admin):
    pipeline = Pipeline.objects.create(project=world.project, name="p", definition={"parameters": {}, "steps": []})
    execution = PipelineExecution.objects.create(pipeline=pipeline, project=world.project, number=1,
                                                 status="running")
    step = PipelineStep.objects.create(execution=execution, name="later", type="processing")
    cancelled = services.job_cancel(user=admin, kind="pipeline-execution", job_id=execution.id)
    assert cancelled.status == "stopped"
    step.refresh_from_db()
    assert step.status == "stopped"
    assert ops_events() == [("cancelled pipeline execution", "p #1")]


@pytest.mark.parametrize("kind, job_id, field", [
    ("model", str(uuid.uuid4()), "kind"),
    ("training-job", "not-an-id", "id"),
])
def test_it_names_the_field_of_a_bad_cancel_request(admin, kind, job_id, field):
    with pytest.raises(ValidationError) as error:
        services.job_cancel(user=admin, kind=kind, job_id=job_id)
    assert set(error.value.message_dict) == {field}


def test_it_answers_404_for_no_job_and_409_for_a_finished_one(world, admin):
    with pytest.raises(Http404):
        services.job_cancel(user=admin, kind="tuning-job", job_id=uuid.uuid4())
    done = training(world.project, status="completed")
    with pytest.raises(Conflict, match="already finished"):
        services.job_cancel(user=admin, kind="training-job", job_id=done.id)


def test_it_refuses_every_action_to_someone_who_is_not_a_site_admin(world, fake_workers):
    job = training(world.project, status="running")
    endpoint = make_endpoint(world.project)
    with pytest.raises(Http404):
        services.job_cancel(user=world.owner, kind="training-job", job_id=job.id)
    with pytest.raises(Http404):
        services.worker_drain(user=world.owner, worker="celery@a")
    with pytest.raises(Http404):
        services.worker_resume(user=world.owner, worker="celery@a")
    with pytest.raises(Http404):
        services.endpoint_scale(user=world.owner, endpoint=endpoint, variant="main", instances=2)
    assert not TrainingJob.objects.get(id=job.id).stop_requested


# --- drain and resume -----------------------------------------------------------------------------------


def test_it_drains_a_worker_and_resumes_the_queues_it_drained(admin, fake_workers):
    fake_workers.add("celery@gpu-1", queues=["training", "default"])
    result = services.worker_drain(user=admin, worker="celery@gpu-1")
    assert result["queues"] == ["default", "training"]
    assert fake_workers.commands == [("celery@gpu-1", "default", False), ("celery@gpu-1", "training", False)]
    row = workers.workers_snapshot()["workers"][0]  # asked again: the drain forgot the cached answer
    assert row["queues"] == [] and row["drained"] == ["default", "training"]
    with pytest.raises(Conflict, match="drained already"):
        services.worker_drain(user=admin, worker="celery@gpu-1")

    result = services.worker_resume(user=admin, worker="celery@gpu-1")
    assert result["queues"] == ["default", "training"]
    row = workers.workers_snapshot()["workers"][0]
    assert row["queues"] == ["default", "training"] and row["drained"] == []
    assert ops_events() == [("resumed worker", "celery@gpu-1"), ("drained worker", "celery@gpu-1")]
    with pytest.raises(Conflict, match="not drained from here"):
        services.worker_resume(user=admin, worker="celery@gpu-1")


def test_it_resumes_every_studio_queue_of_a_worker_consuming_none(admin, fake_workers):
    # Drained by another tool, or the record of the drain is gone: it gets every studio queue.
    fake_workers.add("celery@a", queues=[])
    assert services.worker_resume(user=admin, worker="celery@a")["queues"] == ["default", "inference", "training"]
    # A worker started on some queues on purpose is left alone.
    fake_workers.add("celery@gpu", queues=["training"])
    with pytest.raises(Conflict, match="not drained from here"):
        services.worker_resume(user=admin, worker="celery@gpu")


def test_it_names_an_unknown_worker_and_refuses_a_silent_one(admin, fake_workers):
    fake_workers.add("celery@a")
    with pytest.raises(ValidationError) as error:
        services.worker_drain(user=admin, worker="celery@nope")
    assert "celery@a" in error.value.message_dict["worker"][0]
    with pytest.raises(ValidationError) as error:
        services.worker_drain(user=admin, worker="")
    assert set(error.value.message_dict) == {"worker"}
    fake_workers.silent = True
    with pytest.raises(Conflict, match="did not confirm"):
        services.worker_drain(user=admin, worker="celery@a")
    del fake_workers.live["celery@a"]  # seen before, not answering now
    with pytest.raises(Conflict, match="not answering"):
        services.worker_drain(user=admin, worker="celery@a")


# --- scale ----------------------------------------------------------------------------------------------


def test_it_scales_a_variant_through_the_endpoint_update(world, admin):
    endpoint = make_endpoint(world.other_project, min_instances=1, max_instances=2)
    scaled = services.endpoint_scale(user=admin, endpoint=endpoint, variant="main", min_instances=3,
                                     max_instances="5")
    variant = scaled.variants.get(name="main")
    assert (variant.min_instances, variant.max_instances, variant.desired_instances) == (3, 5, 3)
    # The update converged the endpoint: instance rows for the agent to start.
    assert EndpointInstance.objects.filter(variant=variant).count() == 3
    assert AuditEvent.objects.filter(verb="updated endpoint", actor=admin).exists()
    event = AuditEvent.objects.get(data__ops=True)
    assert event.verb == "scaled endpoint" and event.data["to"] == {"min": 3, "max": 5, "desired": 3}
    assert not Membership.objects.filter(user=admin).exists()

    pinned = services.endpoint_scale(user=admin, endpoint=scaled, variant="main", instances=1)
    variant = pinned.variants.get(name="main")
    assert (variant.min_instances, variant.max_instances, variant.desired_instances) == (1, 1, 1)


def test_it_lifts_the_ceiling_with_the_floor(world, admin):
    endpoint = make_endpoint(world.project, min_instances=1, max_instances=2)
    variant = services.endpoint_scale(user=admin, endpoint=endpoint, variant="main", min_instances=4).variants.get()
    assert (variant.min_instances, variant.max_instances) == (4, 4)


@pytest.mark.parametrize("changes, field", [
    ({"variant": "nope", "instances": 2}, "variant"),
    ({"variant": "main"}, "instances"),
    ({"variant": "main", "min_instances": "many"}, "min_instances"),
    ({"variant": "main", "instances": 99}, "instances"),
    ({"variant": "main", "min_instances": 0}, "min_instances"),  # a real-time endpoint keeps one instance
    ({"variant": "main", "min_instances": 2, "max_instances": 0}, "max_instances"),
])
def test_it_names_the_field_of_a_bad_scale_request(world, admin, changes, field):
    endpoint = make_endpoint(world.project)
    with pytest.raises(ValidationError) as error:
        services.endpoint_scale(user=admin, endpoint=endpoint, **changes)
    assert field in error.value.message_dict, error.value.message_dict
    assert not Membership.objects.filter(user=admin).exists()


# --- failed tasks ---------------------------------------------------------------------------------------


def test_it_keeps_ids_and_numbers_of_a_failed_tasks_arguments_but_no_data(admin):
    job_id = uuid.uuid4()
    task = services.failed_task_record(
        task_name="studio.x.tasks.t", task_id="abc", args=[str(job_id), 3, {"secret": "v"}, "a" * 500, job_id],
        kwargs={"attempt": 2, "payload": b"bytes"}, exception=ValueError("bad"), traceback="Traceback...",
        worker="celery@h")
    assert task.args == (f"'{job_id}', 3, <dict of 1>, <str of 500>, '{job_id}', attempt=2, "
                         "payload=<bytes of 5>")
    assert task.exception == "ValueError: bad" and task.worker == "celery@h"


def test_it_keeps_the_end_of_a_huge_traceback(admin):
    task = services.failed_task_record(task_name="t", task_id="1", traceback="x" * 200_000 + "THE END")
    assert task.traceback.endswith("THE END") and len(task.traceback) <= services.MAX_TRACEBACK + 2


def test_it_prunes_old_failures_at_most_once_an_hour(admin):
    old = FailedTask.objects.create(task_name="t")
    FailedTask.objects.filter(id=old.id).update(created_at=timezone.now() - timedelta(days=40))
    FailedTask.objects.create(task_name="t")
    assert services.failed_tasks_prune() == 1
    FailedTask.objects.filter(id=FailedTask.objects.create(task_name="t").id).update(
        created_at=timezone.now() - timedelta(days=40))
    assert services.failed_tasks_prune() == 0  # the hour is not over
    assert FailedTask.objects.count() == 2
