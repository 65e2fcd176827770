"""Automatic workflows: cron schedules and event triggers that start pipeline executions by themselves.

A schedule owns a django-celery-beat PeriodicTask (``celery beat -S django_celery_beat.schedulers:
DatabaseScheduler`` reads it from the database, so schedules added or changed while beat runs take effect
without a restart); each beat firing runs :func:`schedule_fire`. A trigger listens to a project event (a
dataset became ready, a model version was approved; see receivers.py) and starts its pipeline with the
event's object id in one parameter.

Loops: a pipeline whose own steps make a dataset or approve a version must not be started again by that
object, or it would run forever (split → new dataset → trigger → split...). Every object is traced to the
execution that made it (:func:`_producer_of_dataset`, :func:`_producer_of_version`); an execution's
``trigger_detail["chain"]`` lists the pipelines that led to it, and a trigger never starts a pipeline already
in the chain of the object's producer, which also stops a cycle through several pipelines (A → B → A).
"""

from __future__ import annotations

import fnmatch
import functools
import json
import logging
import zoneinfo
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from celery.schedules import ParseException, crontab
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils import timezone as django_timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask
from django_celery_beat.tzcrontab import TzAwareCrontab

from studio.accounts.models import Role
from studio.accounts.permissions import require_role
from studio.accounts.services import audit
from studio.core.errors import Conflict
from studio.pipelines import engine
from studio.pipelines.definition import value_kind
from studio.pipelines.models import (
    EXECUTION_FINAL_STATUSES,
    ExecutionStatus,
    PipelineExecution,
    PipelineSchedule,
    PipelineStep,
    PipelineTrigger,
    StepStatus,
    StepType,
    TriggerEvent,
    TriggerKind,
)

if TYPE_CHECKING:
    from studio.accounts.models import User
    from studio.datasets.models import Dataset
    from studio.pipelines.models import Pipeline
    from studio.registry.models import ModelVersion

logger = logging.getLogger(__name__)

SCHEDULE_TASK = "studio.pipelines.tasks.pipeline_schedule_fire_task"
# (field, what the message calls it, what it takes): the five fields of a cron line, in order.
CRON_FIELDS = (
    ("minute", "minute", "0-59"),
    ("hour", "hour", "0-23"),
    ("day_of_month", "day-of-month", "1-31"),
    ("month_of_year", "month", "1-12"),
    ("day_of_week", "day-of-week", "0-6 or sun-sat, Sunday is 0"),
)
CRON_ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
# Beat may deliver one firing twice (acks_late redelivery); cron never fires one schedule twice this close.
FIRE_DEDUPE = timedelta(seconds=30)
FILTER_KEYS = {
    TriggerEvent.DATASET_CREATED: {"name_pattern": "a glob over the dataset's name, e.g. 'customers-*'"},
    TriggerEvent.MODEL_VERSION_APPROVED: {"model_group": "the name of the model group"},
}
NAME_MAX = 200


# --- validation ---------------------------------------------------------------------------------


