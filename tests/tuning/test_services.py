from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from studio.core.errors import Conflict
from studio.training import runner
from studio.training import selectors as training_selectors
from studio.training import services as training_services
from studio.training.models import MetricPoint, TrainingJob
from studio.tuning import services
from studio.tuning.models import TuningJob, TuningTrial
from tests.training.factories import classification_dataset, run_job
from tests.tuning.conftest import drive

pytestmark = pytest.mark.django_db

RANGES = {"learning_rate": {"type": "continuous", "min": 0.001, "max": 0.5, "scale": "log"},
          "mini_batch_size": {"type": "integer", "min": 8, "max": 64}}
STATIC = {"epochs": 2, "num_models": 2}


def create(world, *, user=None, **kwargs) -> TuningJob:
    dataset = kwargs.pop("dataset", None) or classification_dataset(world.project)
    kwargs.setdefault("ranges", RANGES)
    kwargs.setdefault("static_hyperparameters", STATIC)
    kwargs.setdefault("strategy", "random")
    kwargs.setdefault("max_jobs", 4)
    kwargs.setdefault("max_parallel_jobs", 2)
    kwargs.setdefault("objective", {"metric": "validation:accuracy", "goal": "maximize"})
    return services.tuning_job_create(user=user or world.member, project=world.project, algorithm="linear-learner",
                                      dataset=dataset, **kwargs)


