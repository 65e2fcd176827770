"""Running pipelines: start an execution, advance it step by step, run one step, stop, retry, reconcile.

The step rows are the truth. :func:`pipeline_execution_advance` reads them and decides everything that
can happen now (skip branches, reuse cached outputs, claim ready steps and send them to workers, poll
steps waiting on jobs, finish the execution); it is guarded by a compare-and-swap on
``advance_version``, so concurrent advances never both claim a step, and it runs again whenever
something changes (a step's task ends, a job's status changes, a poll interval passes, the beat
reconciler finds an execution nobody advanced), so a lost message only delays it.

:func:`pipeline_step_run` is a worker's task body for one claimed step: it calls the step type's
``start`` and records the outcome (done, waiting on a job, failed, or retried with backoff) under the
step's attempt number, so a late or duplicated message changes nothing.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Max, Q
from django.http import Http404
from django.utils import timezone

from studio.accounts.models import Role
from studio.accounts.permissions import require_role
from studio.accounts.services import audit
from studio.core.errors import Conflict
from studio.pipelines.definition import (
    BRANCH_ARGUMENTS,
    CACHE_DEFAULTS,
    RETRY_DEFAULTS,
    branch_targets,
    dependencies,
    literal_fits,
    step_kinds,
    topological_order,
    value_kind,
)

# The live events live in events.py; execution_event and step_event stay reachable here (the engine's API).
from studio.pipelines.events import LIVE_KIND as LIVE_KIND
from studio.pipelines.events import execution_event as execution_event
from studio.pipelines.events import publish_changes, publish_on_commit
from studio.pipelines.events import step_event as step_event
from studio.pipelines.events import step_links as step_links
from studio.pipelines.inputs import arguments_resolve, cache_hit, cache_key
from studio.pipelines.models import (
    STEP_DONE_STATUSES,
    ExecutionStatus,
    Pipeline,
    PipelineExecution,
    PipelineStep,
    StepStatus,
    TriggerKind,
)
from studio.pipelines.steps.base import Done, StepContext, StepFailed, Waiting

if TYPE_CHECKING:
    from studio.accounts.models import User
    from studio.pipelines.steps.base import StepKind

logger = logging.getLogger(__name__)

ACTIVE_STATUSES = (ExecutionStatus.PENDING, ExecutionStatus.RUNNING, ExecutionStatus.STOPPING)
# An active execution nobody advanced for this long lost its follow-up message: the reconciler re-sends it.
ADVANCE_STALE_SECONDS = 30
MAX_POLL_SECONDS = 30.0
# What a claimed step shows until a worker starts it; the task sets executing_since (and RUNNING_MESSAGE) in one
# conditional update, so two deliveries of one attempt never both run.
QUEUED_MESSAGE = "Waiting for a worker"
RUNNING_MESSAGE = "Running"
# Errors retrying cannot fix, whoever raised them: the step fails at once.
_PERMANENT = (StepFailed, ValidationError, PermissionDenied, Http404, Conflict)
# The database going away is the task's to retry (Celery autoretry), not the step's.
_DATABASE_ERRORS = (OperationalError, InterfaceError)


def _poll_seconds() -> float:
    return float(getattr(settings, "STUDIO_PIPELINE_POLL_SECONDS", 2))


def _stale_seconds() -> float:
    return float(getattr(settings, "STUDIO_PIPELINE_STEP_STALE_SECONDS", 120))


# --- enqueueing ----------------------------------------------------------------------------------


def pipeline_execution_enqueue(*, execution_id: uuid.UUID | str, countdown: float | None = None) -> None:
    """Ask a worker to advance the execution; a broker outage is left to the beat reconciler."""
    from studio.pipelines.tasks import pipeline_execution_advance_task

    try:
        pipeline_execution_advance_task.apply_async(args=[str(execution_id)], countdown=countdown, queue="default")
    except Exception:
        logger.warning("could not enqueue pipeline execution %s; the reconciler will advance it", execution_id,
                       exc_info=True)


def _step_dispatch(*, step_id: int, attempt: int) -> None:
    from studio.pipelines.tasks import pipeline_step_run_task

    try:
        pipeline_step_run_task.apply_async(args=[step_id, attempt], queue="default")
    except Exception:
        # The step stays queued; the reconciler sends it again (STUDIO_PENDING_REQUEUE_SECONDS).
        logger.warning("could not send pipeline step %s to a worker", step_id, exc_info=True)


# --- who a step acts for (the automation loop guard) ------------------------------------------------


def _acting_for(execution_id):
    """Objects a step makes are marked as this execution's, so triggers do not fire a pipeline on itself."""
    try:
        from studio.pipelines.automation import acting_for
    except ImportError:  # automation not installed: nothing to mark
        return contextlib.nullcontext()
    return acting_for(execution_id)


