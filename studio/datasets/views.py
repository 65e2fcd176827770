"""Data pages: list + upload, detail (profile, histograms, preview), download, delete."""

from __future__ import annotations

import math
from itertools import pairwise

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import FileResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from studio.core.errors import Conflict, PayloadTooLarge
from studio.core.pages import ProjectAccess, project_access
from studio.datasets import selectors, services
from studio.datasets.models import DatasetKind
from studio.datasets.uploads import max_upload_bytes, raise_if_upload_rejected, too_large_message

PREVIEW_ROWS = 50
MAX_CHARTS = 60  # a 500-column file would make the page unusable with one plot per column


def _wants_json(request) -> bool:
    # upload.js asks for JSON; a plain form post (no JavaScript) gets pages and redirects.
    return "application/json" in request.headers.get("Accept", "")


def _render_list(request, access: ProjectAccess, *, status: int = 200, **extra):
    datasets = selectors.dataset_list(user=request.user, project=access.project)
    return render(request, "datasets/dataset_list.html", access.context(
        "data", datasets=datasets, max_upload_bytes=max_upload_bytes(),
        too_large_message=too_large_message(), **extra), status=status)


@login_required
@require_http_methods(["GET", "POST"])
def dataset_list(request, project_id):
    access = project_access(request, project_id)
    if request.method == "POST":
        return _upload(request, access)
    return _render_list(request, access)


def _upload(request, access: ProjectAccess):
    values = {k: request.POST.get(k, "") for k in ("name", "target", "kind", "image_size")}
    try:
        if not access.can_edit:
            raise PermissionDenied("Viewers cannot upload datasets; ask a team admin for the member role.")
        raise_if_upload_rejected(request)
        dataset = services.dataset_upload(
            user=request.user, project=access.project, upload=request.FILES.get("file"), **values,
        )
    except (ValidationError, Conflict, PermissionDenied, PayloadTooLarge) as exc:
        code, message = _error_status(exc)
        if _wants_json(request):
            return JsonResponse({"detail": message}, status=code)
        return _render_list(request, access, status=code, upload_error=message, values=values)
    messages.success(request, _uploaded_message(dataset))
    url = reverse("dataset-detail", args=[access.project.id, dataset.id])
    if _wants_json(request):
        return JsonResponse({"id": str(dataset.id), "url": url}, status=201)
    return redirect(url)


def _uploaded_message(dataset) -> str:
    if dataset.kind == DatasetKind.IMAGE:
        return f"Uploaded '{dataset.name}': {dataset.rows} images ({dataset.profile.get('task')})."
    if dataset.kind == DatasetKind.TEXT:
        return f"Uploaded '{dataset.name}': {dataset.rows} texts."
    return f"Uploaded '{dataset.name}': {dataset.rows} rows, {len(dataset.columns)} columns."


def _error_status(exc: Exception) -> tuple[int, str]:
    if isinstance(exc, ValidationError):
        return 400, " ".join(exc.messages)
    if isinstance(exc, PermissionDenied):
        return 403, str(exc)
    if isinstance(exc, Conflict):
        return 409, str(exc)
    return 413, str(exc)


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.6g}"
    return str(value)


def _profile_rows(columns: list[dict], rows: int) -> list[dict]:
    out = []
    for col in columns:
        missing = col.get("missing", 0)
        out.append({
            "name": col["name"], "dtype": col.get("dtype", ""), "missing": missing,
            "missing_pct": f"{100 * missing / rows:.1f}%" if rows else "",
            "min": _fmt(col.get("min")), "max": _fmt(col.get("max")), "mean": _fmt(col.get("mean")),
            "std": _fmt(col.get("std")),
            "distinct": f"{col.get('distinct', 0):,}{'+' if col.get('distinct_capped') else ''}",
        })
    return out


_LAYOUT = {
    "margin": {"l": 44, "r": 8, "t": 8, "b": 36}, "height": 180, "bargap": 0.04,
    "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "rgba(0,0,0,0)", "font": {"size": 11},
    "yaxis": {"title": {"text": "rows"}, "rangemode": "tozero"},
}


def _histogram_figure(col: dict) -> dict:
    hist = col["histogram"]
    edges, counts = hist["edges"], hist["counts"]
    bins = list(pairwise(edges))
    centers = [(a + b) / 2 for a, b in bins]
    widths = [b - a for a, b in bins]
    hover = [f"{a:.4g} to {b:.4g}: %{{y}}<extra></extra>" for a, b in bins]
    layout = {**_LAYOUT, "xaxis": {"title": {"text": col["name"]}}}
    if hist.get("sampled"):
        layout["yaxis"] = {**_LAYOUT["yaxis"], "title": {"text": f"rows (sample of {hist['sample_size']:,})"}}
    return {"data": [{"type": "bar", "x": centers, "y": counts, "width": widths, "marker": {"color": "#2f5bea"},
                      "hovertemplate": hover}], "layout": layout}


def _top_values_figure(col: dict) -> dict:
    values = [v for v, _ in col["top_values"]]
    counts = [n for _, n in col["top_values"]]
    layout = {**_LAYOUT, "xaxis": {"type": "category", "automargin": True}}
    return {"data": [{"type": "bar", "x": values, "y": counts, "marker": {"color": "#137a3a"},
                      "hovertemplate": "%{x}: %{y}<extra></extra>"}], "layout": layout}


