"""Every write of the admin dashboard: cancel a job, drain and resume a worker, scale an endpoint, record a
failed task, take a metrics sample. Each action is audited (``data.ops = true``) under the site admin's name.

Jobs and endpoints change through their own apps' services (the same stop and update a team member uses), so
a cancel from here is indistinguishable from one on the job's page: same status message, same events, same
audit line in the team's activity feed.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from studio.accounts.permissions import acting_as_site_admin
from studio.accounts.services import audit
from studio.core.errors import Conflict
from studio.endpoints import services as endpoint_services
from studio.endpoints.models import Endpoint, EndpointStatus
from studio.endpoints.validation import MAX_INSTANCES
from studio.live.publisher import publish
from studio.ops import metrics, selectors, workers
from studio.ops.access import require_site_admin
from studio.ops.models import FailedTask

if TYPE_CHECKING:
    from studio.accounts.models import Team, User

logger = logging.getLogger(__name__)

FINAL_STATUSES = ("completed", "failed", "stopped")
# What a failed task's record keeps of its arguments: ids, numbers and short names, never data.
SAFE_ARG = re.compile(r"^[\w.:@/+-]{1,100}$")
MAX_TRACEBACK = 64 * 1024
FAILED_TASKS_KEEP_DAYS = 30
PRUNE_KEY = "studio:ops:failed-tasks-pruned"


def _ops_audit(*, user: User, verb: str, target: str, data: dict[str, Any], team: Team | None = None) -> None:
    # Not attached to the project: the app's own service already wrote the line the team's feed shows.
    audit(actor=user, verb=verb, team=team, target=target, data={"ops": True, **data})


@contextmanager
def _acting_in_team(*, user: User, team: Team) -> Iterator[None]:
    """Run one team's services as a site admin: the same stop/update a member would, role checks passed.

    Site admins belong to no team; the services check the caller's role (require_role), which
    acting_as_site_admin lets through for this admin only, in one transaction.
    """
    with transaction.atomic(), acting_as_site_admin(user=user):
        yield


# --- cancel a job ---------------------------------------------------------------------------------------


def _stop(kind: str, *, user: User, job: Any) -> Any:
    if kind == "training-job":
        from studio.training.services import training_job_stop

        return training_job_stop(user=user, job=job)
    if kind == "tuning-job":
        from studio.tuning.services import tuning_job_stop

        return tuning_job_stop(user=user, tuning_job=job)
    if kind == "transform-job":
        from studio.endpoints.transforms import transform_job_stop

        return transform_job_stop(user=user, job=job)
    from studio.pipelines.engine import pipeline_execution_stop

    return pipeline_execution_stop(user=user, execution=job)


def job_cancel(*, user: User, kind: Any, job_id: Any) -> Any:
    """Stop a training job, tuning job, transform job or pipeline execution of any team (site admins).

    Goes through the job's own stop service: a pending job stops at once, a running training job after its
    current epoch, a tuning job stops its trials, a pipeline execution its steps. 409 once it has finished.
    """
    require_site_admin(user)
    errors: dict[str, list[str]] = {}
    if kind not in selectors.JOB_KINDS:
        errors["kind"] = [f"kind must be one of {', '.join(selectors.JOB_KINDS)} (got {kind!r})."]
    try:
        job_id = UUID(str(job_id))
    except ValueError:
        errors["id"] = [f"id must be a job's UUID (got {job_id!r})."]
    if errors:
        raise ValidationError(errors)
    job = selectors.job_get(user=user, kind=kind, job_id=job_id)
    label = kind.replace("-", " ")
    if job.status in FINAL_STATUSES:
        raise Conflict(f"The {label} '{job}' has already finished ({job.status}); there is nothing to cancel.")
    team = job.project.team
    with _acting_in_team(user=user, team=team):
        job = _stop(kind, user=user, job=job)
        _ops_audit(user=user, verb=f"cancelled {label}", target=str(job), team=team,
                   data={"kind": kind, "id": str(job.id), "project": str(job.project_id), "status": job.status})
    logger.info("site admin %s cancelled %s %s (%s)", user.username, kind, job.id, job.status)
    return job


# --- drain and resume a worker --------------------------------------------------------------------------


def _live_worker(worker: Any) -> dict[str, Any]:
    if not isinstance(worker, str) or not worker.strip() or len(worker) > 200:
        raise ValidationError({"worker": ["worker must be a worker's name, as the workers panel shows it "
                                          "(celery@host)."]})
    name = worker.strip()
    snapshot = workers.workers_snapshot(refresh=True)
    row = next((w for w in snapshot["workers"] if w["name"] == name), None)
    if row is None:
        known = ", ".join(w["name"] for w in snapshot["workers"]) or "none"
        raise ValidationError({"worker": [f"No worker named '{name}' is known. Workers: {known}."]})
    if not row["alive"]:
        raise Conflict(f"Worker '{name}' is not answering (busy on a long task in a solo pool, or gone): "
                       "it cannot be told anything now.")
    return row


def _acknowledged(replies: dict[str, Any]) -> list[str]:
    return sorted(queue for queue, reply in replies.items() if isinstance(reply, dict) and "ok" in reply)


def worker_drain(*, user: User, worker: Any) -> dict[str, Any]:
    """Stop a worker taking new tasks (site admins): it cancels its consumer of every queue it reads and
    finishes what it runs. ``worker_resume`` gives it its queues back."""
    require_site_admin(user)
    row = _live_worker(worker)
    name = row["name"]
    if not row["queues"]:
        raise Conflict(f"Worker '{name}' consumes no queue: it is drained already.")
    replies = workers.control_queues(worker=name, queues=row["queues"], consume=False,
                                     timeout=workers.inspect_timeout())
    drained = _acknowledged(replies)
    if not drained:
        raise Conflict(f"Worker '{name}' did not confirm the drain in time; it may still take tasks.")
    workers.drained_set(worker=name, queues=sorted(set(workers.drained_get(worker=name)) | set(drained)))
    workers.forget_snapshot()
    _ops_audit(user=user, verb="drained worker", target=name, data={"worker": name, "queues": drained})
    logger.info("site admin %s drained worker %s (%s)", user.username, name, ", ".join(drained))
    return {"worker": name, "queues": drained, "replies": replies}


def worker_resume(*, user: User, worker: Any) -> dict[str, Any]:
    """Give a drained worker its queues back: those it was drained of, or every studio queue when it consumes
    none and the record of its drain is gone. A worker started on some queues on purpose keeps to them."""
    require_site_admin(user)
    row = _live_worker(worker)
    name = row["name"]
    queues = [q for q in workers.drained_get(worker=name) if q not in row["queues"]]
    if not queues and not row["queues"]:
        queues = list(workers.QUEUES)
    if not queues:
        raise Conflict(f"Worker '{name}' was not drained from here: there is nothing to resume.")
    replies = workers.control_queues(worker=name, queues=queues, consume=True, timeout=workers.inspect_timeout())
    resumed = _acknowledged(replies)
    if not resumed:
        raise Conflict(f"Worker '{name}' did not confirm in time; it may start consuming when it reads the request.")
    workers.drained_set(worker=name, queues=sorted(set(queues) - set(resumed)))
    workers.forget_snapshot()
    _ops_audit(user=user, verb="resumed worker", target=name, data={"worker": name, "queues": resumed})
    logger.info("site admin %s resumed worker %s (%s)", user.username, name, ", ".join(resumed))
    return {"worker": name, "queues": resumed, "replies": replies}


# --- scale an endpoint ----------------------------------------------------------------------------------


def _count(errors: dict, field: str, value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | str | float):
        errors[field] = [f"{field} must be a whole number between 0 and {MAX_INSTANCES} (got {value!r})."]
        return None
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not number.is_integer() or not 0 <= number <= MAX_INSTANCES:
        errors[field] = [f"{field} must be a whole number between 0 and {MAX_INSTANCES} (got {value!r})."]
        return None
    return int(number)


def endpoint_scale(*, user: User, endpoint: Endpoint, variant: Any, min_instances: Any = None,
                   max_instances: Any = None, instances: Any = None) -> Endpoint:
    """Set one variant's instance limits (site admins) through the endpoint's own update service.

    ``instances`` pins the count (min = max = instances); otherwise the limits given change and the others
    stay. The endpoint converges as after any update: instances start or drain without dropping requests.
    """
    require_site_admin(user)
    errors: dict[str, list[str]] = {}
    variants = list(endpoint.variants.filter(retired=False).order_by("position", "id"))
    names = [v.name for v in variants]
    if not isinstance(variant, str) or variant not in names:
        errors["variant"] = [f"No variant {variant!r} on endpoint '{endpoint.name}'. Variants: "
                             f"{', '.join(names) or 'none'}."]
    pinned = _count(errors, "instances", instances)
    low = _count(errors, "min_instances", min_instances)
    high = _count(errors, "max_instances", max_instances)
    if pinned is not None:
        low = high = pinned
    if not errors and low is None and high is None:
        errors["instances"] = ["Give instances, or min_instances and/or max_instances."]
    if errors:
        raise ValidationError(errors)
    if endpoint.status == EndpointStatus.DELETING:
        raise Conflict(f"Endpoint '{endpoint.name}' is being deleted.")
    specs, index, before = [], 0, None
    for i, row in enumerate(variants):
        spec = {"name": row.name, "model": str(row.model_id), "weight": row.weight,
                "min_instances": row.min_instances, "max_instances": row.max_instances}
        if row.name == variant:
            index, before = i, (row.min_instances, row.max_instances, row.desired_instances)
            spec["min_instances"] = spec["min_instances"] if low is None else low
            spec["max_instances"] = spec["max_instances"] if high is None else high
            if low is not None and high is None and low > spec["max_instances"]:
                spec["max_instances"] = low  # raising the floor above the ceiling lifts the ceiling too
            if high is not None and low is None and high < spec["min_instances"]:
                spec["min_instances"] = high
        specs.append(spec)
    try:
        with _acting_in_team(user=user, team=endpoint.project.team):
            endpoint = endpoint_services.endpoint_update(user=user, endpoint=endpoint, variants=specs)
            after = endpoint.variants.get(name=variant)
            _ops_audit(user=user, verb="scaled endpoint", target=endpoint.name, team=endpoint.project.team,
                       data={"endpoint": str(endpoint.id), "variant": variant,
                             "from": {"min": before[0], "max": before[1], "desired": before[2]},
                             "to": {"min": after.min_instances, "max": after.max_instances,
                                    "desired": after.desired_instances}})
    except ValidationError as exc:
        # The update names fields of its variants list; a caller of this action named the fields above.
        prefix = f"variants.{index}."
        renamed = {key[len(prefix):] if key.startswith(prefix) else key: messages
                   for key, messages in exc.message_dict.items()}
        raise ValidationError(renamed) from None
    return endpoint


# --- failed tasks ---------------------------------------------------------------------------------------


def _arg_text(value: Any) -> str:
    if value is None or isinstance(value, bool | int | float | UUID):
        return repr(value) if not isinstance(value, UUID) else repr(str(value))
    if isinstance(value, str) and SAFE_ARG.match(value):
        return repr(value)
    size = f" of {len(value)}" if hasattr(value, "__len__") else ""
    return f"<{type(value).__name__}{size}>"


def task_arguments_text(args: Any, kwargs: Any) -> str:
    """``'3f2a…', 2, attempt=1``: ids and numbers as they were, anything else only as its type.

    Tasks pass ids by design; a task that was handed data after all must not copy it into this table.
    """
    parts = [_arg_text(a) for a in (args if isinstance(args, list | tuple) else [])]
    if isinstance(kwargs, dict):
        parts += [f"{key}={_arg_text(value)}" for key, value in kwargs.items() if isinstance(key, str)]
    return ", ".join(parts)[:2000]


def failed_task_event(task: FailedTask) -> dict[str, Any]:
    return {"type": "failed_task", "id": task.id, "task_name": task.task_name, "task_id": task.task_id,
            "exception": task.exception[:300], "worker": task.worker, "ts": task.created_at.timestamp()}


def failed_task_record(*, task_name: str, task_id: str, args: Any = None, kwargs: Any = None,
                       exception: BaseException | str | None = None, traceback: str = "",
                       worker: str = "") -> FailedTask:
    """Keep what a worker knows of a task that raised; publish it to the dashboard."""
    is_exception = isinstance(exception, BaseException)
    text = f"{type(exception).__name__}: {exception}" if is_exception else str(exception or "")
    if len(traceback) > MAX_TRACEBACK:
        traceback = "…\n" + traceback[-MAX_TRACEBACK:]  # the end holds the frame that raised
    task = FailedTask.objects.create(task_name=(task_name or "")[:200], task_id=(task_id or "")[:64],
                                     args=task_arguments_text(args, kwargs), exception=text[:5000],
                                     traceback=traceback, worker=(worker or "")[:200])
    publish(kind=metrics.LIVE_KIND, object_id=metrics.BOARD, events=[failed_task_event(task)])
    return task


def failed_tasks_prune(*, now=None, keep_days: int = FAILED_TASKS_KEEP_DAYS) -> int:
    """Forget failures older than ``keep_days``, at most once an hour whoever asks."""
    if not workers.redis_client().set(PRUNE_KEY, "1", nx=True, ex=3600):
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=keep_days)
    deleted, _ = FailedTask.objects.filter(created_at__lt=cutoff).delete()
    return deleted


# --- live charts ----------------------------------------------------------------------------------------


def metrics_sample(*, now: float | None = None) -> dict[str, Any] | None:
    """Take, keep and publish one sample (queue depths, invocation rates); None when another process took this
    interval's sample already."""
    if not metrics.sample_lock():
        return None
    sample = metrics.sample_take(now=time.time() if now is None else now)
    metrics.sample_store(sample)
    publish(kind=metrics.LIVE_KIND, object_id=metrics.BOARD, events=[sample])
    return sample