# --- starting ------------------------------------------------------------------------------------


def parameters_resolve(*, definition: dict[str, Any], parameters: Any) -> dict[str, Any]:
    """The run's values over the definition's defaults; ValidationError "parameters.<name>" for bad ones.

    A value takes the kind of its parameter's default; a parameter with no default (null) takes any
    number, string or boolean and must be given.
    """
    defaults = definition.get("parameters") or {}
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, dict):
        raise ValidationError({"parameters": ['parameters must be an object {"<name>": value}.']})
    errors: dict[str, list[str]] = {}
    merged = dict(defaults)
    for name, value in parameters.items():
        if name not in defaults:
            known = ", ".join(sorted(defaults)) or "none"
            errors[f"parameters.{name}"] = [f"Unknown parameter '{name}' (this pipeline's parameters: {known})."]
            continue
        if value is None:
            continue  # null keeps the default
        default = defaults[name]
        wanted = value_kind(default) if default is not None else None
        if wanted is not None and not literal_fits(value, wanted):
            errors[f"parameters.{name}"] = [f"Must be a {wanted} like its default {default!r} "
                                            f"(got {value_kind(value)} {value!r:.60})."]
            continue
        if wanted is None and not (literal_fits(value, "number") or isinstance(value, str | bool)):
            errors[f"parameters.{name}"] = [f"Must be a number, a string or true/false (got {value_kind(value)})."]
            continue
        merged[name] = value
    for name, value in merged.items():
        if value is None and f"parameters.{name}" not in errors:
            errors[f"parameters.{name}"] = ["Required: this parameter has no default, give it a value."]
    if errors:
        raise ValidationError(errors)
    return merged


def pipeline_execution_start(*, user: User, pipeline: Pipeline, parameters: Any = None, trigger: str = "manual",
                             trigger_detail: dict[str, Any] | None = None) -> PipelineExecution:
    """Start a run (member+): parameters checked, the definition snapshotted, one row per step, advanced
    by a worker once committed."""
    require_role(user=user, team=pipeline.project.team, role=Role.MEMBER)
    if trigger not in TriggerKind.values:
        raise ValidationError({"trigger": [f"Unknown trigger '{trigger}'."]})
    definition = pipeline.definition or {}
    values = parameters_resolve(definition=definition, parameters=parameters)
    deps = dependencies(definition)
    try:
        topological_order(definition)
    except ValueError as exc:  # saved definitions are validated; this guards rows edited by hand
        raise ValidationError({"definition.steps": [str(exc)]}) from None
    with transaction.atomic():
        # Numbers count per pipeline: lock the pipeline row so two starts never take the same one.
        locked = Pipeline.objects.select_for_update().get(id=pipeline.id)
        number = (PipelineExecution.objects.filter(pipeline=locked).aggregate(n=Max("number"))["n"] or 0) + 1
        execution = PipelineExecution.objects.create(
            pipeline=locked, project_id=locked.project_id, number=number, definition=definition,
            pipeline_version=locked.version, parameters=values, trigger=trigger,
            trigger_detail=trigger_detail or {}, created_by=user, status_message=QUEUED_MESSAGE,
        )
        PipelineStep.objects.bulk_create([
            PipelineStep(execution=execution, name=spec["name"], type=spec["type"], position=position,
                         depends_on=deps.get(spec["name"], []))
            for position, spec in enumerate(definition.get("steps") or [])
        ])
        audit(actor=user, verb="started pipeline execution", project=locked.project, target=str(execution),
              data={"pipeline": str(locked.id), "execution": str(execution.id), "trigger": trigger})
        step_ids = list(execution.steps.values_list("id", flat=True))
        transaction.on_commit(lambda: pipeline_execution_enqueue(execution_id=execution.id))
        publish_on_commit(execution.id, step_ids, status_changed=True)
    return execution


# --- step row transitions ----------------------------------------------------------------------------


def _transition(step: PipelineStep, from_status: str, *, match: dict[str, Any] | None = None,
                **fields: Any) -> bool:
    """Move one step from ``from_status`` if it is still there at the same attempt (and ``match``)."""
    won = PipelineStep.objects.filter(id=step.id, status=from_status, attempts=step.attempts,
                                      **(match or {})).update(**fields)
    if won:
        for name, value in fields.items():
            if not hasattr(value, "resolve_expression"):
                setattr(step, name, value)
    return bool(won)


