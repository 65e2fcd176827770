"""Result plots of a fitted model, drawn by the worker once training ends and stored on the job.

The figure is chosen by the fitted estimator's ``task_`` (classification, regression, clustering,
dimensionality reduction, anomaly detection), plus a neighbors table for a nearest-neighbors model.
Every function returns plain dicts (plotly figure JSON, or a small table) built from a bounded sample
of at most :data:`MAX_POINTS` rows, so a job row stays small whatever the dataset size. The page
renders them with plotly.js; nothing here imports plotly.

A plot is ``{"id", "title", "kind": "figure", "figure": {"data", "layout"}, "note"}`` or
``{"id", "title", "kind": "table", "columns": [...], "rows": [[...]], "note"}``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

MAX_POINTS = 2_000  # sampled rows drawn per job
MAX_CLASSES = 20  # classes shown in a confusion matrix
MAX_ROC_CLASSES = 10  # one-vs-rest curves drawn for a multiclass model
MAX_CURVE_POINTS = 200  # points kept per ROC curve
MAX_CLUSTER_TRACES = 20
MAX_NEIGHBORS = 10

# Above the plot area, right-aligned: never on top of bars or points.
TOP_LEGEND = {"orientation": "h", "x": 1, "xanchor": "right", "y": 1.02, "yanchor": "bottom"}

CLASSIFICATION_TASKS = ("binary_classification", "multiclass_classification")
# Tasks of text and image models, whose inputs are texts or images rather than a feature matrix.
MEDIA_CLASSIFICATION_TASKS = ("image_classification", "text_classification")


def sample_indices(n: int, *, limit: int = MAX_POINTS, seed: int = 0) -> np.ndarray:
    """At most ``limit`` row positions out of ``n``, drawn with a fixed seed, in increasing order."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def result_plots(
    estimator: Any,
    X: np.ndarray,
    y: np.ndarray | None,
    *,
    channel: str = "validation",
    rows: np.ndarray | None = None,
    y_train: np.ndarray | None = None,
    train_rows: np.ndarray | None = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """The plots that fit ``estimator.task_``, drawn on a sample of ``X`` (the ``channel`` rows).

    ``rows`` are the file's data-row numbers of ``X``; ``y_train`` and ``train_rows`` describe the rows a
    nearest-neighbors model memorized, so its neighbors table can show their labels.
    """
    index = sample_indices(X.shape[0], seed=seed)
    X_s = X[index]
    y_s = None if y is None else np.asarray(y)[index]
    rows_s = None if rows is None else np.asarray(rows)[index]
    where = _sample_phrase(len(index), X.shape[0], channel)
    task = getattr(estimator, "task_", "")
    plots: list[dict[str, Any]] = []
    if task in CLASSIFICATION_TASKS and y_s is not None:
        plots += classification_plots(estimator, X_s, y_s, where=where)
    elif task == "regression" and y_s is not None:
        plots += regression_plots(estimator, X_s, y_s, where=where)
    elif task == "clustering":
        plots += clustering_plots(estimator, X_s, where=where)
    elif task == "dimensionality_reduction":
        plots += dimensionality_reduction_plots(estimator, X_s, where=where)
    elif task == "anomaly_detection":
        plots += anomaly_plots(estimator, X_s, y_s, where=where)
    if callable(getattr(estimator, "kneighbors", None)) and X_s.shape[0]:
        plots.append(neighbors_table(estimator, X_s, y_s, rows=rows_s, y_train=y_train, train_rows=train_rows,
                                     channel=channel))
    return plots


def prediction_plots(estimator: Any, X: Any, y: Any, *, channel: str = "validation",
                     seed: int = 0) -> list[dict[str, Any]]:
    """The result plots of a text or image model, drawn from its predictions on a sample of ``X``.

    ``X`` is whatever the model predicts from (a list of texts, an (N, H, W, C) image array); only
    ``predict`` and ``predict_proba`` look inside it, so no tabular features are needed. A classifier
    gets its confusion matrix and ROC (plus misclassified images), a word2vec model its embedding map
    and nearest words, a detector its boxes on sample images and per-class AP, a summarizer sample
    summaries.
    """
    task = getattr(estimator, "task_", "")
    if task == "embedding":
        return embedding_plots(estimator)
    if X is None or not len(X):
        return []
    if task == "object_detection":
        return detection_plots(estimator, X, y, channel=channel, seed=seed)
    if task == "summarization":
        return summarization_plots(estimator, X, y, channel=channel)
    if task not in MEDIA_CLASSIFICATION_TASKS or y is None:
        return []
    index = sample_indices(len(X), seed=seed)
    X_s = _take_items(X, index)
    y_s = np.asarray(y)[index]
    where = _sample_phrase(len(index), len(X), channel)
    result = classification_plots(estimator, X_s, y_s, where=where)
    if task == "image_classification":
        grid = misclassified_images(estimator, X_s, y_s, where=where)
        if grid is not None:
            result.append(grid)
    return result


