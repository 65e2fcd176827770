"""Autotune: ranges, strategy and limits picked from an algorithm's declaration, each choice explained.

Everything here reads the algorithm's single declaration (algorithms.base.Hyperparameter): what is
tunable, its type, declared bounds, scale and default. Nothing is per-algorithm code, so a new
algorithm gets Autotune by declaring its hyperparameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# A log-scale range spanning more decades than this around the default is narrowed: the declared
# bounds say what the algorithm accepts (a learning rate of 1e-6), not where good values live.
LOG_SPAN = 100.0
INT_LOG_SPAN = 8
# Trials per tuned hyperparameter: Bayesian optimisation needs roughly ten observations per
# dimension to beat random search (and never fewer than its startup trials).
TRIALS_PER_PARAMETER = 8
MIN_JOBS = 12
MAX_JOBS = 50
MAX_PARAMETERS = 6


@dataclass
class AutotunePlan:
    ranges: dict[str, dict[str, Any]]
    strategy: str
    max_jobs: int
    max_parallel_jobs: int
    early_stopping: str
    report: list[dict[str, str]] = field(default_factory=list)

    def explain(self, setting: str, choice: Any, reason: str) -> None:
        self.report.append({"setting": setting, "choice": _text(choice), "reason": reason})


def autotune_plan(algo: Any, *, static: dict[str, Any], ranges: dict[str, dict[str, Any]] | None,
                  strategy: str | None, max_jobs: int | None, max_parallel_jobs: int | None,
                  early_stopping: str | None, workers: int) -> AutotunePlan:
    """Fill in whatever the request left out: ranges, strategy, max_jobs, max_parallel_jobs, early stopping.

    Parameters
    ----------
    algo : type[algorithms.base.Estimator]
        The algorithm whose declaration drives the choices.
    static : dict
        Hyperparameters the user fixed; never tuned.
    ranges, strategy, max_jobs, max_parallel_jobs, early_stopping
        What the user gave (None = Autotune decides). Given values are kept and reported as such.
    workers : int
        Training worker slots of this installation: the parallelism worth asking for.

    Returns
    -------
    AutotunePlan
        The settings and one report row per decision.
    """
    budget = getattr(algo, "budget_hyperparameter", None)
    plan = AutotunePlan(ranges={}, strategy="bayesian", max_jobs=MIN_JOBS, max_parallel_jobs=1,
                        early_stopping="off")
    if ranges:
        plan.ranges = ranges
        plan.explain("ranges", ", ".join(ranges), "given in the request")
    else:
        chosen = [hp for hp in algo.hyperparameters if hp.tunable and hp.name not in static and hp.name != budget]
        if len(chosen) > MAX_PARAMETERS:
            left = ", ".join(hp.name for hp in chosen[MAX_PARAMETERS:])
            plan.explain("ranges", f"first {MAX_PARAMETERS} tunable", f"the declaration lists them by importance; "
                         f"{left} keep their defaults so the budget is spent where it matters")
            chosen = chosen[:MAX_PARAMETERS]
        for hp in chosen:
            spec, reason = range_for(hp)
            plan.ranges[hp.name] = spec
            plan.explain(f"ranges.{hp.name}", _spec_text(spec), reason)
        if budget and budget not in static:
            plan.explain(f"ranges.{budget}", "not tuned", f"{budget} is the training budget: more is rarely "
                         "worse, so tuning it wastes trials; early stopping decides how long a trial runs")

    if strategy:
        plan.strategy = strategy
        plan.explain("strategy", strategy, "given in the request")
    else:
        plan.strategy = "bayesian"
        plan.explain("strategy", "bayesian", "learns from finished trials which region to try next; the most "
                     "sample-efficient choice for a handful of mixed numeric and categorical hyperparameters")

    if max_jobs:
        plan.max_jobs = max_jobs
        plan.explain("max_jobs", max_jobs, "given in the request")
    else:
        n = max(1, len(plan.ranges))
        plan.max_jobs = min(MAX_JOBS, max(MIN_JOBS, TRIALS_PER_PARAMETER * n))
        plan.explain("max_jobs", plan.max_jobs, f"{TRIALS_PER_PARAMETER} trials per tuned hyperparameter "
                     f"({n}), between {MIN_JOBS} and {MAX_JOBS}")

    if max_parallel_jobs:
        plan.max_parallel_jobs = max_parallel_jobs
        plan.explain("max_parallel_jobs", max_parallel_jobs, "given in the request")
    else:
        plan.max_parallel_jobs = max(1, min(workers, plan.max_jobs))
        plan.explain("max_parallel_jobs", plan.max_parallel_jobs, f"one trial per training worker slot ({workers}); "
                     "more would only queue, and Bayesian suggestions get worse the more run blind in parallel")

    if early_stopping:
        plan.early_stopping = early_stopping
        plan.explain("early_stopping", early_stopping, "given in the request")
    elif budget and plan.strategy != "hyperband":
        plan.early_stopping = "auto"
        plan.explain("early_stopping", "auto", f"{algo.name} reports its objective every epoch, so trials that "
                     "fall behind the median of earlier trials can stop early and free their worker")
    else:
        plan.early_stopping = "off"
        why = "hyperband stops weak trials itself" if plan.strategy == "hyperband" else \
            f"{algo.name} reports its objective only at the end, so there is nothing to stop early on"
        plan.explain("early_stopping", "off", why)
    return plan


def range_for(hp: Any) -> tuple[dict[str, Any], str]:
    """The range Autotune searches for one declared hyperparameter, and why."""
    if hp.type == "bool":
        return {"type": "categorical", "values": [False, True]}, "both values"
    if hp.type == "categorical":
        return {"type": "categorical", "values": list(hp.choices)}, "every declared choice"
    kind = "continuous" if hp.type == "float" else "integer"
    low, high = hp.min, hp.max
    if hp.scale == "log":
        span = LOG_SPAN if hp.type == "float" else INT_LOG_SPAN
        default = hp.default if hp.default and hp.default > 0 else low
        narrow_low, narrow_high = max(low, default / span), min(high, default * span)
        if hp.type == "int":
            narrow_low, narrow_high = max(low, int(narrow_low)), min(high, round(narrow_high))
        spec = {"type": kind, "min": narrow_low, "max": narrow_high, "scale": "log"}
        if (narrow_low, narrow_high) != (low, high):
            return spec, (f"a factor of {span:g} either side of the default {hp.default} on a log scale; the "
                          f"declared {low}..{high} is what the algorithm accepts, not where good values are")
        return spec, "the declared range, on a log scale"
    if low is None or high is None:
        raise ValueError(f"{hp.name} has no declared bounds to search")
    return {"type": kind, "min": low, "max": high, "scale": "linear"}, "the declared range"


def _spec_text(spec: dict[str, Any]) -> str:
    if spec["type"] == "categorical":
        return "{" + ", ".join(_text(v) for v in spec["values"]) + "}"
    return f"{_text(spec['min'])}..{_text(spec['max'])} ({spec.get('scale', 'linear')})"


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
