"""KMeans against scikit-learn's KMeans (same start -> same iterates), plus web-scale mode and the contract."""

from __future__ import annotations

import itertools
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.cluster import KMeans as SklearnKMeans
from sklearn.cluster import kmeans_plusplus
from sklearn.datasets import make_blobs

import algorithms._kmeans_lloyd as kmeans_kernels
from algorithms import HyperparameterError, KMeans, get_algorithm, load_model
from tests.algorithms.recorder import Recorder


@cache
def blobs(n_samples: int = 3000, n_features: int = 4, centers: int = 6, std: float = 1.5) -> np.ndarray:
    X, _ = make_blobs(n_samples=n_samples, n_features=n_features, centers=centers, cluster_std=std, random_state=0)
    return X




def sklearn_lloyd(X: np.ndarray, init: np.ndarray, max_iter: int = 300, tol: float = 1e-4) -> SklearnKMeans:
    return SklearnKMeans(init.shape[0], init=init, n_init=1, algorithm="lloyd", max_iter=max_iter, tol=tol).fit(X)


# -- the same iterates as scikit-learn ----------------------------------------------------------


@pytest.mark.parametrize(
    ("X", "k", "seed"),
    [
        (blobs(), 6, 0),
        (blobs(), 10, 1),  # more clusters than blobs: centers keep moving for a while
        (blobs(20_000, 2, 15, 3.0), 30, 2),  # overlapping blobs, many rows on cluster borders
        (np.random.default_rng(3).uniform(size=(5000, 3)), 25, 3),  # no structure: long runs
    ],
)
def test_it_matches_sklearn_lloyd_from_the_same_initial_centers(X: np.ndarray, k: int, seed: int) -> None:
    init, _ = kmeans_plusplus(X, k, random_state=seed)
    reference = sklearn_lloyd(X, init)
    model = KMeans(k=k).fit(X, init_centers=init)
    np.testing.assert_allclose(model.cluster_centers_, reference.cluster_centers_, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(model.predict(X), reference.labels_)
    assert model.inertia_ == pytest.approx(reference.inertia_, rel=1e-9)
    assert model.n_iter_ == reference.n_iter_
    np.testing.assert_array_equal(model.cluster_sizes_, np.bincount(reference.labels_, minlength=k))


def test_it_gives_the_same_results_when_rows_are_split_between_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    X = blobs(20_000, 2, 15, 3.0)
    X_val = blobs(3000, 2, 15, 3.0)
    init, _ = kmeans_plusplus(X, 30, random_state=2)
    serial = KMeans(k=30).fit(X, init_centers=init)
    streamed = KMeans(k=30, mode="web-scale", mini_batch_size=1000).fit(X)
    monkeypatch.setattr(kmeans_kernels, "_MIN_SHARD_ROWS", 1000)
    monkeypatch.setattr(kmeans_kernels, "_thread_count", lambda: 3)
    assert len(kmeans_kernels._Shards(X.shape[0]).ranges) == 3
    sharded = KMeans(k=30).fit(X, init_centers=init, X_val=X_val)
    # Per-shard partial sums only change the rounding.
    np.testing.assert_allclose(sharded.cluster_centers_, serial.cluster_centers_, rtol=0, atol=1e-12)
    assert sharded.inertia_ == pytest.approx(serial.inertia_, rel=1e-12) and sharded.n_iter_ == serial.n_iter_
    np.testing.assert_array_equal(sharded.predict(X), serial.predict(X))
    np.testing.assert_allclose(sharded.transform(X_val), serial.transform(X_val), rtol=1e-12, atol=1e-9)
    assert sharded.evaluate(X_val) == pytest.approx(serial.evaluate(X_val), rel=1e-12)
    again = KMeans(k=30, mode="web-scale", mini_batch_size=1000).fit(X)
    np.testing.assert_allclose(again.cluster_centers_, streamed.cluster_centers_, rtol=0, atol=1e-12)
    assert again.inertia_ == pytest.approx(streamed.inertia_, rel=1e-12)


def test_it_limits_its_threads_with_omp_num_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert kmeans_kernels._thread_count() == 1
    assert len(kmeans_kernels._Shards(10_000_000).ranges) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "not a number")
    assert kmeans_kernels._thread_count() >= 1


