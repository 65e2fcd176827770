"""k-NN against scikit-learn's brute-force neighbors, plus ties, projections, callbacks and input checks."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.metrics import f1_score
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

from algorithms import KNN, HyperparameterError, get_algorithm, load_model
from algorithms.knn import _projection
from tests.algorithms.recorder import Recorder

Data = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@cache
def blobs(n_samples: int, n_features: int = 12, n_queries: int = 300, seed: int = 0) -> Data:
    """Overlapping classes, so votes are not unanimous; 4 classes labelled 0..3."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((4, n_features)) * 1.5
    labels = rng.integers(0, 4, n_samples + n_queries)
    X = centers[labels] + rng.standard_normal((n_samples + n_queries, n_features))
    return X[:n_samples], labels[:n_samples], X[n_samples:], labels[n_samples:]


def reference(kind: str, k: int, distance: str, weights: str = "uniform") -> KNeighborsClassifier:
    cls = KNeighborsClassifier if kind == "classifier" else KNeighborsRegressor
    metric = "euclidean" if distance == "l2" else "cosine"
    return cls(n_neighbors=k, algorithm="brute", metric=metric, weights=weights)




# -- against scikit-learn ---------------------------------------------------------------------


# 900 rows use the direct partition, 9000 the grouped search.
@pytest.mark.parametrize("n_samples", [900, 9000])
@pytest.mark.parametrize("distance", ["l2", "cosine"])
@pytest.mark.parametrize("weights", ["uniform", "distance"])
def test_it_matches_sklearn_brute_classifier(n_samples: int, distance: str, weights: str) -> None:
    X, y, Q, _ = blobs(n_samples)
    for k in (1, 7):
        expected = reference("classifier", k, distance, weights).fit(X, y)
        model = KNN(k=k, distance=distance, weights=weights).fit(X, y)
        assert (model.group_size_ > 1) == (n_samples > 4096)
        ref_dist, ref_idx = expected.kneighbors(Q)
        dist, idx = model.kneighbors(Q)
        np.testing.assert_array_equal(idx, ref_idx)
        np.testing.assert_allclose(dist, ref_dist, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(model.predict(Q), expected.predict(Q))
        np.testing.assert_allclose(model.predict_proba(Q), expected.predict_proba(Q), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("distance", ["l2", "cosine"])
@pytest.mark.parametrize("weights", ["uniform", "distance"])
def test_it_matches_sklearn_brute_regressor(distance: str, weights: str) -> None:
    X, labels, Q, _ = blobs(6000)
    y = X[:, 0] * 3.0 + labels
    expected = reference("regressor", 6, distance, weights).fit(X, y)
    model = KNN(k=6, predictor_type="regressor", distance=distance, weights=weights).fit(X, y)
    assert model.task_ == "regression"
    np.testing.assert_allclose(model.predict(Q), expected.predict(Q), rtol=1e-12)
    np.testing.assert_array_equal(model.kneighbors(Q, return_distance=False), expected.kneighbors(Q)[1])


def test_it_matches_sklearn_with_a_larger_k_and_other_queries() -> None:
    X, y, Q, _ = blobs(9000)
    model = KNN(k=5).fit(X, y)
    for k in (40, 300):  # 300 is beyond what the fit-time groups were sized for: direct search
        dist, idx = model.kneighbors(Q[:50], k=k)
        ref_dist, ref_idx = reference("classifier", k, "l2").fit(X, y).kneighbors(Q[:50])
        np.testing.assert_array_equal(idx, ref_idx)
        np.testing.assert_allclose(dist, ref_dist, rtol=1e-12)


def test_it_gives_the_same_neighbors_with_any_block_size() -> None:
    X, y, Q, _ = blobs(9000)
    big = KNN(k=4).fit(X, y)
    small = KNN(k=4, max_block_mb=1).fit(X, y)
    assert small._block_rows() < big._block_rows()
    np.testing.assert_array_equal(small.kneighbors(Q)[1], big.kneighbors(Q)[1])
    np.testing.assert_array_equal(small.predict_proba(Q), big.predict_proba(Q))


# -- ties ------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_samples", [800, 6000])
def test_it_breaks_distance_ties_by_training_row(n_samples: int) -> None:
    # Small integer coordinates: distances are exact in float64 and massively tied.
    rng = np.random.default_rng(5)
    X = rng.integers(0, 4, (n_samples, 3)).astype(np.float64)
    y = rng.integers(0, 3, n_samples)
    Q = rng.integers(0, 4, (200, 3)).astype(np.float64)
    model = KNN(k=9).fit(X, y)
    dist, idx = model.kneighbors(Q)
    squared = ((Q[:, None, :] - X[None, :, :]) ** 2).sum(axis=2)
    expected = np.argsort(squared, axis=1, kind="stable")[:, :9]
    np.testing.assert_array_equal(idx, expected)
    np.testing.assert_array_equal(dist, np.sqrt(np.take_along_axis(squared, expected, axis=1)))


def test_it_gives_a_tied_vote_to_the_first_class() -> None:
    X = np.array([[0.0], [1.0], [-1.0], [5.0]])
    y = np.array(["b", "a", "b", "a"])
    model = KNN(k=2).fit(X, y)
    # Neighbors of 0.1: rows 0 ("b") and 1 ("a"), one vote each: "a" comes first in classes_.
    assert model.predict([[0.1]])[0] == "a"
    expected = KNeighborsClassifier(n_neighbors=2, algorithm="brute").fit(X, y)
    np.testing.assert_array_equal(model.predict([[0.1], [-0.1]]), expected.predict([[0.1], [-0.1]]))


def test_it_gives_all_weight_to_exact_matches() -> None:
    X, y, _, _ = blobs(900)
    model = KNN(k=5, weights="distance").fit(X, y)
    proba = model.predict_proba(X[:20])
    np.testing.assert_array_equal(proba, np.eye(4)[y[:20]])


# -- random projections ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sign", "fjlt"])
def test_it_keeps_accuracy_roughly_with_a_random_projection(kind: str) -> None:
    X, y = make_classification(
        n_samples=3000, n_features=120, n_informative=20, n_redundant=40, n_classes=3, class_sep=2.0, random_state=0
    )
    X_train, y_train, X_test, y_test = X[:2400], y[:2400], X[2400:], y[2400:]
    full = KNN(k=7).fit(X_train, y_train).score(X_test, y_test)
    model = KNN(k=7, dimension_reduction_type=kind, dimension_reduction_target=48).fit(X_train, y_train)
    assert model.projection_.shape == (120, 48) and model.train_X_.shape == (2400, 48)
    assert model.score(X_test, y_test) > full - 0.08
    again = KNN(k=7, dimension_reduction_type=kind, dimension_reduction_target=48).fit(X_train, y_train)
    np.testing.assert_array_equal(again.projection_, model.projection_)


@pytest.mark.parametrize("kind", ["sign", "fjlt"])
def test_it_projections_preserve_squared_norms_on_average(kind: str) -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal(100)
    ratios = [np.sum((x @ _projection(kind, 100, 40, seed)) ** 2) / np.sum(x**2) for seed in range(200)]
    assert np.mean(ratios) == pytest.approx(1.0, abs=0.05)
    if kind == "fjlt":
        matrix = _projection(kind, 128, 32, 0)
        # Hadamard columns are orthogonal: P^T P = (d / t) I for a power-of-two d.
        np.testing.assert_allclose(matrix.T @ matrix, np.eye(32) * 4.0, atol=1e-12)


# -- tasks and labels ------------------------------------------------------------------------


def test_it_infers_the_predictor_type_and_keeps_string_labels() -> None:
    X, y, Q, _ = blobs(900)
    names = np.array(["ant", "bee", "cat", "dog"])
    model = KNN().fit(X, names[y])
    assert model.predictor_type_ == "classifier" and model.task_ == "multiclass_classification"
    np.testing.assert_array_equal(model.classes_, names)
    np.testing.assert_array_equal(model.predict(Q), names[KNN().fit(X, y).predict(Q)])
    assert KNN().fit(X, X[:, 0]).predictor_type_ == "regressor"
    assert KNN().fit(X, np.arange(900) % 50).predictor_type_ == "regressor"
    assert KNN().fit(X, y % 2 == 0).task_ == "binary_classification"
    with pytest.raises(ValueError, match="numeric y"):
        KNN(predictor_type="regressor").fit(X, names[y])


def test_it_handles_a_single_class() -> None:
    X, _, Q, _ = blobs(900)
    model = KNN(k=3).fit(X, np.full(900, "only"))
    np.testing.assert_array_equal(model.predict(Q[:5]), ["only"] * 5)
    np.testing.assert_array_equal(model.predict_proba(Q[:5]), np.ones((5, 1)))
    assert model.evaluate(Q[:5], ["only"] * 5)["validation:accuracy"] == 1.0


def test_it_keeps_float32_results() -> None:
    X, y, Q, _ = blobs(9000)
    X32, Q32 = X.astype(np.float32), Q.astype(np.float32)
    model = KNN(k=5).fit(X32, y)
    expected = KNeighborsClassifier(n_neighbors=5, algorithm="brute").fit(X32, y)
    np.testing.assert_array_equal(model.predict(Q32), expected.predict(Q32))
    np.testing.assert_array_equal(model.kneighbors(Q32)[1], expected.kneighbors(Q32)[1])
    np.testing.assert_array_equal(model.kneighbors(Q32)[1], KNN(k=5).fit(X32.astype(np.float64), y).kneighbors(Q32)[1])


# -- metrics and callbacks -------------------------------------------------------------------


def test_it_reports_validation_metrics_in_parts() -> None:
    X, y, Q, y_q = blobs(900, n_queries=1000)
    recorder = Recorder()
    model = KNN(k=5).fit(X, y, X_val=Q, y_val=y_q, callback=recorder)
    assert [step for step, _ in recorder.calls] == list(range(1, 9))  # parts of 128 rows
    assert all(set(metrics) == {"validation:accuracy", "validation:f1"} for _, metrics in recorder.calls)
    final = recorder.calls[-1][1]
    assert final == model.evaluate(Q, y_q)
    expected = reference("classifier", 5, "l2").fit(X, y)
    assert final["validation:accuracy"] == pytest.approx(expected.score(Q, y_q))
    assert not model.stopped_early_

    binary = KNN(k=5).fit(X, y % 2, X_val=Q, y_val=y_q % 2)
    assert binary.evaluate(Q, y_q % 2)["validation:f1"] == pytest.approx(f1_score(y_q % 2, binary.predict(Q)))


def test_it_stops_validating_when_the_callback_says_so() -> None:
    X, y, Q, y_q = blobs(900, n_queries=1000)
    recorder = Recorder(stop_at=2)
    model = KNN(k=5).fit(X, y, X_val=Q, y_val=y_q, callback=recorder)
    assert [step for step, _ in recorder.calls] == [1, 2] and model.stopped_early_
    assert model.predict(Q[:3]).shape == (3,)
    quiet = Recorder()
    KNN(k=5).fit(X, y, callback=quiet)
    assert quiet.calls == [(1, {})]


def test_it_evaluates_a_regressor() -> None:
    X, labels, Q, q_labels = blobs(900)
    model = KNN(k=4, predictor_type="regressor").fit(X, labels * 2.0)
    metrics = model.evaluate(Q, q_labels * 2.0, channel="train")
    assert set(metrics) == {"train:rmse", "train:mae", "train:r2"}
    assert set(metrics) <= {metric.name for metric in KNN.metrics}
    prediction = model.predict(Q)
    assert metrics["train:rmse"] == pytest.approx(np.sqrt(np.mean((prediction - q_labels * 2.0) ** 2)))
    with pytest.raises(ValueError, match="channel"):
        model.evaluate(Q, q_labels, channel="test")
    with pytest.raises(AttributeError, match="only available for classifiers"):
        model.predict_proba(Q)


# -- input checks ----------------------------------------------------------------------------


def test_it_rejects_k_larger_than_the_training_rows() -> None:
    X, y, Q, _ = blobs(900)
    with pytest.raises(ValueError, match=r"k=901 is larger than the number of training rows \(900\)"):
        KNN(k=901).fit(X, y)
    model = KNN(k=900).fit(X, y)
    assert model.kneighbors(Q[:2])[1].shape == (2, 900)
    with pytest.raises(ValueError, match="between 1 and the number of training rows"):
        model.kneighbors(Q, k=1000)


def test_it_rejects_nan_and_bad_inputs() -> None:
    X, y, Q, y_q = blobs(900)
    bad = X.copy()
    bad[10, 3] = np.nan
    with pytest.raises(ValueError, match="X contains NaN in column 3; impute or drop"):
        KNN().fit(bad, y)
    with pytest.raises(ValueError, match="X_val contains NaN in column 3"):
        KNN().fit(X, y, X_val=bad, y_val=y)
    with pytest.raises(ValueError, match="X contains infinite values in column 3"):
        KNN().fit(np.where(np.isnan(bad), np.inf, bad), y)
    with pytest.raises(ValueError, match="y contains NaN"):
        KNN(predictor_type="regressor").fit(X, np.where(np.arange(900) == 4, np.nan, 1.0))
    with pytest.raises(ValueError, match="no rows"):
        KNN().fit(np.empty((0, 4)), [])
    with pytest.raises(ValueError, match="supervised"):
        KNN().fit(X)
    with pytest.raises(ValueError, match="given together"):
        KNN().fit(X, y, X_val=Q)
    with pytest.raises(ValueError, match="dimension_reduction_target=16 must be smaller"):
        KNN(dimension_reduction_type="sign").fit(X, y)
    model = KNN().fit(X, y)
    with pytest.raises(ValueError, match="model expects 12"):
        model.predict(Q[:, :5])
    with pytest.raises(ValueError, match="labels have type"):
        model.evaluate(Q, y_q.astype(str))
    with pytest.raises(ValueError, match="not fitted"):
        KNN().predict(Q)


def test_it_validates_hyperparameters_in_fit() -> None:
    X, y, _, _ = blobs(900)
    with pytest.raises(HyperparameterError, match="k must be between 1 and 10000"):
        KNN(k=0).fit(X, y)
    with pytest.raises(HyperparameterError, match="distance must be one of 'l2', 'cosine'"):
        KNN(distance="manhattan").fit(X, y)
    assert KNN(k="3", weights="distance").fit(X, y).kneighbors(X[:1])[1].shape == (1, 3)


# -- persistence and catalogue ---------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {
            "distance": "cosine",
            "weights": "distance",
            "dimension_reduction_type": "fjlt",
            "dimension_reduction_target": 8,
        },
        {"predictor_type": "regressor"},
        {"k": 3},
    ],
)
def test_it_round_trips_through_save_and_load(tmp_path: Path, params: dict) -> None:
    X, y, Q, _ = blobs(9000)
    labels = np.array(["ant", "bee", "cat", "dog"])[y] if params.get("predictor_type") != "regressor" else y * 1.5
    model = KNN(**params).fit(X, labels)
    model.save(tmp_path / "knn")
    loaded = load_model(tmp_path / "knn")
    assert isinstance(loaded, KNN) and loaded.get_params() == model.get_params()
    np.testing.assert_array_equal(loaded.train_X_, model.train_X_)
    for got, want in zip(loaded.kneighbors(Q), model.kneighbors(Q), strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(loaded.predict(Q), model.predict(Q))
    if model.predictor_type_ == "classifier":
        np.testing.assert_array_equal(loaded.predict_proba(Q), model.predict_proba(Q))


def test_it_reads_back_the_exact_training_rows() -> None:
    X, y, _, _ = blobs(900)
    np.testing.assert_array_equal(KNN().fit(X, y).train_X_, X)
    unit = KNN(distance="cosine").fit(X, y).train_X_
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0)


def test_it_is_registered_with_its_declaration() -> None:
    assert get_algorithm("knn") is KNN
    description = KNN.describe()
    assert description["title"] == "k-Nearest Neighbors" and description["target"] == "required"
    assert KNN.default_objective == "validation:accuracy"
    assert KNN.metric_direction("validation:rmse") == "minimize"