def _spec(execution: PipelineExecution, name: str) -> dict[str, Any]:
    for spec in execution.definition.get("steps") or []:
        if spec.get("name") == name:
            return spec
    return {}


def _retry_policy(spec: dict[str, Any]) -> dict[str, Any]:
    return {**RETRY_DEFAULTS, **(spec.get("retry") or {})}


def _message_of(exc: BaseException) -> str:
    if isinstance(exc, StepFailed):
        return exc.message
    if isinstance(exc, ValidationError):
        if hasattr(exc, "error_dict"):
            return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
        return " ".join(exc.messages)
    return str(exc) or type(exc).__name__


def _fail(step: PipelineStep, reason: str, *, from_status: str, now: datetime,
          match: dict[str, Any] | None = None) -> bool:
    return _transition(step, from_status, match=match, status=StepStatus.FAILED, failure_reason=reason,
                       status_message="Failed", ended_at=now, heartbeat_at=None, next_attempt_at=None)


def _retry_or_fail(step: PipelineStep, error: str, *, execution: PipelineExecution, now: datetime,
                   match: dict[str, Any] | None = None) -> str:
    """A transient failure of a running step: back to pending after its backoff, or failed when its attempts
    are used up. Returns the new status ("" if the step had moved on meanwhile)."""
    policy = _retry_policy(_spec(execution, step.name))
    max_attempts = int(policy["max_attempts"])
    if step.attempts < max_attempts:
        delay = float(policy["backoff_seconds"]) * float(policy["backoff_rate"]) ** max(0, step.attempts - 1)
        message = (f"Attempt {step.attempts} of {max_attempts} failed: {error}; retrying in {delay:g} s")[:500]
        if _transition(step, StepStatus.RUNNING, match=match, status=StepStatus.PENDING,
                       next_attempt_at=now + timedelta(seconds=delay), status_message=message, job={},
                       heartbeat_at=None):
            execution_id = execution.id
            transaction.on_commit(lambda: pipeline_execution_enqueue(execution_id=execution_id, countdown=delay))
            return StepStatus.PENDING
        return ""
    reason = error if max_attempts == 1 else f"{error} (after {step.attempts} attempts)"
    return StepStatus.FAILED if _fail(step, reason, from_status=StepStatus.RUNNING, now=now, match=match) else ""


def _context(step: PipelineStep, execution: PipelineExecution) -> StepContext:
    return StepContext(step=step, execution=execution, project=execution.project, user=execution.created_by,
                       arguments=step.arguments)


# --- advancing an execution ------------------------------------------------------------------------


