"""Batch transform jobs: every write (create, stop, the state changes of a run) and every read.

The job row is the truth and Celery carries the work (transform_runner.py). Status changes are
conditional UPDATEs, so a stop request, a failing part and the final step can race and exactly one
wins. Parts are counted under a row lock with a stored marker per part, so a part run twice (a
redelivered message) is counted once, and each count launches exactly one next part: at most
``max_concurrent`` parts are ever running.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone

from algorithms import UnknownAlgorithm, get_algorithm
from studio.accounts.models import Role
from studio.accounts.permissions import require_role
from studio.accounts.selectors import project_list
from studio.accounts.services import audit
from studio.core.errors import Conflict
from studio.core.naming import unique_name
from studio.datasets.models import Dataset, DatasetKind, DatasetStatus
from studio.datasets.signals import dataset_ready_on_commit
from studio.endpoints.models import TransformJob, TransformStatus
from studio.endpoints.signals import transform_job_finished_on_commit
from studio.endpoints.transform_runner import (
    FilterError,
    input_format,
    parse_filter,
    part_marker_name,
    select,
)
from studio.live.publisher import publish
from studio.registry.models import Model

if TYPE_CHECKING:
    from studio.accounts.models import Project, User

logger = logging.getLogger(__name__)

LIVE_KIND = "transform-job"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
NAME_MAX = 200
SPLIT_TYPES = ("line", "none")
BATCH_STRATEGIES = ("single_record", "multi_record")
JOIN_SOURCES = ("none", "input")
MAX_PAYLOAD_MB = (1, 100)
MAX_CONCURRENT = (1, 32)
DEFAULT_MAX_PAYLOAD_MB = 6
DEFAULT_MAX_CONCURRENT = 2
ACTIVE_STATUSES = (TransformStatus.PENDING, TransformStatus.RUNNING)
RESEND_KEY = "studio:transform:{}:resent"
# Outputs longer than this are profiled on their first rows only: 50k rows give stable column statistics,
# and profiling 200k took ~0.85 s of a 1M-row job's serial final step (50k: ~0.2 s).
PROFILE_MAX_ROWS = 50_000


# --- reads ------------------------------------------------------------------------------------------


def transform_job_list(*, user: User, project: Project) -> QuerySet[TransformJob]:
    """Transform jobs of ``project``, empty unless the user's teams can see the project."""
    return (TransformJob.objects.filter(project=project, project__in=project_list(user=user))
            .select_related("project__team", "model", "input_dataset", "output_dataset", "created_by"))


def transform_job_get(*, user: User, project: Project, job_id: Any) -> TransformJob:
    """One visible job of ``project``; Http404 otherwise (another team's job included)."""
    try:
        return transform_job_list(user=user, project=project).get(id=job_id)
    except (TransformJob.DoesNotExist, ValueError, TypeError, ValidationError):
        raise Http404("No such transform job in this project.") from None


def transform_job_progress(job: TransformJob) -> float:
    """0..1: records done over records total (1 once completed, 0 before the input is split)."""
    if job.status == TransformStatus.COMPLETED:
        return 1.0
    if not job.records_total:
        return 0.0
    return min(1.0, job.records_done / job.records_total)


# --- create and stop ----------------------------------------------------------------------------------


def _integer(errors: dict, field: str, value: Any, *, default: int, bounds: tuple[int, int]) -> int:
    if value is None or value == "":
        return default
    low, high = bounds
    try:
        number = int(value)
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
    except (TypeError, ValueError):
        errors[field] = [f"{field} must be a whole number from {low} to {high} (got {value!r})."]
        return default
    if not low <= number <= high:
        errors[field] = [f"{field} must be from {low} to {high} (got {number})."]
    return number


def _choice(errors: dict, field: str, value: Any, choices: tuple[str, ...], default: str) -> str:
    value = default if value is None or value == "" else value
    if value not in choices:
        errors[field] = [f"{field} must be one of {', '.join(choices)} (got {value!r})."]
    return str(value)


def _object(model_cls: type, project: Project, value: Any, field: str, what: str, errors: dict) -> Any:
    if value is None or value == "":
        errors[field] = [f"Choose the {what}."]
        return None
    if isinstance(value, model_cls):
        value = value.pk
    try:
        return model_cls.objects.get(id=UUID(str(value)), project=project)
    except (ValueError, model_cls.DoesNotExist):
        errors[field] = [f"No {what} '{value}' in this project."]
        return None


def _model_input(model: Model) -> str:
    try:
        return get_algorithm(model.algorithm).input
    except UnknownAlgorithm:
        return "tabular"


