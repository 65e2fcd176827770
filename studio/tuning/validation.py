"""Checking a tuning job request: every problem collected at once, each under the field that holds it.

Field names are the request's, dotted into nested objects (``ranges.learning_rate.min``,
``objective.metric``, ``warm_start.parents``), so a client or a form can point at the exact input.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any
from uuid import UUID

from django.core.exceptions import ValidationError

from studio.training.services import training_job_validate
from studio.tuning.autotune import autotune_plan
from studio.tuning.models import EarlyStopping, Strategy, TuningJob, TuningStatus
from studio.tuning.strategies import ParameterRange, SearchSpace

if TYPE_CHECKING:
    from studio.accounts.models import Project

MAX_JOBS_LIMIT = 500
MAX_PARALLEL_LIMIT = 32
MAX_WARM_START_PARENTS = 5
DEFAULT_MAX_JOBS = 20
DEFAULT_PARALLEL = 2
GOALS = ("maximize", "minimize")
RANGE_TYPES = ("continuous", "integer", "categorical")
WARM_START_TYPES = ("identical_data", "transfer_learning")
HYPERBAND_ETA = 3


def _int_field(errors: dict, field: str, value: Any, *, low: int, high: int) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        errors[field] = [f"{field} must be a whole number between {low} and {high} (got {value!r})."]
        return None
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or not number.is_integer():
        errors[field] = [f"{field} must be a whole number between {low} and {high} (got {value!r})."]
        return None
    if not low <= number <= high:
        errors[field] = [f"{field} must be between {low} and {high} (got {int(number)})."]
        return None
    return int(number)


def clean_ranges(algo: Any, ranges: Any, *, static: dict[str, Any], errors: dict[str, list[str]]) -> dict[str, dict]:
    """Request ranges -> ``{name: {type, min, max, scale} | {type, values}}`` checked against the declaration."""
    if ranges in (None, ""):
        return {}
    if not isinstance(ranges, dict):
        errors["ranges"] = ['ranges must be an object: {"<hyperparameter>": {"type", "min", "max", ...}}.']
        return {}
    declared = {hp.name: hp for hp in algo.hyperparameters}
    tunable = ", ".join(hp.name for hp in algo.hyperparameters if hp.tunable)
    cleaned: dict[str, dict] = {}
    for name, spec in ranges.items():
        field = f"ranges.{name}"
        hp = declared.get(name)
        if hp is None:
            errors[field] = [f"{algo.name} has no hyperparameter '{name}'. Tunable ones: {tunable}."]
            continue
        if not hp.tunable:
            errors[field] = [f"{name} is not tunable for {algo.name}: set it in static_hyperparameters. "
                             f"Tunable ones: {tunable}."]
            continue
        if name in static:
            errors[field] = [f"{name} is in static_hyperparameters too: either fix it or tune it, not both."]
            continue
        if not isinstance(spec, dict):
            errors[field] = [f'{field} must be an object such as {{"type": "continuous", "min": 0.001, "max": 0.1}}.']
            continue
        kind = spec.get("type") or {"float": "continuous", "int": "integer"}.get(hp.type, "categorical")
        if kind not in RANGE_TYPES:
            errors[f"{field}.type"] = [f"type must be one of {', '.join(RANGE_TYPES)} (got {kind!r})."]
            continue
        if kind == "categorical":
            values = spec.get("values")
            if values is None and hp.type in ("categorical", "bool"):
                values = list(hp.choices) if hp.choices else [False, True]
            if not isinstance(values, list) or not values:
                errors[f"{field}.values"] = [f"a categorical range needs a non-empty list of values for {name}."]
                continue
            clean_values, problems = [], []
            for value in values:
                try:
                    coerced = hp.coerce(value)
                except ValueError as exc:
                    problems.append(str(exc))
                    continue
                if coerced not in clean_values:
                    clean_values.append(coerced)
            if problems:
                errors[f"{field}.values"] = problems
                continue
            cleaned[name] = {"type": "categorical", "values": clean_values}
            continue
        expected = "continuous" if hp.type == "float" else "integer" if hp.type == "int" else "categorical"
        if kind != expected:
            errors[f"{field}.type"] = [f"{name} is a {hp.type} hyperparameter: use type '{expected}' (got '{kind}')."]
            continue
        bounds, bad = {}, False
        for end, declared_end in (("min", hp.min), ("max", hp.max)):
            raw = spec.get(end, declared_end)
            if raw is None:
                errors[f"{field}.{end}"] = [f"{field} needs a {end}: {name} has no declared {end}."]
                bad = True
                continue
            try:
                bounds[end] = hp.coerce(raw)
            except ValueError as exc:
                errors[f"{field}.{end}"] = [str(exc)]
                bad = True
        if bad:
            continue
        if bounds["min"] > bounds["max"]:
            errors[field] = [f"{field}: min {bounds['min']} is greater than max {bounds['max']}."]
            continue
        scale = spec.get("scale") or "auto"
        if scale not in ("auto", "linear", "log"):
            errors[f"{field}.scale"] = [f"scale must be auto, linear or log (got {scale!r})."]
            continue
        if scale == "auto":
            scale = hp.scale
        if scale == "log" and bounds["min"] <= 0:
            errors[f"{field}.scale"] = [f"a log scale needs min > 0 ({name} min is {bounds['min']})."]
            continue
        cleaned[name] = {"type": kind, "min": bounds["min"], "max": bounds["max"], "scale": scale}
    return cleaned


def search_space(ranges: dict[str, dict]) -> SearchSpace:
    """The strategies' view of cleaned ranges."""
    return SearchSpace([
        ParameterRange(name=name, type=spec["type"], min=spec.get("min"), max=spec.get("max"),
                       values=tuple(spec["values"]) if spec["type"] == "categorical" else None,
                       scale=spec.get("scale", "linear"))
        for name, spec in ranges.items()
    ])


