"""Result plots from real fitted estimators: the right figures for each task, bounded and JSON-safe."""

from __future__ import annotations

import json

import numpy as np
import pytest

from algorithms import LinearLearner, UnknownAlgorithm, get_algorithm
from studio.training import plots


def algorithm(name: str):
    try:
        return get_algorithm(name)
    except UnknownAlgorithm:
        pytest.skip(f"{name} is not registered yet")


def blobs(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = np.array([[0, 0, 0], [6, 6, 0], [0, 6, 6]], dtype=float)
    labels = rng.integers(0, 3, size=n)
    return centers[labels] + rng.normal(scale=0.5, size=(n, 3)), labels


def by_id(result: list[dict]) -> dict[str, dict]:
    json.dumps(result, allow_nan=False)  # stored in a JSONField and sent to the browser: no NaN allowed
    return {p["id"]: p for p in result}


def test_it_draws_a_confusion_matrix_and_roc_curve_for_a_binary_classifier():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 2))
    y = np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")
    model = LinearLearner(epochs=5).fit(X, y)
    result = by_id(plots.result_plots(model, X, y, channel="validation"))
    assert list(result) == ["confusion_matrix", "roc"]
    heatmap = result["confusion_matrix"]["figure"]["data"][0]
    assert heatmap["type"] == "heatmap" and heatmap["x"] == ["no", "yes"] and heatmap["y"] == ["no", "yes"]
    assert sum(map(sum, heatmap["z"])) == 400 and heatmap["z"][0][0] + heatmap["z"][1][1] > 360
    assert "all 400 validation rows" in result["confusion_matrix"]["note"]
    curve, chance = result["roc"]["figure"]["data"]
    assert curve["name"].startswith("yes vs no (AUC ") and chance["name"] == "chance"
    assert float(curve["name"].rsplit(" ", 1)[1].rstrip(")")) > 0.95
    assert curve["x"][0] == 0 and curve["x"][-1] == 1 and len(curve["x"]) <= plots.MAX_CURVE_POINTS


def test_it_draws_one_vs_rest_curves_for_a_multiclass_classifier():
    X, labels = blobs()
    y = np.array(["a", "b", "c"])[labels]
    model = LinearLearner(epochs=5).fit(X, y)
    result = by_id(plots.result_plots(model, X, y))
    assert len(result["confusion_matrix"]["figure"]["data"][0]["z"]) == 3
    names = [t["name"] for t in result["roc"]["figure"]["data"]]
    assert [n.split(" (")[0] for n in names] == ["a vs rest", "b vs rest", "c vs rest", "chance"]
    assert result["roc"]["title"] == "ROC curves (one vs rest)"


def test_it_draws_predicted_vs_actual_and_residuals_for_a_regressor_on_a_bounded_sample():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(5000, 2))
    y = 2 * X[:, 0] - X[:, 1] + rng.normal(scale=0.1, size=5000)
    model = LinearLearner(epochs=3).fit(X, y)
    result = by_id(plots.result_plots(model, X, y, channel="training"))
    assert list(result) == ["predicted_vs_actual", "residuals"]
    points, identity = result["predicted_vs_actual"]["figure"]["data"]
    assert len(points["x"]) == len(points["y"]) == plots.MAX_POINTS
    assert identity["x"] == identity["y"] and identity["x"][0] < identity["x"][1]
    assert "a sample of 2,000 of 5,000 training rows" in result["predicted_vs_actual"]["note"]
    residuals = result["residuals"]["figure"]["data"][0]
    assert residuals["type"] == "histogram" and len(residuals["x"]) == plots.MAX_POINTS
    assert abs(np.mean(residuals["x"])) < 0.1


def test_it_computes_roc_curves_like_a_textbook():
    fpr, tpr, auc = plots.roc_curve(np.array([1, 1, 0, 0]), np.array([0.9, 0.8, 0.3, 0.1]))
    assert auc == 1.0 and fpr.tolist() == [0, 0, 0, 0.5, 1] and tpr.tolist() == [0, 0.5, 1, 1, 1]
    _, _, tied = plots.roc_curve(np.array([1, 0]), np.array([0.5, 0.5]))
    assert tied == 0.5  # a tie is a diagonal step, not a lucky order
    assert plots.roc_curve(np.array([1, 1]), np.array([0.1, 0.2])) is None


