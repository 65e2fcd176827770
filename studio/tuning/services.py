"""Every write to tuning jobs: create, advance (launch trials, finish), stop, reconcile, early stopping.

The orchestration is a single idempotent step, :func:`tuning_job_advance`: it reads the job and its
trials, decides (finish, or which trials to start) and writes, guarded by a conditional bump of
``advance_version`` so two orchestrators never both launch the same slot. It runs when a trial
finishes, when the job is created, and from the beat reconciler, so a lost message only delays it.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any
from uuid import UUID

import numpy as np
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from studio.accounts.models import Role
from studio.accounts.permissions import require_role
from studio.accounts.services import audit
from studio.core.errors import Conflict
from studio.core.naming import unique_name
from studio.live.publisher import publish
from studio.training import services as training_services
from studio.training.models import ACTIVE_STATUSES, JobStatus, MetricPoint, TrainingJob
from studio.tuning import strategies
from studio.tuning.models import TUNING_FINAL_STATUSES, Strategy, TuningJob, TuningStatus, TuningTrial
from studio.tuning.signals import tuning_job_finished_on_commit
from studio.tuning.validation import search_space, tuning_job_validate

if TYPE_CHECKING:
    from studio.accounts.models import Project, User

logger = logging.getLogger(__name__)

LIVE_KIND = "tuning-job"


# --- creating and stopping ----------------------------------------------------------------------


def training_slots() -> int:
    """Trials this installation runs at once: what Autotune asks for (STUDIO_WORKER_CONCURRENCY)."""
    return max(1, int(getattr(settings, "STUDIO_WORKER_CONCURRENCY", 2)))


def tuning_job_create(*, user: User, project: Project, algorithm: str, dataset: Any, objective: Any = None,
                      ranges: Any = None, autotune: bool = False, static_hyperparameters: Any = None,
                      strategy: str | None = None, max_jobs: Any = None, max_parallel_jobs: Any = None,
                      max_runtime_seconds: Any = None, early_stopping: str | None = None, completion: Any = None,
                      warm_start: Any = None, hyperband: Any = None, target: str = "", name: str | None = None,
                      validation_dataset: Any = None, validation_fraction: float | None = 0.2,
                      missing_values: str | None = None) -> TuningJob:
    """Create a tuning job (member+) and start its first trials once the row is committed."""
    require_role(user=user, team=project.team, role=Role.MEMBER)
    cleaned = tuning_job_validate(
        project=project, algorithm=algorithm, dataset=dataset, objective=objective, ranges=ranges,
        autotune=autotune, static_hyperparameters=static_hyperparameters, strategy=strategy, max_jobs=max_jobs,
        max_parallel_jobs=max_parallel_jobs, max_runtime_seconds=max_runtime_seconds, early_stopping=early_stopping,
        completion=completion, warm_start=warm_start, hyperband=hyperband, target=target, name=name,
        validation_dataset=validation_dataset, validation_fraction=validation_fraction,
        missing_values=missing_values, workers=training_slots(),
    )
    cleaned["name"] = cleaned["name"] or _auto_name(project=project, algorithm=algorithm)
    with transaction.atomic():
        job = TuningJob.objects.create(project=project, created_by=user,
                                       seed=int(np.random.default_rng().integers(0, 2**31 - 1)), **cleaned)
        audit(actor=user, verb="created tuning job", project=project, target=job.name,
              data={"tuning_job": str(job.id), "algorithm": job.algorithm, "strategy": job.strategy})
        transaction.on_commit(lambda: tuning_job_enqueue(tuning_job_id=job.id))
    return job


def _auto_name(*, project: Project, algorithm: str) -> str:
    return unique_name(model=TuningJob, project=project, base=f"{algorithm}-tuning-{timezone.now():%Y-%m-%d-%H-%M-%S}")


def tuning_job_enqueue(*, tuning_job_id: UUID | str, countdown: float | None = None) -> None:
    """Ask a worker to advance the job; a broker outage is left to the beat reconciler."""
    from studio.tuning.tasks import tuning_job_advance_task

    try:
        tuning_job_advance_task.apply_async(args=[str(tuning_job_id)], countdown=countdown)
    except Exception:
        logger.warning("could not enqueue tuning job %s; the reconciler will advance it", tuning_job_id, exc_info=True)


def tuning_job_stop(*, user: User, tuning_job: TuningJob) -> TuningJob:
    """Stop a tuning job (member+): no new trials, running ones stop; the best trial so far stays."""
    require_role(user=user, team=tuning_job.project.team, role=Role.MEMBER)
    message = f"Stopped by {user.username}"
    with transaction.atomic():
        stopped = TuningJob.objects.filter(id=tuning_job.id, status__in=(TuningStatus.PENDING, TuningStatus.RUNNING)) \
            .update(status=TuningStatus.STOPPED, status_message=message, ended_at=timezone.now(),
                    advance_version=F("advance_version") + 1)
        tuning_job.refresh_from_db()
        if not stopped:
            raise Conflict(f"Tuning job '{tuning_job.name}' has already finished ({tuning_job.status}).")
        _stop_active_trials(tuning_job, f"Stopped with tuning job '{tuning_job.name}'")
        _refresh_best(tuning_job, list(_trials(tuning_job)))
        audit(actor=user, verb="stopped tuning job", project=tuning_job.project, target=tuning_job.name,
              data={"tuning_job": str(tuning_job.id)})
        transaction.on_commit(lambda: publish_tuning_status(tuning_job=tuning_job))
        tuning_job_finished_on_commit(tuning_job.id)
    return tuning_job


def _stop_active_trials(tuning_job: TuningJob, message: str) -> None:
    for trial in _trials(tuning_job).filter(training_job__status__in=ACTIVE_STATUSES):
        with contextlib.suppress(Conflict):  # it finished meanwhile
            training_services.training_job_request_stop(job=trial.training_job, message=message)


# --- live events --------------------------------------------------------------------------------


def trial_event(trial: TuningTrial) -> dict[str, Any]:
    job = trial.training_job
    return {
        "type": "trial", "id": str(job.id), "number": trial.number, "name": job.name, "status": job.status,
        "status_message": job.failure_reason or job.status_message, "parameters": trial.parameters,
        "objective_value": trial.objective_value, "early_stopped": trial.early_stopped,
        "config": trial.config, "bracket": trial.bracket, "rung": trial.rung, "budget": trial.budget,
        "duration_seconds": job.duration_seconds,
    }


def tuning_counts(tuning_job: TuningJob) -> dict[str, int]:
    counts = {status: 0 for status in JobStatus.values}
    for status in _trials(tuning_job).values_list("training_job__status", flat=True):
        counts[status] += 1
    counts["total"] = sum(counts.values())
    return counts


def tuning_status_event(tuning_job: TuningJob) -> dict[str, Any]:
    best = tuning_job.best_trial
    return {
        "type": "status", "status": tuning_job.status,
        "message": tuning_job.failure_reason or tuning_job.status_message,
        "counts": tuning_counts(tuning_job),
        "best": None if best is None else {"id": str(best.training_job_id), "number": best.number,
                                           "objective_value": tuning_job.best_objective},
    }


def publish_tuning_status(*, tuning_job: TuningJob) -> None:
    event = tuning_status_event(tuning_job)
    publish(kind=LIVE_KIND, object_id=tuning_job.id, events=[event])
    publish(kind="project", object_id=tuning_job.project_id,
            events=[{"type": "status", "status": tuning_job.status, "message": event["message"],
                     "object": "tuning-job", "id": str(tuning_job.id), "name": tuning_job.name}])


def publish_trial(*, trial: TuningTrial) -> None:
    publish(kind=LIVE_KIND, object_id=trial.tuning_job_id, events=[trial_event(trial)])


# --- orchestration ------------------------------------------------------------------------------


def _trials(tuning_job: TuningJob):
    return TuningTrial.objects.filter(tuning_job=tuning_job).select_related("training_job").order_by("number")


def tuning_job_advance(*, tuning_job_id: UUID | str) -> str:
    """One orchestration step: finish the job, or start as many trials as slots and limits allow.

    Returns what happened: "finished", "launched N", "waiting", "idle" (not active) or "busy"
    (another orchestrator holds this step; it is retried shortly).
    """
    job = TuningJob.objects.filter(id=tuning_job_id).select_related("project", "created_by").first()
    if job is None or job.status in TUNING_FINAL_STATUSES:
        return "idle"
    with transaction.atomic():
        # The conditional bump is the lock: on PostgreSQL the second of two racing callers waits for the
        # first to commit and then matches no row; on SQLite the write lock serialises them the same way.
        if not TuningJob.objects.filter(id=job.id, advance_version=job.advance_version,
                                        status__in=(TuningStatus.PENDING, TuningStatus.RUNNING)).update(
                advance_version=F("advance_version") + 1):
            transaction.on_commit(lambda: tuning_job_enqueue(tuning_job_id=job.id, countdown=1))
            return "busy"
        job.refresh_from_db()
        now = timezone.now()
        if job.status == TuningStatus.PENDING:
            TuningJob.objects.filter(id=job.id).update(status=TuningStatus.RUNNING, started_at=now,
                                                       status_message="Running trials")
            job.refresh_from_db()
        trials = list(_trials(job))
        _sync_objectives(job, trials)
        _refresh_best(job, trials)
        active = [t for t in trials if t.training_job.status in ACTIVE_STATUSES]

        reason = _completion_reason(job, trials, now)
        if reason is not None:
            _finish(job, trials, *reason)
            outcome = "finished"
        else:
            try:
                launched = _launch(job, trials, active)
            except (ValidationError, PermissionDenied) as exc:
                # The data or the creator's access went away: no trial can start any more.
                text = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
                _finish(job, trials, TuningStatus.FAILED, "Failed", f"Could not start a trial: {text}")
                outcome = "finished"
            else:
                # Nothing running and nothing new to start: every strategy is done (max_jobs reached, the grid or a
                # discrete space walked, Hyperband's brackets played out).
                if not launched and not active:
                    _finish(job, trials, *_final_outcome(job, trials))
                    outcome = "finished"
                else:
                    outcome = f"launched {len(launched)}" if launched else "waiting"
        job.refresh_from_db()
        transaction.on_commit(lambda: publish_tuning_status(tuning_job=job))
    return outcome


def _objective_of(job: TuningJob, trial: TuningTrial) -> float | None:
    """The trial's objective: its final metric, or for a stopped trial the last value it reported."""
    training = trial.training_job
    value = (training.final_metrics or {}).get(job.objective_metric)
    if value is None and training.status == JobStatus.STOPPED:
        point = MetricPoint.objects.filter(job=training, name=job.objective_metric).order_by("-step").first()
        value = point.value if point is not None else None
    return None if value is None or not np.isfinite(value) else float(value)