class _Advance:
    """One pass over an execution's steps, holding its advance lock (the advance_version bump)."""

    def __init__(self, execution: PipelineExecution, now: datetime) -> None:
        self.execution = execution
        self.now = now
        rows = list(PipelineStep.objects.filter(execution=execution).order_by("position"))
        self.steps = {step.name: step for step in rows}
        self.order = self._order(rows)
        self.changed: dict[int, PipelineStep] = {}
        self.dispatch: list[tuple[int, int]] = []
        self.wait_until: datetime | None = None

    def _order(self, rows: list[PipelineStep]) -> list[PipelineStep]:
        try:
            names = topological_order(self.execution.definition)
        except ValueError:
            names = []
        ordered = [self.steps[name] for name in names if name in self.steps]
        return ordered + [step for step in rows if step not in ordered]

    def _changed(self, step: PipelineStep) -> None:
        self.changed[step.id] = step

    def _deps(self, step: PipelineStep) -> list[PipelineStep]:
        return [self.steps[name] for name in step.depends_on or [] if name in self.steps]

    # skipping

    def skip_not_chosen(self) -> bool:
        moved = False
        for step in self.order:
            if step.status not in STEP_DONE_STATUSES or "result" not in (step.outputs or {}):
                continue
            branches = branch_targets(_spec(self.execution, step.name))
            if not any(name in branches for name in BRANCH_ARGUMENTS):
                continue
            result = bool(step.outputs.get("result"))
            for name in branches.get("if_false" if result else "if_true", []):
                target = self.steps.get(name)
                if target is not None and target.status == StepStatus.PENDING and _transition(
                        target, StepStatus.PENDING, status=StepStatus.SKIPPED, ended_at=self.now,
                        status_message=f"Not chosen: condition '{step.name}' was {str(result).lower()}"):
                    self._changed(target)
                    moved = True
        for step in self.order:
            if step.status != StepStatus.PENDING:
                continue
            skipped = next((d for d in self._deps(step) if d.status == StepStatus.SKIPPED), None)
            if skipped is not None and _transition(step, StepStatus.PENDING, status=StepStatus.SKIPPED,
                                                   ended_at=self.now,
                                                   status_message=f"Skipped: upstream step '{skipped.name}' "
                                                                  "was skipped"):
                self._changed(step)
                moved = True
        return moved

    # polling

    def poll_jobs(self) -> None:
        for step in self.order:
            if step.status != StepStatus.RUNNING or not step.job:
                continue
            kind = step_kinds().get(step.type)
            if kind is None:
                if _fail(step, f"Unknown step type '{step.type}'.", from_status=StepStatus.RUNNING, now=self.now):
                    self._changed(step)
                continue
            try:
                with transaction.atomic(), _acting_for(self.execution.id):
                    result = kind.poll(_context(step, self.execution))
            except _DATABASE_ERRORS:
                raise
            except _PERMANENT as exc:
                if _fail(step, _message_of(exc), from_status=StepStatus.RUNNING, now=self.now):
                    self._changed(step)
                continue
            except Exception as exc:
                logger.warning("polling pipeline step %s failed", step.id, exc_info=True)
                with contextlib.suppress(Exception), transaction.atomic():
                    kind.stop(_context(step, self.execution))  # a new attempt starts a new job
                if _retry_or_fail(step, f"{type(exc).__name__}: {exc}", execution=self.execution, now=self.now):
                    self._changed(step)
                continue
            if self._record(step, result):
                self._changed(step)

    def _record(self, step: PipelineStep, result: Done | Waiting) -> bool:
        return record_result(step, result, now=self.now)

    # starting

    def start_ready(self) -> bool:
        moved = False
        for step in self.order:
            if step.status != StepStatus.PENDING:
                continue
            if any(dep.status not in STEP_DONE_STATUSES for dep in self._deps(step)):
                continue
            if step.next_attempt_at is not None and step.next_attempt_at > self.now:
                if self.wait_until is None or step.next_attempt_at < self.wait_until:
                    self.wait_until = step.next_attempt_at
                continue
            if self._start(step):
                moved = True
        return moved

    def _start(self, step: PipelineStep) -> bool:
        spec = _spec(self.execution, step.name)
        kind = step_kinds().get(step.type)
        if kind is None:
            done = _fail(step, f"Unknown step type '{step.type}'.", from_status=StepStatus.PENDING, now=self.now)
        else:
            try:
                arguments = arguments_resolve(kind=kind, spec=spec, execution=self.execution, steps=self.steps)
            except StepFailed as exc:
                done = _fail(step, exc.message, from_status=StepStatus.PENDING, now=self.now)
            else:
                done = self._cached_or_claimed(step, kind, spec, arguments)
        if done:
            self._changed(step)
        return done

    def _cached_or_claimed(self, step: PipelineStep, kind: StepKind, spec: dict[str, Any],
                           arguments: dict[str, Any]) -> bool:
        key = ""
        cache = {**CACHE_DEFAULTS, **(spec.get("cache") or {})}
        if kind.cacheable and cache["enabled"]:
            key = cache_key(project=self.execution.project, step_type=step.type, arguments=arguments)
            source = cache_hit(execution=self.execution, kind=kind, spec=spec, key=key, now=self.now)
            if source is not None:
                source_execution = source.execution
                return _transition(
                    step, StepStatus.PENDING, status=StepStatus.CACHED, cached=True, cached_from=source,
                    outputs=source.outputs, job=source.job, arguments=arguments, cache_key=key,
                    started_at=self.now, ended_at=self.now, next_attempt_at=None, failure_reason="",
                    status_message=f"Reused the outputs of {source_execution.pipeline.name} "
                                   f"#{source_execution.number} (step '{source.name}')"[:500],
                )
        attempt = step.attempts + 1
        if _transition(step, StepStatus.PENDING, status=StepStatus.RUNNING, attempts=attempt, arguments=arguments,
                       cache_key=key, started_at=step.started_at or self.now, heartbeat_at=self.now,
                       ended_at=None, next_attempt_at=None, job={}, status_message=QUEUED_MESSAGE,
                       executing_since=None):
            step.attempts = attempt
            self.dispatch.append((step.id, attempt))
            return True
        return False

    # stopping

    def stop_steps(self) -> None:
        for step in self.order:
            if step.status == StepStatus.PENDING:
                if _transition(step, StepStatus.PENDING, status=StepStatus.STOPPED, ended_at=self.now,
                               status_message="Stopped before it started", next_attempt_at=None):
                    self._changed(step)
            elif step.status == StepStatus.RUNNING and not step.job and step.executing_since is None:
                # No worker has started it: its task, when it comes, finds nothing to do.
                if _transition(step, StepStatus.RUNNING, match={"executing_since": None},
                               status=StepStatus.STOPPED, ended_at=self.now, heartbeat_at=None,
                               status_message="Stopped before it started"):
                    self._changed(step)
            elif step.status == StepStatus.RUNNING and step.job:
                kind = step_kinds().get(step.type)
                note = ""
                if kind is not None:
                    try:
                        with transaction.atomic(), _acting_for(self.execution.id):
                            kind.stop(_context(step, self.execution))
                    except Exception as exc:
                        logger.warning("stopping the job of pipeline step %s failed", step.id, exc_info=True)
                        note = f" (stopping its job failed: {_message_of(exc)})"
                if _transition(step, StepStatus.RUNNING, status=StepStatus.STOPPED, ended_at=self.now,
                               status_message=f"Stopped{note}"[:500], heartbeat_at=None):
                    self._changed(step)
            # A step running on a worker (no job) finishes its current call; its result is kept.

    # finishing

    def finish_if_done(self) -> str | None:
        """Finish the execution when nothing runs or can run; else note when to look again."""
        running = [s for s in self.order if s.status == StepStatus.RUNNING]
        waiting = [s for s in self.order if s.status == StepStatus.PENDING
                   and all(d.status in STEP_DONE_STATUSES for d in self._deps(s))]
        stopping = self.execution.status == ExecutionStatus.STOPPING
        if running or (waiting and not stopping):
            return None
        for step in self.order:
            if step.status != StepStatus.PENDING:
                continue
            blocker = next((d for d in self._deps(step) if d.status not in STEP_DONE_STATUSES), None)
            if blocker is None:
                message = "Skipped: the execution ended"
            elif blocker.status == StepStatus.SKIPPED and blocker.status_message.startswith("Skipped: upstream"):
                message = blocker.status_message
            else:
                message = f"Skipped: upstream step '{blocker.name}' {blocker.status}"
            if _transition(step, StepStatus.PENDING, status=StepStatus.SKIPPED, ended_at=self.now,
                           status_message=message[:500], next_attempt_at=None):
                self._changed(step)
        failed = [s for s in self.order if s.status == StepStatus.FAILED]
        if stopping:
            status, message, reason = ExecutionStatus.STOPPED, self.execution.status_message or "Stopped", ""
            if message.startswith("Stopping"):
                message = "Stopped" + message[len("Stopping"):]
        elif failed:
            first = failed[0]
            status, message = ExecutionStatus.FAILED, f"Failed at step '{first.name}'"
            reason = "; ".join(f"Step '{s.name}' failed: {s.failure_reason or 'no reason given'}" for s in failed)
        elif any(s.status == StepStatus.STOPPED for s in self.order):
            status, message, reason = ExecutionStatus.STOPPED, "Stopped", ""
        else:
            counts = {state: sum(1 for s in self.order if s.status == state) for state in StepStatus.values}
            parts = [f"{counts[StepStatus.COMPLETED]} ran"]
            parts += [f"{counts[state]} {label}" for state, label in ((StepStatus.CACHED, "from cache"),
                                                                      (StepStatus.SKIPPED, "skipped")) if counts[state]]
            status, message, reason = ExecutionStatus.COMPLETED, "Completed: " + ", ".join(parts), ""
        PipelineExecution.objects.filter(id=self.execution.id, status__in=ACTIVE_STATUSES).update(
            status=status, status_message=message[:500], failure_reason=reason, ended_at=self.now)
        self.execution.refresh_from_db()
        logger.info("pipeline execution %s %s: %s", self.execution.id, status, reason or message)
        if status == ExecutionStatus.FAILED:
            audit(actor=None, verb="failed", project=self.execution.project, target=str(self.execution),
                  data={"object": "pipeline-execution", "execution": str(self.execution.id), "reason": reason[:500]})
        return "finished"

    def follow_up(self) -> float | None:
        """Seconds until this execution needs another advance without any other wake-up, or None."""
        delays = []
        waiting = [s for s in self.order if s.status == StepStatus.RUNNING and s.job]
        if waiting:
            # Quick at first, then calmer: a job that has run for ten minutes is looked at every MAX_POLL_SECONDS
            # (a training job's end wakes the execution at once anyway, through its status signal).
            age = min((self.now - (s.started_at or self.now)).total_seconds() for s in waiting)
            delays.append(min(MAX_POLL_SECONDS, max(_poll_seconds(), age / 20)))
        if self.wait_until is not None:
            delays.append(max(0.05, (self.wait_until - self.now).total_seconds()))
        return min(delays) if delays else None

    def running_message(self) -> str:
        running = [s.name for s in self.order if s.status == StepStatus.RUNNING]
        if running:
            return ("Running " + ", ".join(running))[:500]
        retrying = [s.name for s in self.order if s.status == StepStatus.PENDING and s.next_attempt_at]
        return ("Waiting to retry " + ", ".join(retrying))[:500] if retrying else "Running"