def cron_parse(value: Any) -> dict[str, str]:
    """The CrontabSchedule fields of a 5-field cron line (or @daily...); ValidationError on ``cron`` naming the
    bad field. Celery's own parser decides, since it is what beat runs."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError({"cron": ["cron is required: 5 fields 'minute hour day-of-month month day-of-week', "
                                         "e.g. '0 3 * * *' for 03:00 every day."]})
    text = CRON_ALIASES.get(value.strip().lower(), value.strip())
    parts = text.split()
    if len(parts) != len(CRON_FIELDS):
        raise ValidationError({"cron": [f"cron needs 5 fields 'minute hour day-of-month month day-of-week' "
                                         f"(got {len(parts)} in '{value}')."]})
    fields: dict[str, str] = {}
    for part, (field, label, takes) in zip(parts, CRON_FIELDS, strict=True):
        if field in ("minute", "hour", "day_of_month") and not set(part) <= set("0123456789*,-/"):
            raise ValidationError({"cron": [f"the {label} field '{part}' may only use numbers ({takes}), "
                                             "'*', ',', '-' and '/'."]})
        try:
            crontab(**{field: part})
        except (ValueError, ParseException) as exc:
            raise ValidationError({"cron": [f"the {label} field '{part}' is not valid ({takes}): {exc}"]}) from None
        fields[field] = part
    return fields


def cron_text(fields: dict[str, str]) -> str:
    return " ".join(fields[field] for field, _, _ in CRON_FIELDS)


@functools.cache
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())  # reads the tz database from disk: once per process


def _timezone(value: Any) -> str:
    name = (value or "UTC") if isinstance(value, str) else value
    if not isinstance(name, str) or name not in _timezones():
        raise ValidationError({"timezone": [f"'{value}' is not a known time zone; use an IANA name such as "
                                            "'UTC' or 'Europe/Paris'."]})
    return name


def _parameters(pipeline: Pipeline, value: Any, *, receives: str = "") -> dict[str, Any]:
    """Values for the pipeline's parameters, checked against its current definition as a run's would be
    (the engine checks them again at each start: the definition may change in between). ``receives`` is a
    parameter a trigger fills with the event's id, so it need not be given here."""
    if value in (None, ""):
        value = {}
    if not isinstance(value, dict):
        raise ValidationError({"parameters": ["parameters must be an object {name: value}."]})
    given = {**value, receives: "<the event's id>"} if receives else value
    engine.parameters_resolve(definition=pipeline.definition or {}, parameters=given)
    return dict(value)


def _name(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value.strip()) > NAME_MAX:
        raise ValidationError({"name": [f"name must be text of at most {NAME_MAX} characters."]})
    return value.strip()


