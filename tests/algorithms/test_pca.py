"""PCA against scikit-learn's PCA and plain numpy SVD, plus streaming, callbacks and input checks."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from sklearn.decomposition import PCA as SklearnPCA
from sklearn.metrics import mean_squared_error

from algorithms import PCA, HyperparameterError, get_algorithm, load_model
from algorithms.pca import MAX_REGULAR_FEATURES
from tests.algorithms.recorder import Recorder


@cache
def spread_data(n_samples: int = 3000, n_features: int = 20, seed: int = 0) -> np.ndarray:
    """Rows with well separated variances (stable components) and a mean far from zero."""
    rng = np.random.default_rng(seed)
    scales = np.geomspace(8.0, 0.3, n_features)
    rotation = np.linalg.qr(rng.standard_normal((n_features, n_features)))[0]
    return rng.standard_normal((n_samples, n_features)) * scales @ rotation + rng.uniform(-50, 50, n_features)


@cache
def low_rank_data(n_samples: int = 2000, n_features: int = 150, rank: int = 5, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    factors = rng.standard_normal((n_samples, rank)) * np.array([10.0, 7.0, 5.0, 3.0, 2.0])[:rank]
    basis = np.linalg.qr(rng.standard_normal((n_features, rank)))[0].T
    return factors @ basis + 1e-3 * rng.standard_normal((n_samples, n_features)) + 3.0


def blocks(X: np.ndarray, rows: int) -> Iterator[np.ndarray]:
    for start in range(0, X.shape[0], rows):
        yield X[start : start + rows]




def assert_same_fit(ours: PCA, reference: PCA, atol: float = 1e-10) -> None:
    for attr in ("components_", "explained_variance_", "explained_variance_ratio_", "singular_values_", "mean_"):
        np.testing.assert_allclose(getattr(ours, attr), getattr(reference, attr), rtol=1e-9, atol=atol, err_msg=attr)


# -- against scikit-learn ---------------------------------------------------------------------


@pytest.mark.parametrize("n_components", [1, 5, 20])
def test_it_matches_sklearn_covariance_eigh_with_signs(n_components: int) -> None:
    X = spread_data()
    reference = SklearnPCA(n_components=n_components, svd_solver="covariance_eigh").fit(X)
    model = PCA(num_components=n_components, mini_batch_size=700).fit(X)
    np.testing.assert_allclose(model.components_, reference.components_, atol=1e-8)
    np.testing.assert_allclose(model.explained_variance_, reference.explained_variance_, rtol=1e-8)
    np.testing.assert_allclose(model.explained_variance_ratio_, reference.explained_variance_ratio_, rtol=1e-8)
    np.testing.assert_allclose(model.singular_values_, reference.singular_values_, rtol=1e-8)
    np.testing.assert_allclose(model.mean_, reference.mean_, rtol=1e-12)
    assert model.noise_variance_ == pytest.approx(reference.noise_variance_, rel=1e-8, abs=1e-12)
    np.testing.assert_allclose(model.transform(X), reference.transform(X), atol=1e-8)
    Z = model.transform(X[:50])
    np.testing.assert_allclose(model.inverse_transform(Z), reference.inverse_transform(Z), atol=1e-8)
    assert model.n_samples_seen_ == 3000 and model.n_features_in_ == 20 and model.n_components_ == n_components
    assert model.task_ == "dimensionality_reduction" and model.n_blocks_ == 5


def test_it_matches_sklearn_full_svd_on_iris_like_scales() -> None:
    rng = np.random.default_rng(3)
    X = rng.standard_normal((400, 6)) @ rng.standard_normal((6, 6)) * np.array([1e3, 1.0, 1e-2, 5.0, 1e2, 0.1])
    reference = SklearnPCA(n_components=4, svd_solver="full").fit(X)
    model = PCA(num_components=4).fit(X)
    np.testing.assert_allclose(model.components_, reference.components_, atol=1e-8)
    np.testing.assert_allclose(model.explained_variance_, reference.explained_variance_, rtol=1e-8)


def test_it_keeps_float32_input_and_matches_float64() -> None:
    X = spread_data()
    X32 = X.astype(np.float32)
    reference = SklearnPCA(n_components=5, svd_solver="covariance_eigh").fit(X32.astype(np.float64))
    model = PCA(num_components=5).fit(X32)
    # Accumulated in float64: as accurate as the float64 fit of the rounded data.
    np.testing.assert_allclose(model.components_, reference.components_, atol=1e-10)
    Z = model.transform(X32)
    assert Z.dtype == np.float32
    np.testing.assert_allclose(Z, reference.transform(X32.astype(np.float64)), rtol=1e-5, atol=1e-3)
    assert model.components_.dtype == np.float64


def test_it_makes_component_signs_deterministic() -> None:
    model = PCA(num_components=8).fit(spread_data())
    rows = np.arange(8)
    assert np.all(model.components_[rows, np.argmax(np.abs(model.components_), axis=1)] > 0)
    np.testing.assert_allclose(model.components_ @ model.components_.T, np.eye(8), atol=1e-12)


def test_it_is_not_fooled_by_a_large_mean() -> None:
    # X^T X - n mean mean^T would lose about 16 digits here; shifting by a first estimate does not.
    rng = np.random.default_rng(4)
    X = rng.standard_normal((5000, 4)) * np.array([3.0, 2.0, 1.0, 0.5]) + 1e7
    exact = SklearnPCA(n_components=4, svd_solver="full").fit(X)
    model = PCA(num_components=4).fit(X)
    np.testing.assert_allclose(model.explained_variance_, exact.explained_variance_, rtol=1e-6)
    np.testing.assert_allclose(np.abs(model.components_), np.abs(exact.components_), atol=1e-6)


# -- randomized mode -------------------------------------------------------------------------


def test_it_randomized_matches_regular_on_low_rank_data() -> None:
    X = low_rank_data()
    regular = PCA(num_components=5).fit(X)
    randomized = PCA(num_components=5, algorithm_mode="randomized", mini_batch_size=500).fit(X)
    np.testing.assert_allclose(randomized.components_, regular.components_, atol=1e-6)
    np.testing.assert_allclose(randomized.explained_variance_, regular.explained_variance_, rtol=1e-6)
    np.testing.assert_allclose(randomized.explained_variance_ratio_, regular.explained_variance_ratio_, rtol=1e-6)
    np.testing.assert_allclose(randomized.mean_, regular.mean_, rtol=1e-12)
    # One pass (a stream, or no power iteration) is enough when the rank is within the sketch.
    single = PCA(num_components=5, algorithm_mode="randomized", power_iterations=0).fit(X)
    np.testing.assert_allclose(single.components_, regular.components_, atol=1e-5)
    streamed = PCA(num_components=5, algorithm_mode="randomized").fit(blocks(X, 300))
    np.testing.assert_allclose(streamed.explained_variance_, regular.explained_variance_, rtol=1e-5)


def test_it_randomized_is_close_to_exact_on_a_decaying_spectrum() -> None:
    X = spread_data(n_features=60)
    exact = SklearnPCA(n_components=6, svd_solver="full").fit(X)
    model = PCA(num_components=6, algorithm_mode="randomized", extra_components=10, power_iterations=6).fit(X)
    np.testing.assert_allclose(model.explained_variance_, exact.explained_variance_, rtol=1e-4)
    np.testing.assert_allclose(np.abs(np.sum(model.components_ * exact.components_, axis=1)), 1.0, atol=1e-4)
    # Same seed, same result.
    again = PCA(num_components=6, algorithm_mode="randomized", extra_components=10, power_iterations=6).fit(X)
    np.testing.assert_array_equal(model.components_, again.components_)


# -- streaming -------------------------------------------------------------------------------


def test_it_partial_fit_equals_fit() -> None:
    X = spread_data()
    whole = PCA(num_components=5).fit(X)
    streamed = PCA(num_components=5)
    for block in blocks(X, 450):
        streamed.partial_fit(block)
    assert_same_fit(streamed, whole)
    assert streamed.n_samples_seen_ == 3000 and streamed.n_blocks_ == 7

    lazy = PCA(num_components=5)
    for block in blocks(X, 1000):
        lazy.partial_fit(block, finalize=False)
    assert not hasattr(lazy, "components_")
    assert_same_fit(lazy.finalize(), whole)


def test_it_fits_an_iterator_of_blocks_like_an_array() -> None:
    X = spread_data()
    recorder = Recorder()
    streamed = PCA(num_components=5).fit(blocks(X, 1000), callback=recorder)
    assert_same_fit(streamed, PCA(num_components=5).fit(X))
    assert [step for step, _ in recorder.calls] == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="no blocks"):
        PCA().fit(iter([]))
    with pytest.raises(ValueError, match="block 1 of X has 3 features"):
        PCA(num_components=2).fit(iter([X[:10, :4], X[10:20, :3]]))
    with pytest.raises(ValueError, match="iterator"):
        PCA().fit_transform(blocks(X, 100))


def test_it_partial_fit_continues_a_fit() -> None:
    X = spread_data()
    model = PCA(num_components=5, mini_batch_size=1000).fit(X[:2000])
    model.partial_fit(X[2000:])
    assert_same_fit(model, PCA(num_components=5).fit(X))
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="model expects 20"):
        model.partial_fit(rng.standard_normal((5, 3)))


def test_it_does_not_center_when_subtract_mean_is_false() -> None:
    X = spread_data(n_features=8)
    model = PCA(num_components=3, subtract_mean=False, mini_batch_size=800).fit(X)
    _, s, vt = np.linalg.svd(X, full_matrices=False)
    signs = np.sign(vt[np.arange(3), np.argmax(np.abs(vt[:3]), axis=1)])
    np.testing.assert_allclose(model.components_, vt[:3] * signs[:, None], atol=1e-8)
    np.testing.assert_allclose(model.singular_values_, s[:3], rtol=1e-9)
    np.testing.assert_allclose(model.explained_variance_ratio_, s[:3] ** 2 / np.sum(s**2), rtol=1e-9)
    np.testing.assert_array_equal(model.mean_, np.zeros(8))
    np.testing.assert_allclose(model.transform(X), X @ model.components_.T, rtol=1e-9, atol=1e-9)
    randomized = PCA(num_components=3, subtract_mean=False, algorithm_mode="randomized").fit(X)
    np.testing.assert_allclose(randomized.singular_values_, s[:3], rtol=1e-6)


# -- metrics and callbacks -------------------------------------------------------------------


def test_it_reports_reconstruction_metrics() -> None:
    X = spread_data()
    X_train, X_val = X[:2500], X[2500:]
    recorder = Recorder()
    model = PCA(num_components=4, mini_batch_size=1000).fit(X_train, X_val=X_val, callback=recorder)
    steps = [step for step, _ in recorder.calls]
    assert steps == [1, 2, 3, 4]
    assert all(metrics == {} for _, metrics in recorder.calls[:3])
    final = recorder.calls[-1][1]
    assert set(final) == {
        "train:explained_variance_ratio",
        "train:reconstruction_error",
        "validation:explained_variance_ratio",
        "validation:reconstruction_error",
    }
    assert set(final) <= {metric.name for metric in PCA.metrics}
    assert final["train:explained_variance_ratio"] == pytest.approx(model.explained_variance_ratio_.sum())
    train_error = mean_squared_error(X_train, model.inverse_transform(model.transform(X_train)))
    assert final["train:reconstruction_error"] == pytest.approx(train_error, rel=1e-8)
    val_error = mean_squared_error(X_val, model.inverse_transform(model.transform(X_val)))
    assert final["validation:reconstruction_error"] == pytest.approx(val_error, rel=1e-10)
    train = model.evaluate(X_train, channel="train")
    assert train["train:reconstruction_error"] == pytest.approx(final["train:reconstruction_error"], rel=1e-8)
    assert train["train:explained_variance_ratio"] == pytest.approx(final["train:explained_variance_ratio"], rel=1e-10)
    assert model.evaluate(X_val) == {key: final[key] for key in final if key.startswith("validation:")}
    with pytest.raises(ValueError, match="channel"):
        model.evaluate(X_val, channel="test")


def test_it_stops_when_the_callback_says_so() -> None:
    X = spread_data()
    recorder = Recorder(stop_at=2)
    model = PCA(num_components=3, mini_batch_size=500).fit(X, callback=recorder)
    assert [step for step, _ in recorder.calls] == [1, 2]
    assert model.stopped_early_ and model.n_samples_seen_ == 1000 and model.n_blocks_ == 2
    assert_same_fit(model, PCA(num_components=3).fit(X[:1000]))
    assert model.transform(X[:3]).shape == (3, 3)


def test_it_stops_inside_a_power_iteration_pass_with_a_usable_model() -> None:
    X = low_rank_data()
    recorder = Recorder(stop_at=6)  # 4 mini-batches per pass: stops in the middle of the 2nd pass
    model = PCA(num_components=5, algorithm_mode="randomized", mini_batch_size=500).fit(X, callback=recorder)
    assert model.stopped_early_ and model.n_samples_seen_ == 2000
    regular = PCA(num_components=5).fit(X)
    np.testing.assert_allclose(model.explained_variance_, regular.explained_variance_, rtol=1e-5)
    with pytest.raises(ValueError, match="no running sums"):
        model.partial_fit(X[:10])


# -- input checks and edge cases -------------------------------------------------------------


def test_it_rejects_nan_and_infinity_with_the_column() -> None:
    X = spread_data().copy()
    X[1234, 7] = np.nan
    with pytest.raises(ValueError, match=r"X contains NaN in column 7 \(first at row 1234\)"):
        PCA(mini_batch_size=500).fit(X)
    X[1234, 7] = np.inf
    with pytest.raises(ValueError, match="X contains infinite values in column 7"):
        PCA(algorithm_mode="randomized").fit(X)
    with pytest.raises(ValueError, match="X contains NaN in column 7"):
        PCA().fit(blocks(np.where(np.isinf(X), np.nan, X), 1000))
    clean = spread_data()
    bad_val = clean[:10].copy()
    bad_val[2, 0] = np.nan
    with pytest.raises(ValueError, match="X_val contains NaN in column 0"):
        PCA().fit(clean, X_val=bad_val)
    model = PCA().fit(clean)
    with pytest.raises(ValueError, match="X contains NaN in column 0"):
        model.transform(bad_val)


def test_it_rejects_bad_shapes_and_types_and_caps_num_components() -> None:
    X = spread_data()
    capped = PCA(num_components=25).fit(X)
    assert capped.n_components_ == 20 and capped.components_.shape == (20, 20)
    assert PCA(num_components=25, algorithm_mode="randomized").fit(X).n_components_ == 20
    with pytest.raises(ValueError, match="at least 2 rows"):
        PCA(num_components=2).fit(X[:1])
    with pytest.raises(ValueError, match="no rows"):
        PCA().fit(np.empty((0, 3)))
    with pytest.raises(ValueError, match="2-D"):
        PCA().fit(X[:, 0])
    with pytest.raises(ValueError, match="only numbers"):
        PCA(num_components=1).fit([["a", "b"], ["c", "d"]])
    with pytest.raises(ValueError, match="X_val has 3 features"):
        PCA().fit(X, X_val=X[:5, :3])
    with pytest.raises(ValueError, match="randomized"):
        PCA(num_components=1).fit(np.zeros((3, MAX_REGULAR_FEATURES + 1)))
    model = PCA(num_components=2).fit(X)
    with pytest.raises(ValueError, match="model expects 20"):
        model.transform(X[:, :5])


def test_it_handles_constant_columns_and_constant_data() -> None:
    X = spread_data(n_features=6).copy()
    X[:, 2] = 4.0
    model = PCA(num_components=6).fit(X)
    assert model.explained_variance_[-1] == pytest.approx(0.0, abs=1e-9)
    assert np.all(np.isfinite(model.components_))
    flat = PCA(num_components=2).fit(np.full((10, 3), 7.0))
    np.testing.assert_array_equal(flat.explained_variance_, [0.0, 0.0])
    np.testing.assert_array_equal(flat.explained_variance_ratio_, [0.0, 0.0])
    assert flat.evaluate(np.full((4, 3), 7.0))["validation:reconstruction_error"] == 0.0
    integers = PCA(num_components=1).fit(np.arange(12).reshape(6, 2))
    assert integers.explained_variance_ratio_[0] == pytest.approx(1.0)


def test_it_validates_hyperparameters_in_fit() -> None:
    X = spread_data()
    with pytest.raises(HyperparameterError, match="num_components must be between 1 and 10000"):
        PCA(num_components=0).fit(X)
    with pytest.raises(HyperparameterError, match="algorithm_mode must be one of 'regular', 'randomized'"):
        PCA(algorithm_mode="fast").fit(X)
    with pytest.raises(HyperparameterError, match="mini_batch_size must be an integer"):
        PCA(mini_batch_size="big").fit(X)
    assert PCA(num_components="3", subtract_mean="false").fit(X).n_components_ == 3


# -- persistence and catalogue ---------------------------------------------------------------


def test_it_round_trips_through_save_and_load(tmp_path: Path) -> None:
    X = spread_data()
    model = PCA(num_components=4, algorithm_mode="randomized").fit(X)
    model.save(tmp_path / "pca")
    loaded = load_model(tmp_path / "pca")
    assert isinstance(loaded, PCA) and loaded.get_params() == model.get_params()
    np.testing.assert_array_equal(loaded.transform(X), model.transform(X))
    np.testing.assert_array_equal(loaded.inverse_transform(X[:5, :4]), model.inverse_transform(X[:5, :4]))
    assert loaded.evaluate(X) == model.evaluate(X)
    assert loaded.n_samples_seen_ == 3000 and loaded.noise_variance_ == model.noise_variance_
    with pytest.raises(ValueError, match="no running sums"):
        loaded.partial_fit(X)


def test_it_is_registered_with_its_declaration() -> None:
    assert get_algorithm("pca") is PCA
    description = PCA.describe()
    assert description["title"] == "PCA" and description["target"] == "none"
    names = [hp["name"] for hp in description["hyperparameters"]]
    assert names == [
        "num_components",
        "algorithm_mode",
        "subtract_mean",
        "extra_components",
        "power_iterations",
        "mini_batch_size",
        "random_state",
    ]
    assert PCA.default_objective == "validation:reconstruction_error"
    assert PCA.metric_direction("train:explained_variance_ratio") == "maximize"