def test_it_matches_sklearn_when_the_iteration_budget_runs_out() -> None:
    X = np.random.default_rng(4).normal(size=(4000, 2))
    init = X[:12].copy()
    reference = sklearn_lloyd(X, init, max_iter=3)
    model = KMeans(k=12, epochs=3).fit(X, init_centers=init)
    assert model.n_iter_ == 3 and not model.converged_
    np.testing.assert_allclose(model.cluster_centers_, reference.cluster_centers_, atol=1e-9)
    np.testing.assert_array_equal(model.predict(X), reference.labels_)


def test_it_relocates_empty_clusters_like_sklearn() -> None:
    X = blobs()
    # Two identical far-away seeds: one of them is empty after the first assignment.
    init = np.vstack([X[:4], [[50.0, 50.0, 50.0, 50.0]] * 2])
    reference = sklearn_lloyd(X, init)
    model = KMeans(k=6).fit(X, init_centers=init)
    assert model.inertia_ == pytest.approx(reference.inertia_, rel=1e-6)
    assert (model.cluster_sizes_ > 0).all()


def test_it_seeds_with_kmeans_plusplus_as_well_as_sklearn() -> None:
    X = blobs(4000, 5, 12, 2.0)
    ours = [KMeans(k=12, random_state=seed).fit(X).inertia_ for seed in range(5)]
    theirs = [SklearnKMeans(12, n_init=1, random_state=seed).fit(X).inertia_ for seed in range(5)]
    assert np.mean(ours) <= 1.03 * np.mean(theirs)


def test_it_seeds_with_random_rows_as_well_as_sklearn() -> None:
    X = blobs()
    ours = [KMeans(k=6, init_method="random", random_state=seed).fit(X).inertia_ for seed in range(10)]
    theirs = [SklearnKMeans(6, init="random", n_init=1, random_state=seed).fit(X).inertia_ for seed in range(10)]
    # Random seeding often ends in a poor local optimum; over ten seeds both find the best one.
    assert min(ours) == pytest.approx(min(theirs), rel=1e-9)
    assert np.mean(ours) <= 1.5 * np.mean(theirs)


def test_it_is_deterministic_for_a_random_state() -> None:
    X = blobs()
    for mode in ("full", "web-scale"):
        first = KMeans(k=7, mode=mode, mini_batch_size=500, random_state=5).fit(X)
        second = KMeans(k=7, mode=mode, mini_batch_size=500, random_state=5).fit(X)
        np.testing.assert_array_equal(first.cluster_centers_, second.cluster_centers_)


# -- web-scale mode -----------------------------------------------------------------------------


@pytest.mark.parametrize("half_life", [0, 20_000])
def test_it_streams_one_pass_close_to_full_lloyd(half_life: int) -> None:
    X = blobs(60_000, 6, 10, 2.5)
    full = KMeans(k=10).fit(X)
    model = KMeans(k=10, mode="web-scale", epochs=1, mini_batch_size=2000, half_life_time_size=half_life).fit(X)
    assert model.n_iter_ == 1
    assert model.inertia_ <= 1.03 * full.inertia_
    assert model.cluster_centers_.shape == (10, 6) and model.cluster_sizes_.sum() == X.shape[0]
    assert model.score(X) == pytest.approx(-model.inertia_, rel=1e-9)


def test_it_stops_streaming_once_the_centers_settle() -> None:
    X = blobs(20_000, 3, 5, 1.0)
    model = KMeans(k=5, mode="web-scale", epochs=50, mini_batch_size=1000, tol=1e-3).fit(X)
    assert model.converged_ and 1 < model.n_iter_ < 50
    reference = SklearnKMeans(5, n_init=3, random_state=0).fit(X)
    assert model.inertia_ <= 1.01 * reference.inertia_


