"""Experiments pages: the runs table (filter, sort, columns, pages) and the comparison of selected runs."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.core.paginator import Paginator
from django.shortcuts import render
from django.urls import reverse

from studio.core.pages import project_access
from studio.experiments import selectors
from studio.experiments.compare import compare_data, display
from studio.experiments.filters import RunQuery, parse_run_query
from studio.training.models import JobStatus

NAV = "experiments"
PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
MAX_COLUMNS = 40
# A compare page asks each live run's websocket for what happened since a little before its own read of the
# metric points: a point measured just before the read but stored just after it is not lost (the page drops
# the points it already has).
LIVE_REPLAY_MARGIN_SECONDS = 120
BASE_COLUMNS = {
    "algorithm": "Algorithm", "status": "Status", "tags": "Tags", "tuning_job": "Tuning job",
    "created_by": "Created by", "created_at": "Created", "duration": "Duration",
}
SORTABLE = {"name", "algorithm", "status", "created_at", "duration"}
DEFAULT_LEADING = ("algorithm", "status", "tags")
DEFAULT_TRAILING = ("duration", "created_at")
MAX_DEFAULT_METRICS = 3


# --- runs table ---------------------------------------------------------------------------------


def _column_label(key: str) -> str:
    if key in BASE_COLUMNS:
        return BASE_COLUMNS[key]
    return key.split(":", 1)[1]


def _default_columns(declared: dict[str, Any]) -> list[str]:
    metrics = [f"metric:{name}" for name in declared["objectives"][:MAX_DEFAULT_METRICS]]
    return [*DEFAULT_LEADING, *metrics, *DEFAULT_TRAILING]


def _chosen_columns(raw: str | None, default: list[str]) -> list[str]:
    """``cols=algorithm,metric:validation:auc,param:epochs``; unknown keys are dropped (a stale bookmark)."""
    if raw is None:
        return default
    chosen: list[str] = []
    for key in (part.strip() for part in raw.split(",")):
        valid = key in BASE_COLUMNS or (key.partition(":")[0] in ("metric", "param") and key.partition(":")[2])
        if valid and key not in chosen and len(key) <= 110:
            chosen.append(key)
    return chosen[:MAX_COLUMNS]


def _cell(job, key: str, params: list[tuple[str, str]]) -> dict[str, Any]:
    """What one cell shows: text, css class and, for some, a link or badge (the template draws kinds)."""
    if key.startswith("metric:"):
        value = (job.final_metrics or {}).get(key.removeprefix("metric:"))
        return {"kind": "text", "text": display(value), "cls": "num"}
    if key.startswith("param:"):
        value = (job.hyperparameters or {}).get(key.removeprefix("param:"))
        return {"kind": "text", "text": display(value), "cls": "num mono"}
    if key == "status":
        return {"kind": "status", "text": job.status, "title": job.status_message}
    if key == "tags":
        # Each tag links to the runs that have it too (added to the current filters).
        base = [(k, v) for k, v in params if k != "page"]
        return {"kind": "tags", "tags": [{"name": tag, "href": "?" + urlencode([*base, ("tag", tag)])}
                                         for tag in getattr(job, "tags", None) or []]}
    if key == "tuning_job":
        try:
            trial = job.tuning_trial
        except ObjectDoesNotExist:
            return {"kind": "text", "text": "—", "cls": "muted"}
        return {"kind": "tuning", "trial": trial}
    if key == "created_by":
        return {"kind": "text", "text": job.created_by.username if job.created_by else "—"}
    if key == "created_at":
        return {"kind": "created", "at": job.created_at}
    if key == "duration":
        return {"kind": "duration", "seconds": job.duration_seconds, "cls": "num"}
    return {"kind": "text", "text": job.algorithm}


def _url(params: list[tuple[str, str]], **changes: str | None) -> str:
    """The current query string with ``changes`` applied (None removes a key)."""
    kept = [(k, v) for k, v in params if k not in changes]
    kept += [(k, v) for k, v in changes.items() if v is not None]
    return "?" + urlencode(kept)


def _first_sort(key: str, directions: dict[str, str]) -> str:
    """What a first click on a header sorts by: a metric best-first by its declared direction, dates newest
    first, durations longest first, anything else A-Z / smallest first."""
    if key.startswith("metric:"):
        return key if directions.get(key.removeprefix("metric:")) == "minimize" else "-" + key
    return "-" + key if key in ("created_at", "duration") else key


def _headers(columns: list[str], query: RunQuery | None, params: list[tuple[str, str]],
             directions: dict[str, str]) -> list[dict[str, Any]]:
    headers = []
    current = query.sort if query else ""
    for key in ["name", *columns]:
        sortable = key in SORTABLE or key.startswith(("metric:", "param:"))
        header: dict[str, Any] = {"key": key, "label": "Name" if key == "name" else _column_label(key),
                                  "cls": "num" if key.startswith(("metric:", "param:")) or key == "duration" else "",
                                  "sort": ""}
        if sortable:
            if current == key:
                target, header["sort"] = "-" + key, "ascending"
            elif current == "-" + key:
                target, header["sort"] = key, "descending"
            else:
                target = _first_sort(key, directions)
            header["href"] = _url(params, sort=target, page=None)
        headers.append(header)
    return headers


def _column_choices(declared: dict[str, Any], columns: list[str]) -> list[dict[str, Any]]:
    groups = [("Columns", list(BASE_COLUMNS)),
              ("Final metrics", [f"metric:{m['name']}" for m in declared["metrics"]]),
              ("Hyperparameters", [f"param:{p['name']}" for p in declared["params"]])]
    # A chosen metric or parameter no algorithm declares (typed into the URL) is still offered.
    known = {key for _, keys in groups for key in keys}
    extra = [key for key in columns if key not in known]
    if extra:
        groups.append(("Other", extra))
    return [{"title": title, "options": [{"key": k, "label": _column_label(k), "checked": k in columns} for k in keys]}
            for title, keys in groups if keys]


def _page_size(raw: str | None) -> int:
    try:
        return max(1, min(MAX_PAGE_SIZE, int(raw or PAGE_SIZE)))
    except ValueError:
        return PAGE_SIZE


def _tag_choices(request, project, has_runs: bool) -> list[str]:
    tags = selectors.project_tags(user=request.user, project=project) if has_runs else []
    chosen = (request.GET.getlist("tag") or [""])[0]
    return [chosen, *tags] if chosen and chosen not in tags else tags


def _first_index(params: list[tuple[str, str]], key: str) -> int:
    return next((i for i, (k, _) in enumerate(params) if k == key), -1)


def _explicit_filters(params: list[tuple[str, str]]) -> list[dict[str, str]]:
    """Chips for filters given as their own parameters (links, the API's syntax), each with a link removing it."""
    chips = []
    for i, (key, value) in enumerate(params):
        if key in ("metric", "param", "tag", "tuning_job") and value:
            rest = [p for j, p in enumerate(params) if j != i and p[0] != "page"]
            chips.append({"label": f"{key}:{value}", "href": "?" + urlencode(rest)})
    return chips


@login_required
def experiment_list(request, project_id):
    access = project_access(request, project_id)
    project = access.project
    params = [(k, v) for k in request.GET for v in request.GET.getlist(k)]
    errors: dict[str, list[str]] = {}
    query: RunQuery | None
    try:
        query = parse_run_query(request.GET)
    except ValidationError as exc:
        errors, query = exc.message_dict, None
    algorithms = selectors.project_algorithms(user=request.user, project=project)
    declared = selectors.declared_columns(algorithms)
    # cols=a,b (what the page script writes) or col=a&col=b (the columns form without script).
    raw_columns = ",".join(request.GET.getlist("col")) if "col" in request.GET else request.GET.get("cols")
    columns = _chosen_columns(raw_columns, _default_columns(declared))
    page = None
    rows: list[dict[str, Any]] = []
    if query is not None:
        runs = selectors.run_list(user=request.user, project=project, query=query)
        page = Paginator(runs, _page_size(request.GET.get("page_size"))).get_page(request.GET.get("page"))
        rows = [{"job": job, "cells": [_cell(job, key, params) for key in columns]} for job in page.object_list]
    context = access.context(
        NAV, rows=rows, page=page, errors=errors, query=query, columns=columns,
        headers=_headers(columns, query, params, {m["name"]: m["direction"] for m in declared["metrics"]}),
        column_groups=_column_choices(declared, columns),
        default_columns=",".join(_default_columns(declared)), algorithms=algorithms,
        statuses=JobStatus.values, chosen_algorithm=request.GET.get("algorithm", ""),
        chosen_status=request.GET.get("status", ""), text=request.GET.get("q", ""),
        chips=_explicit_filters(params), filtered=bool(query and query.is_filtered) or bool(errors),
        prev_href=_url(params, page=str(page.previous_page_number())) if page and page.has_previous() else "",
        next_href=_url(params, page=str(page.next_page_number())) if page and page.has_next() else "",
        has_runs=bool(algorithms), max_compare=selectors.MAX_COMPARE, min_compare=selectors.MIN_COMPARE,
        clear_href=_url([(k, v) for k, v in params if k in ("cols", "page_size")]),
        cols_param=",".join(columns),
        tags=_tag_choices(request, project, bool(algorithms)),
        chosen_tag=(request.GET.getlist("tag") or [""])[0],
        # Filters the form has no field for ride along as hidden inputs (the tag select holds the first tag).
        hidden_params=[(k, v) for i, (k, v) in enumerate(params)
                       if k in ("metric", "param", "tuning_job", "cols", "col", "sort", "page_size")
                       or (k == "tag" and i != _first_index(params, "tag"))],
    )
    template = "experiments/_runs.html" if request.htmx else "experiments/run_list.html"
    return render(request, template, context, status=400 if errors else 200)


# --- compare ------------------------------------------------------------------------------------


@login_required
def experiment_compare(request, project_id):
    access = project_access(request, project_id)
    project = access.project
    try:
        run_ids = selectors.parse_run_ids(request.GET.getlist("runs") + request.GET.getlist("run"))
    except ValidationError as exc:
        return render(request, "experiments/compare_error.html", access.context(
            NAV, messages_list=exc.messages, max_compare=selectors.MAX_COMPARE), status=400)
    jobs = selectors.runs_for_compare(user=request.user, project=project, run_ids=run_ids)
    since = time.time() - LIVE_REPLAY_MARGIN_SECONDS
    series = selectors.metric_series(runs=jobs)
    metric = request.GET.get("metric", "").strip() or None
    # The tables alone (a live refresh when a run finishes, another parallel-coordinates metric): no charts.
    partial = request.GET.get("partial") == "tables"
    metric_error = ""
    try:
        data = compare_data(jobs=jobs, series=series, metric=metric, figures=not partial)
    except ValidationError as exc:  # a metric no run has (an old link): show the default one and say so
        metric_error = " ".join(exc.messages)
        data = compare_data(jobs=jobs, series=series, figures=not partial)
    ids = ",".join(str(run_id) for run_id in run_ids)
    context = access.context(NAV, data=data, run_ids=ids, metric_error=metric_error,
                             back_href=reverse("experiment-list", args=[project.id]))
    if partial:
        return render(request, "experiments/_compare_tables.html", context)
    context["page_data"] = {
        "runs": [{key: run[key] for key in ("id", "name", "status", "color", "dash")} for run in data["runs"]],
        "active": [str(job.id) for job in jobs if job.is_active],
        "charts": [{"metric": c["metric"], "figure": c["figure"]} for c in data["charts"]],
        "since": round(since, 6),
        "empty_layout": data["charts"][0]["figure"]["layout"] if data["charts"] else None,
        "tables_url": reverse("experiment-compare", args=[project.id]) + "?" + urlencode(
            {"runs": ids, "partial": "tables"}),
        "metric": metric if metric and not metric_error else "",
    }
    return render(request, "experiments/compare.html", context)