def transform_job_validate(*, project: Project, model: Any, input_dataset: Any, name: Any = None,
                           split_type: Any = None, batch_strategy: Any = None, max_payload_mb: Any = None,
                           max_concurrent: Any = None, input_filter: Any = "", join_source: Any = None,
                           output_filter: Any = "") -> dict[str, Any]:
    """Check a transform request without writing (pipelines call this too, before they create anything).

    Parameters
    ----------
    project : Project
        Where the job would run: the model and the dataset must belong to it.
    model, input_dataset : Model, Dataset, UUID or str
        The model to predict with and the dataset to read (tabular, or text for a text model).
    name : str, optional
        Letters, digits, '-', '_' and '.'; made up when empty.
    split_type, batch_strategy, max_payload_mb, max_concurrent, input_filter, join_source, output_filter
        As in API.md "Batch transform"; filters as in :mod:`studio.endpoints.transform_runner`.

    Returns
    -------
    dict
        The cleaned fields, ready for ``TransformJob.objects.create``.

    Raises
    ------
    ValidationError
        Naming every bad field at once.
    """
    errors: dict[str, list[str]] = {}
    cleaned: dict[str, Any] = {
        "model": _object(Model, project, model, "model", "model", errors),
        "input_dataset": _object(Dataset, project, input_dataset, "input_dataset", "dataset", errors),
        "split_type": _choice(errors, "split_type", split_type, SPLIT_TYPES, "line"),
        "batch_strategy": _choice(errors, "batch_strategy", batch_strategy, BATCH_STRATEGIES, "multi_record"),
        "join_source": _choice(errors, "join_source", join_source, JOIN_SOURCES, "none"),
        "max_payload_mb": _integer(errors, "max_payload_mb", max_payload_mb, default=DEFAULT_MAX_PAYLOAD_MB,
                                   bounds=MAX_PAYLOAD_MB),
        "max_concurrent": _integer(errors, "max_concurrent", max_concurrent, default=DEFAULT_MAX_CONCURRENT,
                                   bounds=MAX_CONCURRENT),
        "input_filter": str(input_filter or "").strip(),
        "output_filter": str(output_filter or "").strip(),
    }
    filters = {}
    for field in ("input_filter", "output_filter"):
        if len(cleaned[field]) > 500:
            errors[field] = [f"{field} must be at most 500 characters."]
            continue
        try:
            filters[field] = parse_filter(cleaned[field], field=field)
        except FilterError as exc:
            errors[field] = [str(exc)]

    model_obj, dataset = cleaned["model"], cleaned["input_dataset"]
    wants = _model_input(model_obj) if model_obj is not None else None
    if wants == "image":
        errors["model"] = [f"Model '{model_obj.name}' takes images; batch transform reads tabular or text datasets."]
    if dataset is not None:
        kind_ok = dataset.kind == (DatasetKind.TEXT if wants == "text" else DatasetKind.TABULAR)
        if dataset.status != DatasetStatus.READY:
            errors["input_dataset"] = [f"Dataset '{dataset.name}' is {dataset.status}, not ready."]
        elif wants in ("tabular", "text") and not kind_ok:
            errors["input_dataset"] = [f"Model '{model_obj.name}' takes {wants} data; dataset '{dataset.name}' "
                                       f"is {dataset.kind}."]
        elif cleaned["split_type"] == "none" and dataset.size_bytes > cleaned["max_payload_mb"] * 1024 * 1024:
            errors["split_type"] = [f"split_type 'none' sends the whole dataset ({dataset.size_bytes:,} bytes) as one "
                                    f"request, over max_payload_mb ({cleaned['max_payload_mb']} MB): use 'line'."]
        elif "input_filter" in filters and not errors.get("input_filter"):
            _check_inputs(errors, dataset=dataset, model=model_obj, wants=wants, input_filter=filters["input_filter"])

    name = "" if name is None else str(name).strip()
    if name:
        if len(name) > NAME_MAX:
            errors["name"] = [f"name must be at most {NAME_MAX} characters."]
        elif not NAME_RE.match(name):
            errors["name"] = ["name may hold letters, digits, '-', '_' and '.', starting with a letter or digit "
                              f"(got {name!r})."]
    cleaned["name"] = name or None
    if errors:
        raise ValidationError(errors)
    return cleaned


