"""Debugger rules on live jobs: evaluate (studio.training.debugger), store rule_results, act, publish.

Called from studio.training.debugger_receivers (each epoch, each status change) and from the periodic
stalled-training check. A job's ``debugger_rules`` are the cleaned request ([{rule, parameters, action}]);
its ``rule_results`` hold one entry per rule:
``{rule, status, step, message, action, action_taken, parameters}``.

A rule fires at most once: only entries still "in_progress" change, under a row lock, so the worker's
epochs, the status receivers and the beat task can race without losing or repeating a finding.
Nothing here may fail a training job: evaluation errors mark the rule "error", other errors are logged.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from uuid import UUID

from django.apps import apps
from django.db import transaction
from django.db.models import Count, Max
from django.urls import reverse

from algorithms import UnknownAlgorithm, get_algorithm
from studio.accounts.services import audit
from studio.core.errors import Conflict
from studio.live.publisher import publish
from studio.training import debugger, services
from studio.training.debugger import (
    ERROR,
    IN_PROGRESS,
    ISSUES_FOUND,
    NO_ISSUES_FOUND,
    ON_EPOCH,
    ON_START,
    PERIODIC,
    RULES,
    Finding,
)
from studio.training.models import JobStatus, MetricPoint, TrainingJob

if TYPE_CHECKING:
    from studio.datasets.models import Dataset

logger = logging.getLogger(__name__)

# The wall clock of the stalled-training check, a module attribute so tests can freeze it.
clock: Callable[[], float] = time.time

# At most this many classes count as a classification target when predictor_type is "auto" (as the
# algorithms decide: algorithms._checks.MAX_AUTO_CLASSES).
MAX_AUTO_CLASSES = 20

# The notification kind of a fired rule with the notify action (studio.social.models.NotificationKind.RULE_FIRED).
NOTIFY_KIND = "rule.fired"


def rules_event(results: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "rules", "rule_results": results}


def _rules_of(job: TrainingJob, evaluated: str) -> list[dict[str, Any]]:
    return [r for r in job.debugger_rules or []
            if isinstance(r, dict) and r.get("rule") in RULES and RULES[r["rule"]].evaluated == evaluated]


def _stored_results(job_id: UUID) -> list[dict[str, Any]]:
    return list(TrainingJob.objects.filter(id=job_id).values_list("rule_results", flat=True).first() or [])


def _status(results: list[dict[str, Any]], rule: str) -> str | None:
    return next((r.get("status") for r in results if r.get("rule") == rule), None)


def _update(*, job: TrainingJob, outcomes: dict[str, tuple[str, int | None, str]]) -> list[str]:
    """Store {rule: (status, step, message)} for rules still in progress; return the rules that changed.

    The row is locked for the read-modify-write, and the new list is published to the job's page.
    """
    changed: list[str] = []
    with transaction.atomic():
        row = TrainingJob.objects.select_for_update().only("id", "rule_results").get(id=job.id)
        results = copy.deepcopy(row.rule_results or [])
        for entry in results:
            outcome = outcomes.get(entry.get("rule"))
            if outcome is None or entry.get("status") != IN_PROGRESS:
                continue
            status, step, message = outcome
            entry.update(status=status, step=step, message=message[:1000])
            if status == ISSUES_FOUND and entry.get("action") in ("stop", "notify"):
                entry["action_taken"] = entry["action"]
            changed.append(entry["rule"])
        if changed:
            TrainingJob.objects.filter(id=job.id).update(rule_results=results)
    if changed:
        job.rule_results = results
        # After COMMIT (at once outside a transaction): a page that re-reads the job must find the results.
        transaction.on_commit(lambda: publish(kind=services.LIVE_KIND, object_id=job.id,
                                              events=[rules_event(results)]))
    return changed


def _fire(job: TrainingJob, findings: dict[str, Finding]) -> list[dict[str, Any]]:
    """Mark rules as issues_found, log each in the job's logs and notify; return the fired entries."""
    changed = _update(job=job, outcomes={rule: (ISSUES_FOUND, f.step, f.message) for rule, f in findings.items()})
    fired = [entry for entry in job.rule_results if entry["rule"] in changed]
    if not fired:
        return []
    services.job_log(job=job, lines=[f"Debugger rule {e['rule']}: issues found at step {e['step']}: {e['message']}"
                                     for e in fired])
    for entry in fired:
        if entry["action"] == "notify":
            _notify(job=job, entry=entry)
    return fired


