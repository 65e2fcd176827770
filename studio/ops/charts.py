"""The dashboard's two live charts, built here as plotly figures: queue depths and invocation rates.

The server gives each figure its layout and traces (one per queue, the total rate and one per busy endpoint)
with the samples it holds as points; the page converts unix times to the viewer's clock, draws the figure and
appends live samples with Plotly.extendTraces under a fixed uirevision, so zoom and pan survive the stream.
"""

from __future__ import annotations

from typing import Any

from studio.ops.workers import QUEUES

QUEUE_COLOURS = {"training": "#3b6fd8", "inference": "#e07b39", "default": "#4a9d5b"}


def _layout(title: str, y_title: str) -> dict[str, Any]:
    return {
        "title": {"text": title, "x": 0.01, "xanchor": "left"}, "uirevision": "keep", "height": 280,
        "margin": {"l": 55, "r": 15, "t": 40, "b": 40}, "xaxis": {"type": "date", "automargin": True},
        "yaxis": {"title": {"text": y_title}, "automargin": True, "rangemode": "tozero"}, "showlegend": True,
        "legend": {"orientation": "h", "x": 1, "xanchor": "right", "y": 1.02, "yanchor": "bottom"},
    }


def _trace(name: str, key: str, ts: list[float], ys: list[Any], colour: str | None = None) -> dict[str, Any]:
    # ``ts`` (unix seconds) travels beside x: the page turns it into local wall-clock dates before drawing.
    trace: dict[str, Any] = {"type": "scatter", "mode": "lines+markers", "name": name, "meta": {"key": key},
                             "ts": ts, "y": ys, "marker": {"size": 4}, "connectgaps": False}
    if colour:
        trace["line"] = {"color": colour}
    return trace


def queue_figure(samples: list[dict[str, Any]]) -> dict[str, Any]:
    ts = [s["ts"] for s in samples]
    data = [_trace(queue, f"queue:{queue}", ts, [(s.get("queues") or {}).get(queue) for s in samples],
                   QUEUE_COLOURS.get(queue)) for queue in QUEUES]
    return {"data": data, "layout": _layout("Messages waiting per queue", "messages")}


def invocation_figure(samples: list[dict[str, Any]]) -> dict[str, Any]:
    ts = [s["ts"] for s in samples]
    data = [_trace("all endpoints", "rps:total", ts, [(s.get("invocations") or {}).get("total") for s in samples],
                   "#5f6368")]
    names: dict[str, str] = {}
    for sample in samples:
        for endpoint_id, row in ((sample.get("invocations") or {}).get("endpoints") or {}).items():
            names[endpoint_id] = row.get("name") or endpoint_id
    for endpoint_id, name in names.items():
        # An endpoint without traffic in a sample drew 0 requests/s then, not a gap.
        ys = [((s.get("invocations") or {}).get("endpoints") or {}).get(endpoint_id, {}).get("rps", 0.0)
              for s in samples]
        data.append(_trace(name, f"rps:{endpoint_id}", ts, ys))
    return {"data": data, "layout": _layout("Invocations per second", "requests/s")}