def _check_inputs(errors: dict, *, dataset: Dataset, model: Model | None, wants: str | None, input_filter) -> None:
    """The columns the filter keeps must hold what the model reads (known from the profile, so a 400 now)."""
    _, _, jsonl_columns = input_format(dataset)
    columns = jsonl_columns or dataset.column_names
    if not columns:
        return
    field = "input_filter" if input_filter is not None else "input_dataset"
    try:
        kept = select(input_filter.resolve(columns, field="input_filter") if input_filter else None, columns)
    except FilterError as exc:
        errors["input_filter"] = [str(exc)]
        return
    needed = ["text"] if wants == "text" else list(model.feature_names or []) if model is not None else []
    missing = [name for name in needed if name not in kept]
    if missing:
        errors[field] = [f"Model '{model.name}' reads column(s) {', '.join(missing)}, which the input "
                         f"{'filter leaves out' if input_filter else 'lacks'}; input columns: {', '.join(kept)}."]


def transform_job_create(*, user: User, project: Project, model: Any, input_dataset: Any, name: Any = None,
                         split_type: Any = None, batch_strategy: Any = None, max_payload_mb: Any = None,
                         max_concurrent: Any = None, input_filter: Any = "", join_source: Any = None,
                         output_filter: Any = "") -> TransformJob:
    """Create a pending job (member+) and hand its first step to the inference queue once the row is committed.

    Parameters are those of :func:`transform_job_validate`, with the acting ``user``.

    Returns
    -------
    TransformJob

    Raises
    ------
    PermissionDenied
        Below member (403).
    ValidationError
        Naming each bad field (400).
    Conflict
        The name is taken (409).
    """
    require_role(user=user, team=project.team, role=Role.MEMBER)
    cleaned = transform_job_validate(
        project=project, model=model, input_dataset=input_dataset, name=name, split_type=split_type,
        batch_strategy=batch_strategy, max_payload_mb=max_payload_mb, max_concurrent=max_concurrent,
        input_filter=input_filter, join_source=join_source, output_filter=output_filter,
    )
    job_name = cleaned.pop("name")
    explicit = job_name is not None
    if not explicit:
        job_name = unique_name(model=TransformJob, project=project,
                               base=f"transform-{timezone.now():%Y-%m-%d-%H-%M-%S}")
    if explicit and TransformJob.objects.filter(project=project, name=job_name).exists():
        raise Conflict(f"A transform job named '{job_name}' already exists in this project.")
    try:
        with transaction.atomic():
            job = TransformJob.objects.create(project=project, name=job_name, created_by=user, **cleaned)
            audit(actor=user, verb="created transform job", project=project, target=job.name,
                  data={"job": str(job.id), "model": str(job.model_id), "dataset": str(job.input_dataset_id)})
            transaction.on_commit(lambda: publish_status(job=job))
            transaction.on_commit(lambda: _send_plan(job.id))
    except IntegrityError:
        raise Conflict(f"A transform job named '{job_name}' already exists in this project.") from None
    return job


def transform_job_stop(*, user: User, job: TransformJob) -> TransformJob:
    """Stop a job (member+): parts not started never start; 409 when it has already finished."""
    require_role(user=user, team=job.project.team, role=Role.MEMBER)
    message = f"Stopped by {user.username}"
    won = TransformJob.objects.filter(id=job.id, status__in=ACTIVE_STATUSES).update(
        status=TransformStatus.STOPPED, status_message=message, ended_at=timezone.now())
    job.refresh_from_db()
    if not won:
        raise Conflict(f"Transform job '{job.name}' has already finished ({job.status}); there is nothing to stop.")
    audit(actor=user, verb="stopped transform job", project=job.project, target=job.name, data={"job": str(job.id)})
    publish_status(job=job)
    return job


# --- live events --------------------------------------------------------------------------------------


def status_event(job: TransformJob) -> dict[str, Any]:
    """The live ``status`` event of a job."""
    return {"type": "status", "status": job.status, "message": job.failure_reason or job.status_message}


def progress_event(job: TransformJob) -> dict[str, Any]:
    """The live ``progress`` event of a job (records and parts done, 0..1)."""
    return {"type": "progress", "records_done": job.records_done, "records_total": job.records_total,
            "parts_done": job.parts_done, "parts_total": job.parts_total, "progress": transform_job_progress(job)}


def publish_status(*, job: TransformJob) -> None:
    """Status and progress to the job's page and to the project's stream."""
    events = [status_event(job), progress_event(job)]
    publish(kind=LIVE_KIND, object_id=job.id, events=events)
    publish(kind="project", object_id=job.project_id,
            events=[{**event, "object": "transform-job", "id": str(job.id), "name": job.name} for event in events])
    if job.status not in ACTIVE_STATUSES:  # published once per final transition: whoever started it hears
        transform_job_finished_on_commit(job)


# --- the state changes of a run (called by transform_runner) --------------------------------------------