def _take_items(X: Any, index: np.ndarray) -> Any:
    return X[index] if isinstance(X, np.ndarray) else [X[i] for i in index.tolist()]


# --- classification ---------------------------------------------------------------------------------


def classification_plots(estimator: Any, X: np.ndarray, y: np.ndarray, *, where: str) -> list[dict[str, Any]]:
    predicted = np.asarray(estimator.predict(X))
    classes = _classes(estimator, y, predicted)
    plots = [confusion_matrix_plot(y, predicted, classes, where=where)]
    roc = roc_plot(estimator, X, y, classes, where=where)
    if roc is not None:
        plots.append(roc)
    return plots


def _classes(estimator: Any, y: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    classes = getattr(estimator, "classes_", None)
    if classes is not None and np.ndim(classes) == 1 and len(classes):
        return np.asarray(classes)
    return np.unique(np.concatenate([np.asarray(y), predicted]))


def confusion_matrix_plot(truth: np.ndarray, predicted: np.ndarray, classes: np.ndarray, *,
                          where: str) -> dict[str, Any]:
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    shown = classes
    note = where
    if len(classes) > MAX_CLASSES:
        # The most frequent true classes; rows of the others are left out of the picture, not the metrics.
        counts = np.array([(truth == c).sum() for c in classes])
        shown = classes[np.sort(np.argsort(-counts, kind="stable")[:MAX_CLASSES])]
        note += f"; the {MAX_CLASSES} most frequent of {len(classes)} classes"
    position = {_key(c): i for i, c in enumerate(shown)}
    matrix = np.zeros((len(shown), len(shown)), dtype=np.int64)
    for t, p in zip(truth.tolist(), predicted.tolist(), strict=True):
        i, j = position.get(_key(t)), position.get(_key(p))
        if i is not None and j is not None:
            matrix[i, j] += 1
    labels = [_label(c) for c in shown]
    accuracy = float(np.trace(matrix) / matrix.sum()) if matrix.sum() else math.nan
    if math.isfinite(accuracy):
        note += f"; {accuracy:.1%} on the diagonal"
    return _figure(
        "confusion_matrix", "Confusion matrix",
        [{"type": "heatmap", "z": matrix.tolist(), "x": labels, "y": labels, "colorscale": "Blues",
          "reversescale": True, "texttemplate": "%{z}", "showscale": False,
          "hovertemplate": "true %{y}<br>predicted %{x}<br>%{z} rows<extra></extra>"}],
        {"xaxis": {"title": {"text": "predicted"}, "type": "category", "side": "bottom"},
         "yaxis": {"title": {"text": "true"}, "type": "category", "autorange": "reversed"}},
        note=note,
    )


def roc_curve(positive: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, float] | None:
    """(false positive rates, true positive rates, AUC) of ``score`` ranking ``positive``; None if one class."""
    positive = np.asarray(positive, dtype=bool)
    score = np.asarray(score, dtype=np.float64)
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(-score, kind="stable")
    score, positive = score[order], positive[order]
    # One point per distinct score: tied rows move the curve together (a diagonal step).
    last_of_run = np.r_[np.nonzero(np.diff(score))[0], score.size - 1]
    tps = np.cumsum(positive)[last_of_run]
    fps = (last_of_run + 1) - tps
    tpr = np.r_[0.0, tps / n_pos]
    fpr = np.r_[0.0, fps / n_neg]
    auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))  # trapezoids under the curve
    if fpr.size > MAX_CURVE_POINTS:
        keep = np.unique(np.linspace(0, fpr.size - 1, MAX_CURVE_POINTS).round().astype(int))
        fpr, tpr = fpr[keep], tpr[keep]
    return fpr, tpr, auc