def test_it_reports_web_scale_progress_about_ten_times_a_pass() -> None:
    X = blobs(20_000, 4, 6, 2.0)
    X_val = blobs(3000, 4, 6, 2.0)
    recorder = Recorder()
    model = KMeans(k=6, mode="web-scale", epochs=2, tol=0.0, mini_batch_size=500).fit(X, X_val=X_val, callback=recorder)
    assert [step for step, _ in recorder.calls] == list(range(1, 21))
    for _, metrics in recorder.calls:
        assert set(metrics) == {"train:msd", "train:ssd", "validation:msd", "validation:ssd"}
        assert all(type(value) is float and np.isfinite(value) for value in metrics.values())
    last = recorder.calls[-1][1]
    assert last["train:ssd"] == pytest.approx(model.inertia_, rel=1e-9)
    assert last == pytest.approx({**model.evaluate(X, channel="train"), **model.evaluate(X_val)}, rel=1e-9)
    # The streaming estimates stay near the final value (within the noise of the recent rows).
    estimates = np.array([metrics["train:msd"] for _, metrics in recorder.calls[:-1]])
    assert np.all(np.abs(estimates / last["train:msd"] - 1) < 0.2)


@pytest.mark.parametrize("mode", ["full", "web-scale"])
def test_it_learns_the_same_model_whether_or_not_a_callback_listens(mode: str) -> None:
    X = blobs(20_000, 4, 6, 2.0)
    quiet = KMeans(k=6, mode=mode, epochs=3, tol=0.0, mini_batch_size=500).fit(X)
    heard = KMeans(k=6, mode=mode, epochs=3, tol=0.0, mini_batch_size=500).fit(X, X_val=X[:100], callback=Recorder())
    np.testing.assert_array_equal(quiet.cluster_centers_, heard.cluster_centers_)


def test_it_stops_web_scale_training_when_the_callback_asks() -> None:
    X = blobs(20_000, 4, 6, 2.0)
    recorder = Recorder(stop_at=3)
    model = KMeans(k=6, mode="web-scale", epochs=5, mini_batch_size=500).fit(X, callback=recorder)
    assert [step for step, _ in recorder.calls] == [1, 2, 3]
    assert model.stopped_early_ and model.stop_reason_ == "callback" and model.n_iter_ == 1
    assert model.predict(X).shape == (X.shape[0],)
    assert model.inertia_ == pytest.approx(-model.score(X), rel=1e-9)


def test_it_streams_with_fewer_rows_than_streaming_centers() -> None:
    X = blobs(50, 2, 3, 1.0)
    model = KMeans(k=20, mode="web-scale", extra_center_factor=10).fit(X)
    assert model.cluster_centers_.shape == (20, 2)
    assert np.isfinite(model.cluster_centers_).all() and model.cluster_sizes_.sum() == 50


# -- the training protocol ----------------------------------------------------------------------


def test_it_reports_metrics_after_every_lloyd_iteration() -> None:
    X = blobs()
    X_val = blobs(500, 4, 6, 1.5) + 0.1
    recorder = Recorder()
    model = KMeans(k=8, random_state=1).fit(X, X_val=X_val, callback=recorder)
    assert [step for step, _ in recorder.calls] == list(range(1, model.n_iter_ + 1))
    declared = {metric.name for metric in KMeans.metrics}
    for _, metrics in recorder.calls:
        assert set(metrics) == {"train:msd", "train:ssd", "validation:msd", "validation:ssd"} <= declared
        assert all(type(value) is float for value in metrics.values())
        assert metrics["train:msd"] == pytest.approx(metrics["train:ssd"] / X.shape[0])
    train = [metrics["train:ssd"] for _, metrics in recorder.calls]
    assert all(later <= earlier * (1 + 1e-12) for earlier, later in itertools.pairwise(train))
    last = recorder.calls[-1][1]
    assert last["train:ssd"] == pytest.approx(model.inertia_, rel=1e-9)
    assert {key: last[key] for key in ("validation:msd", "validation:ssd")} == pytest.approx(model.evaluate(X_val))


def test_it_stops_after_the_iteration_where_the_callback_returns_false() -> None:
    X = blobs(20_000, 2, 15, 3.0)
    recorder = Recorder(stop_at=2)
    model = KMeans(k=30).fit(X, callback=recorder)
    assert [step for step, _ in recorder.calls] == [1, 2]
    assert model.stopped_early_ and model.stop_reason_ == "callback" and not model.converged_
    assert model.n_iter_ == 2
    # A usable model whose inertia matches its own predictions.
    assert model.inertia_ == pytest.approx(-model.score(X), rel=1e-9)
    np.testing.assert_array_equal(model.cluster_sizes_, np.bincount(model.predict(X), minlength=30))