def _sync_objectives(job: TuningJob, trials: list[TuningTrial]) -> None:
    for trial in trials:
        if trial.training_job.status in ACTIVE_STATUSES:
            continue
        value = _objective_of(job, trial) if trial.training_job.status != JobStatus.FAILED else None
        if value != trial.objective_value:
            trial.objective_value = value
            TuningTrial.objects.filter(id=trial.id).update(objective_value=value)
            # The trial's finish was published before its objective was known: show the value now.
            transaction.on_commit(lambda trial=trial: publish_trial(trial=trial))


def _better(job: TuningJob, a: float, b: float) -> bool:
    return a > b if job.objective_goal == "maximize" else a < b


def _refresh_best(job: TuningJob, trials: list[TuningTrial]) -> None:
    """The best completed trial (it has a model): what the job's page offers to register or deploy."""
    best = None
    for trial in trials:
        if trial.training_job.status != JobStatus.COMPLETED or trial.objective_value is None:
            continue
        if best is None or _better(job, trial.objective_value, best.objective_value):
            best = trial
    best_id = best.id if best is not None else None
    value = best.objective_value if best is not None else None
    if (job.best_trial_id, job.best_objective) != (best_id, value):
        TuningJob.objects.filter(id=job.id).update(best_trial=best, best_objective=value)
        job.best_trial, job.best_objective = best, value