def transform_task_send(step: str, job_id: Any, index: int | None = None) -> None:
    """Hand one step of a job to the inference queue (plan, part ``index`` or finalize)."""
    from studio.endpoints import tasks

    task = {"plan": tasks.transform_job_plan_task, "part": tasks.transform_part_run_task,
            "finalize": tasks.transform_job_finalize_task}[step]
    args = [str(job_id)] if index is None else [str(job_id), int(index)]
    task.apply_async(args=args)


def _send_plan(job_id: Any) -> None:
    try:
        transform_task_send("plan", job_id)
    except Exception:
        # The job stays pending; transform_jobs_reconcile re-sends it when the broker is back.
        logger.warning("could not enqueue transform job %s; the reconciler will retry", job_id, exc_info=True)


def _send_or_fail(step: str, job_id: Any, index: int | None = None) -> None:
    try:
        transform_task_send(step, job_id, index)
    except Exception as exc:
        # A lost part would stall the job for good: fail it, with the reason, rather than wait forever.
        logger.warning("could not enqueue %s of transform job %s", step, job_id, exc_info=True)
        what = f"part {index + 1}" if index is not None else f"the {step} step"
        transform_job_fail(job_id=job_id, reason=f"Could not hand {what} to a worker: {exc}")


def transform_job_claim(*, job_id: Any) -> TransformJob | None:
    """pending -> running for exactly one caller; a redelivered message gets None."""
    now = timezone.now()
    if not TransformJob.objects.filter(id=job_id, status=TransformStatus.PENDING).update(
            status=TransformStatus.RUNNING, started_at=now, status_message="Splitting the input"):
        return None
    job = TransformJob.objects.select_related("project", "model", "input_dataset").get(id=job_id)
    publish_status(job=job)
    return job


def transform_job_running(*, job_id: Any) -> TransformJob | None:
    """The job if it is running (a step of a stopped or failed job does nothing)."""
    return (TransformJob.objects.select_related("project", "model", "input_dataset", "created_by")
            .filter(id=job_id, status=TransformStatus.RUNNING).first())


def transform_job_is_running(*, job_id: Any) -> bool:
    """Whether the job is still running (checked between records of a single-record part)."""
    return TransformJob.objects.filter(id=job_id, status=TransformStatus.RUNNING).exists()


def transform_job_planned(*, job: TransformJob, records_total: int, parts_total: int) -> None:
    """Record the split and launch the first ``max_concurrent`` parts."""
    if not TransformJob.objects.filter(id=job.id, status=TransformStatus.RUNNING).update(
            records_total=records_total, parts_total=parts_total, records_done=0, parts_done=0,
            status_message=f"Predicting {records_total:,} records in {parts_total} part(s)"):
        return
    job.refresh_from_db()
    publish_status(job=job)
    for index in range(min(job.max_concurrent, parts_total)):
        _send_or_fail("part", job.id, index)


def transform_part_done(*, job_id: Any, index: int, records: int, marker: dict[str, Any]) -> None:
    """Count a finished part once, publish the progress and launch the next part (or the final step)."""
    launch: list[tuple[str, int | None]] = []
    with transaction.atomic():
        job = TransformJob.objects.select_for_update().filter(id=job_id).first()
        if job is None or job.status != TransformStatus.RUNNING:
            return
        name = part_marker_name(job, index)
        if default_storage.exists(name):
            return  # counted by an earlier run of this part
        job.parts_done += 1
        job.records_done += records
        job.status_message = f"{job.parts_done} of {job.parts_total} part(s) done"
        job.save(update_fields=["parts_done", "records_done", "status_message"])
        default_storage.save(name, _content(json.dumps(marker).encode()))
        following = job.max_concurrent + job.parts_done - 1
        if following < (job.parts_total or 0):
            launch.append(("part", following))
        if job.parts_done == job.parts_total:
            launch.append(("finalize", None))
    publish_status(job=job)
    for step, part in launch:
        _send_or_fail(step, job.id, part)


def _content(data: bytes):
    from django.core.files.base import ContentFile

    return ContentFile(data)


def transform_job_fail(*, job_id: Any, reason: str) -> bool:
    """running (or pending) -> failed with the reason; False when the job had already ended."""
    won = TransformJob.objects.filter(id=job_id, status__in=ACTIVE_STATUSES).update(
        status=TransformStatus.FAILED, failure_reason=reason, status_message="Failed", ended_at=timezone.now())
    if won:
        job = TransformJob.objects.get(id=job_id)
        logger.warning("transform job %s failed: %s", job_id, reason)
        audit(actor=None, verb="failed", project=job.project, target=job.name,
              data={"object": "transform-job", "job": str(job.id), "reason": reason[:500]})
        publish_status(job=job)
    return bool(won)


