"""LinearLearner against scikit-learn references, its training protocol and input checks (saving: _resume)."""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import pytest
from sklearn import metrics as sk_metrics
from sklearn.datasets import load_breast_cancer, load_iris, load_wine, make_classification, make_regression
from sklearn.linear_model import LinearRegression, LogisticRegression, QuantileRegressor, Ridge
from sklearn.metrics import mean_absolute_error
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from sklearn.utils.class_weight import compute_class_weight

from algorithms import HyperparameterError, LinearLearner
from algorithms._linear import ModelSpec, model_grid, platt_scale, tune_threshold
from tests.algorithms.recorder import Recorder

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
    # One model each: with parallel models, selection on training data would prefer weaker penalties.
    model = LinearLearner(optimizer="sgd", learning_rate=0.05, wd=0.001, l1=0.0005, epochs=20, num_models=1)
    model.fit(X_train, y_train)
    strong = LinearLearner(wd=0.5, epochs=5, num_models=1).fit(X_train, y_train)
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
        if name == "wine":
            np.testing.assert_array_equal(model.classes_[proba.argmax(axis=1)], model.predict(X_test))
        else:  # the tuned threshold, not probability 0.5, separates the predicted classes
            cut = 1.0 / (1.0 + np.exp(-model.threshold_))
            np.testing.assert_array_equal(model.classes_[(proba[:, 1] > cut).astype(int)], model.predict(X_test))


def test_it_gives_decision_values_consistent_with_predictions() -> None:
    X_train, X_test, y_train, _ = dataset_split("breast_cancer")
    model = LinearLearner(epochs=5).fit(X_train, y_train)
    scores = model.decision_function(X_test)
    assert scores.shape == (X_test.shape[0],)
    np.testing.assert_array_equal(model.predict(X_test), (scores > model.threshold_).astype(int))
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
    binary_keys = {"loss", "accuracy", "precision", "recall", "f1", "auc", "log_loss"}
    assert set(final) == {f"validation:{key}" for key in binary_keys}
    assert final["validation:accuracy"] == pytest.approx(model.score(X_test, y_test))
    assert set(model.evaluate(X_train, y_train, channel="train")) == {f"train:{key}" for key in binary_keys}
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
        ("regression", {"loss", "rmse", "mae", "r2"}, {"loss", "rmse", "mae", "r2"}),
        (
            "breast_cancer",
            {"loss", "accuracy", "precision", "recall", "f1", "log_loss"},
            {"loss", "accuracy", "precision", "recall", "f1", "log_loss", "auc"},
        ),
        (
            "wine",
            {"loss", "accuracy", "precision", "recall", "f1", "log_loss"},
            {"loss", "accuracy", "precision", "recall", "f1", "log_loss"},
        ),
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
    # A loss criterion keeps the threshold at 0 and the model with the lowest loss, which is the
    # model whose metrics the callback reports.
    model = LinearLearner(
        epochs=3, early_stopping_patience=10, binary_classifier_model_selection_criteria="loss_function"
    )
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


# -- losses -------------------------------------------------------------------------------------