def roc_plot(estimator: Any, X: np.ndarray, y: np.ndarray, classes: np.ndarray, *,
             where: str) -> dict[str, Any] | None:
    proba = _probabilities(estimator, X)
    if proba is None or proba.ndim != 2 or proba.shape[1] != len(classes) or len(classes) < 2:
        return None
    truth = np.asarray([_key(v) for v in np.asarray(y).tolist()], dtype=object)
    keys = [_key(c) for c in classes]
    traces: list[dict[str, Any]] = []
    if len(classes) == 2:
        curves = [(1, f"{_label(classes[1])} vs {_label(classes[0])}")]
        title = "ROC curve"
    else:
        counts = [(truth == k).sum() for k in keys]
        top = sorted(range(len(classes)), key=lambda i: -counts[i])[:MAX_ROC_CLASSES]
        curves = [(i, f"{_label(classes[i])} vs rest") for i in sorted(top)]
        title = "ROC curves (one vs rest)"
    for column, name in curves:
        curve = roc_curve(truth == keys[column], proba[:, column])
        if curve is None:
            continue
        fpr, tpr, auc = curve
        traces.append({"type": "scatter", "mode": "lines", "x": _round(fpr), "y": _round(tpr),
                       "name": f"{name} (AUC {auc:.3f})"})
    if not traces:
        return None
    traces.append({"type": "scatter", "mode": "lines", "x": [0, 1], "y": [0, 1], "name": "chance",
                   "line": {"dash": "dash", "color": "#9aa0a6"}, "hoverinfo": "skip"})
    note = where
    if len(classes) > MAX_ROC_CLASSES:
        note += f"; the {MAX_ROC_CLASSES} most frequent of {len(classes)} classes"

    return _figure("roc", title, traces, {
        "xaxis": {"title": {"text": "false positive rate"}, "range": [0, 1]},
        "yaxis": {"title": {"text": "true positive rate"}, "range": [0, 1.02]},
        "showlegend": True, "legend": {"x": 0.98, "xanchor": "right", "y": 0.02, "yanchor": "bottom"},
    }, note=note)


def _probabilities(estimator: Any, X: np.ndarray) -> np.ndarray | None:
    method = getattr(estimator, "predict_proba", None)
    if not callable(method):
        return None
    try:
        return np.asarray(method(X), dtype=np.float64)
    except (AttributeError, NotImplementedError, ValueError, TypeError):
        return None


# --- regression ----------------------------------------------------------------------------------------


def regression_plots(estimator: Any, X: np.ndarray, y: np.ndarray, *, where: str) -> list[dict[str, Any]]:
    actual = np.asarray(y, dtype=np.float64)
    predicted = np.asarray(estimator.predict(X), dtype=np.float64).reshape(-1)
    finite = np.isfinite(actual) & np.isfinite(predicted)
    actual, predicted = actual[finite], predicted[finite]
    low = float(min(actual.min(), predicted.min())) if actual.size else 0.0
    high = float(max(actual.max(), predicted.max())) if actual.size else 1.0
    scatter = _figure("predicted_vs_actual", "Predicted vs actual", [
        {"type": "scatter", "mode": "markers", "x": _round(actual), "y": _round(predicted), "name": "rows",
         "marker": {"size": 5, "opacity": 0.6},
         "hovertemplate": "actual %{x}<br>predicted %{y}<extra></extra>"},
        {"type": "scatter", "mode": "lines", "x": [_r(low), _r(high)], "y": [_r(low), _r(high)],
         "name": "predicted = actual", "line": {"dash": "dash", "color": "#9aa0a6"}, "hoverinfo": "skip"},
    ], {"xaxis": {"title": {"text": "actual"}}, "yaxis": {"title": {"text": "predicted"}}, "showlegend": False},
        note=where)
    residuals = actual - predicted
    note = where
    if residuals.size:
        note += f"; mean residual {np.mean(residuals):.4g}, std {np.std(residuals):.4g}"
    histogram = _figure("residuals", "Residuals (actual − predicted)", [  # noqa: RUF001
        {"type": "histogram", "x": _round(residuals), "nbinsx": 40, "name": "residuals"},
    ], {"xaxis": {"title": {"text": "residual"}}, "yaxis": {"title": {"text": "rows"}}, "bargap": 0.02,
        "shapes": [_vline(0.0)]}, note=note)
    return [scatter, histogram]


# --- clustering and projections -----------------------------------------------------------------------