def test_it_projects_clusters_on_two_principal_components_with_their_centers():
    KMeans = algorithm("kmeans")
    X, _ = blobs()
    model = KMeans(k=3).fit(X)
    result = by_id(plots.result_plots(model, X, None, channel="training"))
    assert list(result) == ["clusters", "cluster_sizes"]
    traces = result["clusters"]["figure"]["data"]
    clusters = [t for t in traces if t["name"].startswith("cluster ")]
    centers = next(t for t in traces if t["name"] == "centers")
    assert len(clusters) == 3 and sum(len(t["x"]) for t in clusters) == 300
    assert len(centers["x"]) == 3
    # Each center sits in the middle of its own cluster's projected points.
    for trace in clusters:
        i = int(trace["name"].split()[1])
        assert abs(np.mean(trace["x"]) - centers["x"][i]) < 0.3 and abs(np.mean(trace["y"]) - centers["y"][i]) < 0.3
    assert sum(result["cluster_sizes"]["figure"]["data"][0]["y"]) == 300
    assert "principal components of the sample explain" in result["clusters"]["note"]


def test_it_draws_a_scree_plot_for_a_projection():
    PCA = algorithm("pca")
    X, _ = blobs()
    model = PCA(num_components=3).fit(X)
    result = by_id(plots.result_plots(model, X, None))
    bars, cumulative = result["scree"]["figure"]["data"]
    assert bars["type"] == "bar" and len(bars["y"]) == len(model.explained_variance_ratio_)
    assert cumulative["y"] == pytest.approx(np.cumsum(bars["y"]), abs=1e-5) and cumulative["y"][-1] <= 1.0 + 1e-6
    assert "projection" in result


def test_it_draws_anomaly_scores_with_the_threshold_and_by_label():
    Forest = algorithm("random-cut-forest")
    rng = np.random.default_rng(2)
    X = np.vstack([rng.normal(size=(300, 2)), rng.normal(loc=8, size=(10, 2))])
    y = np.r_[np.zeros(300), np.ones(10)]
    model = Forest(num_trees=50, random_state=0).fit(X, y)
    result = by_id(plots.result_plots(model, X, y))
    figure = result["anomaly_scores"]["figure"]
    assert [t["name"] for t in figure["data"]] == ["normal (label 0)", "anomaly (label 1)"]
    assert figure["layout"]["shapes"][0]["x0"] == pytest.approx(model.threshold_, rel=1e-5)
    assert "score above the threshold" in result["anomaly_scores"]["note"]
    unlabeled = by_id(plots.result_plots(model, X, None))["anomaly_scores"]["figure"]["data"]
    assert len(unlabeled) == 1 and len(unlabeled[0]["x"]) == 310


def test_it_lists_the_neighbors_of_a_sample_row_for_knn():
    KNN = algorithm("knn")
    X, labels = blobs()
    y = np.array(["a", "b", "c"])[labels]
    model = KNN(**{hp.name: hp.default for hp in KNN.hyperparameters}).fit(X[:200], y[:200])
    result = by_id(plots.result_plots(model, X[200:], y[200:], rows=np.arange(201, 301), y_train=y[:200],
                                      train_rows=np.arange(1, 201)))
    assert {"confusion_matrix", "neighbors"} <= set(result)
    table = result["neighbors"]
    assert table["kind"] == "table" and table["columns"] == ["neighbor", "training row", "distance", "label"]
    distances = [row[2] for row in table["rows"]]
    assert distances == sorted(distances) and all(1 <= row[1] <= 200 for row in table["rows"])
    assert all(row[3] == y[200] for row in table["rows"])  # well separated blobs: same label all around
    assert table["note"].startswith("The ") and "validation row 201" in table["note"]


def test_it_samples_at_most_the_limit_with_a_fixed_seed():
    first = plots.sample_indices(10_000, seed=3)
    assert len(first) == plots.MAX_POINTS and (np.diff(first) > 0).all()
    assert (first == plots.sample_indices(10_000, seed=3)).all()
    assert plots.sample_indices(5).tolist() == [0, 1, 2, 3, 4]
