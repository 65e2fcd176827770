"""The lineage graph of a model as a plotly figure: a layered DAG, one column per stage, left to right."""

from __future__ import annotations

from typing import Any

from studio.registry.selectors import LINEAGE_KINDS

KIND_TITLES = {
    "dataset": "Dataset", "tuning_job": "Tuning job", "training_job": "Training job", "model": "Model",
    "model_version": "Version", "endpoint": "Endpoint",
}
KIND_COLORS = {
    "dataset": "#8a5a00", "tuning_job": "#6b3fa0", "training_job": "#1f4fbf", "model": "#137a3a",
    "model_version": "#0e7c86", "endpoint": "#b42318",
}
ROW_HEIGHT = 70


def lineage_positions(lineage: dict[str, list[dict[str, Any]]]) -> dict[str, tuple[int, float]]:
    """``{node id: (column, row)}``: columns are the stages that have nodes, in :data:`LINEAGE_KINDS` order;
    a column's nodes are spread one unit apart around 0, in the order the lineage lists them."""
    stages = [kind for kind in LINEAGE_KINDS if any(n["kind"] == kind for n in lineage["nodes"])]
    positions: dict[str, tuple[int, float]] = {}
    for column, kind in enumerate(stages):
        ids = [n["id"] for n in lineage["nodes"] if n["kind"] == kind]
        for i, node_id in enumerate(ids):
            positions[node_id] = (column, (len(ids) - 1) / 2 - i)
    return positions


def lineage_figure(lineage: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """A plotly figure ``{data, layout}`` of :func:`~studio.registry.selectors.model_lineage`'s graph.

    Edges are one line trace (segments split by ``None``); nodes are one markers+text trace per kind,
    coloured by kind under a title per column; every node carries its page URL in ``customdata``.
    """
    positions = lineage_positions(lineage)
    xs: list[float | None] = []
    ys: list[float | None] = []
    for edge in lineage["edges"]:
        if edge["from"] in positions and edge["to"] in positions:
            (x0, y0), (x1, y1) = positions[edge["from"]], positions[edge["to"]]
            xs += [x0, x1, None]
            ys += [y0, y1, None]
    data: list[dict[str, Any]] = [{
        "type": "scatter", "mode": "lines", "x": xs, "y": ys, "hoverinfo": "skip", "showlegend": False,
        "line": {"color": "#a8b3c4", "width": 2},
    }]
    stages = []
    for kind in LINEAGE_KINDS:
        nodes = [n for n in lineage["nodes"] if n["kind"] == kind]
        if not nodes:
            continue
        stages.append(kind)
        data.append({
            "type": "scatter", "mode": "markers+text", "name": KIND_TITLES[kind],
            "x": [positions[n["id"]][0] for n in nodes], "y": [positions[n["id"]][1] for n in nodes],
            "text": [n["label"] for n in nodes], "textposition": "bottom center",
            "customdata": [n["url"] for n in nodes],
            "hovertemplate": f"{KIND_TITLES[kind]}: %{{text}}<extra></extra>",
            "marker": {"size": 18, "color": KIND_COLORS[kind], "line": {"color": "#ffffff", "width": 2}},
        })
    rows = max((sum(1 for n in lineage["nodes"] if n["kind"] == kind) for kind in stages), default=1)
    top = (rows - 1) / 2
    titles = [{"x": column, "y": top + 0.6, "text": f"<b>{KIND_TITLES[kind]}</b>", "showarrow": False,
               "xref": "x", "yref": "y", "font": {"color": "#5b6678", "size": 12}}
              for column, kind in enumerate(stages)]
    return {"data": data, "layout": {
        "height": 140 + ROW_HEIGHT * rows, "margin": {"l": 20, "r": 20, "t": 10, "b": 10},
        "showlegend": False, "hovermode": "closest", "annotations": titles,
        "xaxis": {"visible": False, "range": [-0.6, max(len(stages), 1) - 0.4], "fixedrange": True},
        "yaxis": {"visible": False, "range": [-top - 0.7, top + 0.8], "fixedrange": True},
        "plot_bgcolor": "rgba(0,0,0,0)", "paper_bgcolor": "rgba(0,0,0,0)",
    }}
