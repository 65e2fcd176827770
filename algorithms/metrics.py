"""Small numpy implementations of the metrics the algorithms report.

They follow scikit-learn's definitions (the tests compare against ``sklearn.metrics``) so that
numbers shown in Studio match what users get in a notebook. All return plain ``float``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "accuracy",
    "f1_score",
    "log_loss",
    "mae",
    "mse",
    "precision_score",
    "r2",
    "recall_score",
    "rmse",
    "roc_auc",
]


def _pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    """Flatten two 1-D arrays and check they are the same non-zero length."""
    a = np.asarray(y_true).ravel()
    b = np.asarray(y_pred).ravel()
    if a.shape != b.shape:
        raise ValueError(f"y_true and y_pred have different lengths ({a.size} and {b.size})")
    if a.size == 0:
        raise ValueError("metrics need at least one sample")
    return a, b


def mse(y_true: Any, y_pred: Any) -> float:
    """Mean squared error.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
        Targets and predictions.

    Returns
    -------
    float
    """
    a, b = _pair(y_true, y_pred)
    diff = a.astype(np.float64) - b
    return float(np.dot(diff, diff) / diff.size)


def rmse(y_true: Any, y_pred: Any) -> float:
    """Root mean squared error, in the units of the target.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
        Targets and predictions.

    Returns
    -------
    float
    """
    return float(np.sqrt(mse(y_true, y_pred)))


def mae(y_true: Any, y_pred: Any) -> float:
    """Mean absolute error.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
        Targets and predictions.

    Returns
    -------
    float
    """
    a, b = _pair(y_true, y_pred)
    return float(np.mean(np.abs(a.astype(np.float64) - b)))


def r2(y_true: Any, y_pred: Any) -> float:
    """Coefficient of determination.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
        Targets and predictions.

    Returns
    -------
    float
        ``1 - SS_res / SS_tot``. For a constant target, 1.0 on a perfect fit and 0.0 otherwise,
        as scikit-learn does, so a tuning objective never becomes infinite.
    """
    a, b = _pair(y_true, y_pred)
    a = a.astype(np.float64)
    residual = a - b
    centered = a - a.mean()
    ss_res = float(np.dot(residual, residual))
    ss_tot = float(np.dot(centered, centered))
    if ss_tot == 0.0:
        return 1.0 if ss_res == 0.0 else 0.0
    return 1.0 - ss_res / ss_tot


def accuracy(y_true: Any, y_pred: Any) -> float:
    """Fraction of exactly matching labels.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
        Labels of any comparable dtype.

    Returns
    -------
    float
    """
    a, b = _pair(y_true, y_pred)
    return float(np.mean(a == b))


def roc_auc(y_true: Any, y_score: Any, *, pos_label: Any = None) -> float:
    """Area under the ROC curve of a binary problem, by the rank-sum (Mann-Whitney U) formula.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Binary labels.
    y_score : array-like of shape (n_samples,)
        Scores, higher meaning more likely ``pos_label``.
    pos_label : Any, optional
        The positive label; by default the greater of the two labels (1 for 0/1, True for bools).

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If ``y_true`` does not hold exactly two classes (AUC is undefined).
    """
    labels, scores = _pair(y_true, y_score)
    classes = np.unique(labels)
    if pos_label is None:
        if classes.size != 2:
            raise ValueError(f"roc_auc needs exactly 2 classes in y_true, got {classes.size}")
        pos_label = classes[1]
    positive = labels == pos_label
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("roc_auc is undefined when y_true holds only one class")
    # Average ranks of tied scores: a tie between a positive and a negative counts one half,
    # which is exactly the trapezoidal area scikit-learn computes.
    _, inverse, counts = np.unique(np.asarray(scores, dtype=np.float64), return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)
    average_rank = upper - (counts - 1) / 2.0
    ranks = average_rank[inverse.ravel()]
    u_statistic = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u_statistic / (n_pos * n_neg))


def _class_counts(
    y_true: Any, y_pred: Any, average: str, pos_label: Any, labels: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class ``(true positives, true counts, predicted counts)`` for the averaged scores.

    ``average="binary"`` gives arrays of one element for ``pos_label``; ``"macro"`` one element
    per class of ``labels`` (by default every label seen in either array).
    """
    a, b = _pair(y_true, y_pred)
    if average == "binary":
        is_true, is_pred = a == pos_label, b == pos_label
        return (
            np.array([np.sum(is_true & is_pred)]),
            np.array([np.sum(is_true)]),
            np.array([np.sum(is_pred)]),
        )
    if average != "macro":
        raise ValueError(f"average must be 'binary' or 'macro', got {average!r}")
    classes = np.union1d(a, b) if labels is None else np.unique(np.asarray(labels))
    # Map labels to class indices and count with bincount: memory stays O(n + k) however many
    # classes there are, unlike a (classes x samples) comparison matrix.
    true_index, true_known = _index_of(classes, a)
    pred_index, pred_known = _index_of(classes, b)
    k = classes.size
    true_count = np.bincount(true_index[true_known], minlength=k)
    pred_count = np.bincount(pred_index[pred_known], minlength=k)
    hit = true_known & pred_known & (true_index == pred_index)
    return np.bincount(true_index[hit], minlength=k), true_count, pred_count