def _enabled(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValidationError({"enabled": [f"enabled must be true or false (got {value!r})."]})
    return value


# --- schedules ----------------------------------------------------------------------------------


def schedule_list(*, pipeline: Pipeline) -> QuerySet[PipelineSchedule]:
    """Schedules of a pipeline the caller already got through a scoped selector."""
    return PipelineSchedule.objects.filter(pipeline=pipeline).select_related("created_by", "periodic_task")


def schedule_get(*, pipeline: Pipeline, schedule_id) -> PipelineSchedule:
    try:
        return schedule_list(pipeline=pipeline).get(id=schedule_id)
    except (PipelineSchedule.DoesNotExist, ValueError, ValidationError):
        raise Http404("No such schedule on this pipeline.") from None


def schedule_create(*, user: User, pipeline: Pipeline, cron: Any, parameters: Any = None, name: Any = "",
                    timezone: Any = "UTC", enabled: Any = True) -> PipelineSchedule:
    """A cron schedule that starts the pipeline as ``user`` (member+); beat picks it up without a restart."""
    require_role(user=user, team=pipeline.project.team, role=Role.MEMBER)
    errors: dict[str, list[str]] = {}
    cleaned: dict[str, Any] = {}
    for key, check, given in (("cron", lambda v: cron_text(cron_parse(v)), cron), ("timezone", _timezone, timezone),
                              ("name", _name, name), ("enabled", _enabled, enabled),
                              ("parameters", lambda v: _parameters(pipeline, v), parameters)):
        try:
            cleaned[key] = check(given)
        except ValidationError as exc:
            errors.update(exc.message_dict)
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        schedule = PipelineSchedule.objects.create(pipeline=pipeline, created_by=user, **cleaned)
        _sync_periodic_task(schedule)
        audit(actor=user, verb="scheduled pipeline", project=pipeline.project, target=pipeline.name,
              data={"pipeline": str(pipeline.id), "schedule": str(schedule.id), "cron": schedule.cron,
                    "timezone": schedule.timezone})
    return schedule


def schedule_update(*, user: User, schedule: PipelineSchedule, cron: Any = None, parameters: Any = None,
                    name: Any = None, timezone: Any = None, enabled: Any = None) -> PipelineSchedule:
    """Change what is given (None keeps it); the beat entry follows in the same transaction."""
    pipeline = schedule.pipeline
    require_role(user=user, team=pipeline.project.team, role=Role.MEMBER)
    changes: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    checks = (("cron", lambda v: cron_text(cron_parse(v)), cron), ("timezone", _timezone, timezone),
              ("name", _name, name), ("enabled", _enabled, enabled),
              ("parameters", lambda v: _parameters(pipeline, v), parameters))
    for key, check, given in checks:
        if given is None:
            continue
        try:
            changes[key] = check(given)
        except ValidationError as exc:
            errors.update(exc.message_dict)
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        schedule = PipelineSchedule.objects.select_for_update().get(id=schedule.id)
        for key, value in changes.items():
            setattr(schedule, key, value)
        schedule.save()
        _sync_periodic_task(schedule)
        if changes:
            audit(actor=user, verb="changed pipeline schedule", project=pipeline.project, target=pipeline.name,
                  data={"pipeline": str(pipeline.id), "schedule": str(schedule.id), "changed": sorted(changes)})
    return schedule


def schedule_delete(*, user: User, schedule: PipelineSchedule) -> None:
    pipeline = schedule.pipeline
    require_role(user=user, team=pipeline.project.team, role=Role.MEMBER)
    with transaction.atomic():
        audit(actor=user, verb="deleted pipeline schedule", project=pipeline.project, target=pipeline.name,
              data={"pipeline": str(pipeline.id), "schedule": str(schedule.id), "cron": schedule.cron})
        schedule.delete()  # the post_delete receiver removes the beat entry, as for a cascade from the pipeline


def _sync_periodic_task(schedule: PipelineSchedule) -> None:
    """Create or update the schedule's beat entry: its crontab, time zone, enabled flag and kwargs."""
    fields = cron_parse(schedule.cron)
    tz = zoneinfo.ZoneInfo(schedule.timezone)
    crontab_row = (CrontabSchedule.objects.filter(**fields, timezone=tz).order_by("id").first()
                   or CrontabSchedule.objects.create(**fields, timezone=tz))
    task = schedule.periodic_task or PeriodicTask(name=f"pipeline-schedule:{schedule.id}")
    previous_crontab = task.crontab_id
    task.task = SCHEDULE_TASK
    task.crontab = crontab_row
    task.interval = task.solar = task.clocked = None
    task.kwargs = json.dumps({"schedule_id": str(schedule.id)})
    task.enabled = schedule.enabled
    task.description = f"Pipeline '{schedule.pipeline.name}' ({schedule.pipeline_id}), {schedule.cron} {tz.key}"
    task.save()  # save(), not update(): it tells a running DatabaseScheduler that the schedule changed
    if schedule.periodic_task_id != task.id:
        schedule.periodic_task = task
        schedule.save(update_fields=["periodic_task"])
    if previous_crontab and previous_crontab != crontab_row.id:
        _drop_unused_crontab(previous_crontab)


def _drop_unused_crontab(crontab_id: int) -> None:
    CrontabSchedule.objects.filter(id=crontab_id, periodictask__isnull=True).delete()


def schedule_periodic_task_delete(*, periodic_task_id: int | None) -> None:
    """Remove a deleted schedule's beat entry (and its crontab when nothing else uses it)."""
    if periodic_task_id is None:
        return
    task = PeriodicTask.objects.filter(id=periodic_task_id).first()
    if task is not None:
        crontab_id = task.crontab_id
        task.delete()
        if crontab_id:
            _drop_unused_crontab(crontab_id)


def schedule_next_run(schedule: PipelineSchedule, *, now: datetime | None = None) -> datetime | None:
    """When the schedule next fires after ``now`` (None when disabled), as beat computes it."""
    if not schedule.enabled:
        return None
    tz = zoneinfo.ZoneInfo(schedule.timezone)
    local_now = (now or django_timezone.now()).astimezone(tz)
    cron = TzAwareCrontab(**cron_parse(schedule.cron), tz=tz)  # the class beat's CrontabSchedule rows run
    cron.nowfun = lambda: local_now
    return local_now + cron.remaining_estimate(local_now)


def schedule_fire(*, schedule_id) -> PipelineExecution | None:
    """Start the scheduled run (beat's task body): None when the schedule is gone, disabled, fired moments
    ago (a redelivered message) or the run cannot start (logged, e.g. its owner left the team)."""
    schedule = (PipelineSchedule.objects.select_related("pipeline__project__team", "created_by")
                .filter(id=schedule_id).first())
    if schedule is None or not schedule.enabled:
        return None
    if schedule.created_by is None:
        logger.warning("pipeline schedule %s: its owner no longer exists; not starting a run", schedule.id)
        return None
    now = django_timezone.now()
    try:
        # Claim and start together: a database error undoes the claim, so Celery's retry still starts the run.
        with transaction.atomic():
            claimed = (PipelineSchedule.objects.filter(id=schedule.id, enabled=True)
                       .filter(Q(last_run_at__isnull=True) | Q(last_run_at__lte=now - FIRE_DEDUPE))
                       .update(last_run_at=now))
            if not claimed:
                return None
            return engine.pipeline_execution_start(
                user=schedule.created_by, pipeline=schedule.pipeline, parameters=dict(schedule.parameters or {}),
                trigger=TriggerKind.SCHEDULE, trigger_detail={"schedule": str(schedule.id)})
    except (ValidationError, PermissionDenied, Conflict) as exc:
        logger.warning("pipeline schedule %s could not start pipeline %s: %s", schedule.id, schedule.pipeline_id,
                       _message(exc))
        return None


# --- triggers -----------------------------------------------------------------------------------


def trigger_list(*, pipeline: Pipeline) -> QuerySet[PipelineTrigger]:
    """Triggers of a pipeline the caller already got through a scoped selector."""
    return PipelineTrigger.objects.filter(pipeline=pipeline).select_related("created_by")


def trigger_get(*, pipeline: Pipeline, trigger_id) -> PipelineTrigger:
    try:
        return trigger_list(pipeline=pipeline).get(id=trigger_id)
    except (PipelineTrigger.DoesNotExist, ValueError, ValidationError):
        raise Http404("No such trigger on this pipeline.") from None


def _event(value: Any) -> str:
    if value not in TriggerEvent.values:
        raise ValidationError({"event": [f"event must be one of {', '.join(TriggerEvent.values)} (got {value!r})."]})
    return str(value)


def _filter(event: str, value: Any) -> dict[str, str]:
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise ValidationError({"filter": ["filter must be an object."]})
    allowed = FILTER_KEYS[TriggerEvent(event)]
    errors: dict[str, list[str]] = {}
    cleaned: dict[str, str] = {}
    for key, given in value.items():
        if key not in allowed:
            takes = "; ".join(f"{k}: {help_}" for k, help_ in allowed.items())
            errors[f"filter.{key}"] = [f"a {event} trigger filters on {takes} (got '{key}')."]
        elif not isinstance(given, str) or len(given) > NAME_MAX:
            errors[f"filter.{key}"] = [f"{key} must be text of at most {NAME_MAX} characters."]
        elif given.strip():
            cleaned[key] = given.strip()
    if errors:
        raise ValidationError(errors)
    return cleaned


def _trigger_parameter(pipeline: Pipeline, value: Any) -> str:
    if value in (None, ""):
        return ""
    defaults = (pipeline.definition or {}).get("parameters") or {}
    if not isinstance(value, str) or value not in defaults:
        known = ", ".join(sorted(defaults)) or "none"
        raise ValidationError({"parameter": [f"parameter must name one of the pipeline's parameters ({known}); "
                                             f"got {value!r}."]})
    if not isinstance(defaults[value], str | None):
        raise ValidationError({"parameter": [f"parameter '{value}' takes a {value_kind(defaults[value])}, but a "
                                             "trigger passes an id (text); use a parameter with a text default."]})
    return value


def trigger_create(*, user: User, pipeline: Pipeline, event: Any, filter: Any = None,
                   parameter: Any = "", parameters: Any = None, enabled: Any = True) -> PipelineTrigger:
    """Start the pipeline as ``user`` whenever ``event`` happens in its project (member+).

    ``parameter`` receives the event's object id (the new dataset's, the approved version's model's);
    ``parameters`` are fixed values for the others.
    """
    require_role(user=user, team=pipeline.project.team, role=Role.MEMBER)
    errors: dict[str, list[str]] = {}
    cleaned: dict[str, Any] = {}
    try:
        cleaned["event"] = _event(event)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    checks = [("parameter", lambda v: _trigger_parameter(pipeline, v), parameter), ("enabled", _enabled, enabled)]
    if "event" in cleaned:
        checks.append(("filter", lambda v: _filter(cleaned["event"], v), filter))
    for key, check, given in checks:
        try:
            cleaned[key] = check(given)
        except ValidationError as exc:
            errors.update(exc.message_dict)
    receives = cleaned.get("parameter", "")
    if receives and isinstance(parameters, dict) and receives in parameters:
        errors[f"parameters.{receives}"] = [f"'{receives}' receives the event's id; leave it out of parameters."]
    else:
        try:
            cleaned["parameters"] = _parameters(pipeline, parameters, receives=receives)
        except ValidationError as exc:
            errors.update(exc.message_dict)
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        trigger = PipelineTrigger.objects.create(pipeline=pipeline, created_by=user, **cleaned)
        audit(actor=user, verb="added pipeline trigger", project=pipeline.project, target=pipeline.name,
              data={"pipeline": str(pipeline.id), "trigger": str(trigger.id), "event": trigger.event,
                    "filter": trigger.filter})
    return trigger


def trigger_delete(*, user: User, trigger: PipelineTrigger) -> None:
    pipeline = trigger.pipeline
    require_role(user=user, team=pipeline.project.team, role=Role.MEMBER)
    with transaction.atomic():
        audit(actor=user, verb="deleted pipeline trigger", project=pipeline.project, target=pipeline.name,
              data={"pipeline": str(pipeline.id), "trigger": str(trigger.id), "event": trigger.event})
        trigger.delete()


def triggers_on_dataset_ready(*, dataset: Dataset) -> list[PipelineExecution]:
    """Start every enabled dataset_created trigger of the dataset's project whose name pattern matches."""
    triggers = [t for t in _triggers(project_id=dataset.project_id, event=TriggerEvent.DATASET_CREATED)
                if fnmatch.fnmatchcase(dataset.name, t.filter.get("name_pattern") or "*")]
    if not triggers:
        return []
    chain = _chain(_producer_of_dataset(dataset))
    return _fire_all(triggers, chain=chain, kind=TriggerKind.DATASET, detail={"dataset": str(dataset.id)},
                     value=str(dataset.id))


def triggers_on_model_version_approved(*, version: ModelVersion) -> list[PipelineExecution]:
    """Start every enabled model_version_approved trigger of the version's project whose group filter matches;
    the trigger's parameter receives the version's model id (what a deploy or transform step takes)."""
    group = version.group
    triggers = [t for t in _triggers(project_id=group.project_id, event=TriggerEvent.MODEL_VERSION_APPROVED)
                if t.filter.get("model_group") in (None, "", group.name)]
    if not triggers:
        return []
    chain = _chain(_producer_of_version(version))
    return _fire_all(triggers, chain=chain, kind=TriggerKind.MODEL_APPROVED,
                     detail={"model_version": str(version.id), "model_group": str(group.id),
                             "model": str(version.model_id)},
                     value=str(version.model_id))


def _triggers(*, project_id, event: str) -> list[PipelineTrigger]:
    return list(PipelineTrigger.objects.filter(pipeline__project_id=project_id, event=event, enabled=True)
                .select_related("pipeline__project__team", "created_by").order_by("created_at"))


def _fire_all(triggers: list[PipelineTrigger], *, chain: list[str], kind: str, detail: dict[str, str],
              value: str) -> list[PipelineExecution]:
    started = []
    for trigger in triggers:
        if str(trigger.pipeline_id) in chain:
            logger.info("pipeline trigger %s: the object came from pipeline %s itself (chain %s); not starting it",
                        trigger.id, trigger.pipeline_id, chain)
            continue
        if trigger.created_by is None:
            logger.warning("pipeline trigger %s: its owner no longer exists; not starting a run", trigger.id)
            continue
        parameters = dict(trigger.parameters or {})
        if trigger.parameter:
            parameters[trigger.parameter] = value
        trigger_detail: dict[str, Any] = {"trigger": str(trigger.id), **detail}
        if chain:
            trigger_detail["chain"] = chain
        try:
            # Each run in its own savepoint: one trigger that cannot start never stops the others.
            with transaction.atomic():
                execution = engine.pipeline_execution_start(
                    user=trigger.created_by, pipeline=trigger.pipeline, parameters=parameters, trigger=kind,
                    trigger_detail=trigger_detail)
        except (ValidationError, PermissionDenied, Conflict) as exc:
            logger.warning("pipeline trigger %s could not start pipeline %s: %s", trigger.id, trigger.pipeline_id,
                           _message(exc))
            continue
        PipelineTrigger.objects.filter(id=trigger.id).update(last_fired_at=django_timezone.now())
        started.append(execution)
    return started


def _message(exc: Exception) -> str:
    if isinstance(exc, ValidationError) and hasattr(exc, "error_dict"):
        return "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
    return " ".join(getattr(exc, "messages", [str(exc)]))


# --- where an object came from (the loop guard) --------------------------------------------------

# The execution whose step is running in this context: objects made here are that execution's.
_acting_execution: ContextVar[str | None] = ContextVar("studio_pipeline_execution", default=None)
_ACTIVE = [status for status in ExecutionStatus.values if status not in EXECUTION_FINAL_STATUSES]


@contextmanager
def acting_for(execution_id) -> Iterator[None]:
    """Mark what runs inside (a step's start/poll/stop) as done by this execution.

    The dataset and approval signals carry the context they were sent in, so a trigger knows an object
    was made by a pipeline step and which one, even when the transaction commits after the step returns.
    """
    token = _acting_execution.set(str(execution_id))
    try:
        yield
    finally:
        _acting_execution.reset(token)


def _producer_of_dataset(dataset: Dataset) -> str | None:
    """The id of the execution that made the dataset, or None for one a person uploaded."""
    if (acting := _acting_execution.get()) is not None:
        return acting
    from studio.endpoints.models import TransformJob

    # A transform step's output is written by transform workers, outside any step: follow the job.
    for job_id in TransformJob.objects.filter(output_dataset=dataset).values_list("id", flat=True):
        step = PipelineStep.objects.filter(job__kind="transform_job", job__id=str(job_id)).first()
        if step is not None:
            return str(step.execution_id)
    # Without the context (a step run by code that did not mark it): a processing step running for the
    # dataset's creator since before the dataset existed made it.
    step = (PipelineStep.objects.filter(
        type=StepType.PROCESSING, status=StepStatus.RUNNING, started_at__lte=dataset.created_at,
        execution__project_id=dataset.project_id, execution__status__in=_ACTIVE,
        execution__created_by_id=dataset.created_by_id).order_by("-started_at").first())
    return str(step.execution_id) if step is not None else None


def _producer_of_version(version: ModelVersion) -> str | None:
    """The id of the execution whose register step approved the version, or None for a person's approval."""
    if (acting := _acting_execution.get()) is not None:
        return acting
    step = (PipelineStep.objects.filter(
        type=StepType.REGISTER, status=StepStatus.RUNNING, arguments__model=str(version.model_id),
        execution__project_id=version.group.project_id, execution__status__in=_ACTIVE)
        .order_by("-started_at").first())
    return str(step.execution_id) if step is not None else None


def _chain(execution_id: str | None) -> list[str]:
    """The pipelines behind an object: the producing execution's own chain, then its pipeline."""
    if execution_id is None:
        return []
    row = PipelineExecution.objects.filter(id=execution_id).values("pipeline_id", "trigger_detail").first()
    if row is None:
        return []
    before = (row["trigger_detail"] or {}).get("chain") or []
    return [*[str(p) for p in before if str(p) != str(row["pipeline_id"])], str(row["pipeline_id"])]
