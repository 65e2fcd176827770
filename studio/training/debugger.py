"""Debugger rules (as SageMaker Debugger's built-in rules), evaluated on the metric series of a training job.

Pure Python over plain data, no Django: the rule catalog, the validation of a job's ``debugger_rules``
request and one function per rule that answers "where did this fire, and why" from the whole series so
far. The glue that loads series, stores results and acts lives in studio.training.rules_service.

A rule is judged on the whole series at every epoch rather than on a running state, so evaluating the
same series twice (a retried epoch, a restarted worker) always gives the same step and message.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

# Statuses of one rule on one job, as SageMaker reports them (RuleEvaluationStatus).
IN_PROGRESS = "in_progress"
NO_ISSUES_FOUND = "no_issues_found"
ISSUES_FOUND = "issues_found"
ERROR = "error"
STATUSES = (IN_PROGRESS, NO_ISSUES_FOUND, ISSUES_FOUND, ERROR)

ACTIONS = ("none", "stop", "notify")

# When a rule is evaluated: on each epoch's metrics, once when the job starts (from the dataset), or by a
# periodic beat task while the job runs (a stall means no epoch arrives to evaluate on).
ON_EPOCH, ON_START, PERIODIC = "epoch", "start", "periodic"

MINIMIZE, MAXIMIZE = "minimize", "maximize"

Series = Sequence[tuple[int, float]]


class RuleError(ValueError):
    """A bad ``debugger_rules`` request: ``errors`` maps field paths (debugger_rules.0.parameters.patience)
    to messages, ready for a 400."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class Finding:
    step: int
    message: str


@dataclass(frozen=True)
class Param:
    name: str
    type: str  # "int", "float" or "metric" (a metric the algorithm records, e.g. "validation:loss")
    default: Any
    help: str
    min: float | None = None
    max: float | None = None
    # For metrics: the channel the default is taken from ("train" or "validation").
    channel: str = ""

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "default": self.default, "help": self.help}
        if self.min is not None:
            out["min"] = self.min
        if self.max is not None:
            out["max"] = self.max
        return out


@dataclass(frozen=True)
class Rule:
    name: str
    title: str
    description: str
    evaluated: str
    params: tuple[Param, ...] = field(default_factory=tuple)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "description": self.description,
                "evaluated": self.evaluated, "parameters": [p.describe() for p in self.params],
                "actions": list(ACTIONS)}

    @property
    def metric_params(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if p.type == "metric")


def _metric(name: str, channel: str, help_text: str) -> Param:
    # The default "" means: this channel's loss, or the algorithm's objective family on it (resolved at validation).
    return Param(name, "metric", "", help_text, channel=channel)


PATIENCE_MAX = 10_000

RULES: dict[str, Rule] = {rule.name: rule for rule in (
    Rule("loss_not_decreasing", "Loss not decreasing",
         "Fires when the metric has not improved by more than min_delta over the last patience steps.",
         ON_EPOCH, (
             _metric("metric", "train", "The metric to watch; default: the training loss."),
             Param("patience", "int", 5, "Steps to look back: the value now is compared with the one this many "
                                         "steps before.", 1, PATIENCE_MAX),
             Param("min_delta", "float", 0.0, "The smallest change over those steps that counts as progress.", 0.0),
         )),
    Rule("overfit", "Overfit",
         "Fires when, for patience steps in a row, the validation metric got worse while the training metric "
         "improved, with validation behind training by more than ratio_threshold (relative).",
         ON_EPOCH, (
             _metric("train_metric", "train", "The training metric; default: the training loss."),
             _metric("validation_metric", "validation", "The validation metric; default: the validation loss."),
             Param("patience", "int", 3, "Consecutive steps of diverging curves before the rule fires.", 1,
                   PATIENCE_MAX),
             Param("ratio_threshold", "float", 0.1, "How far validation must trail training, relative to the "
                                                    "training value: (validation - training) / |training|.", 0.0),
         )),
    Rule("overtraining", "Overtraining",
         "Fires when the validation metric has not improved on its best for patience steps: training past "
         "this point only spends time.",
         ON_EPOCH, (
             _metric("metric", "validation", "The validation metric; default: the validation loss."),
             Param("patience", "int", 5, "Steps without a new best before the rule fires.", 1, PATIENCE_MAX),
             Param("min_delta", "float", 0.0, "The smallest improvement on the best that counts as a new best.",
                   0.0),
         )),
    Rule("class_imbalance", "Class imbalance",
         "Fires at the start when the most frequent class of the training dataset's target has more than "
         "threshold times the rows of the least frequent one (from the dataset profile).",
         ON_START, (
             Param("threshold", "float", 10.0, "The largest acceptable ratio of the biggest to the smallest class.",
                   1.0),
         )),
    Rule("exploding_loss", "Exploding loss",
         "Fires when the metric becomes NaN or infinite, or grows beyond factor times its first value.",
         ON_EPOCH, (
             _metric("metric", "train", "The metric to watch; default: the training loss."),
             Param("factor", "float", 10.0, "How many times its first value the metric may reach.", 1.0),
         )),
    Rule("vanishing_loss_change", "Vanishing loss change",
         "Fires when the metric changes by less than epsilon from one step to the next for patience steps "
         "in a row: training has stopped moving.",
         ON_EPOCH, (
             _metric("metric", "train", "The metric to watch; default: the training loss."),
             Param("epsilon", "float", 1e-7, "The smallest step-to-step change (absolute) that counts as moving.",
                   0.0),
             Param("patience", "int", 5, "Consecutive still steps before the rule fires.", 1, PATIENCE_MAX),
         )),
    Rule("stalled_training", "Stalled training",
         "Fires when a running job has recorded no metric for threshold_seconds (checked periodically).",
         PERIODIC, (
             Param("threshold_seconds", "int", 1800, "Seconds without a new metric before the rule fires.", 1,
                   30 * 24 * 3600),
         )),
)}


