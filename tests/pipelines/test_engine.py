"""The engine on fake step kinds: parallel steps, the cache, conditions, retries, stop, retry, lost workers."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from studio.core.errors import Conflict
from studio.pipelines import engine, events, services
from studio.pipelines.models import PipelineExecution, PipelineStep
from studio.pipelines.steps.base import Done, StepFailed
from tests.conftest import csv_bytes
from tests.pipelines.conftest import (
    advance,
    committed,
    drive,
    make_pipeline,
    run_steps,
    start,
    statuses,
    step,
)
from tests.training.factories import dataset_from_csv

pytestmark = pytest.mark.usefixtures("fake_kinds")


def emit(name: str, depends_on: list[str] | None = None, **arguments) -> dict:
    return {"name": name, "type": "emit", "depends_on": depends_on or [], "arguments": arguments}


# --- starting -----------------------------------------------------------------------------------------------


def test_it_starts_an_execution_with_a_snapshot_and_one_row_per_step(world, pipeline_tasks):
    pipeline = make_pipeline(world, [emit("a", value=1), emit("b", value={"ref": "steps.a.value"})],
                             parameters={"n": 1, "label": "x"})
    execution = start(world, pipeline, parameters={"n": 2.5})
    assert execution.number == 1 and execution.status == "pending"
    assert execution.parameters == {"n": 2.5, "label": "x"}
    assert execution.definition == pipeline.definition and execution.pipeline_version == 1
    assert [(s.name, s.position, s.depends_on) for s in execution.steps.all()] == [("a", 0, []), ("b", 1, ["a"])]
    assert pipeline_tasks.advances == [(str(execution.id), None)]
    assert start(world, pipeline).number == 2


def test_it_refuses_bad_parameters_naming_each(world):
    pipeline = make_pipeline(world, [emit("a")], parameters={"n": 1, "name": "x", "flag": False, "needed": None})
    with pytest.raises(ValidationError) as caught:
        start(world, pipeline, parameters={"n": "many", "nme": "y", "flag": 1, "name": 3})
    assert set(caught.value.message_dict) == {"parameters.n", "parameters.nme", "parameters.flag", "parameters.name",
                                              "parameters.needed"}
    assert "Unknown parameter 'nme'" in caught.value.message_dict["parameters.nme"][0]
    assert "Required" in caught.value.message_dict["parameters.needed"][0]
    with pytest.raises(ValidationError) as caught:
        start(world, pipeline, parameters=[1])
    assert list(caught.value.message_dict) == ["parameters"]
    execution = start(world, pipeline, parameters={"needed": "here", "n": 7, "name": None})
    assert execution.parameters == {"n": 7, "name": "x", "flag": False, "needed": "here"}


def test_it_lets_only_members_start_stop_and_retry(world):
    pipeline = make_pipeline(world, [emit("a")])
    with pytest.raises(PermissionDenied):
        start(world, pipeline, user=world.viewer)
    execution = start(world, pipeline)
    with pytest.raises(PermissionDenied):
        engine.pipeline_execution_stop(user=world.viewer, execution=execution)
    with pytest.raises(PermissionDenied):
        engine.pipeline_execution_retry(user=world.viewer, execution=execution)


# --- running ------------------------------------------------------------------------------------------------


def test_it_runs_independent_steps_in_parallel_and_a_join_after_both(world, pipeline_tasks, fake_kinds):
    pipeline = make_pipeline(world, [
        emit("left", value=1), emit("right", value=2),
        emit("join", value=[{"ref": "steps.left.value"}, {"ref": "steps.right.value"}]),
    ])
    execution = start(world, pipeline)
    assert advance(execution) == "launched 2"
    assert statuses(execution) == {"left": "running", "right": "running", "join": "pending"}
    assert len(pipeline_tasks.runs) == 2
    # One branch done: the join still waits for the other.
    step_id, attempt = pipeline_tasks.runs.pop(0)
    with committed():
        engine.pipeline_step_run(step_id=step_id, attempt=attempt)
    assert advance(execution) == "waiting"
    assert step(execution, "join").status == "pending"
    run_steps(pipeline_tasks)
    assert advance(execution) == "launched 1"
    run_steps(pipeline_tasks)
    advance(execution)
    execution.refresh_from_db()
    assert execution.status == "completed" and execution.ended_at is not None
    assert step(execution, "join").outputs["value"] == [1, 2]
    assert step(execution, "join").arguments == {"value": [1, 2]}
    assert fake_kinds.started() == ["left", "right", "join"]


def test_it_passes_parameters_and_metrics_through_refs(world, pipeline_tasks):
    pipeline = make_pipeline(world, [
        emit("train", value={"ref": "parameters.lr"}, metrics={"validation:accuracy": 0.91}),
        emit("report", value={"acc": {"ref": "steps.train.metrics.validation:accuracy"},
                              "lr": {"ref": "steps.train.number"}}),
    ], parameters={"lr": 0.1})
    execution = drive(start(world, pipeline, parameters={"lr": 0.5}), pipeline_tasks)
    assert execution.status == "completed"
    assert step(execution, "report").outputs["value"] == {"acc": 0.91, "lr": 0.5}


def test_it_fails_a_step_whose_ref_has_no_value_naming_it(world, pipeline_tasks):
    pipeline = make_pipeline(world, [
        emit("train", value=1), emit("report", value={"ref": "steps.train.metrics.validation:f1"}),
        emit("after", value={"ref": "steps.report.value"}),
    ])
    execution = drive(start(world, pipeline), pipeline_tasks)
    assert execution.status == "failed"
    report = step(execution, "report")
    assert report.status == "failed" and "no metric 'validation:f1'" in report.failure_reason
    assert execution.failure_reason.startswith("Step 'report' failed: Step 'train' has no metric")
    assert step(execution, "after").status == "skipped"
    assert step(execution, "after").status_message == "Skipped: upstream step 'report' failed"


def test_it_resolves_dataset_names_to_ids_within_the_project_only(world, pipeline_tasks):
    houses = dataset_from_csv(world.project, name="houses")
    secret = dataset_from_csv(world.other_project, name="secret")
    pipeline = make_pipeline(world, [emit("by_name", value=1, dataset={"ref": "parameters.data"}),
                                     emit("by_id", value=2, dataset=str(houses.id))],
                             parameters={"data": "houses"})
    execution = drive(start(world, pipeline), pipeline_tasks)
    assert step(execution, "by_name").arguments["dataset"] == str(houses.id)
    assert step(execution, "by_id").outputs["dataset"] == str(houses.id)
    # Another team's dataset id, or a name that does not exist, fails the step and names the argument.
    for value in (str(secret.id), "nowhere"):
        execution = drive(start(world, pipeline, parameters={"data": value}), pipeline_tasks)
        failed = step(execution, "by_name")
        assert failed.status == "failed"
        assert failed.failure_reason == f"dataset: No dataset '{value}' in this project."


def test_it_fails_the_execution_naming_the_step_and_runs_other_branches(world, pipeline_tasks, fake_kinds):
    pipeline = make_pipeline(world, [
        {"name": "explode", "type": "boom", "arguments": {"message": "out of cheese"}},
        emit("downstream", ["explode"], value=1), emit("further", ["downstream"], value=2),
        emit("independent", value=3),
    ])
    execution = drive(start(world, pipeline), pipeline_tasks)
    assert execution.status == "failed"
    assert execution.failure_reason == "Step 'explode' failed: out of cheese"
    assert execution.status_message == "Failed at step 'explode'"
    assert statuses(execution) == {"explode": "failed", "downstream": "skipped", "further": "skipped",
                                   "independent": "completed"}
    assert step(execution, "further").status_message == "Skipped: upstream step 'explode' failed"
    assert fake_kinds.count("start", "explode") == 1  # StepFailed is never retried


# --- conditions ---------------------------------------------------------------------------------------------


def condition_pipeline(world):
    return make_pipeline(world, [
        emit("train", metrics={"acc": 0.9}, value="model"),
        {"name": "good", "type": "check", "arguments": {"left": {"ref": "steps.train.metrics.acc"},
                                                         "right": {"ref": "parameters.threshold"},
                                                         "if_true": ["register"], "if_false": ["alarm"]}},
        emit("register", value="registered"), emit("deploy", ["register"], value="deployed"),
        {"name": "alarm", "type": "boom", "arguments": {"message": "accuracy too low"}},
    ], parameters={"threshold": 0.8})


def test_it_follows_the_true_branch_and_skips_the_other(world, pipeline_tasks, fake_kinds):
    execution = drive(start(world, condition_pipeline(world)), pipeline_tasks)
    assert execution.status == "completed"
    assert statuses(execution) == {"train": "completed", "good": "completed", "register": "completed",
                                   "deploy": "completed", "alarm": "skipped"}
    assert step(execution, "good").outputs == {"result": True}
    assert step(execution, "alarm").status_message == "Not chosen: condition 'good' was true"
    assert "alarm" not in fake_kinds.started()
    assert execution.status_message == "Completed: 4 ran, 1 skipped"


def test_it_follows_the_false_branch_and_skips_everything_downstream_of_the_other(world, pipeline_tasks):
    execution = drive(start(world, condition_pipeline(world), parameters={"threshold": 0.95}), pipeline_tasks)
    assert statuses(execution) == {"train": "completed", "good": "completed", "register": "skipped",
                                   "deploy": "skipped", "alarm": "failed"}
    assert step(execution, "deploy").status_message == "Skipped: upstream step 'register' was skipped"
    assert execution.status == "failed" and execution.failure_reason == "Step 'alarm' failed: accuracy too low"


# --- the cache ----------------------------------------------------------------------------------------------


def cached_pipeline(world, *, cache=None, data="houses"):
    spec = emit("prep", value=1, dataset={"ref": "parameters.data"})
    if cache is not None:
        spec["cache"] = cache
    return make_pipeline(world, [spec, emit("use", value={"ref": "steps.prep.dataset"})],
                         parameters={"data": data}, name=f"cached-{cache}")


def test_it_serves_a_second_run_with_the_same_inputs_from_the_cache(world, pipeline_tasks, fake_kinds):
    dataset_from_csv(world.project, name="houses")
    pipeline = cached_pipeline(world)
    first = drive(start(world, pipeline), pipeline_tasks)
    second = drive(start(world, pipeline), pipeline_tasks)
    assert first.status == second.status == "completed"
    assert statuses(second) == {"prep": "cached", "use": "cached"}
    original, reused = step(first, "prep"), step(second, "prep")
    assert reused.cached and reused.cached_from_id == original.id and reused.outputs == original.outputs
    assert reused.cache_key == original.cache_key != ""
    assert reused.attempts == 0 and f"#{first.number}" in reused.status_message
    assert fake_kinds.started() == ["prep", "use"]  # nothing ran the second time
    event = engine.step_event(reused)
    assert event["cached"] is True and event["cached_from"]["number"] == first.number


def test_it_hits_the_cache_for_the_same_content_under_another_dataset(world, pipeline_tasks, fake_kinds):
    content = csv_bytes([[1, 2], [3, 4]], ["a", "b"])
    dataset_from_csv(world.project, name="houses", content=content)
    dataset_from_csv(world.project, name="copy", content=content)
    dataset_from_csv(world.project, name="changed", content=csv_bytes([[1, 2], [3, 5]], ["a", "b"]))
    pipeline = cached_pipeline(world)
    drive(start(world, pipeline), pipeline_tasks)
    same = drive(start(world, pipeline, parameters={"data": "copy"}), pipeline_tasks)
    assert step(same, "prep").status == "cached"
    changed = drive(start(world, pipeline, parameters={"data": "changed"}), pipeline_tasks)
    assert step(changed, "prep").status == "completed"
    assert fake_kinds.count("start", "prep") == 2


def test_it_runs_again_when_the_cache_is_off_expired_or_its_outputs_are_gone(world, pipeline_tasks, fake_kinds):
    houses = dataset_from_csv(world.project, name="houses")
    off = cached_pipeline(world, cache={"enabled": False})
    drive(start(world, off), pipeline_tasks)
    again = drive(start(world, off), pipeline_tasks)
    assert step(again, "prep").status == "completed" and step(again, "prep").cache_key == ""

    short = cached_pipeline(world, cache={"expire_after_seconds": 60})
    first = drive(start(world, short), pipeline_tasks)
    PipelineStep.objects.filter(execution__pipeline=short).update(ended_at=timezone.now() - timedelta(seconds=61))
    assert step(drive(start(world, short), pipeline_tasks), "prep").status == "completed"

    fake_kinds.log.clear()
    PipelineExecution.objects.filter(pipeline=short).exclude(id=first.id).delete()
    houses.delete()  # the output dataset of the earlier run is gone: its outputs cannot be reused
    dataset_from_csv(world.project, name="houses")
    assert step(drive(start(world, short), pipeline_tasks), "prep").status == "completed"


def test_it_never_caches_a_step_type_with_side_effects(world, pipeline_tasks, fake_kinds):
    pipeline = make_pipeline(world, [{"name": "notify", "type": "side", "arguments": {"value": 1}}])
    drive(start(world, pipeline), pipeline_tasks)
    assert statuses(drive(start(world, pipeline), pipeline_tasks)) == {"notify": "completed"}
    assert fake_kinds.count("start", "notify") == 2


def test_it_does_not_serve_the_cache_across_projects(world, pipeline_tasks, fake_kinds):
    pipeline = make_pipeline(world, [emit("prep", value="same")])
    drive(start(world, pipeline), pipeline_tasks)
    other = services.pipeline_create(user=world.outsider, project=world.other_project, name="theirs",
                                     definition={"steps": [emit("prep", value="same")]})
    execution = drive(engine.pipeline_execution_start(user=world.outsider, pipeline=other), pipeline_tasks)
    assert statuses(execution) == {"prep": "completed"}


# --- retries ------------------------------------------------------------------------------------------------


def test_it_retries_a_transient_error_with_backoff_then_succeeds(world, pipeline_tasks, fake_kinds):
    pipeline = make_pipeline(world, [{**emit("flaky", value=1), "retry": {"max_attempts": 3, "backoff_seconds": 10,
                                                                          "backoff_rate": 3}}])
    fake_kinds.raise_next["flaky"] = [RuntimeError("disk hiccup"), RuntimeError("again")]
    execution = start(world, pipeline)
    advance(execution)
    before = timezone.now()
    assert run_steps(pipeline_tasks) == ["pending"]
    flaky = step(execution, "flaky")
    assert flaky.attempts == 1 and flaky.status == "pending"
    assert flaky.status_message == "Attempt 1 of 3 failed: RuntimeError: disk hiccup; retrying in 10 s"
    assert before + timedelta(seconds=9) < flaky.next_attempt_at < timezone.now() + timedelta(seconds=11)
    assert (str(execution.id), 10.0) in pipeline_tasks.advances
    # Not before its time.
    assert advance(execution) == "waiting" and not pipeline_tasks.runs
    PipelineStep.objects.filter(id=flaky.id).update(next_attempt_at=timezone.now())
    assert advance(execution) == "launched 1"
    run_steps(pipeline_tasks)
    flaky.refresh_from_db()
    assert flaky.attempts == 2 and "retrying in 30 s" in flaky.status_message  # 10 * 3**1
    execution = drive(execution, pipeline_tasks)
    flaky.refresh_from_db()
    assert execution.status == "completed" and flaky.status == "completed" and flaky.attempts == 3
    assert fake_kinds.count("start", "flaky") == 3


def test_it_fails_a_step_once_its_attempts_are_used_up(world, pipeline_tasks, fake_kinds):
    pipeline = make_pipeline(world, [{**emit("flaky", value=1), "retry": {"max_attempts": 2}}])
    fake_kinds.raise_next["flaky"] = [RuntimeError("one"), RuntimeError("two"), RuntimeError("three")]
    execution = drive(start(world, pipeline), pipeline_tasks)
    flaky = step(execution, "flaky")
    assert execution.status == "failed" and flaky.attempts == 2
    assert flaky.failure_reason == "RuntimeError: two (after 2 attempts)"
    assert fake_kinds.count("start", "flaky") == 2


def test_it_fails_at_once_on_errors_retrying_cannot_fix(world, pipeline_tasks, fake_kinds):
    pipeline = make_pipeline(world, [{**emit("strict", value=1), "retry": {"max_attempts": 5}}])
    fake_kinds.raise_next["strict"] = [ValidationError({"target": ["No column 'price'."]})]
    execution = drive(start(world, pipeline), pipeline_tasks)
    assert step(execution, "strict").failure_reason == "target: No column 'price'."
    assert step(execution, "strict").attempts == 1


# --- steps waiting on jobs ----------------------------------------------------------------------------------


def test_it_polls_a_waiting_step_until_its_job_is_done(world, pipeline_tasks, fake_kinds):
    pipeline = make_pipeline(world, [{"name": "train", "type": "wait", "arguments": {}},
                                     emit("after", value={"ref": "steps.train.model"})])
    execution = start(world, pipeline)
    advance(execution)
    assert run_steps(pipeline_tasks) == ["waiting"]
    train = step(execution, "train")
    assert train.status == "running" and train.job == {"kind": "training_job", "id": "fake-train-1"}
    pipeline_tasks.advances.clear()
    assert advance(execution) == "waiting"
    assert pipeline_tasks.advances == [(str(execution.id), 2.0)]  # polls again soon
    assert step(execution, "train").status_message == "job running"
    fake_kinds.poll_next["train"] = [Done({"model": "m-1"}, message="trained")]
    execution = drive(execution, pipeline_tasks)
    assert execution.status == "completed"
    assert step(execution, "train").outputs == {"model": "m-1"}
    assert step(execution, "after").outputs["value"] == "m-1"


def test_it_fails_a_step_whose_job_failed_and_retries_one_whose_poll_broke(world, pipeline_tasks, fake_kinds):
    pipeline = make_pipeline(world, [{"name": "train", "type": "wait", "arguments": {},
                                      "retry": {"max_attempts": 2, "backoff_seconds": 0}}])
    fake_kinds.poll_next["train"] = [RuntimeError("lost connection"), StepFailed("training job t failed: NaN")]
    execution = drive(start(world, pipeline), pipeline_tasks)
    train = step(execution, "train")
    assert train.status == "failed" and train.failure_reason == "training job t failed: NaN"
    assert train.attempts == 2
    # The broken attempt's job was stopped before a new one started.
    assert [op for op, _ in fake_kinds.log] == ["start", "poll", "stop", "start", "poll"]


# --- stop ---------------------------------------------------------------------------------------------------


def test_it_stops_an_execution_stopping_jobs_and_pending_steps(world, pipeline_tasks, fake_kinds):
    pipeline = make_pipeline(world, [{"name": "train", "type": "wait", "arguments": {}}, emit("quick", value=1),
                                     emit("after", ["train"], value=2)])
    execution = start(world, pipeline)
    advance(execution)
    run_steps(pipeline_tasks)
    with committed():
        stopped = engine.pipeline_execution_stop(user=world.member, execution=execution)
    assert stopped.status == "stopped" and stopped.ended_at is not None
    assert stopped.status_message == f"Stopped: requested by {world.member.username}"
    assert statuses(stopped) == {"train": "stopped", "quick": "completed", "after": "stopped"}
    assert ("stop", "train") in fake_kinds.log
    # Idempotent, and a finished execution cannot be stopped again into anything else.
    assert engine.pipeline_execution_stop(user=world.member, execution=stopped).status == "stopped"


def test_it_lets_a_step_on_a_worker_finish_before_the_execution_is_stopped(world, pipeline_tasks, fake_kinds,
                                                                           monkeypatch):
    pipeline = make_pipeline(world, [emit("busy", value=1), emit("next", ["busy"], value=2)])
    execution = start(world, pipeline)
    advance(execution)
    busy_run = pipeline_tasks.runs.pop(0)
    # A worker took the step; the stop comes while start() runs (the fake kind stops the execution from inside).
    def stop_meanwhile(ctx):
        fake_kinds.log.append(("start", ctx.step.name))
        stopping = engine.pipeline_execution_stop(user=world.member, execution=ctx.execution)
        assert stopping.status == "stopping" and statuses(stopping) == {"busy": "running", "next": "stopped"}
        return Done({"value": 1})

    from studio.pipelines import steps

    monkeypatch.setattr(steps.STEP_KINDS["emit"], "start", stop_meanwhile)
    with committed():
        assert engine.pipeline_step_run(step_id=busy_run[0], attempt=busy_run[1]) == "completed"
    advance(execution)
    execution.refresh_from_db()
    assert execution.status == "stopped" and statuses(execution) == {"busy": "completed", "next": "stopped"}
    assert fake_kinds.started() == ["busy"]


def test_it_stops_a_step_no_worker_started_yet_at_once(world, pipeline_tasks, fake_kinds):
    execution = start(world, make_pipeline(world, [emit("queued", value=1)]))
    advance(execution)
    late = pipeline_tasks.runs.pop(0)
    stopped = engine.pipeline_execution_stop(user=world.member, execution=execution)
    assert stopped.status == "stopped" and statuses(stopped) == {"queued": "stopped"}
    assert engine.pipeline_step_run(step_id=late[0], attempt=late[1]) == "idle"
    assert fake_kinds.started() == []


def test_it_stops_a_pending_execution_at_once(world, pipeline_tasks):
    execution = start(world, make_pipeline(world, [emit("a", value=1)]))
    stopped = engine.pipeline_execution_stop(user=world.owner, execution=execution)
    assert stopped.status == "stopped" and statuses(stopped) == {"a": "stopped"}
    assert advance(execution) == "idle"


# --- retry from the failed step -----------------------------------------------------------------------------


def test_it_retries_from_the_failed_step_keeping_completed_ones(world, pipeline_tasks, fake_kinds):
    pipeline = make_pipeline(world, [emit("prep", value=1), emit("train", ["prep"], value=2),
                                     emit("deploy", ["train"], value=3), emit("side", value=4)])
    fake_kinds.raise_next["train"] = [StepFailed("worker ran out of memory")]
    execution = drive(start(world, pipeline), pipeline_tasks)
    assert execution.status == "failed"
    assert statuses(execution) == {"prep": "completed", "train": "failed", "deploy": "skipped", "side": "completed"}
    prep_outputs = step(execution, "prep").outputs
    with pytest.raises(Conflict):
        engine.pipeline_execution_retry(user=world.member, execution=start(world, pipeline))
    with committed():
        retried = engine.pipeline_execution_retry(user=world.member, execution=execution)
    assert retried.status == "running" and retried.ended_at is None and retried.failure_reason == ""
    assert statuses(retried) == {"prep": "completed", "train": "pending", "deploy": "pending", "side": "completed"}
    assert step(retried, "train").attempts == 0
    done = drive(retried, pipeline_tasks)
    assert done.status == "completed" and done.number == execution.number
    assert step(done, "prep").outputs == prep_outputs
    assert fake_kinds.started() == ["prep", "side", "train", "train", "deploy"]


# --- lost workers and lost messages -------------------------------------------------------------------------


def worker_died(tasks) -> list[tuple[int, int]]:
    """A worker took the step messages sent so far, started the steps, and died: nothing will ever report."""
    taken, tasks.runs[:] = list(tasks.runs), []
    for step_id, _ in taken:
        PipelineStep.objects.filter(id=step_id).update(status_message=engine.RUNNING_MESSAGE,
                                                       executing_since=timezone.now())
    return taken


def test_it_retries_a_step_whose_worker_died_then_fails_it(world, pipeline_tasks, settings, fake_kinds):
    settings.STUDIO_PIPELINE_STEP_STALE_SECONDS = 60
    pipeline = make_pipeline(world, [{**emit("prep", value=1), "retry": {"max_attempts": 2, "backoff_seconds": 0}}])
    execution = start(world, pipeline)
    advance(execution)
    worker_died(pipeline_tasks)
    later = timezone.now() + timedelta(seconds=61)
    assert engine.pipeline_executions_reconcile(now=timezone.now())["lost"] == 0  # still fresh
    with committed():
        assert engine.pipeline_executions_reconcile(now=later)["lost"] == 1
    prep = step(execution, "prep")
    assert prep.status == "pending" and prep.attempts == 1
    assert prep.status_message.startswith("Attempt 1 of 2 failed: The worker running this step stopped responding")
    PipelineStep.objects.filter(id=prep.id).update(next_attempt_at=None)  # its backoff counted from `later`
    advance(execution)
    worker_died(pipeline_tasks)  # and the second worker dies too
    with committed():
        engine.pipeline_executions_reconcile(now=timezone.now() + timedelta(seconds=61))
    prep.refresh_from_db()
    assert prep.status == "failed" and prep.attempts == 2 and "stopped responding" in prep.failure_reason
    advance(execution)
    execution.refresh_from_db()
    assert execution.status == "failed" and fake_kinds.started() == []


def test_it_ignores_a_late_message_for_an_earlier_attempt(world, pipeline_tasks, settings, fake_kinds):
    pipeline = make_pipeline(world, [{**emit("prep", value=1), "retry": {"max_attempts": 2, "backoff_seconds": 0}}])
    execution = start(world, pipeline)
    advance(execution)
    first = worker_died(pipeline_tasks)[0]
    with committed():
        engine.pipeline_executions_reconcile(now=timezone.now() + timedelta(seconds=121))
    PipelineStep.objects.filter(execution=execution).update(next_attempt_at=None)
    advance(execution)
    second = pipeline_tasks.runs.pop(0)
    assert (first[1], second[1]) == (1, 2)
    assert engine.pipeline_step_run(step_id=first[0], attempt=first[1]) == "idle"
    with committed():
        assert engine.pipeline_step_run(step_id=second[0], attempt=second[1]) == "completed"
    assert engine.pipeline_step_run(step_id=second[0], attempt=second[1]) == "idle"  # a duplicate delivery
    assert fake_kinds.started() == ["prep"]


def test_it_sends_a_step_no_worker_took_again_without_using_an_attempt(world, pipeline_tasks, settings, fake_kinds):
    settings.STUDIO_PENDING_REQUEUE_SECONDS = 300
    execution = start(world, make_pipeline(world, [emit("prep", value=1)]))
    advance(execution)
    queued = pipeline_tasks.runs.pop(0)  # waiting behind long jobs, or lost on the way
    # Queued longer than a lost worker takes to notice, but not yet for the resend: nothing happens.
    assert engine.pipeline_executions_reconcile(now=timezone.now() + timedelta(seconds=200))["requeued"] == 0
    counts = engine.pipeline_executions_reconcile(now=timezone.now() + timedelta(seconds=301))
    assert counts["lost"] == 0 and counts["requeued"] == 1
    assert pipeline_tasks.runs == [queued]  # the same attempt again
    assert step(execution, "prep").status == "running" and step(execution, "prep").attempts == 1
    # Both deliveries arrive: one runs the step, the other finds it started.
    with committed():
        assert engine.pipeline_step_run(step_id=queued[0], attempt=queued[1]) == "completed"
    assert engine.pipeline_step_run(step_id=queued[0], attempt=queued[1]) == "idle"
    assert fake_kinds.started() == ["prep"]


def test_it_never_declares_a_job_step_lost_and_re_advances_forgotten_executions(world, pipeline_tasks):
    pipeline = make_pipeline(world, [{"name": "train", "type": "wait", "arguments": {}}])
    execution = start(world, pipeline)
    advance(execution)
    run_steps(pipeline_tasks)
    pipeline_tasks.advances.clear()
    counts = engine.pipeline_executions_reconcile(now=timezone.now() + timedelta(hours=1))
    assert counts == {"lost": 0, "requeued": 0, "advanced": 1}
    assert step(execution, "train").status == "running"
    assert pipeline_tasks.advances == [(str(execution.id), None)]


def test_it_answers_busy_when_another_advance_holds_the_execution(world, pipeline_tasks, monkeypatch):
    execution = start(world, make_pipeline(world, [emit("a", value=1)]))
    real_filter = PipelineExecution.objects.filter

    def racing(*args, **kwargs):
        if "advance_version" in kwargs:  # another advance bumped it between our read and our write
            PipelineExecution.objects.all().update(advance_version=99)
        return real_filter(*args, **kwargs)

    monkeypatch.setattr(PipelineExecution.objects, "filter", racing)
    assert advance(execution) == "busy"
    monkeypatch.undo()
    assert step(execution, "a").status == "pending" and (str(execution.id), 1) in pipeline_tasks.advances


# --- events -------------------------------------------------------------------------------------------------


def test_it_publishes_step_and_execution_events_with_links(world, pipeline_tasks, monkeypatch):
    sent: list[tuple[str, object, list]] = []
    monkeypatch.setattr(events, "publish", lambda *, kind, object_id, events: sent.append((kind, object_id, events)))
    houses = dataset_from_csv(world.project, name="houses")
    pipeline = make_pipeline(world, [emit("prep", value=1, dataset=str(houses.id))])
    execution = drive(start(world, pipeline), pipeline_tasks)
    ours = [event for kind, oid, events in sent if kind == "pipeline-execution" for event in events]
    assert {e["status"] for e in ours if e["type"] == "step"} >= {"pending", "running", "completed"}
    assert ours[-1] == {**engine.execution_event(execution)}
    assert ours[-1]["status"] == "completed"
    assert any(kind == "project" and events[0]["object"] == "pipeline-execution" for kind, _, events in sent)
    event = engine.step_event(step(execution, "prep"))
    assert event["links"] == [{"label": "Dataset", "url": f"/projects/{world.project.id}/data/{houses.id}/"}]
    assert event["duration"] is not None and event["attempts"] == 1 and event["outputs"]["value"] == 1


def test_it_links_jobs_models_and_endpoints(world):
    job, model, train = (str(uuid.uuid4()) for _ in range(3))
    row = PipelineStep(name="x", type="training", job={"kind": "training_job", "id": job},
                       outputs={"model": model, "training_job": job, "train": train, "metrics": {}})
    row.execution = PipelineExecution(project=world.project)
    links = engine.step_links(row, world.project.id)
    assert [link["label"] for link in links] == ["Training job", "Model", "Dataset (train)"]
    assert links[0]["url"] == f"/projects/{world.project.id}/training/{job}/"
    assert links[1]["url"] == f"/projects/{world.project.id}/models/{model}/"


def test_it_wakes_an_execution_when_its_training_job_finishes(world, pipeline_tasks):
    pipeline = make_pipeline(world, [{"name": "train", "type": "wait", "arguments": {}}])
    execution = start(world, pipeline)
    advance(execution)
    run_steps(pipeline_tasks)
    pipeline_tasks.advances.clear()
    with committed():
        assert engine.pipeline_steps_job_changed(kind="training_job", job_id="fake-train-1") == 1
        assert engine.pipeline_steps_job_changed(kind="training_job", job_id="another") == 0
    assert pipeline_tasks.advances == [(str(execution.id), None)]


# --- the real step types ------------------------------------------------------------------------------------


def real_pipeline(world):
    return services.pipeline_create(user=world.member, project=world.project, name="real", definition={
        "parameters": {"data": "people", "threshold": 0.8},
        "steps": [
            {"name": "split", "type": "processing", "arguments": {
                "operation": "split", "dataset": {"ref": "parameters.data"},
                "fractions": {"train": 0.6, "validation": 0.2, "test": 0.2}, "seed": 1}},
            {"name": "train", "type": "training", "arguments": {
                "algorithm": "linear-learner", "dataset": {"ref": "steps.split.train"}, "target": "churned",
                "validation_dataset": {"ref": "steps.split.validation"}, "hyperparameters": {"epochs": 3}}},
            {"name": "good", "type": "condition", "arguments": {
                "left": {"ref": "steps.train.metrics.validation:accuracy"}, "op": ">=",
                "right": {"ref": "parameters.threshold"}, "if_true": ["done"], "if_false": ["stop"]}},
            {"name": "done", "type": "processing", "arguments": {
                "operation": "select_columns", "dataset": {"ref": "steps.split.test"}, "columns": ["f1"]}},
            {"name": "stop", "type": "fail", "arguments": {"message": "not good enough"}},
        ],
    })


def test_it_runs_split_train_and_a_condition_with_the_real_step_types(world, pipeline_tasks):
    from tests.conftest import classification_csv

    dataset_from_csv(world.project, name="people", content=classification_csv(n=300), target="churned")
    pipeline = real_pipeline(world)
    first = drive(start(world, pipeline), pipeline_tasks)
    assert first.status == "completed", first.failure_reason
    assert statuses(first) == {"split": "completed", "train": "completed", "good": "completed", "done": "completed",
                               "stop": "skipped"}
    split, train = step(first, "split"), step(first, "train")
    assert set(split.outputs) == {"dataset", "train", "validation", "test"}
    assert train.outputs["metrics"]["validation:accuracy"] > 0.8 and train.job["kind"] == "training_job"
    assert train.arguments["dataset"] == split.outputs["train"]
    links = engine.step_event(train)["links"]
    assert [link["label"] for link in links] == ["Training job", "Model"]

    # A second run with the same inputs is served from the cache; a high threshold takes the fail branch.
    second = drive(start(world, pipeline, parameters={"threshold": 1.1}), pipeline_tasks)
    assert statuses(second) == {"split": "cached", "train": "cached", "good": "completed", "done": "skipped",
                                "stop": "failed"}
    assert step(second, "train").outputs == train.outputs
    assert second.failure_reason == "Step 'stop' failed: not good enough"
