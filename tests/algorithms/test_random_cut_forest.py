"""RandomCutForest against IsolationForest and plain-Python references, plus its protocol and input checks."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score

from algorithms import HyperparameterError, NotFittedError, RandomCutForest, get_algorithm, load_model
from algorithms.random_cut_forest import _average_path_length, _reservoir_indices
from tests.algorithms.recorder import Recorder


@cache
def planted(n: int = 4000, d: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A mixture of Gaussians with 2% anomalies: half in empty space inside the box, half far out."""
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-8.0, 8.0, size=(4, d))
    n_anomalies = n // 50
    normal = centers[rng.integers(0, 4, n - n_anomalies)] + rng.normal(size=(n - n_anomalies, d))
    low, high = normal.min(axis=0), normal.max(axis=0)
    inside = rng.uniform(low, high, size=(n_anomalies // 2, d))
    direction = rng.normal(size=(n_anomalies - inside.shape[0], d))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    far = normal.mean(axis=0) + direction * (high - low).max()
    X = np.vstack([normal, inside, far])
    y = np.r_[np.zeros(n - n_anomalies, dtype=int), np.ones(n_anomalies, dtype=int)]
    order = rng.permutation(n)
    return X[order], y[order]




def reference_scores(model: RandomCutForest, X: np.ndarray) -> np.ndarray:
    """The documented score, one row and one tree at a time, from the fitted arrays."""
    out = np.zeros(X.shape[0])
    width = 1 << model.max_depth_
    for i, row in enumerate(X):
        total = 0.0
        for t in range(model.n_trees_):
            node = 1
            for _ in range(model.max_depth_):
                feature = model.cut_feature_[t, node]
                node = 2 * node + int(feature >= 0 and row[feature] > model.cut_value_[t, node])
            total += 1.0 / (1.0 + model.leaf_depth_[t, node - width])
        out[i] = np.log2(1 + model.samples_per_tree_) * total / model.n_trees_
    return out


# -- quality against scikit-learn -------------------------------------------------------------


def test_it_finds_planted_anomalies_as_well_as_isolation_forest() -> None:
    X, y = planted()
    scores = RandomCutForest(random_state=0).fit(X).score_samples(X)
    reference = IsolationForest(n_estimators=100, max_samples=256, random_state=0).fit(X)
    expected = roc_auc_score(y, -reference.score_samples(X))
    assert roc_auc_score(y, scores) >= expected - 0.01
    assert roc_auc_score(y, scores) > 0.97


def test_it_scores_far_points_higher_than_central_ones() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(2000, 3))
    model = RandomCutForest(random_state=0).fit(X)
    center, edge, far = model.score_samples(np.array([[0.0, 0.0, 0.0], [2.5, 0.0, 0.0], [30.0, -30.0, 5.0]]))
    assert center < edge < far
    # Normal points sit near log2(257) / (1 + c(256)); a far point is isolated within a cut or two.
    assert model.score_mean_ == pytest.approx(np.log2(257) / (1 + _average_path_length(np.array([256]))[0]), rel=0.1)
    assert far > 2.5 * model.score_mean_


def test_it_matches_a_plain_python_traversal_of_the_fitted_trees() -> None:
    X, _ = planted()
    model = RandomCutForest(num_trees=50, num_samples_per_tree=64, random_state=3).fit(X)
    rows = X[:40]
    np.testing.assert_allclose(model.score_samples(rows), reference_scores(model, rows), rtol=1e-12)


def test_it_reports_auc_like_sklearn() -> None:
    X, y = planted()
    model = RandomCutForest(random_state=0).fit(X)
    scores = model.score_samples(X)
    metrics = model.evaluate(X, y, channel="train")
    assert metrics["train:auc"] == pytest.approx(roc_auc_score(y, scores), abs=1e-12)
    assert metrics["train:score_mean"] == pytest.approx(scores.mean())
    assert metrics["train:score_std"] == pytest.approx(scores.std())
    assert metrics["train:anomaly_rate"] == pytest.approx(np.mean(scores > model.threshold_))
    assert set(model.evaluate(X)) == {"validation:score_mean", "validation:score_std", "validation:anomaly_rate"}


# -- the random cut trees ---------------------------------------------------------------------


def test_it_never_cuts_a_constant_column() -> None:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(1000, 4))
    X[:, 1] = 3.5
    model = RandomCutForest(random_state=0).fit(X)
    cuts = model.cut_feature_[model.cut_feature_ >= 0]
    assert cuts.size > 0 and not np.any(cuts == 1)
    assert set(np.unique(cuts)) == {0, 2, 3}
    # Slots without a cut let every row through to the left.
    assert np.all(np.isinf(model.cut_value_[model.cut_feature_ < 0]))


