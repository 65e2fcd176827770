"""Linear learner: choosing the model among the parallel ones, and the metrics of one model.

Works on the output of :func:`algorithms._linear.train_models`; see :mod:`algorithms._linear` for
the layout of the parallel models.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from algorithms import metrics as metric_fns
from algorithms._linear import THRESHOLD_CRITERIA, TrainedModels, _sample_losses, platt_scale, tune_threshold
from algorithms._linear_data import BINARY, MULTICLASS, REGRESSOR

__all__ = ["Selection", "channel_metrics", "epoch_metrics", "select_model"]


# -- choosing the model -------------------------------------------------------------------------


@dataclass
class Selection:
    """The kept model: its index, every model's score, and the binary decision settings."""

    index: int
    scores: list[float | None]
    metric: str
    threshold: float = 0.0
    calibration: tuple[float, float] = (1.0, 0.0)


def select_model(
    run: TrainedModels,
    data: tuple[np.ndarray, np.ndarray, np.ndarray | None],
    loss: str,
    criterion: str | None,
    *,
    target_recall: float,
    target_precision: float,
    class_weights: tuple[float, ...] | None,
) -> Selection:
    """Choose among the models, each taken at its own best epoch.

    Parameters
    ----------
    run : TrainedModels
        Outcome of training.
    data : (design, truth, weights)
        Selection channel: validation data, or training data when there is none.
    loss : str
        Training loss.
    criterion : str or None
        Binary selection criterion; None (regressor, multiclass) compares monitored losses.
    target_recall, target_precision : float
        Constraints of the ``*_at_target_*`` criteria.
    class_weights : tuple of float, optional
        Weights of the negative and positive class (binary).

    Returns
    -------
    Selection
        Threshold criteria choose the model with the best criterion at its own best threshold;
        ``cross_entropy_loss`` compares calibrated log losses for a hinge model; otherwise the
        lowest loss wins. Ties go to the lower loss, then the lower index.
    """
    design, truth, weights = data
    candidates = np.flatnonzero(run.best_epoch > 0)
    scores = np.full(run.best_loss.size, np.nan)
    scores[candidates] = run.best_loss[candidates]
    positive = truth == 1
    # A one-class selection sample can neither place a threshold nor calibrate a margin.
    both_classes = criterion is not None and 0 < positive.sum() < positive.size
    metric, sign = "loss", 1.0
    thresholds: dict[int, float] = {}
    calibrations: dict[int, tuple[float, float]] = {}
    if both_classes and criterion in THRESHOLD_CRITERIA:
        # One product for all models (binary: a column each), then one contiguous row per model:
        # sorting and gathering along a strided column would be several times slower.
        margins = run.best_theta.T @ design.T
        for j in candidates:
            scores[j], thresholds[j] = tune_threshold(
                margins[j],
                positive,
                criterion,
                target_recall=target_recall,
                target_precision=target_precision,
                class_weights=(1.0, 1.0) if class_weights is None else (class_weights[0], class_weights[1]),
            )
        metric, sign = criterion, -1.0
    elif both_classes and criterion == "cross_entropy_loss" and loss == "hinge_loss":
        margins = run.best_theta.T @ design.T
        for j in candidates:
            z = margins[j]
            calibrations[j] = a, b = platt_scale(z, positive, weights)
            per_sample = np.logaddexp(0.0, a * z + b) - truth * (a * z + b)
            scores[j] = float(np.mean(per_sample if weights is None else per_sample * weights))
        metric = criterion
    chosen = int(min(candidates, key=lambda j: (sign * scores[j], run.best_loss[j], j)))
    calibration = (1.0, 0.0)
    if loss == "hinge_loss" and both_classes:
        calibration = calibrations.get(chosen) or platt_scale(design @ run.best_theta[:, chosen], positive, weights)
    return Selection(
        index=chosen,
        scores=[None if np.isnan(value) else float(value) for value in scores],
        metric=metric,
        threshold=thresholds.get(chosen, 0.0),
        calibration=calibration,
    )


# -- metrics of one model -----------------------------------------------------------------------