def _notify(*, job: TrainingJob, entry: dict[str, Any]) -> None:
    """An activity event (the project's feed) and, when the social app is installed, a notification to whoever
    started the job (under their bell, and to their webhook)."""
    try:
        audit(actor=None, verb="rule fired", project=job.project, target=job.name,
              data={"job": str(job.id), "rule": entry["rule"], "step": entry["step"], "message": entry["message"]})
        if apps.is_installed("studio.social"):
            from studio.social.services import notify

            notify(user=job.created_by, kind=NOTIFY_KIND, project=job.project,
                   title=f"Debugger rule {entry['rule']} fired on training job {job.name}", body=entry["message"],
                   url=reverse("training-job-detail", args=[job.project_id, job.id]))
    except Exception:
        logger.warning("could not notify the firing of rule %s on job %s", entry["rule"], job.id, exc_info=True)


def stop_message(entry: dict[str, Any]) -> str:
    return f"Stopped by debugger rule {entry['rule']}: {entry['message']}"


# --- each epoch -----------------------------------------------------------------------------------------


def _directions(job: TrainingJob) -> dict[str, str]:
    try:
        return {m.name: m.direction for m in get_algorithm(job.algorithm).metrics}
    except UnknownAlgorithm:
        return {}


def _series(job: TrainingJob, names: set[str], *, step: int, metrics: dict[str, float]
            ) -> dict[str, list[tuple[int, float]]]:
    """The stored series of ``names`` by step, with this epoch's raw values on top: non-finite values are
    never stored (services.job_metrics_record), and the exploding-loss rule must still see them."""
    series: dict[str, dict[int, float]] = {name: {} for name in names}
    points = MetricPoint.objects.filter(job_id=job.id, name__in=names).values_list("name", "step", "value")
    for name, at, value in points:
        series[name][at] = value
    for name in names:
        if name in metrics:
            series[name][int(step)] = float(metrics[name])
    return {name: sorted(values.items()) for name, values in series.items()}


def rules_on_epoch(*, job: TrainingJob, step: int, metrics: dict[str, float]) -> str | None:
    """Evaluate the epoch rules still in progress; return a stop message when a fired rule's action is stop."""
    rules = _rules_of(job, ON_EPOCH)
    if not rules:
        return None
    results = _stored_results(job.id)
    rules = [r for r in rules if _status(results, r["rule"]) == IN_PROGRESS]
    if not rules:
        return None
    names = {name for r in rules for name in debugger.watched_metrics(r["rule"], r["parameters"])}
    series = _series(job, names, step=step, metrics=metrics)
    directions = _directions(job)
    findings: dict[str, Finding] = {}
    broken: dict[str, tuple[str, int | None, str]] = {}
    for rule in rules:
        try:
            finding = debugger.evaluate_epoch_rule(rule["rule"], rule["parameters"], series, directions)
        except Exception as exc:  # a rule that cannot evaluate says so on the page instead of failing the job
            logger.warning("debugger rule %s failed on job %s", rule["rule"], job.id, exc_info=True)
            broken[rule["rule"]] = (ERROR, step, f"The rule could not be evaluated: {type(exc).__name__}: {exc}")
            continue
        if finding is not None:
            findings[rule["rule"]] = finding
    if broken:
        _update(job=job, outcomes=broken)
    fired = _fire(job, findings) if findings else []
    stops = [entry for entry in fired if entry["action"] == "stop"]
    return stop_message(stops[0]) if stops else None


# --- when the job starts: class imbalance from the dataset's profile -----------------------------------------


def class_counts(job: TrainingJob) -> tuple[dict[str, int] | None, bool, str]:
    """(counts of the target's classes, whether rarer classes were left out, why there are none)."""
    dataset: Dataset | None = job.dataset
    if dataset is None:
        return None, False, "The training dataset was deleted."
    profile = dataset.profile or {}
    if dataset.kind == "image":
        return dict(profile.get("class_counts") or {}), False, ""
    if dataset.kind == "text":
        if not job.target:
            return None, False, "This job has no labels: class balance does not apply."
        return dict(profile.get("label_counts") or {}), bool(profile.get("labels_capped")), ""
    if not job.target:
        return None, False, "This job has no target column: class balance does not apply."
    column = next((c for c in profile.get("columns") or [] if c.get("name") == job.target), None)
    if column is None:
        return None, False, f"The dataset profile has no column '{job.target}'."
    predictor = str((job.hyperparameters or {}).get("predictor_type", "auto"))
    top = [(str(value), int(n)) for value, n in column.get("top_values") or []]
    distinct = int(column.get("distinct") or len(top))
    complete = distinct <= len(top) and not column.get("distinct_capped")
    if predictor == "regressor":
        return None, False, f"'{job.target}' is a regression target: class balance does not apply."
    if predictor == "auto" and column.get("dtype") in ("int", "float"):
        # As the algorithms decide: whole numbers with few distinct values are classes, others a quantity.
        whole = all(_is_whole(value) for value, _ in top)
        if not (whole and complete and distinct <= MAX_AUTO_CLASSES):
            return None, False, f"'{job.target}' is a numeric (regression) target: class balance does not apply."
    return dict(top), not complete, ""