def test_it_chooses_cut_dimensions_in_proportion_to_their_range() -> None:
    rng = np.random.default_rng(3)
    X = rng.uniform(0.0, 1.0, size=(5000, 2)) * np.array([1.0, 3.0])
    model = RandomCutForest(num_trees=1000, random_state=0).fit(X)
    root = model.cut_feature_[:, 1]
    # Isolation Forest would pick each dimension half the time.
    assert np.mean(root == 1) == pytest.approx(0.75, abs=0.05)


def test_it_keeps_cuts_inside_the_range_of_the_node() -> None:
    X, _ = planted()
    model = RandomCutForest(random_state=0).fit(X)
    roots = model.cut_feature_[:, 1]
    values = model.cut_value_[:, 1]
    assert np.all(values >= X.min(axis=0)[roots]) and np.all(values < X.max(axis=0)[roots])


def test_it_samples_rows_uniformly_without_replacement_by_reservoir_sampling() -> None:
    rng = np.random.default_rng(0)
    rows = _reservoir_indices(1000, 2000, 50, rng)
    assert rows.shape == (2000, 50)
    assert all(np.unique(sample).size == 50 for sample in rows)
    counts = np.bincount(rows.ravel(), minlength=1000)
    # Each row is kept by each tree with probability 50 / 1000: 100 times out of 2000 on average.
    assert counts.mean() == pytest.approx(100.0)
    assert counts.std() == pytest.approx(np.sqrt(2000 * 0.05 * 0.95), rel=0.15)
    # No drift along the stream: early and late rows are kept as often.
    assert counts[:200].mean() == pytest.approx(counts[-200:].mean(), rel=0.05)


def test_it_uses_every_row_when_num_samples_per_tree_exceeds_the_rows() -> None:
    rows = _reservoir_indices(30, 4, 256, np.random.default_rng(0))
    np.testing.assert_array_equal(rows, np.tile(np.arange(30), (4, 1)))
    X = np.random.default_rng(4).normal(size=(30, 3))
    model = RandomCutForest(num_samples_per_tree=256).fit(X)
    assert model.samples_per_tree_ == 30 and model.max_depth_ == 5
    assert np.all(np.isfinite(model.score_samples(X)))


def test_it_handles_a_single_row_and_identical_rows() -> None:
    for X in (np.array([[1.0, 2.0]]), np.ones((20, 3))):
        model = RandomCutForest(num_trees=50).fit(X)
        assert np.all(model.cut_feature_ == -1)
        scores = model.score_samples(np.vstack([X[:1], X[:1] + 5.0]))
        assert scores[0] == scores[1] and np.isfinite(scores).all()
        assert model.predict(X).sum() == 0


def test_it_is_deterministic_given_random_state() -> None:
    X, _ = planted()
    first = RandomCutForest(random_state=7).fit(X)
    second = RandomCutForest(random_state=7).fit(X)
    other = RandomCutForest(random_state=8).fit(X)
    for attr in ("cut_feature_", "cut_value_", "leaf_depth_"):
        np.testing.assert_array_equal(getattr(first, attr), getattr(second, attr))
    np.testing.assert_array_equal(first.score_samples(X), second.score_samples(X))
    assert first.threshold_ == second.threshold_
    assert not np.array_equal(first.cut_value_, other.cut_value_)


# -- dtypes and inputs ------------------------------------------------------------------------


def test_it_keeps_float32_data_in_float32() -> None:
    X, y = planted()
    X32 = X.astype(np.float32)
    model = RandomCutForest(random_state=0).fit(X32)
    assert model.cut_value_.dtype == np.float32
    scores = model.score_samples(X32)
    assert scores.dtype == np.float64
    assert roc_auc_score(y, scores) > 0.97
    # float64 rows are compared with the float32 cuts exactly, without rounding the rows.
    np.testing.assert_allclose(model.score_samples(X[:100]), reference_scores(model, X[:100]), rtol=1e-12)
    np.testing.assert_array_equal(model.score_samples(X32), model.score_samples(X32.astype(np.float64)))


def test_it_validates_float64_rows_against_a_float32_forest() -> None:
    X, _ = planted()
    X32 = X.astype(np.float32)
    model = RandomCutForest(num_trees=50).fit(X32)
    # For each tree, a row just above the cut of the level-3 node that X[0] reaches: in float64 it
    # goes right, rounded to float32 it would land on the cut and go left.
    X_val = np.repeat(X[:1], 50, axis=0)
    for t in range(50):
        node = 1
        for _ in range(3):
            node = 2 * node + int(X[0, model.cut_feature_[t, node]] > model.cut_value_[t, node])
        if model.cut_feature_[t, node] >= 0:
            X_val[t, model.cut_feature_[t, node]] = np.nextafter(np.float64(model.cut_value_[t, node]), np.inf)
    expected = reference_scores(model, X_val)
    assert not np.allclose(expected, reference_scores(model, X_val.astype(np.float32)))
    y_val = np.arange(50) % 2
    recorder = Recorder()
    model = RandomCutForest(num_trees=50).fit(X32, X_val=X_val, y_val=y_val, callback=recorder)
    np.testing.assert_allclose(model.score_samples(X_val), expected, rtol=1e-12)
    assert recorder.calls[-1][1]["validation:score_mean"] == pytest.approx(expected.mean(), rel=1e-12)
    assert recorder.calls[-1][1]["validation:auc"] == model.evaluate(X_val, y_val)["validation:auc"]