def record_result(step: PipelineStep, result: Done | Waiting, *, now: datetime) -> bool:
    """Store what a step's start/poll returned, if the step is still running at the same attempt."""
    if isinstance(result, Done):
        outputs = {**(step.outputs or {}), **(result.outputs or {})}
        return _transition(step, StepStatus.RUNNING, status=StepStatus.COMPLETED, outputs=outputs, ended_at=now,
                           status_message=(result.message or "Completed")[:500], heartbeat_at=None,
                           failure_reason="")
    if isinstance(result, Waiting):
        outputs = {**(step.outputs or {}), **(result.outputs or {})}
        message = (result.message or step.status_message or "Waiting")[:500]
        if result.job == step.job and outputs == step.outputs and message == step.status_message:
            return False
        return _transition(step, StepStatus.RUNNING, job=result.job, outputs=outputs, status_message=message)
    return _fail(step, f"The step type returned {type(result).__name__}, not Done or Waiting.",
                 from_status=StepStatus.RUNNING, now=now)


def pipeline_execution_advance(*, execution_id: uuid.UUID | str) -> str:
    """One orchestration pass; returns "finished", "launched N", "waiting", "idle" (not active) or "busy"."""
    execution = PipelineExecution.objects.filter(id=execution_id).first()
    if execution is None or execution.status not in ACTIVE_STATUSES:
        return "idle"
    with transaction.atomic():
        now = timezone.now()
        # The conditional bump is the lock: a second advance racing this one matches no row and retries soon.
        if not PipelineExecution.objects.filter(id=execution.id, advance_version=execution.advance_version,
                                                status__in=ACTIVE_STATUSES).update(
                advance_version=F("advance_version") + 1, last_advanced_at=now):
            transaction.on_commit(lambda: pipeline_execution_enqueue(execution_id=execution.id, countdown=1))
            return "busy"
        execution = PipelineExecution.objects.select_related("project", "pipeline", "created_by").get(id=execution.id)
        before = execution.status
        if execution.status == ExecutionStatus.PENDING:
            PipelineExecution.objects.filter(id=execution.id).update(status=ExecutionStatus.RUNNING, started_at=now,
                                                                     status_message="Running")
            execution.refresh_from_db()
        run = _Advance(execution, now)
        if execution.status == ExecutionStatus.STOPPING:
            run.stop_steps()
        else:
            run.poll_jobs()
            while run.skip_not_chosen() | run.start_ready():
                pass
        outcome = run.finish_if_done()
        if outcome is None:
            message = run.running_message()
            if execution.status == ExecutionStatus.RUNNING and message != execution.status_message:
                PipelineExecution.objects.filter(id=execution.id).update(status_message=message)
                execution.status_message = message
            outcome = f"launched {len(run.dispatch)}" if run.dispatch else "waiting"
            countdown = run.follow_up()
            if countdown is not None:
                transaction.on_commit(lambda: pipeline_execution_enqueue(execution_id=execution.id,
                                                                         countdown=countdown))
        for step_id, attempt in run.dispatch:
            transaction.on_commit(lambda step_id=step_id, attempt=attempt: _step_dispatch(step_id=step_id,
                                                                                          attempt=attempt))
        publish_on_commit(execution.id, list(run.changed), status_changed=execution.status != before)
    return outcome