def principal_axes(X: np.ndarray, k: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, axes (k, d), explained variance ratio (k,)) of ``X`` by SVD of the centred sample.

    With fewer than ``k`` dimensions the missing axes are zero, so every point still gets k coordinates.
    """
    X = np.asarray(X, dtype=np.float64)
    mean = X.mean(axis=0) if X.shape[0] else np.zeros(X.shape[1])
    centred = X - mean
    axes = np.zeros((k, X.shape[1]))
    ratio = np.zeros(k)
    if X.shape[0] >= 2:
        _, singular, vt = np.linalg.svd(centred, full_matrices=False)
        m = min(k, vt.shape[0])
        axes[:m] = vt[:m]
        total = float((singular**2).sum())
        if total > 0:
            ratio[:m] = singular[:m] ** 2 / total
    return mean, axes, ratio


def clustering_plots(estimator: Any, X: np.ndarray, *, where: str) -> list[dict[str, Any]]:
    labels = np.asarray(estimator.predict(X)).astype(np.int64).reshape(-1)
    mean, axes, ratio = principal_axes(X)
    points = (X - mean) @ axes.T
    traces: list[dict[str, Any]] = []
    clusters = np.unique(labels)
    sizes = {int(c): int((labels == c).sum()) for c in clusters}
    ranked = sorted(sizes, key=lambda c: (-sizes[c], c))
    shown = set(ranked[:MAX_CLUSTER_TRACES])
    for c in sorted(shown):
        mask = labels == c
        traces.append({"type": "scattergl" if mask.sum() > 1000 else "scatter", "mode": "markers",
                       "x": _round(points[mask, 0]), "y": _round(points[mask, 1]),
                       "name": f"cluster {c} ({sizes[c]})", "marker": {"size": 5, "opacity": 0.7}})
    rest = ~np.isin(labels, list(shown))
    if rest.any():
        traces.append({"type": "scatter", "mode": "markers", "x": _round(points[rest, 0]),
                       "y": _round(points[rest, 1]), "name": f"{len(clusters) - len(shown)} other clusters",
                       "marker": {"size": 4, "color": "#9aa0a6"}})
    centers = getattr(estimator, "cluster_centers_", None)
    if centers is not None and np.ndim(centers) == 2 and np.shape(centers)[1] == X.shape[1]:
        projected = (np.asarray(centers, dtype=np.float64) - mean) @ axes.T
        traces.append({"type": "scatter", "mode": "markers+text", "x": _round(projected[:, 0]),
                       "y": _round(projected[:, 1]), "name": "centers",
                       "text": [str(i) for i in range(projected.shape[0])], "textposition": "top center",
                       "marker": {"symbol": "x", "size": 12, "color": "#111", "line": {"width": 2}}})
    note = (f"{where}; the first two principal components of the sample explain "
            f"{ratio[0]:.0%} and {ratio[1]:.0%} of its variance")
    scatter = _figure("clusters", "Clusters on the first two principal components", traces, {
        "xaxis": {"title": {"text": "PC 1"}, "zeroline": False},
        "yaxis": {"title": {"text": "PC 2"}, "zeroline": False}, "showlegend": True,
    }, note=note)
    ordered = sorted(sizes)
    bars = _figure("cluster_sizes", "Cluster sizes", [
        {"type": "bar", "x": [str(c) for c in ordered], "y": [sizes[c] for c in ordered], "name": "rows"},
    ], {"xaxis": {"title": {"text": "cluster"}, "type": "category"}, "yaxis": {"title": {"text": "rows"}}},
        note=where)
    return [scatter, bars]


def dimensionality_reduction_plots(estimator: Any, X: np.ndarray, *, where: str) -> list[dict[str, Any]]:
    plots: list[dict[str, Any]] = []
    ratio = getattr(estimator, "explained_variance_ratio_", None)
    if ratio is not None and np.size(ratio):
        ratio = np.asarray(ratio, dtype=np.float64).reshape(-1)
        components = [f"PC {i + 1}" for i in range(ratio.size)]
        cumulative = np.cumsum(ratio)
        plots.append(_figure("scree", "Explained variance per component", [
            {"type": "bar", "x": components, "y": _round(ratio), "name": "component"},
            {"type": "scatter", "mode": "lines+markers", "x": components, "y": _round(cumulative),
             "name": "cumulative"},
        ], {"xaxis": {"title": {"text": "component"}, "type": "category"},
            "yaxis": {"title": {"text": "share of variance"}, "range": [0, 1.05], "tickformat": ".0%"},
            "showlegend": True, "legend": TOP_LEGEND},
            note=f"the {ratio.size} components explain {cumulative[-1]:.1%} of the training data's variance"))
    transform = getattr(estimator, "transform", None)
    if callable(transform) and X.shape[0]:
        projected = np.asarray(transform(X), dtype=np.float64)
        if projected.ndim == 2 and projected.shape[1] >= 1:
            second = projected[:, 1] if projected.shape[1] >= 2 else np.zeros(projected.shape[0])
            plots.append(_figure("projection", "Rows on the first two components", [
                {"type": "scattergl" if projected.shape[0] > 1000 else "scatter", "mode": "markers",
                 "x": _round(projected[:, 0]), "y": _round(second), "name": "rows",
                 "marker": {"size": 5, "opacity": 0.6}},
            ], {"xaxis": {"title": {"text": "component 1"}}, "yaxis": {"title": {"text": "component 2"}}},
                note=where))
    return plots


# --- anomaly detection -----------------------------------------------------------------------------------


def anomaly_plots(estimator: Any, X: np.ndarray, y: np.ndarray | None, *, where: str) -> list[dict[str, Any]]:
    scores = np.asarray(estimator.score_samples(X), dtype=np.float64).reshape(-1)
    threshold = getattr(estimator, "threshold_", None)
    threshold = float(threshold) if threshold is not None and math.isfinite(float(threshold)) else None
    traces: list[dict[str, Any]] = []
    labels = _binary_labels(y)
    if labels is not None:
        for value, name in ((0, "normal (label 0)"), (1, "anomaly (label 1)")):
            mask = labels == value
            if mask.any():
                traces.append({"type": "histogram", "x": _round(scores[mask]), "name": name, "opacity": 0.65,
                               "nbinsx": 40})
    else:
        traces.append({"type": "histogram", "x": _round(scores), "name": "rows", "nbinsx": 40})
    layout: dict[str, Any] = {"xaxis": {"title": {"text": "anomaly score (higher = more anomalous)"}},
                              "yaxis": {"title": {"text": "rows"}}, "barmode": "overlay", "bargap": 0.02,
                              "showlegend": labels is not None, "legend": TOP_LEGEND}
    note = where
    if threshold is not None:
        layout["shapes"] = [_vline(threshold, color="#c5221f")]
        layout["annotations"] = [{"x": _r(threshold), "y": 1, "yref": "paper", "text": "threshold",
                                  "showarrow": False, "xanchor": "left", "yanchor": "top"}]
        flagged = int((scores > threshold).sum())
        note += f"; {flagged:,} of {scores.size:,} rows score above the threshold {threshold:.4g}"
    return [_figure("anomaly_scores", "Anomaly scores", traces, layout, note=note)]


def _binary_labels(y: np.ndarray | None) -> np.ndarray | None:
    if y is None:
        return None
    try:
        values = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if not np.isin(values, (0.0, 1.0)).all():
        return None
    return values.astype(np.int64)


# --- nearest neighbors ---------------------------------------------------------------------------------------


def neighbors_table(estimator: Any, X: np.ndarray, y: np.ndarray | None, *, rows: np.ndarray | None,
                    y_train: np.ndarray | None, train_rows: np.ndarray | None, channel: str) -> dict[str, Any]:
    """The nearest training rows of the first sampled row: what a k-NN prediction is made of."""
    distances, indices = estimator.kneighbors(X[:1])
    distances = np.asarray(distances, dtype=np.float64).reshape(-1)[:MAX_NEIGHBORS]
    indices = np.asarray(indices).astype(np.int64).reshape(-1)[:MAX_NEIGHBORS]
    regression = getattr(estimator, "task_", "") == "regression"
    value_name = "value" if regression else "label"
    table_rows = []
    for rank, (i, d) in enumerate(zip(indices.tolist(), distances.tolist(), strict=True), start=1):
        row_number = int(train_rows[i]) if train_rows is not None and 0 <= i < len(train_rows) else i + 1
        value = _cell(y_train[i]) if y_train is not None and 0 <= i < len(y_train) else ""
        table_rows.append([rank, row_number, _r(d), value])
    predicted = np.asarray(estimator.predict(X[:1])).reshape(-1)
    query = f"{channel} row {int(rows[0])}" if rows is not None and len(rows) else f"the first {channel} row"
    note = f"The {len(table_rows)} training rows nearest to {query}"
    if y is not None and len(y):
        note += f" (true {value_name} {_cell(np.asarray(y)[0])}"
        note += f", predicted {_cell(predicted[0])})" if predicted.size else ")"
    elif predicted.size:
        note += f" (predicted {_cell(predicted[0])})"
    return {"id": "neighbors", "title": "Nearest neighbors of a sample row", "kind": "table",
            "columns": ["neighbor", "training row", "distance", value_name], "rows": table_rows, "note": note + "."}


# --- word2vec -------------------------------------------------------------------------------------------

MAX_EMBEDDING_WORDS = 300  # words drawn on the embedding map
NEAREST_QUERIES = 8  # most frequent words listed with their neighbours
NEAREST_K = 5


def embedding_plots(estimator: Any) -> list[dict[str, Any]]:
    """A 2-D PCA map of the most frequent words' vectors, and the nearest words of the most frequent ones."""
    vocabulary = np.asarray(getattr(estimator, "vocabulary_", np.zeros(0, dtype=str)))
    vectors = np.asarray(getattr(estimator, "vectors_", np.zeros((0, 0))), dtype=np.float64)
    if vocabulary.size < 2 or vectors.ndim != 2 or vectors.shape[0] != vocabulary.size:
        return []
    result: list[dict[str, Any]] = []
    n = min(MAX_EMBEDDING_WORDS, vocabulary.size)  # vocabulary_ is most frequent first
    words = [str(w) for w in vocabulary[:n].tolist()]
    top = vectors[:n]
    norms = np.linalg.norm(top, axis=1, keepdims=True)
    unit = top / np.maximum(norms, 1e-12)  # cosine geometry: direction, not length
    mean, axes, ratio = principal_axes(unit)
    points = (unit - mean) @ axes.T
    counts = getattr(estimator, "word_counts_", None)
    hover = words
    if counts is not None and np.size(counts) >= n:
        hover = [f"{w} ({int(c):,} times)" for w, c in zip(words, np.asarray(counts)[:n].tolist(), strict=True)]
    result.append(_figure("embedding_map", "Word vectors on two principal components", [
        {"type": "scatter", "mode": "markers+text", "x": _round(points[:, 0]), "y": _round(points[:, 1]),
         "text": words, "hovertext": hover, "hoverinfo": "text", "textposition": "top center",
         "textfont": {"size": 10}, "marker": {"size": 5, "opacity": 0.7}, "name": "words"},
    ], {"xaxis": {"title": {"text": "PC 1"}, "zeroline": False},
        "yaxis": {"title": {"text": "PC 2"}, "zeroline": False}, "height": 440, "showlegend": False},
        note=(f"the {n:,} most frequent of {vocabulary.size:,} words (unit vectors); the two components explain "
              f"{ratio[0]:.0%} and {ratio[1]:.0%} of their variance")))
    nearest = getattr(estimator, "nearest", None)
    if callable(nearest):
        k = min(NEAREST_K, vocabulary.size - 1)
        rows = []
        for word in words[:NEAREST_QUERIES]:
            try:
                found = nearest(word, k=k)
            except KeyError:
                continue
            cells = [f"{other} ({similarity:.3f})" for other, similarity in found]
            rows.append([word, *cells, *([""] * (k - len(cells)))])
        if rows:
            result.append(_table("nearest_words", "Nearest words", ["word", *[f"#{i + 1}" for i in range(k)]],
                                 rows, note=f"the {k} words of highest cosine similarity to each of the "
                                            f"{len(rows)} most frequent words"))
    return result