def channel_metrics(
    kind: str,
    loss: str,
    scores: np.ndarray,
    truth: np.ndarray,
    channel: str,
    *,
    weights: np.ndarray | None = None,
    threshold: float = 0.0,
    calibration: tuple[float, float] | None = (1.0, 0.0),
    full: bool = True,
) -> dict[str, float]:
    """Metrics of one model on one channel.

    Parameters
    ----------
    kind : str
        Resolved predictor type.
    loss : str
        Training loss; ``"loss"`` reports its (class-weighted) mean.
    scores : ndarray
        Predictions in target units (regressor), margins of class 1 (binary), or logits
        (n_samples, n_classes) (multiclass).
    truth : ndarray
        Targets (regressor) or class indices (classifiers).
    channel : str
        Metric name prefix.
    weights : ndarray of shape (n_samples,), optional
        Class weight of every sample; only the loss uses them.
    threshold : float
        Margin above which a binary sample is predicted positive.
    calibration : (float, float) or None
        ``(a, b)`` of the binary probability ``sigmoid(a * margin + b)``; None leaves out
        ``log_loss`` (a hinge model during training, before it is calibrated).
    full : bool
        Whether to add AUC, which needs a sort; per-epoch training metrics skip it.
    """
    out: dict[str, float] = {}
    if kind == REGRESSOR:
        out["loss"] = metric_fns.mse(truth, scores) if loss == "squared_loss" else metric_fns.mae(truth, scores)
        out["rmse"] = metric_fns.rmse(truth, scores)
        out["mae"] = metric_fns.mae(truth, scores)
        out["r2"] = metric_fns.r2(truth, scores)
        return {f"{channel}:{key}": value for key, value in out.items()}
    z = scores[:, None] if kind == BINARY else scores
    per_sample = _sample_losses(loss, z, truth, 1 if kind == BINARY else z.shape[1], 0.0, 1.0)[:, 0]
    out["loss"] = float(np.mean(per_sample if weights is None else per_sample * weights))
    if kind == BINARY:
        predicted = (scores > threshold).astype(np.intp)
        average = "binary"
    else:
        predicted = scores.argmax(axis=1)
        average = "macro"
    out["accuracy"] = metric_fns.accuracy(truth, predicted)
    # Macro averages run over the labels present in truth or prediction, as scikit-learn's do.
    for name, fn in (
        ("precision", metric_fns.precision_score),
        ("recall", metric_fns.recall_score),
        ("f1", metric_fns.f1_score),
    ):
        out[name] = fn(truth, predicted, average=average, pos_label=1)
    if kind == MULTICLASS:
        out["log_loss"] = float(np.mean(_sample_losses("softmax_loss", scores, truth, scores.shape[1], 0.0, 1.0)))
    elif calibration is not None:
        a, b = calibration
        out["log_loss"] = float(np.mean(np.logaddexp(0.0, a * scores + b) - truth * (a * scores + b)))
    # AUC is undefined for a one-class sample; leaving it out beats reporting NaN.
    if kind == BINARY and full and 0 < truth.sum() < truth.size:
        out["auc"] = metric_fns.roc_auc(truth, scores)
    return {f"{channel}:{key}": value for key, value in out.items()}


def epoch_metrics(
    kind: str,
    loss: str,
    theta: np.ndarray,
    data: tuple[np.ndarray, np.ndarray, np.ndarray | None],
    channel: str,
    *,
    label: tuple[float, float],
    full: bool,
) -> dict[str, float]:
    """Metrics of one model during training, at decision threshold 0, on one channel.

    Parameters
    ----------
    kind, loss : str
        Resolved predictor type and training loss.
    theta : ndarray of shape (n_inputs, n_outputs)
        Weights of the model in standardized space.
    data : (design, truth, weights)
        The channel as :func:`algorithms._linear.train_models` sees it.
    channel : str
        Metric name prefix.
    label : (mean, scale)
        Regression target standardization, to report in target units.
    full : bool
        Whether to add AUC (see :func:`channel_metrics`).
    """
    design, truth, weights = data
    z = design @ theta
    if kind == REGRESSOR:
        scores = z[:, 0] * label[1] + label[0]
    elif kind == BINARY:
        scores = z[:, 0]
    else:
        scores = z
    # A hinge model has no probabilities until it is calibrated after training.
    calibration = (1.0, 0.0) if loss == "logistic" else None
    return channel_metrics(kind, loss, scores, truth, channel, weights=weights, calibration=calibration, full=full)