def reference_single_model(X: np.ndarray, y: np.ndarray, *, epochs: int, batch: int, lr: float) -> np.ndarray:
    """Plain numpy logistic regression by mini-batch Adam with iterate averaging: the pre-parallel algorithm.

    Returns the averaged weights (standardized features, bias last) of the epoch with the lowest training loss.
    """
    n, d = X.shape
    mean, scale = X.mean(axis=0), X.std(axis=0)
    design = np.column_stack([(X - mean) / scale, np.ones(n)])
    theta, averaged, best = np.zeros((d + 1, 1)), np.zeros((d + 1, 1)), None
    m, v = np.zeros_like(theta), np.zeros_like(theta)
    rng = np.random.default_rng(0)
    step, steps_per_epoch, best_loss = 0, -(-n // batch), np.inf
    for _ in range(epochs):
        order = rng.permutation(n)
        shuffled_x, shuffled_t = design[order], y[order][:, None].astype(float)
        for start in range(0, n, batch):
            xb, tb = shuffled_x[start : start + batch], shuffled_t[start : start + batch]
            grad = xb.T @ (1.0 / (1.0 + np.exp(-(xb @ theta))) - tb) / xb.shape[0]
            step += 1
            m = 0.9 * m + 0.1 * grad
            v = 0.999 * v + 0.001 * grad**2
            theta = theta - lr * np.sqrt(1 - 0.999**step) / (1 - 0.9**step) * m / (np.sqrt(v) + 1e-8)
            averaged = averaged + (theta - averaged) / min(step, steps_per_epoch)
        z = design @ averaged[:, 0]
        loss = np.mean(np.logaddexp(0.0, z) - y * z)
        if loss < best_loss:
            best_loss, best = loss, averaged.copy()
    assert best is not None
    coef = best[:d, 0] / scale
    return np.append(coef, best[d, 0] - mean @ coef)


def test_it_reproduces_the_single_model_algorithm_with_one_model() -> None:
    X_train, _, y_train, _ = dataset_split("breast_cancer")
    expected = reference_single_model(X_train, y_train, epochs=4, batch=32, lr=0.1)
    model = LinearLearner(num_models=1, epochs=4, early_stopping_patience=10).fit(X_train, y_train)
    np.testing.assert_allclose(np.append(model.coef_[0], model.intercept_), expected, rtol=1e-8, atol=1e-10)
    assert model.best_model_ == 0 and model.threshold_ is not None
    assert model.model_params_ == [{"learning_rate": 0.1, "wd": 0.0, "l1": 0.0}]


def test_it_fits_the_conditional_median_with_the_absolute_loss() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    y = X @ np.array([2.0, -1.0, 0.5]) + 3.0 + rng.standard_t(1.5, size=400)
    y[:40] += 50.0  # one-sided outliers drag least squares, not the median
    median = QuantileRegressor(quantile=0.5, alpha=0.0, solver="highs").fit(X, y)
    model = LinearLearner(loss="absolute_loss", epochs=30).fit(X, y)
    assert model.predictor_type_ == "regressor" and model.loss_ == "absolute_loss"
    np.testing.assert_allclose(model.coef_, median.coef_, atol=0.1)
    assert model.intercept_ == pytest.approx(median.intercept_, abs=0.15)
    ols = LinearRegression().fit(X, y)
    assert abs(ols.intercept_ - median.intercept_) > 3.0, "the outliers must matter for the test to mean anything"
    final = model.evaluate(X, y, channel="train")
    assert final["train:loss"] == pytest.approx(final["train:mae"])
    assert final["train:mae"] <= mean_absolute_error(y, ols.predict(X))


def test_it_trains_a_linear_svm_with_the_hinge_loss() -> None:
    X_train, X_test, y_train, y_test = dataset_split("breast_cancer")
    model = LinearLearner(loss="hinge_loss").fit(X_train, y_train)
    assert model.predictor_type_ == "binary_classifier" and model.loss_ == "hinge_loss"
    svm = make_pipeline(StandardScaler(), LinearSVC()).fit(X_train, y_train)
    assert model.score(X_test, y_test) == pytest.approx(svm.score(X_test, y_test), abs=0.03)
    # Probabilities come from a logistic calibration of the margin, fitted after training.
    a, b = model.proba_calibration_
    assert a > 0
    margins = model.decision_function(X_test)
    proba = model.predict_proba(X_test)[:, 1]
    np.testing.assert_allclose(proba, 1.0 / (1.0 + np.exp(-(a * margins + b))))
    assert np.all(np.diff(proba[np.argsort(margins)]) >= 0)
    final = model.evaluate(X_test, y_test)
    assert final["validation:log_loss"] == pytest.approx(sk_metrics.log_loss(y_test, proba))
    assert final["validation:log_loss"] < 0.2
    hinge = np.maximum(0.0, 1.0 - np.where(y_test == 1, 1.0, -1.0) * margins).mean()
    assert final["validation:loss"] == pytest.approx(hinge)


@pytest.mark.parametrize("separation", [0.5, 20.0])
def test_it_calibrates_margins_like_a_logistic_regression_on_platt_targets(separation: float) -> None:
    rng = np.random.default_rng(0)
    positive = rng.random(500) < 0.3
    margins = np.where(positive, separation, -separation) + rng.normal(size=500)
    a, b = platt_scale(margins, positive)
    # Platt's smoothed targets, as a weighted logistic regression on each row seen as both classes.
    n_pos, n_neg = positive.sum(), (~positive).sum()
    target = np.where(positive, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    reference = LogisticRegression(C=1e10, tol=1e-12, max_iter=10_000).fit(
        np.concatenate([margins, margins])[:, None],
        np.concatenate([np.ones(500), np.zeros(500)]),
        sample_weight=np.concatenate([target, 1 - target]),
    )
    assert a == pytest.approx(reference.coef_[0, 0], rel=1e-5)
    assert b == pytest.approx(reference.intercept_[0], rel=1e-5, abs=1e-7)


def test_it_reports_no_log_loss_for_a_hinge_model_before_calibration() -> None:
    X_train, X_test, y_train, y_test = dataset_split("breast_cancer")
    recorder = Recorder()
    LinearLearner(loss="hinge_loss", epochs=2).fit(X_train, y_train, X_val=X_test, y_val=y_test, callback=recorder)
    assert all("validation:log_loss" not in metrics and "validation:f1" in metrics for _, metrics in recorder.calls)


def test_it_rejects_a_loss_that_does_not_fit_the_predictor_type() -> None:
    with pytest.raises(HyperparameterError) as info:
        LinearLearner(predictor_type="regressor", loss="hinge_loss").fit([[1.0], [2.0]], [1.0, 2.0])
    assert info.value.errors == {
        "loss": [
            "loss 'hinge_loss' does not fit predictor_type 'regressor'; use one of auto, squared_loss, absolute_loss"
        ]
    }
    X = np.random.default_rng(0).normal(size=(60, 2))
    with pytest.raises(ValueError, match=r"loss='hinge_loss' implies predictor_type='binary_classifier': .*exactly 2"):
        LinearLearner(loss="hinge_loss", epochs=1).fit(X, np.arange(60) % 3)


def test_it_lets_an_explicit_loss_choose_the_task() -> None:
    X = np.random.default_rng(0).normal(size=(60, 2))
    y = np.arange(60) % 2  # "auto" alone would call this binary
    model = LinearLearner(loss="absolute_loss", epochs=1).fit(X, y)
    assert model.predictor_type_ == "regressor" and model.threshold_ is None
    assert LinearLearner(loss="softmax_loss", epochs=1).fit(X, y).predictor_type_ == "multiclass_classifier"
    assert LinearLearner(epochs=1).fit(X, y).loss_ == "logistic"


# -- class weights ------------------------------------------------------------------------------


@cache
def imbalanced_split() -> Split:
    X, y = make_classification(
        n_samples=3000, n_features=8, n_informative=4, weights=[0.9], flip_y=0.05, class_sep=0.7, random_state=0
    )
    return tuple(train_test_split(X, y, test_size=0.3, random_state=0, stratify=y))  # type: ignore[return-value]


def test_it_weighs_positive_examples() -> None:
    X_train, X_test, y_train, y_test = imbalanced_split()
    common = {"binary_classifier_model_selection_criteria": "loss_function", "num_models": 4, "epochs": 10}
    rates, recalls = [], []
    for mult in (1.0, 3.0, 10.0):
        model = LinearLearner(positive_example_weight_mult=mult, **common).fit(X_train, y_train)
        rates.append(model.predict(X_test).mean())
        recalls.append(model.evaluate(X_test, y_test)["validation:recall"])
        if mult == 1.0:
            assert model.class_weights_ is None
        else:
            weights = model.class_weights_
            assert weights[1] / weights[0] == pytest.approx(mult)
            assert weights[y_train].mean() == pytest.approx(1.0)
    assert rates[0] < rates[1] < rates[2] and recalls[0] < recalls[1] < recalls[2]

    # 0 means balanced, as scikit-learn's class_weight="balanced" (same optimum without a penalty).
    balanced = LinearLearner(positive_example_weight_mult=0.0, **common).fit(X_train, y_train)
    np.testing.assert_allclose(
        balanced.class_weights_, compute_class_weight("balanced", classes=np.array([0, 1]), y=y_train)
    )
    reference = LogisticRegression(class_weight="balanced", C=1e6, max_iter=5000).fit(X_train, y_train)
    agreement = np.mean(balanced.predict(X_test) == reference.predict(X_test))
    assert agreement > 0.97


def test_it_balances_multiclass_weights() -> None:
    X, y = make_classification(
        n_samples=2000, n_features=6, n_informative=4, n_classes=3, weights=[0.8, 0.15, 0.05], random_state=1
    )
    plain = LinearLearner(num_models=4).fit(X, y)
    balanced = LinearLearner(num_models=4, balance_multiclass_weights=True).fit(X, y)
    np.testing.assert_allclose(
        balanced.class_weights_, compute_class_weight("balanced", classes=np.array([0, 1, 2]), y=y)
    )
    assert plain.class_weights_ is None
    minority_recall = [sk_metrics.recall_score(y, m.predict(X), average=None)[2] for m in (plain, balanced)]
    assert minority_recall[1] > minority_recall[0] + 0.1
    macro_recall = balanced.evaluate(X, y, channel="train")["train:recall"]
    assert macro_recall == pytest.approx(sk_metrics.recall_score(y, balanced.predict(X), average="macro"))


# -- parallel models ----------------------------------------------------------------------------


def test_it_spreads_the_parallel_models_around_the_given_settings() -> None:
    grid = model_grid(32, 0.1, 0.0, 0.0)
    assert len(grid) == len(set(grid)) == 32
    assert grid[0] == ModelSpec(0.1, 0.0, 0.0)
    assert {spec.l1 for spec in grid} == {0.0}, "L1 only varies when the user asked for it"
    assert all(spec.learning_rate <= 1.0 for spec in grid)
    assert len({spec.learning_rate for spec in grid}) >= 6 and len({spec.wd for spec in grid}) >= 5
    grid = model_grid(64, 1.0, 1.0, 0.01)
    assert len(set(grid)) == 64 and grid[0] == ModelSpec(1.0, 1.0, 0.01)
    assert max(spec.wd for spec in grid) <= 1.0 and len({spec.l1 for spec in grid}) > 1


def test_it_keeps_a_variant_when_the_given_learning_rate_diverges() -> None:
    X_train, X_test, y_train, y_test = regression_split()
    X_train, X_test = 10.0 * X_train, 10.0 * X_test  # unscaled features: SGD at rate 1 explodes
    settings = {"optimizer": "sgd", "learning_rate": 1.0, "normalize_data": False, "epochs": 5}
    single = LinearLearner(num_models=1, **settings).fit(X_train, y_train, X_val=X_test, y_val=y_test)
    assert single.stop_reason_ == "diverged" and single.best_loss_ > 1e100
    model = LinearLearner(num_models=16, **settings).fit(X_train, y_train, X_val=X_test, y_val=y_test)
    assert model.best_model_ != 0 and model.model_params_[model.best_model_]["learning_rate"] < 1.0
    assert model.stop_reason_ is None, "training goes on while some models are still finite"
    assert model.score(X_test, y_test) > 0.95
    assert model.model_scores_[0] > 1e100
    assert model.best_loss_ == min(score for score in model.model_scores_ if score is not None)


def test_it_keeps_a_variant_when_the_given_learning_rate_is_too_small() -> None:
    X_train, X_test, y_train, y_test = regression_split()
    settings = {"learning_rate": 1e-3, "epochs": 3}
    slow = LinearLearner(num_models=1, **settings).fit(X_train, y_train, X_val=X_test, y_val=y_test)
    model = LinearLearner(num_models=16, **settings).fit(X_train, y_train, X_val=X_test, y_val=y_test)
    assert model.model_params_[model.best_model_]["learning_rate"] == pytest.approx(1e-2)
    assert model.best_loss_ < 0.1 * slow.best_loss_
    assert model.selection_metric_ == "validation:loss"
    assert model.best_loss_ == pytest.approx(model.evaluate(X_test, y_test)["validation:loss"], rel=1e-9)


def test_it_reports_the_metrics_of_the_leading_model_each_epoch() -> None:
    X_train, X_test, y_train, y_test = regression_split()
    recorder = Recorder()
    model = LinearLearner(learning_rate=1e-3, epochs=4, early_stopping_patience=10)
    model.fit(X_train, y_train, X_val=X_test, y_val=y_test, callback=recorder)
    losses = [metrics["validation:loss"] for _, metrics in recorder.calls]
    # Each epoch reports the model leading at that epoch; here they all still improve, so the curve falls.
    assert losses == sorted(losses, reverse=True)
    assert model.best_loss_ == pytest.approx(min(losses))
    assert model.model_params_[model.best_model_]["learning_rate"] > 1e-3


# -- binary decision threshold ------------------------------------------------------------------


def every_cut(scores: np.ndarray, positive: np.ndarray, weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Brute force: metrics of predicting positive where ``score >= cut``, for every distinct cut."""
    predicted = scores[None, :] >= np.unique(scores)[:, None]
    tp, fp = (predicted & positive).sum(axis=1), (predicted & ~positive).sum(axis=1)
    n_pos = positive.sum()
    w_neg, w_pos = (1.0, 1.0) if weights is None else weights
    correct = w_pos * tp + w_neg * ((~positive).sum() - fp)
    return {
        "accuracy": correct / (w_pos * n_pos + w_neg * (~positive).sum()),
        "precision": np.divide(tp, tp + fp, out=np.zeros(tp.size), where=tp + fp > 0),
        "recall": tp / n_pos,
        "f1": 2 * tp / (tp + fp + n_pos),
    }


@pytest.mark.parametrize("target", [0.8, 0.95])
def test_it_tunes_the_threshold_to_reach_a_target_recall(target: float) -> None:
    X_train, X_test, y_train, y_test = imbalanced_split()
    model = LinearLearner(
        num_models=8, binary_classifier_model_selection_criteria="precision_at_target_recall", target_recall=target
    ).fit(X_train, y_train, X_val=X_test, y_val=y_test)
    final = model.evaluate(X_test, y_test)
    assert final["validation:recall"] >= target
    assert final["validation:recall"] == pytest.approx(sk_metrics.recall_score(y_test, model.predict(X_test)))
    assert model.selection_metric_ == "validation:precision_at_target_recall"
    assert model.model_scores_[model.best_model_] == pytest.approx(final["validation:precision"])
    # Among thresholds meeting the target, none is more precise.
    cuts = every_cut(model.decision_function(X_test), y_test == 1)
    assert final["validation:precision"] == pytest.approx(cuts["precision"][cuts["recall"] >= target].max())


def test_it_tunes_the_threshold_to_reach_a_target_precision() -> None:
    X_train, X_test, y_train, y_test = imbalanced_split()
    model = LinearLearner(
        num_models=8, binary_classifier_model_selection_criteria="recall_at_target_precision", target_precision=0.9
    ).fit(X_train, y_train, X_val=X_test, y_val=y_test)
    final = model.evaluate(X_test, y_test)
    assert final["validation:precision"] >= 0.9
    cuts = every_cut(model.decision_function(X_test), y_test == 1)
    assert final["validation:recall"] == pytest.approx(cuts["recall"][cuts["precision"] >= 0.9].max())


@pytest.mark.parametrize("criterion", ["accuracy", "f1"])
def test_it_picks_the_threshold_that_maximizes_the_criterion(criterion: str) -> None:
    X_train, _, y_train, _ = imbalanced_split()
    model = LinearLearner(num_models=8, binary_classifier_model_selection_criteria=criterion)
    model.fit(X_train, y_train)  # no validation data: tuned on the training data
    score = {"accuracy": sk_metrics.accuracy_score, "f1": sk_metrics.f1_score}[criterion]
    best = every_cut(model.decision_function(X_train), y_train == 1)[criterion].max()
    assert score(y_train, model.predict(X_train)) == pytest.approx(best)
    assert model.selection_metric_ == f"train:{criterion}"
    assert model.threshold_ != 0.0


def test_it_keeps_the_threshold_at_zero_for_loss_criteria() -> None:
    X_train, X_test, y_train, y_test = imbalanced_split()
    for criterion in ("cross_entropy_loss", "loss_function"):
        model = LinearLearner(num_models=4, binary_classifier_model_selection_criteria=criterion)
        model.fit(X_train, y_train, X_val=X_test, y_val=y_test)
        assert model.threshold_ == 0.0 and model.selection_metric_ == "validation:loss"
        np.testing.assert_array_equal(model.predict(X_test), (model.decision_function(X_test) > 0).astype(int))


@pytest.mark.parametrize("criterion", ["accuracy", "f1", "precision_at_target_recall", "recall_at_target_precision"])
def test_it_tunes_thresholds_like_a_brute_force_search(criterion: str) -> None:
    rng = np.random.default_rng(0)
    positive = rng.random(300) < 0.3
    scores = np.round(positive + rng.normal(size=300), 1)  # ties between samples
    value, threshold = tune_threshold(
        scores, positive, criterion, target_recall=0.7, target_precision=0.7, class_weights=(1.0, 2.0)
    )
    predicted = scores > threshold
    achieved = {
        "accuracy": sk_metrics.accuracy_score(positive, predicted, sample_weight=np.where(positive, 2.0, 1.0)),
        "f1": sk_metrics.f1_score(positive, predicted),
        "precision_at_target_recall": sk_metrics.precision_score(positive, predicted),
        "recall_at_target_precision": sk_metrics.recall_score(positive, predicted),
    }[criterion]
    assert value == pytest.approx(achieved)
    cuts = every_cut(scores, positive, weights=(1.0, 2.0))
    if criterion == "precision_at_target_recall":
        assert sk_metrics.recall_score(positive, predicted) >= 0.7
        best = cuts["precision"][cuts["recall"] >= 0.7].max()
    elif criterion == "recall_at_target_precision":
        assert sk_metrics.precision_score(positive, predicted) >= 0.7
        best = cuts["recall"][cuts["precision"] >= 0.7].max()
    else:
        best = cuts[criterion].max()
    assert value == pytest.approx(best)


def test_it_reports_an_unreachable_target_precision() -> None:
    scores = np.array([3.0, 2.0, 1.0, 0.0])
    positive = np.array([False, True, False, True])  # precision never exceeds 1/2
    value, threshold = tune_threshold(
        scores, positive, "recall_at_target_precision", target_recall=0.0, target_precision=0.9
    )
    assert value == -1.0
    assert sk_metrics.precision_score(positive, scores > threshold) == 0.5, "the fallback is the most precise cut"


# -- metrics against scikit-learn ---------------------------------------------------------------


def test_it_evaluates_classification_metrics_like_sklearn() -> None:
    X_train, X_test, y_train, y_test = imbalanced_split()
    model = LinearLearner(num_models=4).fit(X_train, y_train)
    final = model.evaluate(X_test, y_test)
    predicted, proba = model.predict(X_test), model.predict_proba(X_test)
    assert final["validation:accuracy"] == pytest.approx(sk_metrics.accuracy_score(y_test, predicted))
    assert final["validation:precision"] == pytest.approx(sk_metrics.precision_score(y_test, predicted))
    assert final["validation:recall"] == pytest.approx(sk_metrics.recall_score(y_test, predicted))
    assert final["validation:f1"] == pytest.approx(sk_metrics.f1_score(y_test, predicted))
    assert final["validation:auc"] == pytest.approx(sk_metrics.roc_auc_score(y_test, proba[:, 1]))
    assert final["validation:log_loss"] == pytest.approx(sk_metrics.log_loss(y_test, proba))
    assert final["validation:loss"] == pytest.approx(final["validation:log_loss"])

    X_train, X_test, y_train, y_test = dataset_split("wine")
    model = LinearLearner(num_models=4).fit(X_train, y_train)
    final = model.evaluate(X_test, y_test)
    predicted = model.predict(X_test)
    for name in ("precision", "recall", "f1"):
        expected = getattr(sk_metrics, f"{name}_score")(y_test, predicted, average="macro", zero_division=0)
        assert final[f"validation:{name}"] == pytest.approx(expected)
    assert final["validation:log_loss"] == pytest.approx(sk_metrics.log_loss(y_test, model.predict_proba(X_test)))

    X_train, X_test, y_train, y_test = regression_split()
    model = LinearLearner(num_models=4).fit(X_train, y_train)
    final, predicted = model.evaluate(X_test, y_test), model.predict(X_test)
    assert final["validation:rmse"] == pytest.approx(np.sqrt(sk_metrics.mean_squared_error(y_test, predicted)))
    assert final["validation:mae"] == pytest.approx(sk_metrics.mean_absolute_error(y_test, predicted))
    assert final["validation:r2"] == pytest.approx(sk_metrics.r2_score(y_test, predicted))


# -- inputs -------------------------------------------------------------------------------------


def test_it_accepts_float32_features_and_constant_columns() -> None:
    X_train, X_test, y_train, _ = dataset_split("breast_cancer")
    X_train = X_train.copy()
    X_train[:, 5] = 7.0
    wide = LinearLearner(num_models=4).fit(X_train, y_train)
    narrow = LinearLearner(num_models=4).fit(X_train.astype(np.float32), y_train)
    assert narrow.coef_.dtype == np.float64 and np.isfinite(narrow.coef_).all()
    np.testing.assert_allclose(narrow.coef_, wide.coef_, rtol=1e-3, atol=1e-3 * np.abs(wide.coef_).max())
    assert np.mean(narrow.predict(X_test.astype(np.float32)) == wide.predict(X_test)) > 0.98


def test_it_refuses_parallel_models_that_would_not_fit_in_memory() -> None:
    X = np.random.default_rng(0).normal(size=(2100, 2))
    y = np.arange(2100) % 700
    with pytest.raises(ValueError, match="num_models=64 x 700 outputs x mini_batch_size=2100 needs too much memory"):
        LinearLearner(predictor_type="multiclass_classifier", num_models=64, mini_batch_size=100_000).fit(X, y)
