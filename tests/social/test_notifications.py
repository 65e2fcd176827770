"""In-app notifications: a finished or failed job notifies whoever started it, once; the API lists and marks them."""

from __future__ import annotations

import pytest

from studio.accounts.models import AuditEvent
from studio.endpoints import transforms
from studio.endpoints.models import TransformJob
from studio.pipelines import engine
from studio.pipelines.models import Pipeline, PipelineExecution, PipelineStep
from studio.registry.models import Model
from studio.social import services
from studio.social.models import Notification
from studio.training import services as training_services
from studio.tuning import services as tuning_services
from studio.tuning.models import TuningJob, TuningTrial
from tests.training.factories import dataset_from_csv, new_job

pytestmark = pytest.mark.django_db

RANGES = {"learning_rate": {"type": "continuous", "min": 0.001, "max": 0.5, "scale": "log"}}


@pytest.fixture
def commit(django_capture_on_commit_callbacks):
    """Run on_commit callbacks at the end of the block, as a real commit would (tests run inside a transaction)."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def finish_training(job, status: str, **fields):
    training_services.training_job_claim(job_id=job.id, worker="w1")
    return training_services.training_job_finish(job=job, status=status, **fields)


def test_it_notifies_the_creator_when_a_training_job_completes(world, enqueued, commit):
    job = new_job(world, name="houses")
    with commit():
        finish_training(job, "completed", final_metrics={"validation:loss": 0.1})
    notification = Notification.objects.get()
    assert notification.user == world.member and notification.project == world.project
    assert notification.kind == "training_job.completed" and notification.title == "Training job houses completed"
    assert notification.url == f"/projects/{world.project.id}/training/{job.id}/"
    assert notification.read_at is None


def test_it_notifies_a_failure_with_its_reason_and_records_it_in_the_activity_feed(world, enqueued, commit):
    job = new_job(world, name="houses")
    with commit():
        finish_training(job, "failed", failure_reason="Target column 'price' has text values.")
    notification = Notification.objects.get()
    assert notification.kind == "training_job.failed" and notification.body == "Target column 'price' has text values."
    event = AuditEvent.objects.get(verb="failed")
    assert event.actor is None and event.target == "houses" and event.data["job"] == str(job.id)


def test_it_notifies_once_per_final_transition_and_not_while_running(world, enqueued, commit):
    job = new_job(world)
    with commit():
        training_services.training_job_claim(job_id=job.id, worker="w1")
    assert not Notification.objects.exists()
    with commit():
        training_services.training_job_finish(job=job, status="completed")
        training_services.training_job_finish(job=job, status="failed")  # lost the race: nothing happens
    assert Notification.objects.count() == 1


def test_it_says_nothing_when_you_stop_your_own_job_but_tells_you_when_someone_else_did(world, enqueued, commit):
    mine = new_job(world, name="mine")
    with commit():
        training_services.training_job_stop(user=world.member, job=mine)
    assert not Notification.objects.exists()
    other = new_job(world, name="other")
    with commit():
        training_services.training_job_stop(user=world.owner, job=other)
    notification = Notification.objects.get()
    assert notification.kind == "training_job.stopped" and notification.body == "Stopped by olivia"


def test_it_leaves_tuning_trials_to_their_tuning_job(world, enqueued, commit):
    job = new_job(world, name="trial-1")
    tuning = TuningJob.objects.create(project=world.project, name="t", algorithm="linear-learner",
                                      objective_metric="validation:loss", objective_goal="minimize",
                                      strategy="random", max_jobs=1, max_parallel_jobs=1, created_by=world.member)
    TuningTrial.objects.create(tuning_job=tuning, training_job=job, number=1)
    with commit():
        finish_training(job, "completed")
    assert not Notification.objects.exists()


def test_it_notifies_when_a_tuning_job_fails(world, enqueued, monkeypatch, commit):
    monkeypatch.setattr(tuning_services, "tuning_job_enqueue", lambda **kw: None)
    # Its dataset is gone: no trial can start, so the job fails at its first advance.
    tuning = TuningJob.objects.create(project=world.project, name="sweep", algorithm="linear-learner",
                                      objective_metric="validation:loss", objective_goal="minimize", ranges=RANGES,
                                      strategy="random", max_jobs=2, max_parallel_jobs=1, created_by=world.member)
    with commit():
        assert tuning_services.tuning_job_advance(tuning_job_id=tuning.id) == "finished"
    notification = Notification.objects.get()
    assert notification.kind == "tuning_job.failed" and notification.title == "Tuning job sweep failed"
    assert "Could not start a trial" in notification.body
    assert notification.url == f"/projects/{world.project.id}/tuning/{tuning.id}/"
    assert AuditEvent.objects.filter(verb="failed", target="sweep", actor=None).exists()


def test_it_notifies_when_someone_else_stops_a_tuning_job(world, commit):
    tuning = TuningJob.objects.create(project=world.project, name="sweep", algorithm="linear-learner",
                                      objective_metric="validation:loss", objective_goal="minimize", ranges=RANGES,
                                      strategy="random", max_jobs=2, max_parallel_jobs=1, created_by=world.member,
                                      status="running")
    with commit():
        tuning_services.tuning_job_stop(user=world.owner, tuning_job=tuning)
    assert Notification.objects.get().kind == "tuning_job.stopped"


def transform_job(world, status: str = "running") -> TransformJob:
    dataset = dataset_from_csv(world.project)
    model = Model.objects.create(project=world.project, name="m", algorithm="linear-learner",
                                 artifact_prefix="projects/x/")
    return TransformJob.objects.create(project=world.project, name="score", model=model, input_dataset=dataset,
                                       created_by=world.member, status=status)


def test_it_notifies_when_a_batch_transform_fails(world, commit):
    job = transform_job(world)
    with commit():
        assert transforms.transform_job_fail(job_id=job.id, reason="Record 3 is not numeric.")
        transforms.transform_job_fail(job_id=job.id, reason="again")  # already failed: no second notice
    notification = Notification.objects.get()
    assert notification.kind == "transform_job.failed" and notification.body == "Record 3 is not numeric."
    assert notification.url == f"/projects/{world.project.id}/transform-jobs/{job.id}/"
    assert AuditEvent.objects.get(verb="failed").data["object"] == "transform-job"


def test_it_notifies_when_a_batch_transform_completes(world, commit):
    job = transform_job(world)
    output = dataset_from_csv(world.project, name="score-output")
    with commit():
        assert transforms.transform_job_complete(job=job, output_dataset=output)
    assert Notification.objects.get().kind == "transform_job.completed"


def execution(world, *, failed_step: bool) -> PipelineExecution:
    pipeline = Pipeline.objects.create(project=world.project, name="nightly",
                                       definition={"parameters": {}, "steps": []})
    run = PipelineExecution.objects.create(pipeline=pipeline, project=world.project, number=1, status="running",
                                           definition={"parameters": {}, "steps": []}, created_by=world.member)
    if failed_step:
        PipelineStep.objects.create(execution=run, name="train", type="training", status="failed",
                                    failure_reason="No dataset.")
    return run


@pytest.mark.parametrize(("failed_step", "kind"), [(False, "pipeline_execution.completed"),
                                                   (True, "pipeline_execution.failed")])
def test_it_notifies_when_a_pipeline_execution_finishes(world, commit, failed_step, kind):
    run = execution(world, failed_step=failed_step)
    with commit():
        assert engine.pipeline_execution_advance(execution_id=run.id) == "finished"
    notification = Notification.objects.get()
    assert notification.kind == kind and notification.title.startswith("Pipeline execution nightly #1 ")
    assert notification.url == f"/projects/{world.project.id}/pipelines/{run.pipeline_id}/executions/{run.id}/"
    assert AuditEvent.objects.filter(verb="failed", actor=None).exists() == failed_step


def test_it_does_not_notify_people_who_left_the_team(world, enqueued, commit):
    job = new_job(world)
    world.team.memberships.filter(user=world.member).delete()
    with commit():
        finish_training(job, "completed")
    assert not Notification.objects.exists()


# --- the API ----------------------------------------------------------------------------------------------


def notify(user, title="Done", project=None):
    return services.notify(user=user, project=project, kind="other", title=title, url="/somewhere/")


def test_it_lists_only_the_callers_notifications_newest_first(world, api, deliveries):
    notify(world.member, "first")
    notify(world.member, "second")
    notify(world.owner, "not yours")
    response = api(world.member).get("/api/v1/notifications")
    assert response.status_code == 200 and response["X-Unread-Count"] == "2"
    assert [n["title"] for n in response.json()["results"]] == ["second", "first"]
    assert api(world.outsider).get("/api/v1/notifications").json()["count"] == 0
    assert api().get("/api/v1/notifications").status_code == 401


def test_it_marks_one_or_all_read(world, api, deliveries):
    first, second = notify(world.member, "first"), notify(world.member, "second")
    client = api(world.member)
    read = client.post(f"/api/v1/notifications/{first.id}/read")
    assert read.status_code == 200 and read.json()["read"] is True
    assert [n["title"] for n in client.get("/api/v1/notifications?unread=true").json()["results"]] == ["second"]
    assert client.post("/api/v1/notifications/read-all").json() == {"marked": 1, "unread": 0}
    second.refresh_from_db()
    assert second.read_at is not None


def test_it_answers_404_for_someone_elses_notification(world, api, deliveries):
    theirs = notify(world.owner)
    assert api(world.member).post(f"/api/v1/notifications/{theirs.id}/read").status_code == 404
    assert api(world.outsider).post(f"/api/v1/notifications/{theirs.id}/read").status_code == 404
    theirs.refresh_from_db()
    assert theirs.read_at is None