def test_it_predicts_transforms_and_scores_consistently() -> None:
    X = blobs()
    model = KMeans(k=6).fit(X)
    distances = model.transform(X)
    assert distances.shape == (X.shape[0], 6)
    np.testing.assert_array_equal(model.predict(X), distances.argmin(axis=1))
    assert model.predict(X).dtype == np.int64
    assert model.score(X) == pytest.approx(-np.sum(distances.min(axis=1) ** 2), rel=1e-9)
    assert model.score(X) == pytest.approx(-model.inertia_, rel=1e-9)
    final = model.evaluate(X, channel="train")
    assert final == pytest.approx({"train:msd": model.inertia_ / X.shape[0], "train:ssd": model.inertia_})
    np.testing.assert_array_equal(model.fit_predict(X), model.predict(X))
    with pytest.raises(ValueError, match="channel"):
        model.evaluate(X, channel="test")
    assert model.task_ == "clustering"


def test_it_declares_itself_to_the_studio() -> None:
    assert get_algorithm("kmeans") is KMeans
    described = KMeans.describe()
    assert described["target"] == "none" and described["title"] == "K-Means"
    assert KMeans.metric_direction(KMeans.default_objective) == "minimize"
    assert {hp["name"] for hp in described["hyperparameters"]} == set(KMeans().get_params())
    assert all(hp["help"] for hp in described["hyperparameters"])


# -- edge cases ---------------------------------------------------------------------------------


def test_it_handles_as_many_clusters_as_rows() -> None:
    X = blobs(40, 3, 2, 1.0)
    model = KMeans(k=40).fit(X)
    assert model.inertia_ == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_array_equal(model.cluster_sizes_, np.ones(40))
    np.testing.assert_allclose(np.sort(model.cluster_centers_, axis=0), np.sort(X, axis=0))


def test_it_finds_the_mean_with_a_single_cluster() -> None:
    X = blobs()
    model = KMeans(k=1).fit(X)
    np.testing.assert_allclose(model.cluster_centers_[0], X.mean(axis=0))
    assert model.inertia_ == pytest.approx(((X - X.mean(axis=0)) ** 2).sum())


@pytest.mark.parametrize("mode", ["full", "web-scale"])
def test_it_survives_duplicate_rows(mode: str) -> None:
    X = np.repeat([[0.0, 1.0], [5.0, 5.0], [9.0, -3.0]], 50, axis=0)
    model = KMeans(k=5, mode=mode, mini_batch_size=40).fit(X)
    assert np.isfinite(model.cluster_centers_).all()
    assert model.inertia_ == pytest.approx(0.0, abs=1e-9)
    assert model.cluster_sizes_.sum() == X.shape[0]
    same = KMeans(k=2, mode=mode).fit(np.ones((30, 3)))
    np.testing.assert_allclose(same.cluster_centers_, np.ones((2, 3)))


def test_it_ignores_constant_columns() -> None:
    X = blobs()
    widened = np.column_stack([X, np.full(X.shape[0], 7.0)])
    init, _ = kmeans_plusplus(X, 6, random_state=0)
    model = KMeans(k=6).fit(widened, init_centers=np.column_stack([init, np.full(6, 7.0)]))
    reference = KMeans(k=6).fit(X, init_centers=init)
    np.testing.assert_allclose(model.cluster_centers_[:, :4], reference.cluster_centers_, atol=1e-9)
    np.testing.assert_allclose(model.cluster_centers_[:, 4], 7.0)


@pytest.mark.parametrize("mode", ["full", "web-scale"])
def test_it_gives_the_same_clusters_for_float32_input(mode: str) -> None:
    X = blobs().astype(np.float32)
    as64 = X.astype(np.float64)
    model = KMeans(k=6, mode=mode, mini_batch_size=500).fit(X)
    reference = KMeans(k=6, mode=mode, mini_batch_size=500).fit(as64)
    np.testing.assert_allclose(model.cluster_centers_, reference.cluster_centers_, atol=1e-9)
    assert model.cluster_centers_.dtype == np.float64
    np.testing.assert_array_equal(model.predict(X), reference.predict(as64))


