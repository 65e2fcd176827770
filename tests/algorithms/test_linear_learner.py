"""LinearLearner against scikit-learn references, plus its training protocol and input checks."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_iris, load_wine, make_regression
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from algorithms import HyperparameterError, LinearLearner, load_model

Split = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@cache
def regression_split() -> Split:
    X, y = make_regression(n_samples=1500, n_features=15, n_informative=8, noise=15.0, bias=40.0, random_state=0)
    return tuple(train_test_split(X, y, test_size=0.3, random_state=0))  # type: ignore[return-value]


@cache
def dataset_split(name: str) -> Split:
    loader = {"breast_cancer": load_breast_cancer, "iris": load_iris, "wine": load_wine}[name]
    X, y = loader(return_X_y=True)
    return tuple(train_test_split(X, y, test_size=0.3, random_state=0, stratify=y))  # type: ignore[return-value]


def logistic_reference(X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray, y_test: np.ndarray) -> float:
    reference = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return float(reference.fit(X_train, y_train).score(X_test, y_test))


class Recorder:
    """A callback that records every call and can ask to stop at a given step."""

    def __init__(self, stop_at: int | None = None) -> None:
        self.calls: list[tuple[int, dict[str, float]]] = []
        self.stop_at = stop_at

    def __call__(self, step: int, metrics: dict[str, float]) -> bool | None:
        self.calls.append((step, dict(metrics)))
        return False if step == self.stop_at else None


# -- accuracy against scikit-learn ------------------------------------------------------------


def test_it_matches_linear_regression_r2_on_make_regression() -> None:
    X_train, X_test, y_train, y_test = regression_split()
    model = LinearLearner().fit(X_train, y_train, X_val=X_test, y_val=y_test)
    assert model.predictor_type_ == "regressor"
    for reference in (LinearRegression(), Ridge(alpha=1.0)):
        expected = reference.fit(X_train, y_train).score(X_test, y_test)
        assert model.score(X_test, y_test) == pytest.approx(expected, abs=0.01)
    ols = LinearRegression().fit(X_train, y_train)
    np.testing.assert_allclose(model.coef_, ols.coef_, atol=0.02 * np.abs(ols.coef_).max())
    assert model.intercept_ == pytest.approx(ols.intercept_, abs=1.0)
    assert isinstance(model.intercept_, float) and model.coef_.shape == (15,)


def test_it_matches_logistic_regression_on_breast_cancer() -> None:
    X_train, X_test, y_train, y_test = dataset_split("breast_cancer")
    model = LinearLearner().fit(X_train, y_train, X_val=X_test, y_val=y_test)
    assert model.predictor_type_ == "binary_classifier"
    expected = logistic_reference(X_train, y_train, X_test, y_test)
    assert model.score(X_test, y_test) == pytest.approx(expected, abs=0.03)
    assert model.coef_.shape == (1, 30) and model.intercept_.shape == (1,)
    np.testing.assert_array_equal(model.classes_, [0, 1])


@pytest.mark.parametrize("name", ["iris", "wine"])
def test_it_matches_multinomial_logistic_regression(name: str) -> None:
    X_train, X_test, y_train, y_test = dataset_split(name)
    model = LinearLearner().fit(X_train, y_train, X_val=X_test, y_val=y_test)
    assert model.predictor_type_ == "multiclass_classifier"
    expected = logistic_reference(X_train, y_train, X_test, y_test)
    assert model.score(X_test, y_test) == pytest.approx(expected, abs=0.05)
    assert model.coef_.shape == (3, X_train.shape[1])


def test_it_trains_with_plain_sgd_and_regularization() -> None:
    X_train, X_test, y_train, y_test = dataset_split("breast_cancer")
    model = LinearLearner(optimizer="sgd", learning_rate=0.05, wd=0.001, l1=0.0005, epochs=20)
    model.fit(X_train, y_train, X_val=X_test, y_val=y_test)
    assert model.score(X_test, y_test) > 0.93
    strong = LinearLearner(wd=0.5, epochs=5).fit(X_train, y_train)
    assert np.abs(strong.coef_).sum() < np.abs(model.coef_).sum()


def test_it_fits_through_the_origin_without_a_bias() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(loc=3.0, size=(400, 3))
    y = X @ np.array([1.0, -2.0, 0.5])
    model = LinearLearner(use_bias=False, epochs=30).fit(X, y)
    assert model.intercept_ == 0.0
    np.testing.assert_allclose(model.coef_, [1.0, -2.0, 0.5], atol=0.02)


# -- predictions --------------------------------------------------------------------------------


def test_it_learns_string_labels_and_predicts_them_back() -> None:
    X_train, X_test, y_train, y_test = dataset_split("iris")
    names = np.array(["setosa", "versicolor", "virginica"])
    model = LinearLearner().fit(X_train, names[y_train].tolist(), X_val=X_test, y_val=names[y_test])
    np.testing.assert_array_equal(model.classes_, names)
    predicted = model.predict(X_test)
    assert predicted.dtype.kind == "U"
    assert set(predicted) <= set(names)
    assert model.score(X_test, names[y_test]) > 0.9


def test_it_predicts_probabilities_whose_rows_sum_to_one() -> None:
    for name in ("breast_cancer", "wine"):
        X_train, X_test, y_train, _ = dataset_split(name)
        model = LinearLearner(epochs=5).fit(X_train, y_train)
        proba = model.predict_proba(X_test)
        assert proba.shape == (X_test.shape[0], model.classes_.size)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0)
        assert proba.min() >= 0.0
        np.testing.assert_array_equal(model.classes_[proba.argmax(axis=1)], model.predict(X_test))


def test_it_gives_decision_values_consistent_with_predictions() -> None:
    X_train, X_test, y_train, _ = dataset_split("breast_cancer")
    model = LinearLearner(epochs=5).fit(X_train, y_train)
    scores = model.decision_function(X_test)
    assert scores.shape == (X_test.shape[0],)
    np.testing.assert_array_equal(model.predict(X_test), (scores > 0).astype(int))
    np.testing.assert_allclose(model.predict_proba(X_test)[:, 1], 1 / (1 + np.exp(-scores)))


def test_it_has_no_probabilities_for_a_regressor() -> None:
    X_train, _, y_train, _ = regression_split()
    model = LinearLearner(epochs=1).fit(X_train, y_train)
    with pytest.raises(AttributeError, match="only available for classifiers"):
        model.predict_proba(X_train)


def test_it_imputes_missing_values_with_training_means() -> None:
    X_train, X_test, y_train, y_test = dataset_split("breast_cancer")
    rng = np.random.default_rng(0)
    holes = X_train.copy()
    holes[rng.random(holes.shape) < 0.1] = np.nan
    holes[:, 3] = np.nan  # a column with nothing to learn from
    model = LinearLearner().fit(holes, y_train)
    np.testing.assert_allclose(model.impute_values_[:3], np.nanmean(holes[:, :3], axis=0))
    assert model.impute_values_[3] == 0.0
    assert np.isfinite(model.coef_).all()
    assert model.score(X_test, y_test) > 0.9

    missing_row = np.full((1, X_test.shape[1]), np.nan)
    imputed_row = model.impute_values_[None, :]
    np.testing.assert_array_equal(model.decision_function(missing_row), model.decision_function(imputed_row))
    assert not np.isnan(X_train).any(), "fit must not modify the caller's array"


def test_it_evaluates_final_metrics_per_channel() -> None:
    X_train, X_test, y_train, y_test = dataset_split("breast_cancer")
    model = LinearLearner(epochs=5).fit(X_train, y_train)
    final = model.evaluate(X_test, y_test)
    assert set(final) == {"validation:loss", "validation:accuracy", "validation:auc", "validation:f1"}
    assert final["validation:accuracy"] == pytest.approx(model.score(X_test, y_test))
    assert set(model.evaluate(X_train, y_train, channel="train")) == {
        "train:loss",
        "train:accuracy",
        "train:auc",
        "train:f1",
    }
    declared = {metric.name for metric in LinearLearner.metrics}
    X_train, X_test, y_train, y_test = regression_split()
    regressor = LinearLearner(epochs=3).fit(X_train, y_train)
    final = regressor.evaluate(X_test, y_test)
    assert set(final) == {"validation:loss", "validation:rmse", "validation:mae", "validation:r2"} <= declared
    assert final["validation:r2"] == pytest.approx(regressor.score(X_test, y_test))
    assert final["validation:rmse"] == pytest.approx(np.sqrt(final["validation:loss"]))
    with pytest.raises(ValueError, match="channel"):
        regressor.evaluate(X_test, y_test, channel="test")


# -- the training protocol ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dataset", "train_keys", "validation_keys"),
    [
        ("regression", {"loss", "rmse"}, {"loss", "rmse", "mae", "r2"}),
        ("breast_cancer", {"loss", "accuracy"}, {"loss", "accuracy", "auc", "f1"}),
        ("wine", {"loss", "accuracy"}, {"loss", "accuracy", "f1"}),
    ],
)
def test_it_reports_metrics_after_every_epoch(dataset: str, train_keys: set[str], validation_keys: set[str]) -> None:
    split = regression_split() if dataset == "regression" else dataset_split(dataset)
    X_train, X_test, y_train, y_test = split
    declared = {metric.name for metric in LinearLearner.metrics}

    recorder = Recorder()
    model = LinearLearner(epochs=4, early_stopping_patience=10).fit(X_train, y_train, callback=recorder)
    assert [step for step, _ in recorder.calls] == [1, 2, 3, 4]
    assert all(set(metrics) == {f"train:{key}" for key in train_keys} for _, metrics in recorder.calls)
    assert model.n_epochs_ == 4 and not model.stopped_early_

    recorder = Recorder()
    LinearLearner(epochs=2).fit(X_train, y_train, X_val=X_test, y_val=y_test, callback=recorder)
    expected = {f"train:{key}" for key in train_keys} | {f"validation:{key}" for key in validation_keys}
    for _, metrics in recorder.calls:
        assert set(metrics) == expected <= declared
        assert all(type(value) is float and np.isfinite(value) for value in metrics.values())


def test_it_reports_the_same_validation_metrics_as_evaluate() -> None:
    X_train, X_test, y_train, y_test = dataset_split("breast_cancer")
    recorder = Recorder()
    model = LinearLearner(epochs=3, early_stopping_patience=10)
    model.fit(X_train, y_train, X_val=X_test, y_val=y_test, callback=recorder)
    # The model keeps the weights of its best epoch, so that is the epoch evaluate() must agree with.
    best = recorder.calls[model.best_epoch_ - 1][1]
    for key, value in model.evaluate(X_test, y_test).items():
        assert best[key] == pytest.approx(value, rel=1e-9, abs=1e-12)


def test_it_stops_after_the_epoch_where_the_callback_returns_false() -> None:
    X_train, X_test, y_train, y_test = dataset_split("wine")
    recorder = Recorder(stop_at=2)
    model = LinearLearner(epochs=50).fit(X_train, y_train, X_val=X_test, y_val=y_test, callback=recorder)
    assert [step for step, _ in recorder.calls] == [1, 2]
    assert model.stopped_early_ and model.stop_reason_ == "callback"
    assert model.n_epochs_ == 2
    assert model.score(X_test, y_test) > 0.5, "a stopped model stays usable"


def test_it_stops_early_when_the_validation_loss_stops_improving() -> None:
    X_train, X_test, y_train, y_test = regression_split()
    recorder = Recorder()
    model = LinearLearner(epochs=200, early_stopping_patience=2, early_stopping_tolerance=0.01)
    model.fit(X_train, y_train, X_val=X_test, y_val=y_test, callback=recorder)
    assert model.stop_reason_ == "early_stopping" and model.stopped_early_
    assert model.n_epochs_ < 200 and len(recorder.calls) == model.n_epochs_
    losses = [metrics["validation:loss"] for _, metrics in recorder.calls]
    assert model.best_loss_ == pytest.approx(min(losses))
    assert model.best_epoch_ == int(np.argmin(losses)) + 1
    assert model.monitor_ == "validation:loss"
    assert model.evaluate(X_test, y_test)["validation:loss"] == pytest.approx(model.best_loss_, rel=1e-6)


def test_it_monitors_the_training_loss_without_validation_data() -> None:
    X_train, _, y_train, _ = regression_split()
    model = LinearLearner(epochs=200, early_stopping_patience=1, early_stopping_tolerance=0.05).fit(X_train, y_train)
    assert model.monitor_ == "train:loss"
    assert model.stop_reason_ == "early_stopping" and model.n_epochs_ < 200


def test_it_is_deterministic_for_a_random_state() -> None:
    X_train, _, y_train, _ = dataset_split("wine")
    first = LinearLearner(epochs=3, random_state=7).fit(X_train, y_train)
    second = LinearLearner(epochs=3, random_state=7).fit(X_train, y_train)
    other = LinearLearner(epochs=3, random_state=8).fit(X_train, y_train)
    np.testing.assert_array_equal(first.coef_, second.coef_)
    assert not np.array_equal(first.coef_, other.coef_)


def test_it_fails_clearly_when_training_diverges_at_once() -> None:
    X_train, _, y_train, _ = regression_split()
    scaled = X_train * 1e150  # forces overflow with raw features and plain SGD
    with pytest.raises(ValueError, match="diverged in the first epoch"):
        LinearLearner(optimizer="sgd", learning_rate=1.0, normalize_data=False).fit(scaled, y_train)


def test_it_fits_a_large_problem_in_two_epochs() -> None:
    # Speed is measured by tests/benchmarks, never asserted here.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100_000, 50))
    y = X @ rng.normal(size=50) + rng.normal(size=100_000)
    model = LinearLearner(epochs=2, early_stopping_patience=10).fit(X, y)
    assert model.n_epochs_ == 2
    assert model.score(X, y) > 0.97


# -- predictor type inference -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("y", "expected"),
    [
        (np.linspace(0.0, 1.0, 60), "regressor"),
        (np.arange(60) % 30, "regressor"),
        (np.arange(60) % 2, "binary_classifier"),
        ((np.arange(60) % 2).astype(float), "binary_classifier"),
        (np.arange(60) % 2 == 0, "binary_classifier"),
        (np.arange(60) % 5, "multiclass_classifier"),
        (np.array(["cat", "dog", "cow"] * 20), "multiclass_classifier"),
        (np.array(["yes", "no"] * 30, dtype=object), "binary_classifier"),
    ],
)
def test_it_infers_the_predictor_type_from_the_target(y: np.ndarray, expected: str) -> None:
    X = np.random.default_rng(0).normal(size=(60, 2))
    model = LinearLearner(epochs=1).fit(X, y)
    assert model.predictor_type_ == expected


def test_it_honours_an_explicit_predictor_type() -> None:
    X = np.random.default_rng(0).normal(size=(60, 2))
    y = np.arange(60) % 2
    assert LinearLearner(predictor_type="regressor", epochs=1).fit(X, y).predictor_type_ == "regressor"
    model = LinearLearner(predictor_type="multiclass_classifier", epochs=1).fit(X, y)
    assert model.predict_proba(X).shape == (60, 2)


# -- bad inputs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("X", "y", "kwargs", "message"),
    [
        ([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], {}, "X must be 2-D .* use X.reshape"),
        ([[1.0], ["a"]], [0, 1], {}, "X must contain only numbers"),
        ([[1.0], [np.inf]], [0, 1], {}, "X contains infinite values"),
        (np.empty((0, 2)), [], {}, "X has no rows"),
        ([[1.0], [2.0]], [0, 1, 0], {}, "y has 3 values but X has 2 rows"),
        ([[1.0], [2.0]], None, {}, "y is required"),
        ([[1.0], [2.0]], [0.5, np.nan], {}, "y contains NaN"),
        ([[1.0], [2.0]], ["a", "a"], {}, "at least 2 classes"),
        ([[1.0], [2.0], [3.0]], ["a", "b", "c"], {"predictor_type": "binary_classifier"}, "exactly 2 classes"),
        ([[1.0], [2.0]], ["a", "b"], {"predictor_type": "regressor"}, "needs a numeric y"),
        ([[1.0], [2.0]], ["a", None], {}, "mixes strings"),
        ([[1.0], [2.0]], [[0, 1], [1, 0]], {}, "y must be 1-D"),
    ],
)
def test_it_rejects_bad_training_data_with_a_clear_message(
    X: Any, y: Any, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        LinearLearner(epochs=1, **kwargs).fit(X, y)


@pytest.mark.parametrize(
    ("X_val", "y_val", "message"),
    [
        ([[1.0, 2.0]], [0], "X_val has 2 features, but the model expects 1"),
        ([[1.0]], None, "X_val and y_val must be given together"),
        (None, [0], "X_val and y_val must be given together"),
        ([[1.0], [2.0]], [0], "y_val has 1 values but X_val has 2 rows"),
        ([[1.0], [2.0]], ["a", "z"], "y_val contains labels not seen in training: \\['z'\\]"),
    ],
)
def test_it_rejects_bad_validation_data(X_val: Any, y_val: Any, message: str) -> None:
    X, y = [[0.0], [1.0], [2.0], [3.0]], ["a", "b", "a", "b"]
    with pytest.raises(ValueError, match=message):
        LinearLearner(epochs=1).fit(X, y, X_val=X_val, y_val=y_val)


def test_it_rejects_invalid_hyperparameters_before_touching_the_data() -> None:
    with pytest.raises(HyperparameterError) as info:
        LinearLearner(epochs=0, optimizer="rmsprop").fit([[1.0]], [1.0])
    assert set(info.value.errors) == {"epochs", "optimizer"}


def test_it_checks_the_feature_count_at_prediction_time() -> None:
    model = LinearLearner(epochs=1).fit([[0.0, 1.0], [1.0, 0.0]], [0.0, 1.0])
    with pytest.raises(ValueError, match="X has 3 features, but the model expects 2"):
        model.predict([[1.0, 2.0, 3.0]])


# -- persistence --------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", ["regression", "breast_cancer", "iris-strings"])
def test_it_round_trips_through_save_and_load(tmp_path: Path, dataset: str) -> None:
    if dataset == "regression":
        X_train, X_test, y_train, _ = regression_split()
    else:
        X_train, X_test, y_train, _ = dataset_split(dataset.split("-")[0])
    if dataset.endswith("strings"):
        y_train = np.array(["setosa", "versicolor", "virginica"])[y_train]
    X_test = X_test.copy()
    X_test[0, 0] = np.nan
    model = LinearLearner(epochs=3, wd=0.01).fit(X_train, y_train)
    model.save(tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    assert isinstance(loaded, LinearLearner)
    assert loaded.get_params() == model.get_params()
    np.testing.assert_array_equal(loaded.predict(X_test), model.predict(X_test))
    np.testing.assert_array_equal(loaded.decision_function(X_test), model.decision_function(X_test))
    if model.classes_ is not None:
        np.testing.assert_array_equal(loaded.classes_, model.classes_)
        np.testing.assert_array_equal(loaded.predict_proba(X_test), model.predict_proba(X_test))
    else:
        assert loaded.classes_ is None
    for attr in ("n_epochs_", "best_epoch_", "stopped_early_", "stop_reason_", "predictor_type_", "n_features_in_"):
        assert getattr(loaded, attr) == getattr(model, attr)


def test_it_rejects_a_saved_model_whose_arrays_do_not_fit_together(tmp_path: Path) -> None:
    X_train, _, y_train, _ = dataset_split("wine")
    LinearLearner(epochs=1).fit(X_train, y_train).save(tmp_path)
    with np.load(tmp_path / "arrays.npz", allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    arrays["coef_"] = arrays["coef_"][:, :5]
    np.savez(tmp_path / "arrays.npz", **arrays)
    with pytest.raises(ValueError, match=r"coef_ of shape \(3, 5\), expected \(3, 13\)"):
        LinearLearner.load(tmp_path)