def catalog() -> list[dict[str, Any]]:
    return [rule.describe() for rule in RULES.values()]


# --- validating a request ----------------------------------------------------------------------------


def default_metric(channel: str, *, metrics: Mapping[str, str], objective: str) -> str | None:
    """The metric a rule watches by default on ``channel``: its loss, else the objective's family, else any."""
    on_channel = [name for name in metrics if name.startswith(f"{channel}:")]
    family = objective.split(":", 1)[-1]
    for wanted in (f"{channel}:loss", f"{channel}:{family}"):
        if wanted in metrics:
            return wanted
    return on_channel[0] if on_channel else None


def _number(raw: Any, param: Param) -> tuple[float | int | None, str]:
    """(value, "") or (None, the reason) for an int or float parameter; numeric strings (forms) are accepted."""
    kind = "a whole number" if param.type == "int" else "a number"
    if isinstance(raw, bool) or raw is None or (isinstance(raw, str) and not raw.strip()):
        return None, f"{param.name} must be {kind} (got {raw!r})."
    try:
        value = float(raw.strip() if isinstance(raw, str) else raw)
    except (TypeError, ValueError):
        return None, f"{param.name} must be {kind} (got {raw!r})."
    if not math.isfinite(value):
        return None, f"{param.name} must be a finite number (got {raw!r})."
    if param.type == "int":
        if not value.is_integer():
            return None, f"{param.name} must be a whole number (got {raw!r})."
        value = int(value)
    low, high = param.min, param.max
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
        return None, f"{param.name} must be {bounds} (got {raw!r})."
    return value, ""


def clean_rules(raw: Any, *, metrics: Mapping[str, str], objective: str) -> list[dict[str, Any]]:
    """A job's ``debugger_rules`` request -> [{rule, parameters (all of them, defaults filled), action}].

    Items are a rule name or ``{"rule", "parameters"?, "action"?}``. ``metrics`` are the algorithm's
    declared metrics by name (their direction), ``objective`` its default objective. Raises RuleError
    naming each bad field as ``debugger_rules.<i>.<field>``.
    """
    if raw is None or raw == "":
        return []
    if not isinstance(raw, list | tuple):
        raise RuleError({"debugger_rules": ["debugger_rules must be a list of rules, e.g. "
                                            '[{"rule": "overfit", "action": "stop"}].']})
    errors: dict[str, list[str]] = {}
    cleaned: list[dict[str, Any]] = []
    seen: set[str] = set()
    known = ", ".join(RULES)
    for i, item in enumerate(raw):
        where = f"debugger_rules.{i}"
        if isinstance(item, str):
            item = {"rule": item}
        if not isinstance(item, dict):
            errors[where] = [f"Each rule is a name or an object {{rule, parameters, action}} (got {item!r})."]
            continue
        unknown = sorted(set(item) - {"rule", "parameters", "action"})
        for key in unknown:
            errors[f"{where}.{key}"] = [f"Unknown field '{key}'; a rule has rule, parameters and action."]
        name = item.get("rule")
        rule = RULES.get(name) if isinstance(name, str) else None
        if rule is None:
            errors[f"{where}.rule"] = [f"Unknown rule {name!r}. Choose one of: {known}."]
            continue
        if name in seen:
            errors[f"{where}.rule"] = [f"{name} is already in the list: give each rule once."]
            continue
        seen.add(name)
        action = item.get("action") or "none"
        if action not in ACTIONS:
            errors[f"{where}.action"] = [f"action must be one of {', '.join(ACTIONS)} (got {action!r})."]
        given = item.get("parameters") or {}
        if not isinstance(given, dict):
            errors[f"{where}.parameters"] = ["parameters must be an object of name: value."]
            given = {}
        names = [p.name for p in rule.params]
        for key in sorted(set(given) - set(names)):
            errors[f"{where}.parameters.{key}"] = [f"{name} has no parameter '{key}'; its parameters: "
                                                   f"{', '.join(names)}."]
        parameters: dict[str, Any] = {}
        for param in rule.params:
            raw_value = given.get(param.name)
            blank = raw_value is None or (isinstance(raw_value, str) and not raw_value.strip())
            path = f"{where}.parameters.{param.name}"
            if param.type == "metric":
                value = raw_value.strip() if isinstance(raw_value, str) else raw_value
                if blank:
                    value = default_metric(param.channel, metrics=metrics, objective=objective)
                    if value is None:
                        errors[path] = [f"This algorithm records no {param.channel} metric for {name} to watch."]
                        continue
                elif not isinstance(value, str) or value not in metrics:
                    errors[path] = [f"{value!r} is not a metric of this algorithm. Its metrics: "
                                    f"{', '.join(metrics)}."]
                    continue
                parameters[param.name] = value
            elif blank:
                parameters[param.name] = param.default
            else:
                number, problem = _number(raw_value, param)
                if problem:
                    errors[path] = [problem]
                else:
                    parameters[param.name] = number
        cleaned.append({"rule": name, "parameters": parameters, "action": action})
    if errors:
        raise RuleError(errors)
    return cleaned


