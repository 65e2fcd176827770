"""Figures of the compare page, built on the server as plotly JSON (the page draws them with plotly.js).

Every run keeps one colour on every chart (its position in the comparison), so a run is found at a glance
across the metric charts, the tables and the parallel coordinates. Traces carry the run id as ``uid``: the
page script finds a run's trace by it when live points arrive (Plotly.extendTraces). Layouts have a fixed
``uirevision``, so plotly keeps the user's zoom and pan while traces grow.
"""

from __future__ import annotations

import math
from typing import Any

from studio.tuning.views import _display as _tuning_display

# Plotly's and D3's category colours: 20 distinct hues before a colour repeats (with another dash).
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#393b79", "#e6550d", "#31a354", "#843c39", "#7b4173", "#637939", "#d6616b", "#3182bd", "#969696", "#8c6d31",
)
DASHES = ("solid", "dot", "dash")
TOP_LEGEND = {"orientation": "h", "x": 1, "xanchor": "right", "y": 1.02, "yanchor": "bottom"}
MAX_PARALLEL_PARAMS = 12  # hyperparameter axes of the parallel coordinates, besides the metric


def run_style(index: int) -> dict[str, str]:
    return {"color": PALETTE[index % len(PALETTE)], "dash": DASHES[(index // len(PALETTE)) % len(DASHES)]}


def metric_order(name: str) -> tuple[int, str, str]:
    """Charts by metric family (loss first), validation before train inside a family."""
    channel, _, metric = name.rpartition(":")
    return (0 if metric == "loss" else 1, metric, {"validation": "0", "train": "1"}.get(channel, channel))


def metric_chart(name: str, runs: list[dict[str, Any]], series: dict[str, dict[str, list[list[float]]]],
                 direction: str | None) -> dict[str, Any]:
    """One chart of metric ``name``: a line per run that reported it, x the step (epoch)."""
    traces = []
    for index, run in enumerate(runs):
        points = series.get(run["id"], {}).get(name)
        if not points:
            continue
        style = run_style(index)
        traces.append({
            "type": "scatter", "mode": "lines+markers", "name": run["name"], "uid": run["id"],
            "x": [p[0] for p in points], "y": [p[1] for p in points],
            "line": {"color": style["color"], "dash": style["dash"], "width": 2}, "marker": {"size": 4},
            "hovertemplate": f"{_escape(run['name'])}<br>step %{{x}}: %{{y:.4g}}<extra></extra>",
        })
    arrow = {"maximize": " ↑", "minimize": " ↓"}.get(direction or "", "")
    return {"data": traces, "layout": chart_layout(name + arrow, uirevision=name)}


def chart_layout(title: str, *, uirevision: str) -> dict[str, Any]:
    return {
        "title": {"text": title, "x": 0.01, "xanchor": "left"},
        # The same uirevision on every update: plotly keeps the user's zoom, pan and legend clicks.
        "uirevision": uirevision,
        "margin": {"l": 60, "r": 15, "t": 40, "b": 45}, "height": 320,
        "xaxis": {"title": {"text": "step"}, "automargin": True},
        "yaxis": {"automargin": True, "exponentformat": "e"},
        "showlegend": True, "legend": TOP_LEGEND,
    }


def _escape(text: str) -> str:
    # Run names go into plotly's hover template, where % and braces are template syntax and <...> is HTML.
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("%", "%%").replace("{", "(").replace("}", ")"))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# A value is shown the way the tuning trials table shows it, so the same run reads the same on both pages.
display = _tuning_display


def _dimension(name: str, values: list[Any], scale: str) -> dict[str, Any] | None:
    """A parcoords axis: numbers as they are (log10 on a log-scaled parameter), anything else as categories."""
    if all(_is_number(v) for v in values):
        if scale == "log" and all(v > 0 for v in values):
            return {"label": f"{name} (log10)", "values": [math.log10(v) for v in values]}
        low, high = min(values), max(values)
        dim: dict[str, Any] = {"label": name, "values": list(values)}
        if low == high:  # one value: give the axis some height so the line sits in its middle
            dim["range"] = [low - 1, high + 1]
        return dim
    labels = sorted({display(v) for v in values})
    if len(labels) > 30:
        return None  # free text, not a choice: no readable axis
    return {"label": name, "values": [labels.index(display(v)) for v in values],
            "tickvals": list(range(len(labels))), "ticktext": labels, "range": [0, max(1, len(labels) - 1)]}


def parallel_coordinates(runs: list[dict[str, Any]], params: list[dict[str, Any]], metric: str | None,
                         direction: str | None) -> dict[str, Any]:
    """Parcoords over the hyperparameters that differ (else all) and ``metric``, one line per run having it.

    Returns ``{"metric", "runs": n drawn, "left_out": [names], "figure"}``; the figure is None when fewer
    than two runs have the metric.
    """
    drawn = [r for r in runs if metric and _is_number(r["final_metrics"].get(metric))]
    left_out = [r["name"] for r in runs if r not in drawn]
    result: dict[str, Any] = {"metric": metric, "runs": len(drawn), "left_out": left_out, "figure": None}
    if len(drawn) < 2 or metric is None:
        return result
    differing = [p for p in params if p["differs"]] or params
    dims = []
    for param in differing:
        values = [r["hyperparameters"].get(param["name"]) for r in drawn]
        if any(v is None for v in values):
            continue
        dim = _dimension(param["name"], values, param.get("scale", ""))
        if dim is not None:
            dims.append(dim)
        if len(dims) == MAX_PARALLEL_PARAMS:
            break
    scores = [r["final_metrics"][metric] for r in drawn]
    dims.append({"label": metric, "values": scores})
    result["figure"] = {
        "data": [{
            "type": "parcoords", "dimensions": dims,
            # Coloured by the metric (the last axis); the better end is bright whatever the direction.
            "line": {"color": scores, "colorscale": "Viridis", "reversescale": direction == "minimize",
                     "showscale": True, "colorbar": {"title": {"text": metric}, "thickness": 12}},
        }],
        "layout": {
            "title": {"text": f"Parallel coordinates · {metric}", "x": 0.01, "xanchor": "left", "y": 0.98,
                      "yanchor": "top"},
            "uirevision": "parallel", "height": 380, "margin": {"l": 70, "r": 70, "t": 95, "b": 30},
        },
    }
    return result
