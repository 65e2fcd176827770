"""algorithms.metrics against sklearn.metrics on the same inputs."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from algorithms import metrics

RNG = np.random.default_rng(42)
Y_TRUE = RNG.normal(size=200)
Y_PRED = Y_TRUE + RNG.normal(scale=0.5, size=200)


def test_it_matches_sklearn_regression_metrics() -> None:
    assert metrics.mse(Y_TRUE, Y_PRED) == pytest.approx(skm.mean_squared_error(Y_TRUE, Y_PRED))
    assert metrics.rmse(Y_TRUE, Y_PRED) == pytest.approx(np.sqrt(skm.mean_squared_error(Y_TRUE, Y_PRED)))
    assert metrics.mae(Y_TRUE, Y_PRED) == pytest.approx(skm.mean_absolute_error(Y_TRUE, Y_PRED))
    assert metrics.r2(Y_TRUE, Y_PRED) == pytest.approx(skm.r2_score(Y_TRUE, Y_PRED))
    assert metrics.r2(Y_TRUE, np.full(200, 5.0)) == pytest.approx(skm.r2_score(Y_TRUE, np.full(200, 5.0)))


def test_it_scores_a_constant_target_like_sklearn() -> None:
    constant = np.ones(10)
    assert metrics.r2(constant, constant) == skm.r2_score(constant, constant) == 1.0
    assert metrics.r2(constant, np.arange(10.0)) == skm.r2_score(constant, np.arange(10.0)) == 0.0


def test_it_matches_sklearn_accuracy_on_any_labels() -> None:
    truth = np.array(["a", "b", "c", "a", "b"])
    predicted = np.array(["a", "c", "c", "a", "a"])
    assert metrics.accuracy(truth, predicted) == skm.accuracy_score(truth, predicted) == 0.6


@pytest.mark.parametrize("ties", [False, True])
def test_it_matches_sklearn_roc_auc_with_and_without_ties(ties: bool) -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, size=500)
    scores = labels + rng.normal(scale=1.5, size=500)
    if ties:
        scores = np.round(scores)  # a handful of distinct values: many cross-class ties
    assert metrics.roc_auc(labels, scores) == pytest.approx(skm.roc_auc_score(labels, scores), abs=1e-12)


def test_it_computes_auc_for_string_labels_and_perfect_or_reversed_scores() -> None:
    labels = np.array(["neg", "pos", "pos", "neg"])
    assert metrics.roc_auc(labels, [0.1, 0.9, 0.8, 0.2]) == 1.0
    assert metrics.roc_auc(labels, [0.9, 0.1, 0.2, 0.8]) == 0.0
    assert metrics.roc_auc(labels, [0.1, 0.9, 0.8, 0.2], pos_label="neg") == 0.0
    assert metrics.roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5


def test_it_refuses_auc_for_a_single_class() -> None:
    with pytest.raises(ValueError, match="exactly 2 classes"):
        metrics.roc_auc([1, 1, 1], [0.1, 0.2, 0.3])


def test_it_matches_sklearn_f1_binary_and_macro() -> None:
    rng = np.random.default_rng(2)
    truth = rng.integers(0, 2, size=300)
    predicted = np.where(rng.random(300) < 0.8, truth, 1 - truth)
    assert metrics.f1_score(truth, predicted) == pytest.approx(skm.f1_score(truth, predicted))
    assert metrics.f1_score(truth, predicted, pos_label=0) == pytest.approx(skm.f1_score(truth, predicted, pos_label=0))

    truth = rng.integers(0, 4, size=300)
    predicted = np.where(rng.random(300) < 0.6, truth, rng.integers(0, 5, size=300))  # class 4: never true
    assert metrics.f1_score(truth, predicted, average="macro") == pytest.approx(
        skm.f1_score(truth, predicted, average="macro")
    )
    labels = np.array(["x", "y", "z"])
    assert metrics.f1_score(labels[truth % 3], labels[predicted % 3], average="macro") == pytest.approx(
        skm.f1_score(labels[truth % 3], labels[predicted % 3], average="macro")
    )


@pytest.mark.parametrize("name", ["precision_score", "recall_score", "f1_score"])
def test_it_matches_sklearn_precision_recall_and_f1(name: str) -> None:
    ours, theirs = getattr(metrics, name), getattr(skm, name)
    rng = np.random.default_rng(4)
    truth = rng.integers(0, 2, size=300)
    predicted = np.where(rng.random(300) < 0.7, truth, 1 - truth)
    assert ours(truth, predicted) == pytest.approx(theirs(truth, predicted))
    assert ours(truth, predicted, pos_label=0) == pytest.approx(theirs(truth, predicted, pos_label=0))
    labels = np.array(["no", "yes"])
    assert ours(labels[truth], labels[predicted], pos_label="yes") == pytest.approx(
        theirs(labels[truth], labels[predicted], pos_label="yes")
    )

    truth = rng.integers(0, 4, size=300)
    predicted = np.where(rng.random(300) < 0.6, truth, rng.integers(0, 5, size=300))  # class 4: never true
    expected = theirs(truth, predicted, average="macro", zero_division=0)
    assert ours(truth, predicted, average="macro") == pytest.approx(expected)
    expected = theirs(truth, predicted, average="macro", labels=[0, 1, 2, 3], zero_division=0)
    assert ours(truth, predicted, average="macro", labels=[0, 1, 2, 3]) == pytest.approx(expected)


def test_it_scores_zero_precision_and_recall_when_undefined() -> None:
    assert metrics.precision_score([1, 0, 1], [0, 0, 0]) == 0.0  # nothing predicted positive
    assert metrics.recall_score([0, 0, 0], [1, 0, 0]) == 0.0  # no true positive exists
    assert metrics.precision_score([1, 1], [1, 1]) == metrics.recall_score([1, 1], [1, 1]) == 1.0
    with pytest.raises(ValueError, match="average"):
        metrics.precision_score([0, 1], [0, 1], average="micro")


def test_it_gives_zero_f1_when_nothing_is_predicted_positive() -> None:
    assert metrics.f1_score([1, 0, 1], [0, 0, 0]) == 0.0
    assert metrics.f1_score([0, 0], [0, 0]) == 0.0
    with pytest.raises(ValueError, match="average"):
        metrics.f1_score([0, 1], [0, 1], average="weighted")


def test_it_matches_sklearn_log_loss_binary_and_multiclass() -> None:
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 2, size=100)
    positive = np.clip(0.7 * truth + 0.3 * rng.random(100), 0.0, 1.0)
    positive[0] = float(1 - truth[0])  # a confident mistake: clipped, not infinite
    assert metrics.log_loss(truth, positive) == pytest.approx(skm.log_loss(truth, positive))

    logits = rng.normal(size=(100, 3))
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.array(["b", "a", "c"])[rng.integers(0, 3, size=100)]
    assert metrics.log_loss(labels, proba) == pytest.approx(skm.log_loss(labels, proba))
    # Columns in a caller-chosen order map to the right classes.
    order = np.array(["c", "a", "b"])
    reordered = proba[:, [2, 0, 1]]
    assert metrics.log_loss(labels, reordered, labels=order) == pytest.approx(skm.log_loss(labels, proba))


def test_it_rejects_mismatched_inputs() -> None:
    with pytest.raises(ValueError, match="different lengths"):
        metrics.rmse([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="at least one sample"):
        metrics.accuracy([], [])
    with pytest.raises(ValueError, match="shape"):
        metrics.log_loss([0, 1], np.full((2, 3), 1 / 3), labels=[0, 1])
    with pytest.raises(ValueError, match="not in labels"):
        metrics.log_loss([0, 5], np.full((2, 2), 0.5), labels=[0, 1])
