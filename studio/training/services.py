"""Every write to training jobs: create, stop, state transitions of a run, metrics, logs, reconciling.

A job row is the truth and Celery only carries the work, so every status change is a conditional
UPDATE (``filter(id=..., status=<expected>)``): when a worker and the reconciler race, exactly one
of them wins and the other sees 0 rows and backs off.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable
from datetime import UTC, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Max
from django.utils import timezone

from algorithms import UnknownAlgorithm, get_algorithm, list_algorithms
from algorithms.base import HyperparameterError
from studio.accounts.models import Role
from studio.accounts.permissions import require_role
from studio.accounts.services import audit
from studio.core.errors import Conflict
from studio.core.naming import unique_name
from studio.datasets.models import Dataset, DatasetStatus
from studio.datasets.preprocessing import DEFAULT_MISSING_STRATEGY, MISSING_STRATEGIES
from studio.live.publisher import publish
from studio.training.debugger import RuleError, clean_rules_for, initial_results
from studio.training.models import FINAL_STATUSES, JobStatus, LogLine, MetricPoint, TrainingJob
from studio.training.signals import training_job_status_changed

if TYPE_CHECKING:
    from studio.accounts.models import Project, User

logger = logging.getLogger(__name__)

LIVE_KIND = "training-job"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
NAME_MAX = 200
MAX_VALIDATION_FRACTION = 0.5
MAX_RUNTIME_LIMIT = 30 * 24 * 3600


# --- creating and stopping ----------------------------------------------------------------------


def _algorithm_class(name: str):
    try:
        return get_algorithm(name)
    except UnknownAlgorithm:
        known = ", ".join(a.name for a in list_algorithms())
        raise ValidationError({"algorithm": [f"Unknown algorithm '{name}'. Choose one of: {known}."]}) from None


def _resolve_dataset(*, project: Project, dataset: Dataset | UUID | str | None, field: str) -> Dataset | None:
    """A dataset object or id -> a Dataset of this project, or a 400 naming the field."""
    if dataset is None or dataset == "":
        return None
    if not isinstance(dataset, Dataset):
        try:
            dataset = Dataset.objects.get(id=UUID(str(dataset)), project=project)
        except (ValueError, Dataset.DoesNotExist):
            raise ValidationError({field: [f"No dataset '{dataset}' in this project."]}) from None
    if dataset.project_id != project.id:
        raise ValidationError({field: [f"No dataset '{dataset.id}' in this project."]})
    if dataset.status != DatasetStatus.READY:
        raise ValidationError({field: [f"Dataset '{dataset.name}' is {dataset.status}, not ready: "
                                       "wait for it to finish processing or upload it again."]})
    return dataset


def _columns_text(dataset: Dataset) -> str:
    return ", ".join(dataset.column_names) or "(none)"


def _hyperparameter_errors(exc: HyperparameterError) -> dict[str, list[str]]:
    return {f"hyperparameters.{name}": list(messages) for name, messages in exc.errors.items()}


def _auto_name(*, project: Project, algorithm: str) -> str:
    return unique_name(model=TrainingJob, project=project, base=f"{algorithm}-{timezone.now():%Y-%m-%d-%H-%M-%S}")


# Hyperparameters whose declared default can exceed what a small dataset allows (10 components of a
# 3-column table, 8 clusters of 5 rows). When the request leaves one out, the default is lowered to
# fit the data, so every algorithm trains with its defaults; a value the user gives is never changed.
BOUND_BY_COLUMNS = ("num_components",)
BOUND_BY_ROWS = ("k",)


def data_bound_defaults(algo, *, dataset: Dataset | None, target: str = "",
                        validation_fraction: float | None = 0.2) -> dict[str, Any]:
    """Defaults of ``algo`` lowered to fit ``dataset`` (feature columns, training rows); {} when they fit."""
    if dataset is None or algo is None:
        return {}
    left_out = {target} if target else set()
    if algo.target != "required" and dataset.target and not target:
        left_out.add(dataset.target)
    n_columns = len([c for c in dataset.column_names if c not in left_out])
    fraction = validation_fraction if isinstance(validation_fraction, int | float) else 0.2
    n_rows = int(dataset.rows * (1 - min(max(fraction, 0.0), MAX_VALIDATION_FRACTION))) if dataset.rows else 0
    out: dict[str, Any] = {}
    for hp in algo.hyperparameters:
        if hp.type != "int":
            continue
        limit = n_columns if hp.name in BOUND_BY_COLUMNS else n_rows if hp.name in BOUND_BY_ROWS else 0
        if limit >= 1 and hp.default > limit and (hp.min is None or limit >= hp.min):
            out[hp.name] = limit
    return out


def training_job_validate(
    *,
    project: Project,
    algorithm: str,
    dataset: Dataset | UUID | str | None,
    target: str = "",
    name: str | None = None,
    validation_dataset: Dataset | UUID | str | None = None,
    validation_fraction: float | None = 0.2,
    hyperparameters: dict[str, Any] | None = None,
    max_runtime_seconds: int | None = None,
    missing_values: str | None = None,
    debugger_rules: list[Any] | None = None,
) -> dict[str, Any]:
    """Check a job request without writing; return the cleaned fields or raise ValidationError.

    Every problem is collected at once, so a form shows all of them and a client fixes them in one go.
    Tuning and pipelines call this too, to reject a bad request before they create anything.
    """
    errors: dict[str, list[str]] = {}
    cleaned: dict[str, Any] = {"algorithm": algorithm}

    algo = None
    try:
        algo = _algorithm_class(algorithm)
    except ValidationError as exc:
        errors.update(exc.message_dict)

    for field, value in (("dataset", dataset), ("validation_dataset", validation_dataset)):
        try:
            cleaned[field] = _resolve_dataset(project=project, dataset=value, field=field)
        except ValidationError as exc:
            errors.update(exc.message_dict)
            cleaned[field] = None
    if dataset is None or dataset == "":
        errors["dataset"] = ["A dataset is required."]

    train = cleaned["dataset"]
    target = (target or "").strip()
    # "required": supervised, defaults to the dataset's target; "optional": labels only used to score
    # (an anomaly detector's AUC), never guessed; "none": clustering and projections take no target.
    needs = algo.target if algo is not None else "required"
    if target and needs == "none":
        errors["target"] = [f"{algo.name} takes no target: it learns from the feature columns alone. "
                            "Leave target empty."]
    if train is not None:
        if algo is not None and train.kind != algo.input:
            errors["dataset"] = [f"{algo.name} trains on {algo.input} datasets; '{train.name}' is {train.kind}."]
        if not target and needs == "required":
            target = train.target
        if train.kind == "text" and needs != "none":
            # A text dataset has one label column whatever the upload said; supervised text jobs use it.
            if not target and needs == "required":
                target = "label"
            if target and target != "label":
                errors["target"] = [f"A text dataset's labels are in its 'label' column; leave target empty or "
                                    f"set it to 'label' (got '{target}')."]
        elif train.kind == "image" and needs != "none":
            # Class labels come from the ZIP's folders (or its annotations), not from a column to choose.
            if target and target != "label":
                errors["target"] = [f"{algo.name if algo else 'This algorithm'} takes its labels from the image "
                                    f"dataset's class folders; leave target empty (got '{target}')."]
            target = ""
        if needs == "none" or train.kind != "tabular":
            pass  # nothing to check: a target was refused above, or text/image labels were settled just now
        elif target and target not in train.column_names:
            errors["target"] = [f"'{target}' is not a column of dataset '{train.name}'. "
                                f"Columns: {_columns_text(train)}."]
        elif not target and needs == "required" and train.kind == "tabular":
            errors["target"] = [f"Choose the target column to predict. Columns: {_columns_text(train)}."]
        valid = cleaned["validation_dataset"]
        if valid is not None:
            if valid.id == train.id:
                errors["validation_dataset"] = ["Use a different dataset than the training one, "
                                                "or set validation_fraction instead."]
            elif valid.kind != train.kind:
                errors["validation_dataset"] = [f"Validation dataset '{valid.name}' is {valid.kind}; the training "
                                                f"dataset is {train.kind}."]
            elif target and target not in valid.column_names:
                errors["validation_dataset"] = [f"Validation dataset '{valid.name}' has no column '{target}'. "
                                                f"Columns: {_columns_text(valid)}."]
    cleaned["target"] = target

    if validation_fraction is None or validation_fraction == "":
        validation_fraction = 0.2
    try:
        fraction = float(validation_fraction)
    except (TypeError, ValueError):
        errors["validation_fraction"] = [f"validation_fraction must be a number between 0 and "
                                         f"{MAX_VALIDATION_FRACTION} (got {validation_fraction!r})."]
    else:
        if not 0.0 <= fraction <= MAX_VALIDATION_FRACTION:
            errors["validation_fraction"] = [f"validation_fraction must be between 0 and "
                                             f"{MAX_VALIDATION_FRACTION} (got {validation_fraction})."]
        cleaned["validation_fraction"] = fraction
    if cleaned.get("validation_dataset") is not None:
        cleaned["validation_fraction"] = 0.0  # the validation channel is that dataset, nothing is held out

    if max_runtime_seconds in ("", None):
        cleaned["max_runtime_seconds"] = None
    else:
        try:
            runtime = int(max_runtime_seconds)
            if isinstance(max_runtime_seconds, float) and not max_runtime_seconds.is_integer():
                raise ValueError
        except (TypeError, ValueError):
            errors["max_runtime_seconds"] = [f"max_runtime_seconds must be a whole number of seconds "
                                             f"(got {max_runtime_seconds!r})."]
        else:
            if not 1 <= runtime <= MAX_RUNTIME_LIMIT:
                errors["max_runtime_seconds"] = [f"max_runtime_seconds must be between 1 and "
                                                 f"{MAX_RUNTIME_LIMIT} (got {runtime})."]
            cleaned["max_runtime_seconds"] = runtime

    if missing_values is None or (isinstance(missing_values, str) and not missing_values.strip()):
        missing_values = DEFAULT_MISSING_STRATEGY
    elif isinstance(missing_values, str):
        missing_values = missing_values.strip()
    if missing_values not in MISSING_STRATEGIES:
        errors["missing_values"] = [f"missing_values must be one of {', '.join(MISSING_STRATEGIES)} "
                                    f"(got {missing_values!r})."]
    cleaned["missing_values"] = missing_values

    if hyperparameters is not None and not isinstance(hyperparameters, dict):
        errors["hyperparameters"] = ["hyperparameters must be an object of name: value."]
    elif algo is not None:
        given = dict(hyperparameters or {})
        bound = data_bound_defaults(algo, dataset=train, target=target,
                                    validation_fraction=cleaned.get("validation_fraction", 0.2))
        for hp_name, value in bound.items():
            if given.get(hp_name) in (None, ""):
                given[hp_name] = value
        try:
            cleaned["hyperparameters"] = algo.validate_hyperparameters(given)
        except HyperparameterError as exc:
            errors.update(_hyperparameter_errors(exc))

    try:  # SageMaker Debugger-style rules (studio.training.debugger), checked against the algorithm's metrics
        cleaned["debugger_rules"] = clean_rules_for(algo, debugger_rules) if algo is not None else []
    except RuleError as exc:
        errors.update(exc.errors)

    if name is not None and str(name).strip():
        name = str(name).strip()
        if len(name) > NAME_MAX:
            errors["name"] = [f"name must be at most {NAME_MAX} characters."]
        elif not NAME_RE.match(name):
            errors["name"] = ["name may hold letters, digits, '-', '_' and '.', starting with a letter or digit "
                              f"(got {name!r})."]
        cleaned["name"] = name
    else:
        cleaned["name"] = None

    if errors:
        raise ValidationError(errors)
    return cleaned


def training_job_create(
    *,
    user: User,
    project: Project,
    algorithm: str,
    dataset: Dataset | UUID | str | None,
    target: str = "",
    name: str | None = None,
    validation_dataset: Dataset | UUID | str | None = None,
    validation_fraction: float | None = 0.2,
    hyperparameters: dict[str, Any] | None = None,
    max_runtime_seconds: int | None = None,
    missing_values: str | None = None,
    resume_from: TrainingJob | None = None,
    debugger_rules: list[Any] | None = None,
) -> TrainingJob:
    """Create a pending job (member+) and hand it to a training worker once the row is committed.

    ``resume_from``: a completed job of the same algorithm whose model this one continues training.
    """
    require_role(user=user, team=project.team, role=Role.MEMBER)
    cleaned = training_job_validate(
        project=project, algorithm=algorithm, dataset=dataset, target=target, name=name,
        validation_dataset=validation_dataset, validation_fraction=validation_fraction,
        hyperparameters=hyperparameters, max_runtime_seconds=max_runtime_seconds, missing_values=missing_values,
        debugger_rules=debugger_rules,
    )
    if resume_from is not None and (resume_from.project_id != project.id or resume_from.algorithm != algorithm
                                    or resume_from.status != JobStatus.COMPLETED):
        raise ValidationError({"resume_from": [f"Training job '{resume_from.name}' is not a completed {algorithm} "
                                               "job of this project: there is no model to continue."]})
    explicit_name = cleaned["name"] is not None
    if explicit_name and TrainingJob.objects.filter(project=project, name=cleaned["name"]).exists():
        raise Conflict(f"A training job named '{cleaned['name']}' already exists in this project.")
    # Unnamed jobs created in the same second by concurrent requests pick the same free name; the loser of the
    # unique constraint takes the next one instead of a 409 (tests/faults/test_concurrency.py).
    for attempt in range(1 if explicit_name else 10):
        job_name = cleaned["name"] or _auto_name(project=project, algorithm=algorithm)
        try:
            with transaction.atomic():
                job = TrainingJob.objects.create(
                    project=project, name=job_name, algorithm=cleaned["algorithm"], dataset=cleaned["dataset"],
                    validation_dataset=cleaned["validation_dataset"], target=cleaned["target"],
                    validation_fraction=cleaned["validation_fraction"], hyperparameters=cleaned["hyperparameters"],
                    max_runtime_seconds=cleaned["max_runtime_seconds"], missing_values=cleaned["missing_values"],
                    debugger_rules=cleaned["debugger_rules"], rule_results=initial_results(cleaned["debugger_rules"]),
                    created_by=user, enqueued_at=timezone.now(), resume_from=resume_from,
                )
                audit(actor=user, verb="created training job", project=project, target=job.name,
                      data={"job": str(job.id), "algorithm": job.algorithm})
                # The worker must find the row: send the message only after COMMIT.
                transaction.on_commit(lambda job_id=job.id: training_job_enqueue(job_id=job_id))
        except IntegrityError:
            if explicit_name or attempt == 9:
                raise Conflict(f"A training job named '{job_name}' already exists in this project.") from None
            continue
        return job
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def training_job_enqueue(*, job_id: UUID | str) -> None:
    """Send the run task to the training queue; a broker outage is left to the reconciler."""
    from studio.training.tasks import training_job_run_task

    try:
        training_job_run_task.apply_async(args=[str(job_id)])
    except Exception:
        # The job stays pending; the reconciler re-sends it when the broker is back.
        logger.warning("could not enqueue training job %s; the reconciler will retry", job_id, exc_info=True)


def training_job_request_stop(*, job: TrainingJob, message: str, log_line: str = "") -> TrainingJob:
    """Stop a job on behalf of anyone (a user, a tuning job): pending stops now, running at its next step.

    ``message`` becomes the status message of the stopped job. Raises Conflict when it has already finished.
    """
    now = timezone.now()
    if TrainingJob.objects.filter(id=job.id, status=JobStatus.PENDING).update(
        status=JobStatus.STOPPED, status_message=message[:500], ended_at=now, stop_requested=True,
        stop_message=message[:500],
    ):
        job.refresh_from_db()
        job_log(job=job, lines=[f"{message} before it started."])
        publish_status(job=job)
        return job
    if TrainingJob.objects.filter(id=job.id, status=JobStatus.RUNNING).update(
        stop_requested=True, stop_message=message[:500],
    ):
        job.refresh_from_db()
        job_log(job=job, lines=[log_line or f"Stop requested: {message}"])
        return job
    job.refresh_from_db()
    raise Conflict(f"Training job '{job.name}' has already finished ({job.status}); there is nothing to stop.")


def training_job_stop(*, user: User, job: TrainingJob) -> TrainingJob:
    """Stop a job (member+): pending jobs stop at once, running ones after their current epoch; 409 if finished."""
    require_role(user=user, team=job.project.team, role=Role.MEMBER)
    job = training_job_request_stop(job=job, message=f"Stopped by {user.username}",
                                    log_line=f"Stop requested by {user.username}; stopping after this epoch.")
    audit(actor=user, verb="stopped training job", project=job.project, target=job.name,
          data={"job": str(job.id)})
    return job


# --- live data: stored first, then published -------------------------------------------------------


def status_event(job: TrainingJob) -> dict[str, Any]:
    return {"type": "status", "status": job.status, "message": job.failure_reason or job.status_message}


def metric_event(point: MetricPoint) -> dict[str, Any]:
    return {"type": "metric", "name": point.name, "step": point.step, "value": point.value, "ts": point.ts}


def log_event(line: LogLine) -> dict[str, Any]:
    return {"type": "log", "line": line.line, "seq": line.seq, "ts": line.ts}


def publish_status(*, job: TrainingJob) -> None:
    event = status_event(job)
    publish(kind=LIVE_KIND, object_id=job.id, events=[event])
    # The project's pages (job list, overview) refresh on it too.
    publish(kind="project", object_id=job.project_id,
            events=[{**event, "object": "training-job", "id": str(job.id), "name": job.name}])
    if job.status == JobStatus.FAILED:  # the activity feed shows failures next to who started what
        audit(actor=None, verb="failed", project=job.project, target=job.name,
              data={"object": "training-job", "job": str(job.id), "reason": job.failure_reason[:500]})
    training_job_status_changed.send(sender=TrainingJob, job=job)


def job_metrics_record(*, job: TrainingJob, step: int, metrics: dict[str, float], ts: float | None = None,
                       log_lines: Iterable[str] = ()) -> None:
    """Store one step's metrics (and log lines) and then publish them.

    ignore_conflicts: a step written twice (a retried callback) keeps its first value instead of failing.
    """
    ts = time.time() if ts is None else ts
    points = [MetricPoint(job=job, name=name, step=int(step), value=float(value), ts=ts)
              for name, value in metrics.items() if _finite(value)]
    MetricPoint.objects.bulk_create(points, ignore_conflicts=True)
    lines = _store_log(job=job, lines=log_lines, ts=ts)
    publish(kind=LIVE_KIND, object_id=job.id,
            events=[metric_event(p) for p in points] + [log_event(line) for line in lines])


def job_log(*, job: TrainingJob, lines: Iterable[str], ts: float | None = None) -> list[LogLine]:
    stored = _store_log(job=job, lines=lines, ts=time.time() if ts is None else ts)
    publish(kind=LIVE_KIND, object_id=job.id, events=[log_event(line) for line in stored])
    return stored


def _store_log(*, job: TrainingJob, lines: Iterable[str], ts: float) -> list[LogLine]:
    lines = [str(line) for line in lines]
    if not lines:
        return []
    # seq continues from what is stored, so lines written by a stop request or the reconciler
    # interleave with the worker's; two writers racing for the same seq retry with the next one.
    for attempt in range(5):
        start = (LogLine.objects.filter(job=job).aggregate(m=Max("seq"))["m"] or 0) + 1
        rows = [LogLine(job=job, seq=start + i, ts=ts, line=line) for i, line in enumerate(lines)]
        try:
            with transaction.atomic():
                LogLine.objects.bulk_create(rows)
        except IntegrityError:
            if attempt == 4:
                raise
            continue
        return rows
    return []


def _finite(value: Any) -> bool:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    return number == number and number not in (float("inf"), float("-inf"))


# --- state transitions of a run (the worker and the reconciler) -----------------------------------


def training_job_claim(*, job_id: UUID | str, worker: str) -> TrainingJob | None:
    """pending -> running for exactly one caller; a redelivered message gets None and does nothing."""
    now = timezone.now()
    claimed = TrainingJob.objects.filter(id=job_id, status=JobStatus.PENDING).update(
        status=JobStatus.RUNNING, started_at=now, worker=worker[:200], heartbeat_at=now,
        attempts=F("attempts") + 1, status_message=f"Running on {worker}"[:500],
    )
    if not claimed:
        return None
    job = TrainingJob.objects.select_related("project", "dataset", "validation_dataset", "created_by").get(id=job_id)
    publish_status(job=job)
    return job


def training_job_heartbeat(*, job_id: UUID | str) -> tuple[bool, str | None]:
    """Record that the worker is alive; return (still running, stop message if a stop was requested)."""
    if not training_job_touch(job_id=job_id):
        return False, None
    row = TrainingJob.objects.filter(id=job_id).values_list("stop_requested", "stop_message").first()
    if row is None or not row[0]:
        return True, None
    return True, row[1] or "Stopped"


def training_job_touch(*, job_id: UUID | str) -> bool:
    """Move heartbeat_at to now if the job is still running; False once it is not."""
    return bool(TrainingJob.objects.filter(id=job_id, status=JobStatus.RUNNING).update(heartbeat_at=timezone.now()))


def training_job_finish(
    *,
    job: TrainingJob,
    status: str,
    status_message: str = "",
    failure_reason: str = "",
    final_metrics: dict[str, float] | None = None,
    result_plots: list[dict[str, Any]] | None = None,
) -> bool:
    """running -> a final status, only if the job is still running; return whether this call won.

    ``result_plots`` land in the same update as the status, so the page that refreshes on the
    status event finds them.
    """
    assert status in FINAL_STATUSES
    fields: dict[str, Any] = {
        "status": status, "status_message": status_message[:500], "failure_reason": failure_reason,
        "ended_at": timezone.now(),
    }
    if final_metrics is not None:
        fields["final_metrics"] = final_metrics
    if result_plots is not None:
        fields["result_plots"] = result_plots
    won = bool(TrainingJob.objects.filter(id=job.id, status=JobStatus.RUNNING).update(**fields))
    if won:
        job.refresh_from_db()
        transaction.on_commit(lambda: publish_status(job=job))
    return won


def training_jobs_reconcile(*, now=None) -> dict[str, int]:
    """Fail running jobs whose worker went silent; re-send pending jobs whose message may be lost.

    Safe to run from several beat processes at once: both actions are conditional updates, and a
    duplicate run message is harmless because only one worker can claim a pending job.
    """
    now = now or timezone.now()
    failed = 0
    timeout = timedelta(seconds=settings.STUDIO_HEARTBEAT_TIMEOUT)
    for job in TrainingJob.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=now - timeout):
        last = job.heartbeat_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        reason = (f"Worker {job.worker or 'unknown'} stopped responding (last heartbeat {last}); "
                  "the job was marked failed.")
        won = TrainingJob.objects.filter(id=job.id, status=JobStatus.RUNNING, heartbeat_at=job.heartbeat_at).update(
            status=JobStatus.FAILED, failure_reason=reason, status_message="Worker lost", ended_at=now,
        )
        if won:
            failed += 1
            job.refresh_from_db()
            job_log(job=job, lines=[reason])
            publish_status(job=job)
            logger.warning("training job %s: %s", job.id, reason)

    requeued = 0
    cutoff = now - timedelta(seconds=settings.STUDIO_PENDING_REQUEUE_SECONDS)
    stale_pending = TrainingJob.objects.filter(status=JobStatus.PENDING, created_at__lt=cutoff).exclude(
        enqueued_at__gte=cutoff
    )
    for job_id, enqueued_at in stale_pending.values_list("id", "enqueued_at"):
        # Only the caller that moves enqueued_at sends the message: no duplicates from parallel beats.
        if TrainingJob.objects.filter(id=job_id, status=JobStatus.PENDING, enqueued_at=enqueued_at).update(
            enqueued_at=now
        ):
            training_job_enqueue(job_id=job_id)
            requeued += 1
    if requeued:
        logger.info("re-enqueued %d pending training job(s)", requeued)
    return {"failed": failed, "requeued": requeued}