def test_it_creates_a_pending_job_and_asks_for_an_advance_after_commit(world, advances,
                                                                       django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job = create(world)
    assert job.status == "pending" and job.created_by == world.member
    assert job.ranges["learning_rate"] == {"type": "continuous", "min": 0.001, "max": 0.5, "scale": "log"}
    assert job.ranges["mini_batch_size"]["scale"] == "log"  # "auto" takes the declared scale
    assert job.objective_goal == "maximize" and job.max_parallel_jobs == 2
    assert advances == [str(job.id)]


def test_it_refuses_a_viewer(world):
    with pytest.raises(PermissionDenied):
        create(world, user=world.viewer)


def test_it_launches_as_many_trials_as_parallel_slots_and_no_more(world, enqueued, advances,
                                                                  django_capture_on_commit_callbacks):
    job = create(world)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.tuning_job_advance(tuning_job_id=job.id) == "launched 2"
    assert services.tuning_job_advance(tuning_job_id=job.id) == "waiting"  # idempotent: slots are full
    trials = list(job.trials.select_related("training_job"))
    assert [t.number for t in trials] == [1, 2]
    assert [t.training_job.name for t in trials] == [f"{job.name}-001", f"{job.name}-002"]
    for trial in trials:
        hp = trial.training_job.hyperparameters
        assert 0.001 <= hp["learning_rate"] <= 0.5 and 8 <= hp["mini_batch_size"] <= 64
        assert hp["epochs"] == 2 and hp["num_models"] == 2  # static ones merged in
        assert trial.parameters == {k: hp[k] for k in RANGES}
    assert sorted(enqueued) == sorted(str(t.training_job_id) for t in trials)
    job.refresh_from_db()
    assert job.status == "running" and job.started_at is not None


def test_it_runs_random_search_to_the_end_and_keeps_the_best_trial(world, enqueued, advances):
    job = drive(create(world))
    trials = list(job.trials.select_related("training_job"))
    assert job.status == "completed" and job.status_message == "All 4 trials finished"
    assert len(trials) == 4 and all(t.training_job.status == "completed" for t in trials)
    values = [t.objective_value for t in trials]
    assert all(v == t.training_job.final_metrics["validation:accuracy"] for v, t in zip(values, trials, strict=True))
    assert job.best_objective == max(values)
    assert job.best_trial.objective_value == max(values)
    assert services.tuning_counts(job)["completed"] == 4


def test_it_minimizes_when_the_goal_says_so(world, enqueued, advances):
    job = drive(create(world, objective={"metric": "validation:loss"}))
    values = [t.objective_value for t in job.trials.all()]
    assert job.objective_goal == "minimize"  # the metric's declared direction
    assert job.best_objective == min(values)


def test_it_walks_the_whole_grid_once(world, enqueued, advances):
    ranges = {"mini_batch_size": {"type": "categorical", "values": [16, 32]},
              "optimizer": {"type": "categorical", "values": ["adam", "sgd"]}}
    job = create(world, strategy="grid", ranges=ranges, max_jobs=None)
    assert job.max_jobs == 4  # the grid's size when max_jobs is left out
    job = drive(job)
    seen = sorted((t.parameters["mini_batch_size"], t.parameters["optimizer"]) for t in job.trials.all())
    assert seen == [(16, "adam"), (16, "sgd"), (32, "adam"), (32, "sgd")]
    assert job.status == "completed"


def test_it_runs_bayesian_search(world, enqueued, advances):
    job = drive(create(world, strategy="bayesian", max_jobs=5, max_parallel_jobs=1))
    assert job.status == "completed" and job.trials.count() == 5
    params = [tuple(sorted(t.parameters.items())) for t in job.trials.all()]
    assert len(set(params)) == 5


def test_it_counts_a_failed_trial_and_goes_on(world, enqueued, advances, monkeypatch):
    original = runner._Run.execute

    def execute(self):
        if self.job.name.endswith("-002"):
            raise ValueError("the disk is full")
        return original(self)

    monkeypatch.setattr(runner._Run, "execute", execute)
    job = drive(create(world))
    counts = services.tuning_counts(job)
    assert job.status == "completed" and counts["failed"] == 1 and counts["completed"] == 3
    failed = job.trials.get(number=2)
    assert failed.objective_value is None and failed.training_job.failure_reason == "the disk is full"
    assert job.best_trial.number != 2


def test_it_fails_when_no_trial_produces_the_objective(world, enqueued, advances, monkeypatch):
    def execute(self):
        raise ValueError("bad data")

    monkeypatch.setattr(runner._Run, "execute", execute)
    job = drive(create(world, max_jobs=2))
    assert job.status == "failed" and job.best_trial is None
    assert "2 of 2 failed" in job.failure_reason and "bad data" in job.failure_reason


def test_it_stops_at_the_target_value(world, enqueued, advances):
    job = drive(create(world, max_jobs=6, max_parallel_jobs=1, completion={"target_value": 0.0}))
    assert job.status == "completed" and job.trials.count() == 1
    assert "Reached the target objective" in job.status_message


def test_it_stops_when_the_best_stops_improving(world, enqueued, advances):
    job = drive(create(world, max_jobs=12, max_parallel_jobs=1, completion={"best_not_improving_jobs": 2}))
    trials = list(job.trials.order_by("number"))
    assert job.status == "completed" and "did not improve for 2" in job.status_message
    assert len(trials) == job.best_trial.number + 2


def test_it_finishes_at_max_runtime_and_stops_running_trials(world, enqueued, advances):
    job = create(world, max_runtime_seconds=60)
    services.tuning_job_advance(tuning_job_id=job.id)
    running = job.trials.first().training_job
    training_services.training_job_claim(job_id=running.id, worker="w1")
    TuningJob.objects.filter(id=job.id).update(started_at=timezone.now() - timedelta(seconds=61))
    assert services.tuning_job_advance(tuning_job_id=job.id) == "finished"
    job.refresh_from_db()
    running.refresh_from_db()
    assert job.status == "completed" and "max_runtime_seconds" in job.status_message
    assert running.stop_requested and "finished" in running.stop_message
    assert job.trials.get(number=2).training_job.status == "stopped"  # the pending one stops at once


def test_it_stops_on_request_keeping_the_best_so_far(world, enqueued, advances):
    job = create(world, max_parallel_jobs=1)
    services.tuning_job_advance(tuning_job_id=job.id)
    run_job(job.trials.get(number=1).training_job)
    services.tuning_job_advance(tuning_job_id=job.id)
    job = services.tuning_job_stop(user=world.member, tuning_job=job)
    assert job.status == "stopped" and job.status_message == "Stopped by mark"
    assert job.best_trial.number == 1
    assert job.trials.get(number=2).training_job.status == "stopped"
    assert services.tuning_job_advance(tuning_job_id=job.id) == "idle"  # nothing more starts
    with pytest.raises(Conflict):
        services.tuning_job_stop(user=world.member, tuning_job=job)
    with pytest.raises(PermissionDenied):
        services.tuning_job_stop(user=world.viewer, tuning_job=job)


def test_it_replaces_a_trial_whose_worker_died(world, enqueued, advances, settings):
    job = create(world, max_jobs=2, max_parallel_jobs=1)
    services.tuning_job_advance(tuning_job_id=job.id)
    first = job.trials.get(number=1).training_job
    training_services.training_job_claim(job_id=first.id, worker="w-dead")
    TrainingJob.objects.filter(id=first.id).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    assert training_services.training_jobs_reconcile()["failed"] == 1
    # A redelivered run message finds nothing to claim: the trial never runs twice.
    assert run_job(first).status == "failed"
    job = drive(job)
    counts = services.tuning_counts(job)
    assert counts["failed"] == 1 and counts["completed"] == 1 and job.status == "completed"


def test_it_applies_the_median_rule_to_intermediate_values(world, enqueued, advances):
    job = create(world, max_parallel_jobs=4, max_jobs=4, early_stopping="auto",
                 objective={"metric": "validation:loss"})
    services.tuning_job_advance(tuning_job_id=job.id)
    trials = {t.number: t for t in job.trials.select_related("training_job")}
    # Three earlier trials reached epoch 2 with running averages 0.55, 0.525 and 0.625...
    for number, losses in ((1, [0.6, 0.5]), (2, [0.6, 0.45]), (3, [0.7, 0.55])):
        for step, loss in enumerate(losses, start=1):
            MetricPoint.objects.create(job=trials[number].training_job, name="validation:loss", step=step,
                                       value=loss, ts=0)
    fourth = trials[4]
    # ...so 0.9 at epoch 2 is worse than their median, 0.55, and 0.5 is not.
    assert services.trial_early_stop(training_job=fourth.training_job, step=2,
                                     metrics={"validation:loss": 0.5}) is None
    message = services.trial_early_stop(training_job=fourth.training_job, step=2, metrics={"validation:loss": 0.9})
    assert message and "median 0.55" in message
    fourth.refresh_from_db()
    assert fourth.early_stopped
    # Earlier trials are the only reference: the first trial is never compared with later ones.
    assert services.trial_early_stop(training_job=trials[1].training_job, step=2,
                                     metrics={"validation:loss": 9.0}) is None


def test_it_stops_a_trial_early_while_it_trains(world, enqueued, advances, monkeypatch):
    job = create(world, max_parallel_jobs=1, max_jobs=2, early_stopping="auto",
                 objective={"metric": "validation:loss"}, static_hyperparameters={"epochs": 3, "num_models": 1})
    monkeypatch.setattr(services.strategies, "median_stopping_rule", lambda **kw: (kw["step"] >= 2, 0.1))
    job = drive(job)
    trial = job.trials.get(number=1)
    assert trial.early_stopped and trial.training_job.status == "stopped"
    assert trial.training_job.status_message.startswith(f"Stopped early by tuning job '{job.name}'")
    assert MetricPoint.objects.filter(job=trial.training_job, name="validation:loss").count() == 2
    assert trial.objective_value is not None  # its last reported value still informs the strategy


def test_it_learns_from_warm_start_parents(world, enqueued, advances):
    parent = drive(create(world, max_jobs=2))
    child = create(world, dataset=parent.dataset, warm_start={"parents": [str(parent.id)], "type": "identical_data"})
    history = services._history(child, [])
    assert len(history) == 2
    assert {round(h.value, 6) for h in history} == {round(t.objective_value, 6) for t in parent.trials.all()}


def test_it_runs_hyperband_rungs_resuming_the_previous_rung(world, enqueued, advances):
    job = create(world, strategy="hyperband", max_jobs=9, max_parallel_jobs=3,
                 static_hyperparameters={"num_models": 1, "early_stopping_patience": 50},
                 ranges={**RANGES, "epochs": {"type": "integer", "min": 1, "max": 9}},
                 objective={"metric": "validation:loss"})
    assert job.hyperband == {"parameter": "epochs", "min_resource": 1, "max_resource": 9, "eta": 3}
    assert "epochs" not in job.ranges
    job = drive(job)
    trials = list(job.trials.select_related("training_job", "resumed_from"))
    assert job.status == "completed"
    promoted = [t for t in trials if t.resumed_from is not None]
    assert promoted, "some configurations reach a later rung"
    for trial in promoted:
        assert trial.config == trial.resumed_from.config and trial.rung == trial.resumed_from.rung + 1
        assert trial.training_job.hyperparameters["epochs"] == trial.budget > trial.resumed_from.budget
        assert trial.training_job.resume_from_id == trial.resumed_from.training_job_id
        log = training_selectors.log_text(job=trial.training_job)
        assert f"Resuming from the model of job '{trial.resumed_from.training_job.name}' up to epochs" in log
        # Its epochs continue where the previous rung stopped: no epoch is trained twice.
        steps = sorted(MetricPoint.objects.filter(job=trial.training_job, name="train:loss")
                       .values_list("step", flat=True))
        assert steps == list(range(trial.resumed_from.budget + 1, trial.budget + 1))
    assert len({t.config for t in trials}) <= 9


def test_it_fails_the_job_when_its_creator_lost_access(world, enqueued, advances):
    job = create(world)
    world.team.memberships.filter(user=world.member).delete()
    assert services.tuning_job_advance(tuning_job_id=job.id) == "finished"
    job.refresh_from_db()
    assert job.status == "failed" and "Could not start a trial" in job.failure_reason


def test_it_reconciles_every_active_job(world, enqueued, advances):
    job = create(world)
    assert services.tuning_jobs_reconcile() == {"advanced": 1}
    assert job.trials.count() == 2
    assert TuningTrial.objects.filter(tuning_job=job).count() == 2


def test_it_finishes_when_a_discrete_space_is_used_up_before_max_jobs(world, enqueued, advances):
    job = drive(create(world, strategy="bayesian", max_jobs=5, max_parallel_jobs=1,
                       ranges={"optimizer": {"type": "categorical", "values": ["adam", "sgd"]}}))
    assert job.status == "completed" and job.trials.count() == 2
    assert sorted(t.parameters["optimizer"] for t in job.trials.all()) == ["adam", "sgd"]


def test_it_keeps_the_dataset_of_an_active_tuning_job(world, enqueued, advances):
    from studio.datasets.services import dataset_delete

    job = create(world)
    with pytest.raises(Conflict, match=f"used by pending tuning job '{job.name}'"):
        dataset_delete(user=world.member, dataset=job.dataset)
    services.tuning_job_stop(user=world.member, tuning_job=job)
    dataset_delete(user=world.member, dataset=job.dataset)