def _mean_ratio(numerator: np.ndarray, denominator: np.ndarray) -> float:
    """Mean of per-class ratios, a class with a zero denominator scoring 0 (``zero_division=0``)."""
    per_class = np.divide(numerator, denominator, out=np.zeros(numerator.size), where=denominator > 0)
    return float(per_class.mean())


def precision_score(
    y_true: Any,
    y_pred: Any,
    *,
    average: str = "binary",
    pos_label: Any = 1,
    labels: Any = None,
) -> float:
    """Precision: the fraction of predicted positives that are right, per class or averaged.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
        Labels.
    average : {"binary", "macro"}
        ``"binary"`` scores ``pos_label`` only; ``"macro"`` is the unweighted mean over ``labels``.
    pos_label : Any
        Positive class for ``average="binary"``.
    labels : array-like, optional
        Classes averaged by ``"macro"``; by default every label seen in either array.

    Returns
    -------
    float
        A class never predicted gets precision 0, as scikit-learn's ``zero_division`` default.
    """
    tp, _, pred_count = _class_counts(y_true, y_pred, average, pos_label, labels)
    return _mean_ratio(tp.astype(np.float64), pred_count)


def recall_score(
    y_true: Any,
    y_pred: Any,
    *,
    average: str = "binary",
    pos_label: Any = 1,
    labels: Any = None,
) -> float:
    """Recall (sensitivity): the fraction of true members of a class that are found.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
        Labels.
    average : {"binary", "macro"}
        ``"binary"`` scores ``pos_label`` only; ``"macro"`` is the unweighted mean over ``labels``.
    pos_label : Any
        Positive class for ``average="binary"``.
    labels : array-like, optional
        Classes averaged by ``"macro"``; by default every label seen in either array.

    Returns
    -------
    float
        A class absent from ``y_true`` gets recall 0, as scikit-learn's ``zero_division`` default.
    """
    tp, true_count, _ = _class_counts(y_true, y_pred, average, pos_label, labels)
    return _mean_ratio(tp.astype(np.float64), true_count)


def f1_score(
    y_true: Any,
    y_pred: Any,
    *,
    average: str = "binary",
    pos_label: Any = 1,
    labels: Any = None,
) -> float:
    """F1 score, for the positive class or averaged over classes.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
        Labels.
    average : {"binary", "macro"}
        ``"binary"`` scores ``pos_label`` only; ``"macro"`` is the unweighted mean over ``labels``.
    pos_label : Any
        Positive class for ``average="binary"``.
    labels : array-like, optional
        Classes averaged by ``"macro"``; by default every label seen in either array.

    Returns
    -------
    float
        A class with no true positive gets F1 = 0, as scikit-learn's ``zero_division`` default.
    """
    tp, true_count, pred_count = _class_counts(y_true, y_pred, average, pos_label, labels)
    return _mean_ratio(2.0 * tp, true_count + pred_count)


def _index_of(classes: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return each value's position in sorted ``classes`` and whether it is one of them."""
    index = np.clip(np.searchsorted(classes, values), 0, classes.size - 1)
    return index, classes[index] == values


def log_loss(y_true: Any, y_proba: Any, *, labels: Any = None) -> float:
    """Mean negative log-likelihood (cross-entropy) of predicted probabilities.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Labels.
    y_proba : array-like of shape (n_samples,) or (n_samples, n_classes)
        Probability of the greater label (binary, 1-D) or one column per class in the order of
        ``labels``.
    labels : array-like, optional
        Classes matching the columns; by default ``np.unique(y_true)`` (sorted).

    Returns
    -------
    float
        Probabilities are clipped to ``[eps, 1 - eps]`` (machine epsilon), as scikit-learn does,
        so a confident mistake costs a large but finite amount.
    """
    y = np.asarray(y_true).ravel()
    proba = np.asarray(y_proba, dtype=np.float64)
    classes = np.unique(y) if labels is None else np.asarray(labels).ravel()
    if proba.ndim == 1:
        proba = np.column_stack([1.0 - proba, proba])
    if proba.shape != (y.size, classes.size):
        if proba.shape[0] == y.size and classes.size < proba.shape[1] and labels is None:
            raise ValueError("y_true does not contain every class; pass labels= to map the columns")
        raise ValueError(f"y_proba has shape {proba.shape}, expected ({y.size}, {classes.size})")
    # Columns follow ``labels`` as given; search in a sorted copy and map back.
    order = np.argsort(classes, kind="stable")
    sorted_index, known = _index_of(classes[order], y)
    index = order[sorted_index]
    if not np.all(known):
        raise ValueError("y_true contains labels that are not in labels")
    eps = np.finfo(np.float64).eps
    picked = np.clip(proba[np.arange(y.size), index], eps, 1.0 - eps)
    return float(-np.mean(np.log(picked)))