# --- images ----------------------------------------------------------------------------------------------

MAX_MISCLASSIFIED = 12
MAX_DETECTION_IMAGES = 8
DETECTION_SCORE = 0.3  # predicted boxes drawn from this score up
THUMBNAIL = 96  # longest side of an inline image, in pixels
PREDICTED_COLOUR = (230, 57, 70)
TRUTH_COLOUR = (46, 204, 113)


def png_data_uri(image: np.ndarray, *, boxes: Sequence[tuple[Sequence[float], tuple[int, int, int]]] = (),
                 size: int = THUMBNAIL) -> str:
    """A small PNG of a uint8 (H, W, 3) image as a data URI, with ``(x1, y1, x2, y2), colour`` boxes drawn."""
    import base64
    import io

    from PIL import Image, ImageDraw

    array = np.asarray(image)
    if array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    picture = Image.fromarray(array).convert("RGB")
    height, width = array.shape[:2]
    scale = min(size / max(height, width, 1), 4.0)  # tiny images are enlarged a little, nearest-neighbour
    if scale != 1.0:
        picture = picture.resize((max(1, round(width * scale)), max(1, round(height * scale))),
                                 Image.NEAREST if scale > 1 else Image.BILINEAR)
    draw = ImageDraw.Draw(picture)
    for coords, colour in boxes:
        x1, y1, x2, y2 = (float(v) * scale for v in coords)
        if x2 > x1 and y2 > y1:
            draw.rectangle([x1, y1, x2, y2], outline=colour, width=2)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def misclassified_images(estimator: Any, X: np.ndarray, y: np.ndarray, *, where: str) -> dict[str, Any] | None:
    """Up to :data:`MAX_MISCLASSIFIED` wrongly classified images, the most confident mistakes first."""
    if not isinstance(X, np.ndarray) or X.ndim != 4 or not len(X):
        return None
    classes = getattr(estimator, "classes_", None)
    proba = _probabilities(estimator, X)
    if classes is not None and proba is not None and proba.ndim == 2 and proba.shape[1] == len(classes):
        best = proba.argmax(axis=1)
        predicted = np.asarray(classes)[best]
        confidence = proba[np.arange(len(best)), best]
    else:
        predicted = np.asarray(estimator.predict(X))
        confidence = np.full(len(predicted), np.nan)
    wrong = np.array([_key(t) != _key(p) for t, p in zip(np.asarray(y).tolist(), predicted.tolist(), strict=True)])
    n_wrong = int(wrong.sum())
    if not n_wrong:
        return _images_entry("misclassified", "Misclassified examples", [],
                             note=f"{where}; every image was classified correctly")
    order = np.flatnonzero(wrong)
    order = order[np.argsort(-np.nan_to_num(confidence[order], nan=0.0), kind="stable")][:MAX_MISCLASSIFIED]
    images = []
    for i in order.tolist():
        caption = f"true {_label(y[i])} · predicted {_label(predicted[i])}"
        if math.isfinite(float(confidence[i])):
            caption += f" ({float(confidence[i]):.0%})"
        images.append({"src": png_data_uri(X[i]), "caption": caption})
    return _images_entry("misclassified", "Misclassified examples", images,
                         note=f"{where}; {n_wrong:,} misclassified, the {len(images)} most confident shown")