def _completion_reason(job: TuningJob, trials: list[TuningTrial], now) -> tuple[str, str, str] | None:
    """(status, message, failure reason) when a limit or criterion ends the job now, else None."""
    if job.max_runtime_seconds and job.started_at and (now - job.started_at).total_seconds() >= job.max_runtime_seconds:
        return TuningStatus.COMPLETED, f"Reached max_runtime_seconds ({job.max_runtime_seconds} s)", ""
    target = (job.completion or {}).get("target_value")
    if target is not None and job.best_objective is not None and not _better(job, target, job.best_objective):
        return TuningStatus.COMPLETED, f"Reached the target objective {job.objective_metric} = {target:g}", ""
    patience = (job.completion or {}).get("best_not_improving_jobs")
    if patience and job.best_trial_id is not None:
        finished = [t for t in trials if t.training_job.status == JobStatus.COMPLETED and t.objective_value is not None]
        after = [t for t in finished if t.number > job.best_trial.number]
        if len(after) >= patience:
            return (TuningStatus.COMPLETED,
                    f"The best objective did not improve for {patience} trial(s) after trial {job.best_trial.number}",
                    "")
    return None


def _final_outcome(job: TuningJob, trials: list[TuningTrial]) -> tuple[str, str, str]:
    if job.best_trial_id is not None:
        return TuningStatus.COMPLETED, f"All {len(trials)} trials finished", ""
    failed = [t for t in trials if t.training_job.status == JobStatus.FAILED]
    first = failed[0].training_job.failure_reason if failed else ""
    reason = f"No trial produced {job.objective_metric}: {len(failed)} of {len(trials)} failed"
    return TuningStatus.FAILED, "Failed", reason + (f" (first: {first})" if first else "") + "."