# --- running one step (the worker's task body) --------------------------------------------------------


class _Heartbeat:
    """Touches the step's heartbeat_at from a side thread while a synchronous step runs, so the reconciler
    tells a long step from a dead worker without the step type's help."""

    def __init__(self, step_id: int) -> None:
        self.step_id = step_id
        self.interval = float(getattr(settings, "STUDIO_HEARTBEAT_SECONDS", 10))
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"pipeline-step-{step_id}-heartbeat", daemon=True)

    def _run(self) -> None:
        try:
            while not self.stopped.wait(self.interval):
                try:
                    PipelineStep.objects.filter(id=self.step_id, status=StepStatus.RUNNING).update(
                        heartbeat_at=timezone.now())
                except Exception:
                    logger.warning("heartbeat of pipeline step %s failed", self.step_id, exc_info=True)
        finally:
            connection.close()  # this thread's own connection

    def __enter__(self) -> _Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopped.set()
        self.thread.join(timeout=30)


def pipeline_step_run(*, step_id: int, attempt: int | None = None) -> str:
    """Run a claimed step's ``start`` on this worker and record the outcome; idempotent per attempt.

    Returns "idle" (nothing to do: not running, another attempt, already waiting on a job), "stopped",
    "completed", "waiting", "failed" or "pending" (to be retried).
    """
    step = PipelineStep.objects.select_related("execution__project", "execution__pipeline",
                                               "execution__created_by").filter(id=step_id).first()
    if step is None or step.status != StepStatus.RUNNING or step.job or (
            attempt is not None and step.attempts != attempt):
        return "idle"
    execution = step.execution
    now = timezone.now()
    if execution.status != ExecutionStatus.RUNNING:
        # Stopped (or finished) after the step was claimed: do not start work nobody wants any more.
        outcome = "idle"
        if _transition(step, StepStatus.RUNNING, match={"executing_since": None}, status=StepStatus.STOPPED,
                       ended_at=now, heartbeat_at=None, status_message="Stopped before it started"):
            outcome = "stopped"
            publish_changes(execution, [step], status_changed=False)
        pipeline_execution_enqueue(execution_id=execution.id)
        return outcome
    if not _transition(step, StepStatus.RUNNING, match={"executing_since": None}, heartbeat_at=now,
                       executing_since=now, status_message=RUNNING_MESSAGE):
        return "idle"  # another delivery of this attempt started it
    publish_changes(execution, [step], status_changed=False)
    kind = step_kinds().get(step.type)
    error: BaseException | None = None
    result: Done | Waiting | None = None
    with _Heartbeat(step.id), _acting_for(execution.id):
        try:
            if kind is None:
                raise StepFailed(f"Unknown step type '{step.type}'.")
            result = kind.start(_context(step, execution))
        except _DATABASE_ERRORS:
            raise
        except Exception as exc:
            error = exc
    now = timezone.now()
    with transaction.atomic():
        if error is None:
            record_result(step, result, now=now)
        elif isinstance(error, _PERMANENT):
            _fail(step, _message_of(error), from_status=StepStatus.RUNNING, now=now)
        else:
            logger.warning("pipeline step %s (%s) raised", step.id, step.name, exc_info=error)
            _retry_or_fail(step, f"{type(error).__name__}: {error}", execution=execution, now=now)
        step.refresh_from_db()
        publish_on_commit(execution.id, [step.id], status_changed=False)
    # The execution decides what comes next (dependants, finishing); a waiting step is polled from there.
    pipeline_execution_enqueue(execution_id=execution.id)
    return step.status if step.status != StepStatus.RUNNING else "waiting"