def detection_plots(estimator: Any, X: Any, y: Any, *, channel: str, seed: int = 0) -> list[dict[str, Any]]:
    """Predicted (and true) boxes on a few images, and the AP of each class when true boxes are known."""
    images = np.asarray(X)
    if images.ndim != 4 or not len(images):
        return []
    result: list[dict[str, Any]] = []
    shown = np.arange(min(MAX_DETECTION_IMAGES, len(images)))
    predictions = estimator.predict(images[shown])
    tiles = []
    for i, found in zip(shown.tolist(), predictions, strict=True):
        boxes = []
        truth = y[i] if y is not None and i < len(y) else []
        boxes += [((b["x1"], b["y1"], b["x2"], b["y2"]), TRUTH_COLOUR) for b in truth]
        kept = [d for d in found if float(d["score"]) >= DETECTION_SCORE]
        boxes += [((d["x1"], d["y1"], d["x2"], d["y2"]), PREDICTED_COLOUR) for d in kept]
        caption = ", ".join(f"{d['label']} {float(d['score']):.2f}" for d in kept[:4]) or "no box"
        if len(kept) > 4:
            caption += f" +{len(kept) - 4}"
        if y is not None:
            caption += f" · {len(truth)} true"
        tiles.append({"src": png_data_uri(images[i], boxes=boxes), "caption": caption})
    colours = "predicted boxes in red" + (", true boxes in green" if y is not None else "")
    result.append(_images_entry("detections", f"Predictions on {channel} images", tiles,
                                note=f"the first {len(tiles)} of {len(images):,} {channel} images; "
                                     f"{colours}; boxes scoring at least {DETECTION_SCORE}"))
    if y is not None:
        from algorithms.object_detection import mean_average_precision

        index = sample_indices(len(images), seed=seed)
        truth = [y[i] for i in index.tolist()]
        value, per_class = mean_average_precision(truth, estimator.predict(images[index]))
        if per_class:
            labels = sorted(per_class, key=str)
            result.append(_figure("class_ap", "Average precision per class", [
                {"type": "bar", "x": [str(c) for c in labels], "y": _round([per_class[c] for c in labels]),
                 "name": "AP@0.5"},
            ], {"xaxis": {"title": {"text": "class"}, "type": "category"},
                "yaxis": {"title": {"text": "AP at IoU 0.5"}, "range": [0, 1.05]}},
                note=f"{_sample_phrase(len(index), len(images), channel)}; mAP@0.5 {value:.3f}"))
    return result


