"""What the compare page and ``GET .../runs/compare`` show about 2-50 runs, built from rows already scoped.

* runs: a summary of each run, with the colour it has on every chart;
* hyperparameters: one row per name, a cell per run, ``differs`` when the runs do not all agree;
* final metrics: one row per name, a cell per run, the best cell(s) by the direction the algorithms declare;
* charts: one per metric, a line per run (studio.experiments.plots);
* parallel coordinates over the differing hyperparameters and one chosen metric.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

from django.core.exceptions import ObjectDoesNotExist, ValidationError

from algorithms import UnknownAlgorithm, get_algorithm
from studio.experiments import plots
from studio.experiments.plots import display
from studio.experiments.selectors import metric_direction
from studio.training.models import TrainingJob


def _same_key(value: Any) -> Any:
    # 10 and 10.0 are the same setting; True is not 1.
    if isinstance(value, bool) or value is None:
        return ("b", value)
    if isinstance(value, int | float):
        return ("n", float(value))
    return ("s", repr(value))


def run_summary(job: TrainingJob, index: int) -> dict[str, Any]:
    trial = _trial(job)
    return {
        "id": str(job.id), "name": job.name, "algorithm": job.algorithm, "status": job.status,
        "status_message": job.status_message, "tags": list(getattr(job, "tags", None) or []),
        "created_by": job.created_by.username if job.created_by else None,
        "created_at": _iso(job.created_at), "started_at": _iso(job.started_at), "ended_at": _iso(job.ended_at),
        "duration_seconds": job.duration_seconds,
        "hyperparameters": dict(job.hyperparameters or {}), "final_metrics": dict(job.final_metrics or {}),
        "tuning_job": trial, **plots.run_style(index),
    }


def _iso(moment) -> str | None:
    # As DRF writes times elsewhere in the API: UTC with a Z.
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def _trial(job: TrainingJob) -> dict[str, Any] | None:
    try:
        trial = job.tuning_trial  # selected with the job: no query, and DoesNotExist for a plain run
    except ObjectDoesNotExist:
        return None
    return {"id": str(trial.tuning_job_id), "name": trial.tuning_job.name, "trial": trial.number}


def _declared_params(algorithms: list[str]) -> dict[str, str]:
    """Hyperparameter name -> scale, in the algorithms' declaration order."""
    scales: dict[str, str] = {}
    for name in algorithms:
        with contextlib.suppress(UnknownAlgorithm):
            for hp in get_algorithm(name).hyperparameters:
                scales.setdefault(hp.name, hp.scale)
    return scales


def hyperparameter_rows(runs: list[dict[str, Any]], algorithms: list[str]) -> list[dict[str, Any]]:
    # Declaration order, as on the training form (PostgreSQL's jsonb keeps no key order); others after, A-Z.
    scales = _declared_params(algorithms)
    present = {name for run in runs for name in run["hyperparameters"]}
    names = [name for name in scales if name in present] + sorted(present - set(scales))
    rows = []
    for name in names:
        raw = [run["hyperparameters"].get(name) for run in runs]
        rows.append({"name": name, "values": raw, "display": [display(v) for v in raw],
                     "differs": len({_same_key(v) for v in raw}) > 1, "scale": scales.get(name, "")})
    return rows


def final_metric_rows(runs: list[dict[str, Any]], algorithms: list[str]) -> list[dict[str, Any]]:
    names = sorted({name for run in runs for name in run["final_metrics"]}, key=plots.metric_order)
    rows = []
    for name in names:
        values = [_number(run["final_metrics"].get(name)) for run in runs]
        direction = metric_direction(algorithms, name)
        present = [v for v in values if v is not None]
        best: list[int] = []
        if direction and len(present) >= 2:
            target = max(present) if direction == "maximize" else min(present)
            best = [i for i, v in enumerate(values) if v == target]
        rows.append({"name": name, "direction": direction, "values": values,
                     "display": [display(v) for v in values], "best": best})
    return rows


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def default_metric(runs: list[dict[str, Any]], algorithms: list[str], names: list[str]) -> str | None:
    """The metric parallel coordinates show first: the algorithms' default objective when runs report it."""
    for algorithm in algorithms:
        with contextlib.suppress(UnknownAlgorithm):
            objective = get_algorithm(algorithm).default_objective
            for candidate in (objective, objective.replace("validation:", "train:", 1)):
                if candidate in names:
                    return candidate
    return names[0] if names else None


def compare_data(*, jobs: list[TrainingJob], series: dict[str, dict[str, list[list[float]]]],
                 metric: str | None = None, figures: bool = True) -> dict[str, Any]:
    """Everything about the runs the page shows; ``figures`` adds the metric charts (the API leaves them out).

    ``metric`` picks the parallel coordinates' metric; one no run has is a ValidationError naming "metric".
    """
    runs = [run_summary(job, i) for i, job in enumerate(jobs)]
    algorithms = list(dict.fromkeys(run["algorithm"] for run in runs))
    params = hyperparameter_rows(runs, algorithms)
    finals = final_metric_rows(runs, algorithms)
    final_names = [row["name"] for row in finals]
    if metric and metric not in final_names:
        raise ValidationError({"metric": [f"No compared run has a final '{metric}'; "
                                          f"choose one of {', '.join(final_names) or 'none yet'}."]})
    chosen = metric or default_metric(runs, algorithms, final_names)
    chart_names = sorted({name for by_name in series.values() for name in by_name}, key=plots.metric_order)
    charts = [{"metric": name, "direction": metric_direction(algorithms, name)} for name in chart_names]
    if figures:
        for chart in charts:
            chart["figure"] = plots.metric_chart(chart["metric"], runs, series, chart["direction"])
    return {
        "runs": runs,
        "series": series,
        "charts": charts,
        "hyperparameters": params,
        "differing": sum(1 for row in params if row["differs"]),
        "final_metrics": finals,
        "parallel_coordinates": {
            **plots.parallel_coordinates(runs, params, chosen, metric_direction(algorithms, chosen or "")),
            "choices": final_names,
        },
    }