# --- stop and retry ---------------------------------------------------------------------------------------


def pipeline_execution_stop(*, user: User, execution: PipelineExecution) -> PipelineExecution:
    """Stop a run (member+): pending steps stop, jobs are told to stop, steps on workers finish their call.

    Idempotent: a stopping or finished execution is returned as it is.
    """
    require_role(user=user, team=execution.project.team, role=Role.MEMBER)
    with transaction.atomic():
        now = timezone.now()
        # Bumping advance_version makes any advance in flight lose its compare-and-swap.
        stopping = PipelineExecution.objects.filter(id=execution.id, status__in=(
            ExecutionStatus.PENDING, ExecutionStatus.RUNNING)).update(
            status=ExecutionStatus.STOPPING, status_message=f"Stopping: requested by {user.username}"[:500],
            advance_version=F("advance_version") + 1, last_advanced_at=now)
        if not stopping:
            execution.refresh_from_db()
            return execution
        execution = PipelineExecution.objects.select_related("project", "pipeline", "created_by").get(id=execution.id)
        audit(actor=user, verb="stopped pipeline execution", project=execution.project, target=str(execution),
              data={"pipeline": str(execution.pipeline_id), "execution": str(execution.id)})
        run = _Advance(execution, now)
        run.stop_steps()
        run.finish_if_done()
        publish_on_commit(execution.id, list(run.changed), status_changed=True)
    execution.refresh_from_db()
    return execution