# --- summarization -------------------------------------------------------------------------------------

SUMMARY_DOCUMENTS = 3
DOCUMENT_CHARS = 300


def summarization_plots(estimator: Any, X: Any, y: Any, *, channel: str) -> list[dict[str, Any]]:
    """The summaries of the first few documents, with their ROUGE-1 F1 when a reference summary exists."""
    documents = [str(d) for d in list(X)[:SUMMARY_DOCUMENTS]]
    if not documents:
        return []
    summaries = estimator.predict(documents)
    references = None if y is None else [str(r) for r in list(y)[:SUMMARY_DOCUMENTS]]
    columns = ["document", "summary"]
    rows: list[list[Any]] = []
    if references is not None:
        from algorithms.summarization import rouge_n

        columns.append("ROUGE-1")
    for i, (document, summary) in enumerate(zip(documents, summaries, strict=True)):
        text = document if len(document) <= DOCUMENT_CHARS else document[:DOCUMENT_CHARS].rstrip() + "…"
        row: list[Any] = [text, str(summary)]
        if references is not None:
            row.append(_r(rouge_n(str(summary), references[i], 1)) if references[i].strip() else "")
        rows.append(row)
    note = f"the first {len(rows)} of {len(X):,} {channel} documents"
    if references is not None:
        note += "; ROUGE-1 F1 against the reference summary"
    return [_table("summaries", "Sample summaries", columns, rows, note=note)]