def sample_point(ranges: dict[str, dict]) -> dict[str, Any]:
    """One valid point of the ranges (their lower ends), to validate the static hyperparameters with."""
    return {name: spec["values"][0] if spec["type"] == "categorical" else spec["min"] for name, spec in ranges.items()}


def tuning_job_validate(*, project: Project, algorithm: str, dataset: Any, objective: Any = None,
                        ranges: Any = None, autotune: bool = False, static_hyperparameters: Any = None,
                        strategy: str | None = None, max_jobs: Any = None, max_parallel_jobs: Any = None,
                        max_runtime_seconds: Any = None, early_stopping: str | None = None, completion: Any = None,
                        warm_start: Any = None, hyperband: Any = None, target: str = "", name: str | None = None,
                        validation_dataset: Any = None, validation_fraction: float | None = 0.2,
                        missing_values: str | None = None, workers: int = 1) -> dict[str, Any]:
    """Check a tuning job request; return the cleaned settings or raise ValidationError naming each field."""
    from algorithms import get_algorithm
    from algorithms.base import HyperparameterError

    errors: dict[str, list[str]] = {}
    try:
        algo = get_algorithm(algorithm)
    except KeyError:
        # The training validation below names the known algorithms.
        algo = None

    static = dict(static_hyperparameters) if isinstance(static_hyperparameters, dict) else static_hyperparameters or {}
    if not isinstance(static, dict):
        errors["static_hyperparameters"] = ["static_hyperparameters must be an object of name: value."]
        static = {}
    cleaned_ranges = clean_ranges(algo, ranges, static=static, errors=errors) if algo is not None else {}
    if algo is not None and not ranges and not autotune:
        errors["ranges"] = ["Give at least one hyperparameter range, or set autotune: true to let Studio choose."]

    if strategy not in (None, "") and strategy not in Strategy.values:
        errors["strategy"] = [f"strategy must be one of {', '.join(Strategy.values)} (got {strategy!r})."]
        strategy = None
    if early_stopping not in (None, "") and early_stopping not in EarlyStopping.values:
        errors["early_stopping"] = [f"early_stopping must be off or auto (got {early_stopping!r})."]
        early_stopping = None
    jobs = _int_field(errors, "max_jobs", max_jobs, low=1, high=MAX_JOBS_LIMIT)
    parallel = _int_field(errors, "max_parallel_jobs", max_parallel_jobs, low=1, high=MAX_PARALLEL_LIMIT)
    runtime = _int_field(errors, "max_runtime_seconds", max_runtime_seconds, low=1, high=30 * 24 * 3600)

    report: list[dict[str, str]] = []
    if algo is not None and autotune:
        plan = autotune_plan(algo, static=static, ranges=cleaned_ranges, strategy=strategy or None, max_jobs=jobs,
                             max_parallel_jobs=parallel, early_stopping=early_stopping or None, workers=workers)
        cleaned_ranges, strategy, jobs, parallel = plan.ranges, plan.strategy, plan.max_jobs, plan.max_parallel_jobs
        early_stopping, report = plan.early_stopping, plan.report
    strategy = strategy or Strategy.BAYESIAN
    early_stopping = early_stopping or EarlyStopping.OFF

    # Objective: a metric the algorithm reports, and the direction that is better.
    goal = None
    metric = None
    if objective in (None, ""):
        objective = {}
    if not isinstance(objective, dict):
        errors["objective"] = ['objective must be an object: {"metric": "validation:accuracy", "goal": "maximize"}.']
    elif algo is not None:
        metric = objective.get("metric") or algo.default_objective
        names = [m.name for m in algo.metrics]
        if metric not in names:
            errors["objective.metric"] = [f"{algo.name} does not report '{metric}'. It reports: {', '.join(names)}."]
        goal = objective.get("goal") or (algo.metric_direction(metric) if metric in names else None)
        if goal is not None and goal not in GOALS:
            errors["objective.goal"] = [f"goal must be maximize or minimize (got {goal!r})."]

    # Hyperband trains every configuration rung by rung over the algorithm's budget (epochs).
    hyperband_cfg: dict[str, Any] = {}
    if strategy == Strategy.HYPERBAND and algo is not None:
        hyperband_cfg = _hyperband_settings(algo, cleaned_ranges, static, hyperband, errors)
        if early_stopping == EarlyStopping.AUTO:
            errors["early_stopping"] = ["hyperband stops weak configurations itself: set early_stopping to off."]

    space = None
    if cleaned_ranges and not any(key.startswith("ranges") for key in errors):
        try:
            space = search_space(cleaned_ranges)
        except ValueError as exc:
            errors["ranges"] = [str(exc)]
    if strategy == Strategy.GRID and space is not None:
        continuous = [n for n, spec in cleaned_ranges.items() if spec["type"] == "continuous"]
        if continuous:
            errors["strategy"] = [f"grid search takes categorical and integer ranges only; {', '.join(continuous)} "
                                  "is continuous: give it values, or use random or bayesian."]
        else:
            size = space.grid_size()
            if jobs is None:
                jobs = size
            elif size > jobs:
                errors["max_jobs"] = [f"The grid has {size} combinations but max_jobs is {jobs}: raise max_jobs to "
                                      f"{size} or narrow the ranges."]
    jobs = jobs or DEFAULT_MAX_JOBS
    parallel = parallel or min(DEFAULT_PARALLEL, jobs)
    if parallel > jobs and "max_parallel_jobs" not in errors:
        errors["max_parallel_jobs"] = [f"max_parallel_jobs ({parallel}) cannot exceed max_jobs ({jobs})."]

    clean_completion = _completion(completion, errors)

    # The training side (dataset, target, validation split, static + one point of the ranges) is checked
    # by the training service itself, so a tuning job never starts trials that would all fail at once.
    point = {**static, **(sample_point(cleaned_ranges) if space is not None else {})}
    if hyperband_cfg:
        point[hyperband_cfg["parameter"]] = hyperband_cfg["min_resource"]
    try:
        training = training_job_validate(
            project=project, algorithm=algorithm, dataset=dataset, target=target, name=None,
            validation_dataset=validation_dataset, validation_fraction=validation_fraction, hyperparameters=point,
            max_runtime_seconds=None, missing_values=missing_values,
        )
    except ValidationError as exc:
        training = {}
        for key, messages in exc.message_dict.items():
            if key.startswith("hyperparameters."):
                param = key.removeprefix("hyperparameters.")
                key = f"ranges.{param}" if param in cleaned_ranges else f"static_hyperparameters.{param}"
            errors.setdefault(key, []).extend(messages)
    if algo is not None and static and "static_hyperparameters" not in errors:
        try:
            static = {k: v for k, v in algo.validate_hyperparameters(static).items() if k in static}
        except HyperparameterError as exc:
            for param, messages in exc.errors.items():
                errors.setdefault(f"static_hyperparameters.{param}", []).extend(messages)

    if (metric and metric.startswith("validation:") and training and training.get("validation_dataset") is None
            and not training.get("validation_fraction")):
        errors["objective.metric"] = [f"{metric} is measured on validation data: set validation_fraction above 0 "
                                      "or give a validation_dataset."]

    clean_warm = _warm_start(project, warm_start, algorithm=algorithm, training=training, errors=errors)

    if name is not None and str(name).strip():
        name = str(name).strip()
        if TuningJob.objects.filter(project=project, name=name).exists():
            errors["name"] = [f"A tuning job named '{name}' already exists in this project."]
    else:
        name = None

    if errors:
        raise ValidationError(errors)
    return {
        "name": name, "algorithm": algorithm, "dataset": training["dataset"],
        "validation_dataset": training["validation_dataset"], "target": training["target"],
        "validation_fraction": training["validation_fraction"], "missing_values": training["missing_values"],
        "objective_metric": metric, "objective_goal": goal, "ranges": cleaned_ranges,
        "static_hyperparameters": static, "strategy": strategy, "max_jobs": jobs, "max_parallel_jobs": parallel,
        "max_runtime_seconds": runtime, "early_stopping": early_stopping, "completion": clean_completion,
        "warm_start": clean_warm, "autotune": bool(autotune), "autotune_report": report, "hyperband": hyperband_cfg,
    }