def _is_whole(text: str) -> bool:
    try:
        number = float(text)
    except ValueError:
        return False
    return math.isfinite(number) and number.is_integer()


def rules_on_start(*, job: TrainingJob) -> None:
    rules = [r for r in _rules_of(job, ON_START) if _status(_stored_results(job.id), r["rule"]) == IN_PROGRESS]
    for rule in rules:  # class_imbalance is the one rule evaluated at the start
        counts, lower_bound, why = class_counts(job)
        if counts is None:
            _update(job=job, outcomes={rule["rule"]: (NO_ISSUES_FOUND, 0, why)})
            continue
        finding = debugger.class_imbalance(counts, threshold=float(rule["parameters"]["threshold"]),
                                           lower_bound=lower_bound)
        if finding is None:
            _update(job=job, outcomes={rule["rule"]: (NO_ISSUES_FOUND, 0, f"{len(counts)} classes within the "
                                                     f"threshold {rule['parameters']['threshold']:g}.")})
            continue
        for entry in _fire(job, {rule["rule"]: finding}):
            if entry["action"] == "stop":
                with contextlib.suppress(Conflict):  # it finished meanwhile: nothing left to stop
                    services.training_job_request_stop(job=job, message=stop_message(entry))


# --- when the job ends ---------------------------------------------------------------------------------------


def rules_on_end(*, job: TrainingJob) -> None:
    """Close the rules still in progress: no issues found, or an error when their metric never came."""
    results = _stored_results(job.id)
    open_rules = [r for r in job.debugger_rules or [] if isinstance(r, dict)
                  and _status(results, r.get("rule")) == IN_PROGRESS]
    if not open_rules:
        return
    counts = dict(MetricPoint.objects.filter(job_id=job.id).values_list("name").annotate(n=Count("id"))
                  .values_list("name", "n"))
    outcomes: dict[str, tuple[str, int | None, str]] = {}
    for rule in open_rules:
        name = rule["rule"]
        if not counts:
            outcomes[name] = (NO_ISSUES_FOUND, None, f"The job ended ({job.status}) before its first epoch.")
            continue
        watched = debugger.watched_metrics(name, rule.get("parameters") or {})
        missing = [m for m in watched if m not in counts]
        if missing:
            outcomes[name] = (ERROR, None, f"No {', '.join(missing)} was recorded, so the rule could not be "
                                           "evaluated" + (" (is there a validation set?)." if any(
                                               m.startswith("validation:") for m in missing) else "."))
        elif watched:
            steps = min(counts[m] for m in watched)
            outcomes[name] = (NO_ISSUES_FOUND, None, f"Checked {steps} step(s) of {', '.join(watched)}.")
        else:
            outcomes[name] = (NO_ISSUES_FOUND, None, "")
    _update(job=job, outcomes=outcomes)


# --- periodically: stalled training --------------------------------------------------------------------------


def stalled_rules_check(*, now: float | None = None) -> dict[str, int]:
    """Fire stalled_training on running jobs that recorded no metric for its threshold (the beat task)."""
    now = clock() if now is None else now
    checked = fired = 0
    running = TrainingJob.objects.filter(status=JobStatus.RUNNING).select_related("project")
    for job in running:
        rules = [r for r in _rules_of(job, PERIODIC) if _status(job.rule_results or [], r["rule"]) == IN_PROGRESS]
        if not rules:
            continue
        checked += 1
        last = MetricPoint.objects.filter(job_id=job.id).aggregate(ts=Max("ts"), step=Max("step"))
        started = job.started_at.timestamp() if job.started_at else now
        last_ts = max(last["ts"] or started, started)
        for rule in rules:
            finding = debugger.stalled_training(last_ts=last_ts, last_step=last["step"], now=now,
                                                threshold_seconds=int(rule["parameters"]["threshold_seconds"]))
            if finding is None:
                continue
            for entry in _fire(job, {rule["rule"]: finding}):
                fired += 1
                if entry["action"] == "stop":
                    _stop_stalled(job, entry)
    return {"checked": checked, "fired": fired}


def _stop_stalled(job: TrainingJob, entry: dict[str, Any]) -> None:
    """Stop now: a stalled worker may never reach its next epoch to honour a stop request. If it does, it
    finds the job no longer running and drops its work, as after the reconciler."""
    message = stop_message(entry)
    if services.training_job_finish(job=job, status=JobStatus.STOPPED, status_message=message):
        services.job_log(job=job, lines=[f"{message}; the job was stopped."])