def clean_rules_for(algorithm: Any, raw: Any) -> list[dict[str, Any]]:
    """clean_rules with the metrics and objective an algorithm class declares (algorithms.base.Estimator)."""
    return clean_rules(raw, metrics={m.name: m.direction for m in algorithm.metrics},
                       objective=algorithm.default_objective)


def initial_results(rules: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The rule_results of a new job: every rule in progress."""
    return [{"rule": r["rule"], "status": IN_PROGRESS, "step": None, "message": "", "action": r["action"],
             "action_taken": "", "parameters": dict(r["parameters"])} for r in rules]


# --- the rules -----------------------------------------------------------------------------------------


def _finite(value: float) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _better(a: float, b: float, direction: str, margin: float = 0.0) -> bool:
    """Whether ``a`` improves on ``b`` by more than ``margin`` in the metric's direction."""
    return a < b - margin if direction != MAXIMIZE else a > b + margin


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def loss_not_decreasing(series: Series, *, metric: str, patience: int, min_delta: float,
                        direction: str = MINIMIZE) -> Finding | None:
    values = [(step, v) for step, v in series if _finite(v)]
    verb = "decreased" if direction != MAXIMIZE else "increased"
    for i in range(patience, len(values)):
        (then_step, then), (step, now) = values[i - patience], values[i]
        if not _better(now, then, direction, min_delta):
            by = f" by more than {_fmt(min_delta)}" if min_delta else ""
            return Finding(step, f"{metric} has not {verb}{by} in {patience} steps: {_fmt(then)} at step "
                                 f"{then_step}, {_fmt(now)} at step {step}.")
    return None


def overfit(train: Series, validation: Series, *, train_metric: str, validation_metric: str, patience: int,
            ratio_threshold: float, direction: str = MINIMIZE, train_direction: str | None = None) -> Finding | None:
    """``direction`` is the validation metric's (the gap is measured with it), ``train_direction`` the training
    metric's when it differs."""
    train_direction = train_direction or direction
    by_step = {step: v for step, v in train if _finite(v)}
    pairs = [(step, by_step[step], v) for step, v in validation if _finite(v) and step in by_step]
    run = 0
    for (_, t_prev, v_prev), (step, t, v) in pairwise(pairs):
        gap = (v - t) if direction != MAXIMIZE else (t - v)
        ratio = gap / abs(t) if t else (math.inf if gap > 0 else 0.0)
        diverging = _better(t, t_prev, train_direction) and _better(v_prev, v, direction) and ratio > ratio_threshold
        run = run + 1 if diverging else 0
        if run >= patience:
            return Finding(step, f"{validation_metric} got worse while {train_metric} improved for {patience} "
                                 f"step(s) in a row; at step {step} validation is {_fmt(v)} against training "
                                 f"{_fmt(t)} ({ratio:.0%} apart, threshold {ratio_threshold:.0%}).")
    return None


def overtraining(series: Series, *, metric: str, patience: int, min_delta: float,
                 direction: str = MINIMIZE) -> Finding | None:
    best: tuple[int, float] | None = None
    since = 0
    for step, value in series:
        if not _finite(value):
            continue
        if best is None or _better(value, best[1], direction, min_delta):
            best, since = (step, value), 0
            continue
        since += 1
        if since >= patience:
            return Finding(step, f"{metric} has not improved for {patience} steps since its best, {_fmt(best[1])} "
                                 f"at step {best[0]} (now {_fmt(value)}): training longer does not help.")
    return None


def exploding_loss(series: Series, *, metric: str, factor: float) -> Finding | None:
    first: tuple[int, float] | None = None
    for step, value in series:
        if not _finite(value):
            return Finding(step, f"{metric} is {value} at step {step}: training diverged.")
        if first is None:
            first = (step, value)
        elif first[1] and abs(value) > factor * abs(first[1]):
            return Finding(step, f"{metric} reached {_fmt(value)} at step {step}, over {factor:g} times its first "
                                 f"value {_fmt(first[1])} (step {first[0]}): the loss is exploding.")
    return None


def vanishing_loss_change(series: Series, *, metric: str, epsilon: float, patience: int) -> Finding | None:
    values = [(step, v) for step, v in series if _finite(v)]
    run = 0
    for (_, prev), (step, value) in pairwise(values):
        run = run + 1 if abs(value - prev) < epsilon else 0
        if run >= patience:
            return Finding(step, f"{metric} changed by less than {epsilon:g} per step for {patience} steps in a row "
                                 f"(now {_fmt(value)} at step {step}): training has stopped moving.")
    return None


def class_imbalance(counts: Mapping[str, int], *, threshold: float, lower_bound: bool = False) -> Finding | None:
    """``counts`` of the target's classes; ``lower_bound`` when rarer classes were left out of the profile,
    so the true ratio is at least the one measured."""
    counts = {str(k): int(n) for k, n in counts.items() if int(n) > 0}
    if len(counts) < 2:
        return None
    big = max(counts.items(), key=lambda kv: (kv[1], kv[0]))
    small = min(counts.items(), key=lambda kv: (kv[1], kv[0]))
    ratio = big[1] / small[1]
    if ratio <= threshold:
        return None
    at_least = "at least " if lower_bound else ""
    return Finding(0, f"Class '{big[0]}' has {big[1]:,} rows and class '{small[0]}' {small[1]:,}: a ratio of "
                      f"{at_least}{ratio:.3g}, over the threshold {threshold:g}.")


def stalled_training(*, last_ts: float, last_step: int | None, now: float, threshold_seconds: int) -> Finding | None:
    """``last_ts``: when the job last recorded a metric (or started, before its first one)."""
    quiet = now - last_ts
    if quiet < threshold_seconds:
        return None
    since = f"since step {last_step}" if last_step is not None else "since the job started"
    return Finding(last_step or 0, f"No metric for {quiet:,.0f} s {since} (threshold {threshold_seconds:,} s): "
                                   "training looks stalled.")


def evaluate_epoch_rule(name: str, parameters: Mapping[str, Any], series: Mapping[str, Series],
                        directions: Mapping[str, str]) -> Finding | None:
    """Run an epoch rule on the series by metric name (each [(step, value)] by step)."""
    rule = RULES.get(name)
    if rule is None or rule.evaluated != ON_EPOCH:
        raise ValueError(f"{name} is not evaluated on epochs")
    p = dict(parameters)
    if name == "overfit":
        return overfit(series.get(p["train_metric"], ()), series.get(p["validation_metric"], ()),
                       train_metric=p["train_metric"], validation_metric=p["validation_metric"],
                       patience=int(p["patience"]), ratio_threshold=float(p["ratio_threshold"]),
                       direction=directions.get(p["validation_metric"], MINIMIZE),
                       train_direction=directions.get(p["train_metric"], MINIMIZE))
    metric = p["metric"]
    values = series.get(metric, ())
    if name == "loss_not_decreasing":
        return loss_not_decreasing(values, metric=metric, patience=int(p["patience"]),
                                   min_delta=float(p["min_delta"]), direction=directions.get(metric, MINIMIZE))
    if name == "overtraining":
        return overtraining(values, metric=metric, patience=int(p["patience"]), min_delta=float(p["min_delta"]),
                            direction=directions.get(metric, MINIMIZE))
    if name == "exploding_loss":
        return exploding_loss(values, metric=metric, factor=float(p["factor"]))
    if name == "vanishing_loss_change":
        return vanishing_loss_change(values, metric=metric, epsilon=float(p["epsilon"]), patience=int(p["patience"]))
    raise ValueError(f"{name} is not evaluated on epochs")


def watched_metrics(name: str, parameters: Mapping[str, Any]) -> list[str]:
    rule = RULES.get(name)
    if rule is None:
        return []
    return [str(parameters[p.name]) for p in rule.metric_params if parameters.get(p.name)]