def test_it_does_not_modify_the_callers_array() -> None:
    X = blobs().copy()
    before = X.copy()
    KMeans(k=6).fit(X)
    KMeans(k=6, mode="web-scale").fit(X)
    np.testing.assert_array_equal(X, before)


# -- bad inputs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("X", "kwargs", "message"),
    [
        ([[0.0, 1.0], [np.nan, 2.0], [3.0, 4.0]], {}, "X contains NaN in column 0; impute or drop"),
        ([[0.0, 1.0], [1.0, np.inf], [3.0, 4.0]], {}, "X contains infinite values in column 1"),
        ([1.0, 2.0, 3.0], {}, "X must be 2-D .* use X.reshape"),
        ([[1.0], ["a"]], {}, "X must contain only numbers"),
        (np.empty((0, 2)), {}, "X has no rows"),
        (np.empty((3, 0)), {}, "X has no feature columns"),
        (None, {}, "X is required"),
        ([[0.0], [1.0], [2.0]], {"k": 4}, "k=4 clusters need at least 4 rows, but X has 3"),
    ],
)
def test_it_rejects_bad_training_data_with_a_clear_message(X: Any, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        KMeans(**{"k": 2, **kwargs}).fit(X)


def test_it_rejects_bad_validation_data_and_initial_centers() -> None:
    X = blobs()
    with pytest.raises(ValueError, match="X_val has 2 features, but the model expects 4"):
        KMeans(k=3).fit(X, X_val=np.zeros((5, 2)))
    with pytest.raises(ValueError, match="X_val contains NaN in column 1"):
        KMeans(k=3).fit(X, X_val=[[0.0, np.nan, 0.0, 0.0]])
    with pytest.raises(ValueError, match="init_centers has 2 rows, but k=3"):
        KMeans(k=3).fit(X, init_centers=X[:2])
    with pytest.raises(ValueError, match="init_centers has 3 features"):
        KMeans(k=3).fit(X, init_centers=X[:3, :3])


def test_it_rejects_invalid_hyperparameters_before_touching_the_data() -> None:
    with pytest.raises(HyperparameterError) as info:
        KMeans(k=0, mode="streaming", init_method="kmeans||").fit(None)
    assert set(info.value.errors) == {"k", "mode", "init_method"}
    assert "k must be between 1 and 100000 (got 0)" in str(info.value)
    assert "mode must be one of 'full', 'web-scale'" in str(info.value)


def test_it_checks_the_feature_count_and_fitting_at_prediction_time() -> None:
    with pytest.raises(ValueError, match="not fitted yet"):
        KMeans().predict([[1.0]])
    model = KMeans(k=2).fit([[0.0, 1.0], [1.0, 0.0], [5.0, 5.0]])
    with pytest.raises(ValueError, match="X has 3 features, but the model expects 2"):
        model.predict([[1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match="X contains NaN in column 1"):
        model.transform([[1.0, np.nan]])


# -- persistence --------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["full", "web-scale"])
def test_it_round_trips_through_save_and_load(tmp_path: Path, mode: str) -> None:
    X = blobs()
    model = KMeans(k=6, mode=mode, mini_batch_size=700, random_state=2).fit(X)
    model.save(tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    assert isinstance(loaded, KMeans)
    assert loaded.get_params() == model.get_params()
    probe = blobs(500, 4, 6, 3.0)
    np.testing.assert_array_equal(loaded.predict(probe), model.predict(probe))
    np.testing.assert_array_equal(loaded.transform(probe), model.transform(probe))
    np.testing.assert_array_equal(loaded.cluster_sizes_, model.cluster_sizes_)
    for attr in ("inertia_", "n_iter_", "n_features_in_", "converged_", "stopped_early_", "stop_reason_"):
        assert getattr(loaded, attr) == getattr(model, attr), attr


def test_it_rejects_a_saved_model_whose_arrays_do_not_fit_together(tmp_path: Path) -> None:
    model = KMeans(k=3).fit(blobs())
    model.cluster_centers_ = model.cluster_centers_[:2]
    model.save(tmp_path / "model")
    with pytest.raises(ValueError, match="cluster_centers_ of shape \\(2, 4\\), expected \\(3, 4\\)"):
        load_model(tmp_path / "model")