# --- helpers -------------------------------------------------------------------------------------------------


def _images_entry(plot_id: str, title: str, images: list[dict[str, str]], *, note: str) -> dict[str, Any]:
    """An image grid: ``images`` are ``{"src": "data:image/png;base64,...", "caption": ...}``."""
    return {"id": plot_id, "title": title, "kind": "images", "images": images, "note": note}


def _table(plot_id: str, title: str, columns: list[str], rows: list[list[Any]], *, note: str) -> dict[str, Any]:
    return {"id": plot_id, "title": title, "kind": "table", "columns": columns, "rows": rows, "note": note}


def _figure(plot_id: str, title: str, data: list[dict[str, Any]], layout: dict[str, Any], *,
            note: str = "") -> dict[str, Any]:
    base = {"margin": {"l": 60, "r": 20, "t": 30, "b": 50}, "height": 340, "hovermode": "closest"}
    return {"id": plot_id, "title": title, "kind": "figure", "figure": {"data": data, "layout": {**base, **layout}},
            "note": note}


def _vline(x: float, *, color: str = "#5f6368") -> dict[str, Any]:
    return {"type": "line", "x0": _r(x), "x1": _r(x), "y0": 0, "y1": 1, "yref": "paper",
            "line": {"color": color, "width": 2, "dash": "dash"}}


def _r(value: float) -> float | None:
    """6 significant digits keep the stored JSON small; JSON has no NaN, so those become null."""
    value = float(value)
    return float(f"{value:.6g}") if math.isfinite(value) else None


def _round(values: Sequence[float] | np.ndarray) -> list[float | None]:
    return [_r(v) for v in np.asarray(values, dtype=np.float64).reshape(-1).tolist()]


def _key(value: Any) -> Any:
    """Labels compare by value whatever their numpy type: 1, 1.0 and np.float64(1) are one class."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _label(value: Any) -> str:
    return str(_key(value))


def _cell(value: Any) -> Any:
    value = _key(value)
    if isinstance(value, float):
        return _r(value)
    return value if isinstance(value, int | str) else str(value)


def _sample_phrase(shown: int, total: int, channel: str) -> str:
    if shown == total:
        return f"all {total:,} {channel} rows"
    return f"a sample of {shown:,} of {total:,} {channel} rows"
