"""Every read of the experiments pages: runs (training jobs, tuning trials included) filtered and sorted in SQL.

Always scoped to projects the user's teams can see. A project may hold thousands of runs, so nothing here
loads all of them: filters and sorts on final metrics and hyperparameters are JSON expressions the database
evaluates (studio.experiments.expressions), and pages of rows are sliced by the database.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import DurationField, ExpressionWrapper, F, JSONField, Q, QuerySet, Value
from django.db.models.fields.json import HasKey, KeyTransform
from django.db.models.lookups import Exact, GreaterThan, GreaterThanOrEqual, LessThan, LessThanOrEqual
from django.http import Http404

from algorithms import UnknownAlgorithm, get_algorithm
from studio.accounts.selectors import project_list
from studio.experiments.expressions import JSONArrayHasText, JSONNumber
from studio.experiments.filters import Condition, RunQuery
from studio.training.models import MetricPoint, TrainingJob

if TYPE_CHECKING:
    from studio.accounts.models import Project, User

MIN_COMPARE = 2
MAX_COMPARE = 50
# Heavy columns no runs table or comparison reads: result plots weigh up to a few hundred KB per job.
DEFERRED = ("result_plots", "rule_results", "debugger_rules", "failure_reason")
MAX_POINTS_PER_SERIES = 2_000  # points of one metric of one run sent to a compare chart (evenly thinned)
COMPARISONS = {">": GreaterThan, ">=": GreaterThanOrEqual, "<": LessThan, "<=": LessThanOrEqual}


def _base(*, user: User, project: Project) -> QuerySet[TrainingJob]:
    return (
        TrainingJob.objects.filter(project=project, project__in=project_list(user=user))
        .select_related("created_by", "tuning_trial__tuning_job")
        .defer(*DEFERRED)
    )


def _condition_q(condition: Condition) -> Q:
    column = "final_metrics" if condition.kind == "metric" else "hyperparameters"
    number = JSONNumber(column, condition.name)
    value = condition.value
    if condition.op in COMPARISONS:
        return Q(COMPARISONS[condition.op](number, value))
    if isinstance(value, float):
        equal = Q(Exact(number, value))
        if condition.kind == "param":
            # A categorical choice that reads as a number ("32") is stored as a string.
            equal |= Q(_json_equal(column, condition.name, _plain_text(value)))
    else:  # a hyperparameter's bool or text choice: JSON equality, the same on both databases
        equal = Q(_json_equal(column, condition.name, value))
    if condition.op == "!=":
        # Runs without the key are not "different": they are left out, as for every other comparison.
        return Q(HasKey(F(column), condition.name)) & ~equal
    return equal


def _json_equal(column: str, key: str, value: Any):
    # Built from expressions rather than "column__key" kwargs, so a key named like a lookup stays a key.
    # The value is a JSON value too (a typed Value): "adam" is the JSON string, true the JSON boolean.
    transform = KeyTransform(key, column)
    return transform.get_lookup("exact")(transform, Value(value, output_field=JSONField()))


def _plain_text(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def _apply_conditions(jobs: QuerySet[TrainingJob], conditions: list[Condition]) -> QuerySet[TrainingJob]:
    for condition in conditions:
        jobs = jobs.filter(_condition_q(condition))
    return jobs


def _order(jobs: QuerySet[TrainingJob], query: RunQuery) -> QuerySet[TrainingJob]:
    key = query.sort_key
    if key.startswith("metric:"):
        expression = JSONNumber("final_metrics", key.removeprefix("metric:"))
    elif key.startswith("param:"):
        expression = JSONNumber("hyperparameters", key.removeprefix("param:"))
    elif key == "duration":
        expression = ExpressionWrapper(F("ended_at") - F("started_at"), output_field=DurationField())
    else:
        expression = F(key)
    jobs = jobs.alias(_sort=expression)
    # Empty cells (a run without that metric, a job not started) go last in both directions.
    primary = F("_sort").desc(nulls_last=True) if query.descending else F("_sort").asc(nulls_last=True)
    return jobs.order_by(primary, "-created_at", "id")


def run_list(*, user: User, project: Project, query: RunQuery) -> QuerySet[TrainingJob]:
    """The project's runs matching ``query``, in its order; lazy, so callers slice a page."""
    jobs = _base(user=user, project=project)
    if query.algorithms:
        jobs = jobs.filter(algorithm__in=query.algorithms)
    if query.statuses:
        jobs = jobs.filter(status__in=query.statuses)
    for tag in query.tags:
        jobs = jobs.filter(JSONArrayHasText("tags", tag))
    for word in query.words:
        jobs = jobs.filter(name__icontains=word)
    if query.tuning_job:
        jobs = jobs.filter(tuning_trial__tuning_job_id=query.tuning_job)
    jobs = _apply_conditions(jobs, query.conditions)
    return _order(jobs, query)


def project_algorithms(*, user: User, project: Project) -> list[str]:
    """Algorithms the project's runs used (an index-only query): they declare the metric and parameter columns."""
    names = (TrainingJob.objects.filter(project=project, project__in=project_list(user=user))
             .order_by().values_list("algorithm", flat=True).distinct())
    return sorted(names)