def _charts(columns: list[dict], target: str) -> list[dict]:
    charts = []
    for i, col in enumerate(columns[:MAX_CHARTS]):
        if col.get("histogram"):
            kind, figure = "histogram", _histogram_figure(col)
        elif col.get("dtype") in ("string", "bool") and col.get("top_values"):
            kind, figure = "top values", _top_values_figure(col)
        else:
            continue
        charts.append({"id": f"figure-{i}", "column": col["name"], "dtype": col["dtype"], "kind": kind,
                       "is_target": col["name"] == target, "figure": figure,
                       "capped": col.get("distinct_capped", False)})
    # The target first: its class balance or spread is what people come to check.
    charts.sort(key=lambda c: not c["is_target"])
    return charts


def _bar_figure(labels: list[str], counts: list[int], *, color: str, y_title: str) -> dict:
    layout = {**_LAYOUT, "xaxis": {"type": "category", "automargin": True},
              "yaxis": {**_LAYOUT["yaxis"], "title": {"text": y_title}}}
    return {"data": [{"type": "bar", "x": labels, "y": counts, "marker": {"color": color},
                      "hovertemplate": "%{x}: %{y}<extra></extra>"}], "layout": layout}


def _class_chart(counts: dict, *, y_title: str, by_count: bool) -> dict | None:
    if not counts:
        return None
    # Sorted here, not trusted from the stored dict: a Postgres jsonb column does not keep key order.
    items = sorted(counts.items(), key=(lambda kv: (-kv[1], kv[0])) if by_count else (lambda kv: kv[0]))
    top = items[:MAX_CHARTS]
    return {"id": "figure-classes", "figure": _bar_figure([k for k, _ in top], [v for _, v in top],
                                                           color="#137a3a", y_title=y_title),
            "truncated": len(counts) > MAX_CHARTS}


def _text_context(dataset) -> dict:
    profile = dataset.profile or {}
    length = profile.get("length") or {}
    length_chart = None
    if length.get("counts"):
        figure = _histogram_figure({"name": "words per text", "histogram": {
            "edges": length["edges"], "counts": length["counts"]}})
        length_chart = {"id": "figure-length", "figure": figure}
    return {"class_chart": _class_chart(profile.get("label_counts") or {}, y_title="texts", by_count=True),
            "length_chart": length_chart, "length": length, "text_profile": profile}


def _image_context(dataset) -> dict:
    profile = dataset.profile or {}
    y_title = "boxes" if profile.get("task") == "detection" else "images"
    return {"class_chart": _class_chart(profile.get("class_counts") or {}, y_title=y_title, by_count=False),
            "image_profile": profile, "gallery": selectors.dataset_gallery(dataset=dataset)}


@login_required
@require_GET
def dataset_detail(request, project_id, dataset_id):
    access = project_access(request, project_id)
    dataset = selectors.dataset_get(user=request.user, project=access.project, dataset_id=dataset_id)
    common = {"dataset": dataset, "active_job": selectors.dataset_active_job(dataset=dataset)}
    if dataset.kind == DatasetKind.TEXT:
        return render(request, "datasets/dataset_detail_text.html", access.context(
            "data", **common, **_text_context(dataset),
            preview=selectors.dataset_preview(dataset=dataset, rows=PREVIEW_ROWS)))
    if dataset.kind == DatasetKind.IMAGE:
        return render(request, "datasets/dataset_detail_image.html", access.context(
            "data", **common, **_image_context(dataset)))
    columns = (dataset.profile or {}).get("columns", [])
    return render(request, "datasets/dataset_detail.html", access.context(
        "data", dataset=dataset,
        profile_rows=_profile_rows(columns, dataset.rows or 0),
        charts=_charts(columns, dataset.target),
        charts_truncated=len(columns) > MAX_CHARTS, max_charts=MAX_CHARTS,
        preview=selectors.dataset_preview(dataset=dataset, rows=PREVIEW_ROWS),
        active_job=selectors.dataset_active_job(dataset=dataset),
    ))


@login_required
@require_GET
def dataset_download(request, project_id, dataset_id):
    access = project_access(request, project_id)
    dataset = selectors.dataset_get(user=request.user, project=access.project, dataset_id=dataset_id)
    return FileResponse(selectors.dataset_open(dataset=dataset), as_attachment=True,
                        filename=selectors.dataset_download_name(dataset=dataset))


@login_required
@require_POST
def dataset_delete(request, project_id, dataset_id):
    access = project_access(request, project_id)
    dataset = selectors.dataset_get(user=request.user, project=access.project, dataset_id=dataset_id)
    try:
        services.dataset_delete(user=request.user, dataset=dataset)
    except Conflict as exc:
        messages.error(request, str(exc))
        return redirect("dataset-detail", project_id=access.project.id, dataset_id=dataset.id)
    messages.success(request, f"Dataset '{dataset.name}' deleted.")
    return redirect("dataset-list", project_id=access.project.id)