def _finish(job: TuningJob, trials: list[TuningTrial], status: str, message: str, failure_reason: str) -> None:
    TuningJob.objects.filter(id=job.id).update(status=status, status_message=message[:500],
                                               failure_reason=failure_reason, ended_at=timezone.now())
    _stop_active_trials(job, f"Stopped: tuning job '{job.name}' finished ({message})")
    logger.info("tuning job %s %s: %s", job.id, status, message or failure_reason)
    if status == TuningStatus.FAILED:
        audit(actor=None, verb="failed", project=job.project, target=job.name,
              data={"object": "tuning-job", "tuning_job": str(job.id), "reason": failure_reason[:500]})
    tuning_job_finished_on_commit(job.id)


def _history(job: TuningJob, trials: list[TuningTrial]) -> list[strategies.Observation]:
    """Finished trials as the strategy sees them, warm-start parents' first."""
    space = search_space(job.ranges)
    history: list[strategies.Observation] = []
    parents = (job.warm_start or {}).get("parents") or []
    for parent in TuningJob.objects.filter(id__in=parents, project=job.project):
        for trial in _trials(parent):
            if trial.training_job.status in ACTIVE_STATUSES:
                continue
            # A parent may have tuned other ranges: only what lies inside ours informs the model.
            params = {name: trial.training_job.hyperparameters.get(name) for name in job.ranges}
            if space.contains(params):
                history.append(strategies.Observation(params=params, value=trial.objective_value))
    for trial in trials:
        if trial.training_job.status not in ACTIVE_STATUSES:
            history.append(strategies.Observation(params=trial.parameters, value=trial.objective_value))
    return history


def _launch(job: TuningJob, trials: list[TuningTrial], active: list[TuningTrial]) -> list[TuningTrial]:
    slots = job.max_parallel_jobs - len(active)
    if slots <= 0:
        return []
    if job.strategy == Strategy.HYPERBAND:
        return _launch_hyperband(job, trials, slots)
    n = min(slots, job.max_jobs - len(trials))
    if n <= 0:
        return []
    suggestions = strategies.suggest(
        strategy=job.strategy, space=search_space(job.ranges), goal=job.objective_goal,
        history=_history(job, trials), pending=[t.parameters for t in active], n=n, seed=job.seed,
    )
    number = len(trials)
    created = []
    for params in suggestions:
        number += 1
        created.append(_create_trial(job, number=number, parameters=params))
    return created


def _hyperband_args(job: TuningJob) -> dict[str, Any]:
    cfg = job.hyperband
    return {"min_resource": cfg["min_resource"], "max_resource": cfg["max_resource"], "eta": cfg["eta"],
            "max_configs": job.max_jobs, "goal": job.objective_goal}


def _rung_trials(job: TuningJob, trials: list[TuningTrial]) -> list[strategies.RungTrial]:
    return [strategies.RungTrial(config=t.config, bracket=t.bracket, rung=t.rung, budget=t.budget,
                                 status=t.training_job.status, value=t.objective_value) for t in trials]


def _launch_hyperband(job: TuningJob, trials: list[TuningTrial], slots: int) -> list[TuningTrial]:
    actions = strategies.hyperband_plan(trials=_rung_trials(job, trials), **_hyperband_args(job))[:slots]
    space = search_space(job.ranges)
    by_config_rung = {(t.config, t.rung): t for t in trials}
    number = len(trials)
    created = []
    for action in actions:
        number += 1
        if action.kind == "new":
            # Each configuration is a seeded draw of its own: the same job draws the same configurations.
            params = space.sample(np.random.default_rng([job.seed, action.config]))
            source = None
        else:
            source = by_config_rung[(action.config, action.resume_from_config_rung)]
            params = dict(source.parameters)
        created.append(_create_trial(job, number=number, parameters=params, config=action.config,
                                     bracket=action.bracket, rung=action.rung, budget=action.budget,
                                     resumed_from=source))
    return created