def transform_output_dataset_create(*, job: TransformJob, path: str, rows: int) -> Dataset:
    """The joined output as a ready tabular dataset "<job name>-output", profiled like an upload."""
    from studio.core.storage import storage_save_stream
    from studio.datasets.services import dataset_storage_prefix

    if job.output_dataset_id:
        return job.output_dataset
    profile, extra = _profile(Path(path), rows=rows)
    dataset_id = uuid.uuid4()
    name = unique_name(model=Dataset, project=job.project, base=f"{job.name}-output"[:NAME_MAX])
    prefix = dataset_storage_prefix(project_id=job.project_id, dataset_id=dataset_id)
    with open(path, "rb") as fh:
        stored, size, sha256 = storage_save_stream(name=f"{prefix}{name[:100]}.csv", stream=fh)
    try:
        return Dataset.objects.create(
            id=dataset_id, project=job.project, name=name, kind=DatasetKind.TABULAR, status=DatasetStatus.READY,
            file=stored, original_filename=f"{name[:200]}.csv", size_bytes=size, sha256=sha256, rows=profile.rows,
            columns=profile.as_columns(), profile={**profile.as_profile(), **extra}, created_by=job.created_by,
        )
    except BaseException:
        from studio.core.storage import storage_delete_prefix

        storage_delete_prefix(prefix)
        raise


def _profile(path: Path, *, rows: int) -> tuple[Any, dict[str, Any]]:
    """The upload profile of the output and extra profile keys; past PROFILE_MAX_ROWS, of its first rows only
    (the statistics then describe that sample, as ``profiled_rows`` says), so a large job ends without a long
    serial pass."""
    from studio.datasets.profiling import profile_csv
    from studio.endpoints.transform_runner import CSV_FORMAT, _physical_records

    if rows <= PROFILE_MAX_ROWS:
        return profile_csv(path, filename="output.csv"), {}
    with tempfile.NamedTemporaryFile(suffix=".csv") as head, open(path, "rb") as src:
        for count, (_, raw) in enumerate(_physical_records(src, fmt=CSV_FORMAT)):
            if count > PROFILE_MAX_ROWS:  # the header and PROFILE_MAX_ROWS records
                break
            head.write(raw)
        head.flush()
        profile = profile_csv(Path(head.name), filename="output.csv")
    profile.rows = rows
    return profile, {"profiled_rows": PROFILE_MAX_ROWS}


def transform_job_complete(*, job: TransformJob, output_dataset: Dataset) -> bool:
    """running -> completed with the output dataset; a job stopped meanwhile keeps no orphan dataset."""
    won = TransformJob.objects.filter(id=job.id, status=TransformStatus.RUNNING).update(
        status=TransformStatus.COMPLETED, output_dataset=output_dataset, ended_at=timezone.now(),
        status_message=f"Wrote {output_dataset.rows or 0:,} rows to dataset '{output_dataset.name}'")
    if not won:
        if not TransformJob.objects.filter(output_dataset=output_dataset).exists():
            from studio.datasets.services import dataset_storage_prefix

            prefix = dataset_storage_prefix(project_id=output_dataset.project_id, dataset_id=output_dataset.id)
            output_dataset.delete()
            from studio.core.storage import storage_delete_prefix

            storage_delete_prefix(prefix)
        return False
    job.refresh_from_db()
    publish_status(job=job)
    _cleanup_parts(job)
    # Only now is the output ready for good: a job stopped before this point deletes it.
    dataset_ready_on_commit(output_dataset)
    return True


def _cleanup_parts(job: TransformJob) -> None:
    from studio.core.storage import storage_delete_prefix
    from studio.endpoints.transform_runner import job_prefix

    storage_delete_prefix(job_prefix(job) + "parts/")


def transform_jobs_reconcile(*, now=None) -> dict[str, int]:
    """Re-send the first step of pending jobs whose message may be lost (at most once per requeue period)."""
    import redis

    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.STUDIO_PENDING_REQUEUE_SECONDS)
    resent = 0
    client = redis.Redis.from_url(settings.REDIS_URL)
    for job_id in TransformJob.objects.filter(status=TransformStatus.PENDING, created_at__lt=cutoff).values_list(
            "id", flat=True):
        # Only the caller that sets the key sends: parallel beats do not duplicate the message.
        if client.set(RESEND_KEY.format(job_id), "1", nx=True, ex=settings.STUDIO_PENDING_REQUEUE_SECONDS):
            try:
                transform_task_send("plan", job_id)
                resent += 1
            except Exception:
                logger.warning("could not re-send transform job %s", job_id, exc_info=True)
    return {"requeued": resent}