def test_it_accepts_integer_and_list_inputs() -> None:
    X = np.random.default_rng(5).integers(0, 10, size=(300, 3))
    model = RandomCutForest().fit(X.tolist())
    np.testing.assert_array_equal(model.score_samples(X), model.score_samples(X.astype(np.float64)))


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.nan, "X contains NaN in column 2; impute or drop missing values first"),
        (np.inf, "X contains infinite values in column 2; replace or drop them first"),
    ],
)
def test_it_rejects_non_finite_values(bad: float, message: str) -> None:
    X = np.random.default_rng(6).normal(size=(100, 4))
    X[17, 2] = bad
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        RandomCutForest().fit(X)
    model = RandomCutForest().fit(np.nan_to_num(X, nan=0.0, posinf=0.0))
    with pytest.raises(ValueError, match="column 2"):
        model.score_samples(X)


def test_it_rejects_malformed_inputs() -> None:
    model = RandomCutForest()
    with pytest.raises(ValueError, match="no rows"):
        model.fit(np.empty((0, 3)))
    with pytest.raises(ValueError, match="reshape"):
        model.fit(np.arange(10.0))
    with pytest.raises(ValueError, match="only numbers"):
        model.fit([["a", "b"], ["c", "d"]])
    X = np.random.default_rng(7).normal(size=(200, 3))
    with pytest.raises(ValueError, match="0/1 labels"):
        model.fit(X, np.full(200, 2))
    with pytest.raises(ValueError, match="100 values"):
        model.fit(X, np.zeros(100))
    with pytest.raises(ValueError, match="y_val was given without X_val"):
        model.fit(X, y_val=np.zeros(10))
    with pytest.raises(NotFittedError):
        model.score_samples(X)
    model.fit(X)
    with pytest.raises(ValueError, match="has 2 features, but the model expects 3"):
        model.score_samples(X[:, :2])
    with pytest.raises(ValueError, match="channel"):
        model.evaluate(X, channel="test")


def test_it_reads_text_and_bool_labels() -> None:
    X, y = planted()
    model = RandomCutForest(num_trees=50).fit(X)
    expected = model.evaluate(X, y)["validation:auc"]
    for labels in (y.astype(bool), y.astype(float), np.where(y == 1, "True", "false"), y.astype(str).tolist()):
        assert model.evaluate(X, labels)["validation:auc"] == expected
    with pytest.raises(ValueError, match="found 'no', 'yes'"):
        model.evaluate(X, np.where(y == 1, "yes", "no"))


def test_it_omits_auc_when_labels_hold_one_class() -> None:
    X, _ = planted()
    recorder = Recorder()
    model = RandomCutForest(num_trees=50).fit(
        X, np.zeros(X.shape[0]), X_val=X[:100], y_val=np.zeros(100), callback=recorder
    )
    assert all("train:auc" not in metrics and "validation:auc" not in metrics for _, metrics in recorder.calls)
    assert "train:auc" not in model.evaluate(X, np.ones(X.shape[0], dtype=bool), channel="train")


def test_it_rejects_invalid_hyperparameters_with_clear_messages() -> None:
    with pytest.raises(HyperparameterError) as info:
        RandomCutForest(num_trees=10, num_samples_per_tree=0, anomaly_threshold_sigma="x").fit(np.ones((5, 2)))
    assert info.value.errors == {
        "num_trees": ["num_trees must be between 50 and 1000 (got 10)"],
        "num_samples_per_tree": ["num_samples_per_tree must be between 1 and 2048 (got 0)"],
        "anomaly_threshold_sigma": ["anomaly_threshold_sigma must be a number (got 'x')"],
    }


# -- training protocol ------------------------------------------------------------------------