def _create_trial(job: TuningJob, *, number: int, parameters: dict[str, Any], config: int | None = None,
                  bracket: int | None = None, rung: int | None = None, budget: int | None = None,
                  resumed_from: TuningTrial | None = None) -> TuningTrial:
    """A training job for one suggestion, created as the tuning job's creator (so their role still counts)."""
    if job.created_by is None:
        raise PermissionDenied("The user who created this tuning job no longer exists.")
    hyperparameters = {**job.static_hyperparameters, **parameters}
    if budget is not None:
        hyperparameters[job.hyperband["parameter"]] = budget
    name = unique_name(model=TrainingJob, project=job.project, base=f"{job.name}-{number:03d}"[:190])
    resume = resumed_from.training_job if resumed_from is not None else None
    if resume is not None and resume.status != JobStatus.COMPLETED:
        resume = None
    training = training_services.training_job_create(
        user=job.created_by, project=job.project, algorithm=job.algorithm, dataset=job.dataset, target=job.target,
        name=name, validation_dataset=job.validation_dataset, validation_fraction=job.validation_fraction,
        hyperparameters=hyperparameters, missing_values=job.missing_values, resume_from=resume,
    )
    trial = TuningTrial.objects.create(
        tuning_job=job, training_job=training, number=number, parameters=parameters, config=config,
        bracket=bracket, rung=rung, budget=budget, resumed_from=resumed_from,
    )
    transaction.on_commit(lambda: publish_trial(trial=trial))
    return trial


def tuning_jobs_reconcile() -> dict[str, int]:
    """Advance every active tuning job: covers lost messages, runtime limits and trials the training
    reconciler failed after their worker died."""
    advanced = 0
    for job_id in TuningJob.objects.filter(status__in=(TuningStatus.PENDING, TuningStatus.RUNNING)) \
            .values_list("id", flat=True):
        try:
            tuning_job_advance(tuning_job_id=job_id)
            advanced += 1
        except Exception:
            logger.exception("advancing tuning job %s failed", job_id)
    return {"advanced": advanced}


# --- hooks on trials (connected in studio.tuning.receivers) -------------------------------------


def trial_status_changed(*, training_job: TrainingJob) -> None:
    """A trial started or finished: show it on the tuning page, and let the tuning job move on."""
    trial = TuningTrial.objects.filter(training_job_id=training_job.id).select_related("training_job").first()
    if trial is None:
        return
    trial.training_job = training_job
    publish_trial(trial=trial)
    if training_job.status not in ACTIVE_STATUSES:
        tuning_id = trial.tuning_job_id
        transaction.on_commit(lambda: tuning_job_enqueue(tuning_job_id=tuning_id))


def trial_early_stop(*, training_job: TrainingJob, step: int, metrics: dict[str, float]) -> str | None:
    """The median rule for a trial at ``step``: a stop message when it is worse than earlier trials were."""
    trial = TuningTrial.objects.filter(training_job_id=training_job.id).select_related("tuning_job").first()
    if trial is None or trial.tuning_job.early_stopping != "auto":
        return None
    job = trial.tuning_job
    value = metrics.get(job.objective_metric)
    if value is None or not np.isfinite(value):
        return None
    others: dict[Any, list[tuple[int, float]]] = {}
    points = MetricPoint.objects.filter(
        job__tuning_trial__tuning_job=job, job__tuning_trial__number__lt=trial.number, name=job.objective_metric,
        step__lte=step,
    ).exclude(job__status=JobStatus.FAILED).values_list("job_id", "step", "value")
    for job_id, point_step, point_value in points:
        others.setdefault(job_id, []).append((point_step, point_value))
    stop, median = strategies.median_stopping_rule(value=float(value), step=step, others=list(others.values()),
                                                   goal=job.objective_goal)
    if not stop:
        return None
    TuningTrial.objects.filter(id=trial.id).update(early_stopped=True)
    return (f"Stopped early by tuning job '{job.name}': {job.objective_metric} {value:.4g} at epoch {step} is worse "
            f"than the median {median:.4g} of earlier trials")