def pipeline_execution_retry(*, user: User, execution: PipelineExecution) -> PipelineExecution:
    """Run a failed or stopped execution again from where it broke (member+): completed and cached steps keep
    their outputs; failed, stopped and skipped ones start over. 409 for any other status."""
    require_role(user=user, team=execution.project.team, role=Role.MEMBER)
    with transaction.atomic():
        now = timezone.now()
        if not PipelineExecution.objects.filter(id=execution.id, status__in=(
                ExecutionStatus.FAILED, ExecutionStatus.STOPPED)).update(
                status=ExecutionStatus.RUNNING, ended_at=None, failure_reason="",
                status_message=f"Retried by {user.username}"[:500], advance_version=F("advance_version") + 1,
                last_advanced_at=now):
            execution.refresh_from_db()
            raise Conflict(f"Execution #{execution.number} is {execution.status}; only a failed or stopped "
                           "execution can be retried.")
        again = PipelineStep.objects.filter(execution=execution, status__in=(
            StepStatus.FAILED, StepStatus.STOPPED, StepStatus.SKIPPED))
        step_ids = list(again.values_list("id", flat=True))
        again.update(status=StepStatus.PENDING, attempts=0, next_attempt_at=None, job={}, outputs={},
                     failure_reason="", status_message="", started_at=None, ended_at=None, heartbeat_at=None,
                     cached=False, cached_from=None, cache_key="", arguments={})
        execution.refresh_from_db()
        audit(actor=user, verb="retried pipeline execution", project=execution.project, target=str(execution),
              data={"pipeline": str(execution.pipeline_id), "execution": str(execution.id), "steps": len(step_ids)})
        transaction.on_commit(lambda: pipeline_execution_enqueue(execution_id=execution.id))
        publish_on_commit(execution.id, step_ids, status_changed=True)
    return execution


# --- the reconciler and wake-ups ---------------------------------------------------------------------------


def pipeline_executions_reconcile(*, now: datetime | None = None) -> dict[str, int]:
    """Steps whose worker died are retried (or failed, or stopped when their execution is stopping); steps whose
    message no worker took for long are sent again; executions nobody advanced lately are advanced.

    A step waiting in the queue behind long jobs is not lost: re-sending it costs no attempt, and the
    duplicate finds the step started and does nothing. Safe from several beat processes at once.
    """
    now = now or timezone.now()
    stale = now - timedelta(seconds=_stale_seconds())
    resend = now - timedelta(seconds=float(getattr(settings, "STUDIO_PENDING_REQUEUE_SECONDS", 300)))
    lost = requeued = 0
    rows = (PipelineStep.objects.filter(status=StepStatus.RUNNING)
            .filter(Q(heartbeat_at__lt=max(stale, resend)) | Q(heartbeat_at__isnull=True))
            .select_related("execution__project", "execution__pipeline"))
    for step in rows:
        if step.job:
            continue  # a job step lives as long as its job; polling follows the job
        execution = step.execution
        match = {"heartbeat_at": step.heartbeat_at, "executing_since": step.executing_since}
        if step.executing_since is None:
            if (step.heartbeat_at or step.started_at or now) < resend and _transition(
                    step, StepStatus.RUNNING, match=match, heartbeat_at=now):
                requeued += 1
                _step_dispatch(step_id=step.id, attempt=step.attempts)
            continue
        if step.heartbeat_at is not None and step.heartbeat_at >= stale:
            continue
        last = step.heartbeat_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if step.heartbeat_at else "none"
        error = f"The worker running this step stopped responding (last heartbeat {last})"
        with transaction.atomic():
            if execution.status != ExecutionStatus.RUNNING:
                moved = _transition(step, StepStatus.RUNNING, match=match, status=StepStatus.STOPPED, ended_at=now,
                                    heartbeat_at=None, status_message=f"Stopped: {error}"[:500])
            else:
                moved = bool(_retry_or_fail(step, error, execution=execution, now=now, match=match))
            if moved:
                lost += 1
                logger.warning("pipeline step %s (%s): %s", step.id, step.name, error)
                publish_on_commit(execution.id, [step.id], status_changed=False)
                transaction.on_commit(lambda execution_id=execution.id: pipeline_execution_enqueue(
                    execution_id=execution_id))
    cutoff = now - timedelta(seconds=ADVANCE_STALE_SECONDS)
    forgotten = PipelineExecution.objects.filter(status__in=ACTIVE_STATUSES).filter(
        Q(last_advanced_at__lt=cutoff) | Q(last_advanced_at__isnull=True, created_at__lt=cutoff))
    advanced = 0
    for execution_id in forgotten.values_list("id", flat=True):
        pipeline_execution_enqueue(execution_id=execution_id)
        advanced += 1
    return {"lost": lost, "requeued": requeued, "advanced": advanced}


def pipeline_steps_job_changed(*, kind: str, job_id: Any) -> int:
    """A job changed status: advance the executions of the steps waiting on it now, not at the next poll."""
    execution_ids = set(PipelineStep.objects.filter(status=StepStatus.RUNNING, job__kind=kind, job__id=str(job_id))
                        .values_list("execution_id", flat=True))
    for execution_id in execution_ids:
        transaction.on_commit(lambda execution_id=execution_id: pipeline_execution_enqueue(execution_id=execution_id))
    return len(execution_ids)