def project_tags(*, user: User, project: Project, limit: int = 200) -> list[str]:
    """The distinct tags of the project's runs, for the tag filter: expanded by the database, not in Python.

    The runs come from the scoped queryset (its SQL is the subquery), so visibility rules stay in one place.
    """
    runs = (TrainingJob.objects.filter(project=project, project__in=project_list(user=user))
            .order_by().values("tags"))
    sql, params = runs.query.sql_with_params()
    # sql is Django's own compiled query; every value in it is a parameter.
    if connection.vendor == "postgresql":
        expand = f"SELECT DISTINCT tag FROM ({sql}) AS runs, jsonb_array_elements_text(runs.tags) AS tag"  # noqa: S608  # nosec B608
    else:
        expand = (f"SELECT DISTINCT item.value FROM ({sql}) AS runs, json_each(runs.tags) AS item "  # noqa: S608  # nosec B608
                  "WHERE item.type = 'text'")
    with connection.cursor() as cursor:
        cursor.execute(f"{expand} ORDER BY 1 LIMIT %s", (*params, limit))
        return [row[0] for row in cursor.fetchall()]


def declared_columns(algorithms: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Metric and hyperparameter columns the runs can have, from the algorithms' declarations.

    ``{"metrics": [{name, direction}], "params": [{name, scale}], "objectives": [default objectives]}``.
    """
    metrics: dict[str, str] = {}
    params: dict[str, str] = {}
    objectives: list[str] = []
    for name in algorithms:
        try:
            algo = get_algorithm(name)
        except UnknownAlgorithm:
            continue
        for metric in algo.metrics:
            metrics.setdefault(metric.name, metric.direction)
        for hp in algo.hyperparameters:
            params.setdefault(hp.name, getattr(hp, "scale", "") or "")
        if algo.default_objective not in objectives:
            objectives.append(algo.default_objective)
    return {
        "metrics": [{"name": n, "direction": d} for n, d in sorted(metrics.items(), key=_metric_order)],
        "params": [{"name": n, "scale": s} for n, s in sorted(params.items())],
        "objectives": objectives,
    }


def _metric_order(item: tuple[str, str]) -> tuple[int, str]:
    # Validation metrics first (what runs are judged on), then training ones, then the rest.
    name = item[0]
    channel = name.split(":", 1)[0] if ":" in name else ""
    return ({"validation": 0, "train": 1}.get(channel, 2), name)


def metric_direction(algorithms: list[str], name: str) -> str | None:
    """"maximize" or "minimize" as the first algorithm that declares ``name`` says; None when none does."""
    for algorithm in algorithms:
        try:
            return get_algorithm(algorithm).metric_direction(name)
        except (UnknownAlgorithm, KeyError):
            continue
    return None


# --- compare ------------------------------------------------------------------------------------


def parse_run_ids(raw: list[str]) -> list[uuid.UUID]:
    """Run ids from ``?runs=a,b`` (or repeated ``run=``), in order, without repeats; ValidationError if bad."""
    ids: list[uuid.UUID] = []
    bad: list[str] = []
    for part in (p.strip() for value in raw for p in value.split(",")):
        if not part:
            continue
        try:
            run_id = uuid.UUID(part)
        except ValueError:
            bad.append(part[:40])
            continue
        if run_id not in ids:
            ids.append(run_id)
    if bad:
        raise ValidationError({"runs": [f"'{b}' is not a run id." for b in bad[:5]]})
    if len(ids) < MIN_COMPARE:
        raise ValidationError({"runs": [f"Choose at least {MIN_COMPARE} runs to compare ({len(ids)} given)."]})
    if len(ids) > MAX_COMPARE:
        raise ValidationError({"runs": [f"At most {MAX_COMPARE} runs can be compared at once ({len(ids)} given)."]})
    return ids


def runs_for_compare(*, user: User, project: Project, run_ids: list[uuid.UUID]) -> list[TrainingJob]:
    """The runs in the order asked; a run that is not in this project (or not visible) is a 404 for all."""
    found = {job.id: job for job in _base(user=user, project=project).filter(id__in=run_ids)}
    if len(found) != len(run_ids):
        raise Http404("No such run in this project.")
    return [found[run_id] for run_id in run_ids]


def metric_series(*, runs: list[TrainingJob]) -> dict[str, dict[str, list[list[float]]]]:
    """``{run id: {metric name: [[step, value, ts], ...]}}`` of runs already scoped, in one query."""
    series: dict[str, dict[str, list[list[float]]]] = {str(run.id): {} for run in runs}
    points = (MetricPoint.objects.filter(job_id__in=[run.id for run in runs])
              .order_by("job_id", "name", "step").values_list("job_id", "name", "step", "value", "ts"))
    for job_id, name, step, value, ts in points.iterator(chunk_size=5_000):
        series[str(job_id)].setdefault(name, []).append([step, value, ts])
    for by_name in series.values():
        for name, values in by_name.items():
            by_name[name] = thin(values, MAX_POINTS_PER_SERIES)
    return series


def thin(values: list[Any], limit: int) -> list[Any]:
    """At most ``limit`` evenly spaced items, always keeping the last (the latest step)."""
    if len(values) <= limit:
        return values
    stride = len(values) / limit
    kept = [values[int(i * stride)] for i in range(limit - 1)]
    return [*kept, values[-1]]