def test_it_reports_progress_every_ten_trees() -> None:
    X, y = planted()
    recorder = Recorder()
    model = RandomCutForest(num_trees=55).fit(X, y, X_val=X[:2000], y_val=y[:2000], callback=recorder)
    assert [step for step, _ in recorder.calls] == [1, 2, 3, 4, 5, 6]
    assert set(recorder.calls[-1][1]) == {
        "train:score_mean",
        "train:score_std",
        "train:auc",
        "validation:score_mean",
        "validation:score_std",
        "validation:auc",
    }
    declared = {metric.name for metric in RandomCutForest.metrics}
    assert all(set(metrics) <= declared for _, metrics in recorder.calls)
    assert model.n_trees_ == 55 and not model.stopped_early_
    # The last step describes the final forest on the same rows (X has fewer than 10,000 rows).
    final = recorder.calls[-1][1]
    assert final["train:score_mean"] == pytest.approx(model.score_mean_)
    assert final["validation:auc"] == pytest.approx(model.evaluate(X[:2000], y[:2000])["validation:auc"])
    assert model.threshold_ == pytest.approx(model.score_mean_ + 3.0 * model.score_std_)


def test_it_stops_when_the_callback_says_so_and_stays_usable(tmp_path: Path) -> None:
    X, y = planted()
    recorder = Recorder(stop_at=3)
    model = RandomCutForest(num_trees=100).fit(X, y, callback=recorder)
    assert [step for step, _ in recorder.calls] == [1, 2, 3]
    assert model.stopped_early_ and model.n_trees_ == 30 and model.cut_feature_.shape[0] == 30
    assert roc_auc_score(y, model.score_samples(X)) > 0.95
    # The trees built before the stop are those of an unstopped fit.
    full = RandomCutForest(num_trees=100).fit(X)
    np.testing.assert_array_equal(model.cut_value_, full.cut_value_[:30])
    restored = load_model(model.save(tmp_path / "model"))
    assert restored.stopped_early_ and restored.n_trees_ == 30


def test_it_estimates_the_threshold_from_a_sample_of_large_training_sets() -> None:
    rng = np.random.default_rng(8)
    X = rng.normal(size=(30_000, 2))
    model = RandomCutForest(num_trees=50, anomaly_threshold_sigma=2.0).fit(X)
    scores = model.score_samples(X)
    assert model.score_mean_ == pytest.approx(scores.mean(), rel=0.01)
    assert model.score_std_ == pytest.approx(scores.std(), rel=0.05)
    assert model.predict(X).mean() == pytest.approx(np.mean(scores > scores.mean() + 2 * scores.std()), abs=0.01)


def test_it_predicts_planted_anomalies_above_the_threshold() -> None:
    X, y = planted()
    model = RandomCutForest(random_state=0).fit(X)
    flagged = model.predict(X)
    assert flagged.dtype == np.int64 and set(np.unique(flagged)) <= {0, 1}
    assert flagged[y == 1].mean() > 0.8 and flagged[y == 0].mean() < 0.01
    np.testing.assert_array_equal(flagged, (model.score_samples(X) > model.threshold_).astype(int))


# -- persistence and registration -------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_it_round_trips_through_save_and_load(tmp_path: Path, dtype: type) -> None:
    X, y = planted()
    X = X.astype(dtype)
    model = RandomCutForest(num_trees=60, num_samples_per_tree=100, anomaly_threshold_sigma=2.5).fit(X)
    restored = load_model(model.save(tmp_path / "model"))
    assert isinstance(restored, RandomCutForest)
    assert restored.get_params() == model.get_params()
    np.testing.assert_array_equal(restored.score_samples(X), model.score_samples(X))
    np.testing.assert_array_equal(restored.predict(X), model.predict(X))
    assert restored.evaluate(X, y) == model.evaluate(X, y)
    assert restored.cut_value_.dtype == dtype


def test_it_refuses_inconsistent_saved_models(tmp_path: Path) -> None:
    X, _ = planted()
    directory = RandomCutForest(num_trees=50).fit(X).save(tmp_path / "model")
    manifest_path = directory / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["fitted"]["max_depth_"] = 9
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="expected depth 8"):
        load_model(directory)
    manifest["fitted"].update(max_depth_=9, samples_per_tree_=512)
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="cut_feature_ of shape"):
        load_model(directory)
    manifest["fitted"]["samples_per_tree_"] = 256
    manifest["fitted"]["max_depth_"] = 8
    manifest["fitted"]["n_features_in_"] = 2
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="outside the feature range"):
        load_model(directory)


def test_it_is_registered_as_an_optional_target_anomaly_detector() -> None:
    assert get_algorithm("random-cut-forest") is RandomCutForest
    described = RandomCutForest.describe()
    assert described["target"] == "optional"
    assert described["default_objective"] == "validation:auc"
    assert [hp["name"] for hp in described["hyperparameters"]] == [
        "num_trees",
        "num_samples_per_tree",
        "anomaly_threshold_sigma",
        "random_state",
    ]
    assert RandomCutForest().fit(np.eye(3)).task_ == "anomaly_detection"