def _hyperband_settings(algo: Any, ranges: dict[str, dict], static: dict[str, Any], given: Any,
                        errors: dict[str, list[str]]) -> dict[str, Any]:
    budget = getattr(algo, "budget_hyperparameter", None)
    if not budget:
        errors["strategy"] = [f"hyperband needs an algorithm trained in epochs; {algo.name} is not. "
                              "Use random, grid or bayesian."]
        return {}
    given = given if isinstance(given, dict) else {}
    declared = next(hp for hp in algo.hyperparameters if hp.name == budget)
    spec = ranges.pop(budget, None)
    if spec is not None:
        low, high = int(spec["min"]), int(spec["max"])
    else:
        high = int(given.get("max_resource") or static.get(budget) or declared.default)
        low = int(given.get("min_resource") or max(1, high // 9))
    static.pop(budget, None)
    if low < 1 or high < low:
        errors["hyperband"] = [f"hyperband needs 1 <= min_resource <= max_resource ({budget}); got {low}..{high}."]
        return {}
    if high == low:
        errors["hyperband"] = [f"hyperband needs max_resource above min_resource to halve anything ({budget} "
                               f"{low}..{high}): widen the {budget} range."]
        return {}
    eta = given.get("eta", HYPERBAND_ETA)
    if not isinstance(eta, int) or isinstance(eta, bool) or not 2 <= eta <= 10:
        errors["hyperband.eta"] = [f"eta must be a whole number between 2 and 10 (got {eta!r})."]
        return {}
    return {"parameter": budget, "min_resource": low, "max_resource": high, "eta": eta}


def _completion(completion: Any, errors: dict[str, list[str]]) -> dict[str, Any]:
    if completion in (None, ""):
        return {}
    if not isinstance(completion, dict):
        errors["completion"] = ["completion must be an object: {target_value?, best_not_improving_jobs?}."]
        return {}
    out: dict[str, Any] = {}
    unknown = sorted(set(completion) - {"target_value", "best_not_improving_jobs"})
    if unknown:
        errors["completion"] = [f"unknown completion criteria {', '.join(unknown)}; "
                                "known: target_value, best_not_improving_jobs."]
    target = completion.get("target_value")
    if target is not None:
        if isinstance(target, bool) or not isinstance(target, int | float) or not math.isfinite(target):
            errors["completion.target_value"] = [f"target_value must be a number (got {target!r})."]
        else:
            out["target_value"] = float(target)
    patience = _int_field(errors, "completion.best_not_improving_jobs", completion.get("best_not_improving_jobs"),
                          low=1, high=MAX_JOBS_LIMIT)
    if patience is not None:
        out["best_not_improving_jobs"] = patience
    return out


def _warm_start(project: Project, warm_start: Any, *, algorithm: str, training: dict[str, Any],
                errors: dict[str, list[str]]) -> dict[str, Any]:
    if warm_start in (None, ""):
        return {}
    if not isinstance(warm_start, dict):
        errors["warm_start"] = ['warm_start must be an object: {"parents": [id], "type": "identical_data"}.']
        return {}
    kind = warm_start.get("type") or "identical_data"
    if kind not in WARM_START_TYPES:
        errors["warm_start.type"] = [f"type must be identical_data or transfer_learning (got {kind!r})."]
    parents = warm_start.get("parents")
    if not isinstance(parents, list) or not parents:
        errors["warm_start.parents"] = ["parents must be a list of 1 to 5 tuning job ids."]
        return {}
    if len(parents) > MAX_WARM_START_PARENTS:
        errors["warm_start.parents"] = [f"At most {MAX_WARM_START_PARENTS} parent tuning jobs (got {len(parents)})."]
        return {}
    ids, problems = [], []
    for raw in parents:
        try:
            parent = TuningJob.objects.get(id=UUID(str(raw)), project=project)
        except (ValueError, TuningJob.DoesNotExist):
            # Same words for "absent" and "another team's": ids of other projects are never confirmed.
            problems.append(f"No tuning job '{raw}' in this project.")
            continue
        if parent.algorithm != algorithm:
            problems.append(f"Tuning job '{parent.name}' tuned {parent.algorithm}, not {algorithm}.")
        elif parent.status not in (TuningStatus.COMPLETED, TuningStatus.STOPPED):
            problems.append(f"Tuning job '{parent.name}' is {parent.status}; warm start from finished jobs only.")
        elif kind == "identical_data" and training and (
                parent.dataset_id != getattr(training.get("dataset"), "id", None)
                or parent.target != training.get("target")):
            problems.append(f"Tuning job '{parent.name}' used other data or another target: use type "
                            "transfer_learning, or the same dataset and target.")
        elif str(parent.id) not in ids:
            ids.append(str(parent.id))
    if problems:
        errors["warm_start.parents"] = problems
    return {"parents": ids, "type": kind}
