"""Pipeline test helpers: Celery messages are recorded instead of sent, and `drive` plays the workers.

Every test here (except `worker` ones, which run real workers) gets `pipeline_tasks`: advances and step
runs the engine sends are collected, and `drive(execution)` runs them in this process until the
execution finishes, as workers would. Fake step kinds (`fake_kinds`) keep most engine tests fast and
deterministic; each records its calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from django.test import TestCase

from studio.pipelines import engine, services
from studio.pipelines import steps as step_registry
from studio.pipelines.models import EXECUTION_FINAL_STATUSES, PipelineExecution, PipelineStep, StepStatus
from studio.pipelines.steps.base import Arg, Done, StepContext, StepFailed, StepKind, Waiting
from studio.pipelines.tasks import pipeline_execution_advance_task, pipeline_step_run_task


@dataclass
class Tasks:
    advances: list[tuple[str, float | None]] = field(default_factory=list)
    runs: list[tuple[int, int | None]] = field(default_factory=list)
    training: list[str] = field(default_factory=list)
    tuning: list[str] = field(default_factory=list)


@pytest.fixture(autouse=True)
def pipeline_tasks(request, monkeypatch) -> Tasks | None:
    """What the engine hands to the broker, recorded; nothing is sent (real workers in `worker` tests)."""
    if request.node.get_closest_marker("worker"):
        return None
    from studio.training.tasks import training_job_run_task
    from studio.tuning.tasks import tuning_job_advance_task

    tasks = Tasks()

    def advance(args=None, countdown=None, **kwargs):
        tasks.advances.append((args[0], countdown))

    def run(args=None, **kwargs):
        tasks.runs.append((args[0], args[1] if len(args) > 1 else None))

    monkeypatch.setattr(pipeline_execution_advance_task, "apply_async", advance)
    monkeypatch.setattr(pipeline_step_run_task, "apply_async", run)
    monkeypatch.setattr(training_job_run_task, "apply_async", lambda args=None, **kw: tasks.training.append(args[0]))
    monkeypatch.setattr(tuning_job_advance_task, "apply_async", lambda args=None, **kw: tasks.tuning.append(args[0]))
    return tasks


def committed():
    """Run on_commit callbacks at the end of the block, as a real commit would (tests run inside a transaction)."""
    return TestCase.captureOnCommitCallbacks(execute=True)


def advance(execution: PipelineExecution) -> str:
    with committed():
        return engine.pipeline_execution_advance(execution_id=execution.id)


def run_steps(tasks: Tasks) -> list[str]:
    """Run every step task sent so far, as a worker would (in the order sent)."""
    outcomes = []
    while tasks.runs:
        step_id, attempt = tasks.runs.pop(0)
        with committed():
            outcomes.append(engine.pipeline_step_run(step_id=step_id, attempt=attempt))
    return outcomes


def run_jobs(tasks: Tasks) -> None:
    """Run the training jobs and tuning advances steps started (real training, in this process)."""
    from studio.training.models import JobStatus, TrainingJob
    from studio.tuning.services import tuning_job_advance
    from tests.training.factories import run_job

    while tasks.training or tasks.tuning:
        while tasks.training:
            job = TrainingJob.objects.get(id=tasks.training.pop(0))
            if job.status == JobStatus.PENDING:
                with committed():
                    run_job(job)
        while tasks.tuning:
            with committed():
                tuning_job_advance(tuning_job_id=tasks.tuning.pop(0))


def drive(execution: PipelineExecution, tasks: Tasks, *, max_rounds: int = 100, on_round=None,
          jobs: bool = True) -> PipelineExecution:
    """Advance the execution and run what it dispatches until it finishes (backoff waits are skipped)."""
    for _ in range(max_rounds):
        PipelineStep.objects.filter(execution=execution, status=StepStatus.PENDING,
                                    next_attempt_at__isnull=False).update(next_attempt_at=None)
        advance(execution)
        tasks.advances.clear()
        if on_round is not None:
            on_round(execution)
        run_steps(tasks)
        if jobs:
            run_jobs(tasks)
        execution.refresh_from_db()
        if execution.status in EXECUTION_FINAL_STATUSES:
            return execution
    raise AssertionError(f"execution {execution} did not finish: {execution.status} "
                         f"{[(s.name, s.status) for s in execution.steps.all()]}")


def statuses(execution: PipelineExecution) -> dict[str, str]:
    return dict(execution.steps.order_by("position").values_list("name", "status"))


def step(execution: PipelineExecution, name: str) -> PipelineStep:
    return execution.steps.get(name=name)


# --- fake step kinds ---------------------------------------------------------------------------------


@dataclass
class Calls:
    """What the fake kinds were asked to do, in order: ("start"|"poll"|"stop", step name)."""

    log: list[tuple[str, str]] = field(default_factory=list)
    # Per step name: exceptions the next starts raise, one each (then they succeed).
    raise_next: dict[str, list[Exception]] = field(default_factory=dict)
    # Per step name: what polls of a `wait` step return next (default: Waiting).
    poll_next: dict[str, list[Any]] = field(default_factory=dict)

    def started(self, name: str | None = None) -> list[str]:
        return [n for op, n in self.log if op == "start" and (name is None or n == name)]

    def count(self, op: str, name: str) -> int:
        return sum(1 for o, n in self.log if o == op and n == name)


class _Fake(StepKind):
    calls: Calls

    def _log(self, op: str, ctx: StepContext) -> None:
        self.calls.log.append((op, ctx.step.name))
        pending = self.calls.raise_next.get(ctx.step.name)
        if op == "start" and pending:
            raise pending.pop(0)


class EmitKind(_Fake):
    """Gives back its `value` (and metrics, and a dataset id when it is given one): a cacheable pure step."""

    type = "emit"
    title = "Emit"
    arguments = {"value": Arg("any"), "metrics": Arg("object"), "dataset": Arg("dataset"),
                 "label": Arg("string", choices=("a", "b"))}
    outputs = {"value": "any", "metrics": "object", "dataset": "dataset", "number": "number"}
    cacheable = True

    def start(self, ctx: StepContext) -> Done:
        self._log("start", ctx)
        out: dict[str, Any] = {"value": ctx.arguments.get("value"), "metrics": ctx.arguments.get("metrics") or {}}
        if isinstance(ctx.arguments.get("value"), int | float):
            out["number"] = ctx.arguments["value"]
        if ctx.arguments.get("dataset"):
            out["dataset"] = ctx.arguments["dataset"]
        return Done(out, message=f"emitted {out['value']!r}")


class SideKind(EmitKind):
    """Like emit but with side effects: never cached."""

    type = "side"
    cacheable = False


class BoomKind(_Fake):
    type = "boom"
    title = "Boom"
    arguments = {"message": Arg("string", required=True)}

    def start(self, ctx: StepContext) -> Done:
        self._log("start", ctx)
        raise StepFailed(ctx.arguments["message"])


class WaitKind(_Fake):
    """Starts a pretend job and waits on it; polls return what `calls.poll_next[name]` holds (default Waiting)."""

    type = "wait"
    title = "Wait"
    arguments = {"value": Arg("any")}
    outputs = {"value": "any", "model": "model"}
    cacheable = True

    def start(self, ctx: StepContext) -> Waiting:
        self._log("start", ctx)
        return Waiting({"kind": "training_job", "id": f"fake-{ctx.step.name}-{ctx.step.attempts}"},
                       message="job pending")

    def poll(self, ctx: StepContext):
        self.calls.log.append(("poll", ctx.step.name))
        queue = self.calls.poll_next.get(ctx.step.name)
        result = queue.pop(0) if queue else Waiting(dict(ctx.step.job), message="job running")
        if isinstance(result, Exception):
            raise result
        return result

    def stop(self, ctx: StepContext) -> None:
        self.calls.log.append(("stop", ctx.step.name))


class CheckKind(_Fake):
    """A condition: left >= right (or == with op), choosing if_true / if_false."""

    type = "check"
    title = "Check"
    arguments = {"left": Arg("any", required=True), "right": Arg("any", required=True),
                 "op": Arg("string", choices=(">=", "==")), "if_true": Arg("steps"), "if_false": Arg("steps")}
    outputs = {"result": "boolean"}

    def start(self, ctx: StepContext) -> Done:
        self._log("start", ctx)
        left, right = ctx.arguments["left"], ctx.arguments["right"]
        result = left == right if ctx.arguments.get("op") == "==" else left >= right
        return Done({"result": bool(result)})


FAKE_KINDS = (EmitKind, SideKind, BoomKind, WaitKind, CheckKind)


@pytest.fixture
def fake_kinds(monkeypatch) -> Calls:
    """The fake kinds registered (next to the real ones, when they exist); returns their shared call log."""
    calls = Calls()
    kinds = dict(getattr(step_registry, "STEP_KINDS", {}))
    for cls in FAKE_KINDS:
        kind = cls()
        kind.calls = calls
        kinds[cls.type] = kind
    monkeypatch.setattr(step_registry, "STEP_KINDS", kinds, raising=False)
    return calls


def make_pipeline(world, steps: list[dict[str, Any]], *, parameters: dict[str, Any] | None = None,
                  name: str = "flow", user=None):
    return services.pipeline_create(user=user or world.member, project=world.project, name=name,
                                    definition={"parameters": parameters or {}, "steps": steps})


def start(world, pipeline, *, user=None, **kwargs) -> PipelineExecution:
    with committed():
        return engine.pipeline_execution_start(user=user or world.member, pipeline=pipeline, **kwargs)
