"""Core of the linear learner: losses, optimizer and parallel-model training.

Input checks and preprocessing live in :mod:`algorithms._linear_data`, model selection and the
metrics of one model in :mod:`algorithms._linear_selection`.

The learner trains ``num_models`` linear models at once. Their weights live side by side in one
matrix ``theta`` of shape ``(n_inputs, n_models * n_outputs)`` (column ``j * n_outputs + k`` is
output ``k`` of model ``j``), so that one mini-batch product ``X_batch @ theta`` serves every model
and the per-step Python overhead, which dominates small batches, is paid once rather than per model.
The numerical helpers work column-wise on that layout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from algorithms.base import rng_from_state

__all__ = [
    "THRESHOLD_CRITERIA",
    "ModelSpec",
    "Optimizer",
    "TrainedModels",
    "TrainingState",
    "loss_gradient",
    "model_grid",
    "model_losses",
    "platt_scale",
    "sigmoid",
    "softmax",
    "train_models",
    "tune_threshold",
]

# Binary selection criteria that move the decision threshold; the others keep it at margin 0.
THRESHOLD_CRITERIA = ("accuracy", "f1", "precision_at_target_recall", "recall_at_target_precision")

_ADAM_BETA1, _ADAM_BETA2, _ADAM_EPS = 0.9, 0.999, 1e-8
# Rows x columns evaluated at once when scoring every model on a whole channel: bounds the
# temporary (rows, n_models * n_outputs) matrix to 8 MB whatever the data size.
_EVAL_CHUNK = 2**20

# Variant grids, listed from nearest to farthest from the given value: model j takes the
# combinations with the smallest summed rank first, so any num_models gets a sensible spread.
_LR_EXPONENTS = (0.0, -0.5, 0.5, -1.0, 1.0, -1.5, -2.0, -2.5, -3.0, -3.5)
_REG_EXPONENTS = (0, -1, 1, None, -2, 2, -3, 3, -4, -5, -6)  # None: no penalty at all
# With a penalty of 0, "around the given value" means small absolute penalties: in standardized
# space wd = 1 / (n * C) for scikit-learn's C, so 1e-2 is C = 1 on a few hundred rows.
_WD_FROM_ZERO = (0.0, 1e-5, 1e-4, 1e-3, 1e-2, 1e-6, 3e-3, 3e-2, 1e-1, 3e-4)
_MAX_LR, _MAX_PENALTY = 1.0, 1.0


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic function, safe for any finite or infinite input."""
    # exp may overflow to inf for very negative z; 1 / inf is the correct limit 0.
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-z))


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax along the last axis."""
    shifted = np.exp(z - z.max(axis=-1, keepdims=True))
    shifted /= shifted.sum(axis=-1, keepdims=True)
    return shifted


# -- the model grid -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """Optimizer settings of one of the parallel models."""

    learning_rate: float
    wd: float
    l1: float

    def to_dict(self) -> dict[str, float]:
        return {"learning_rate": self.learning_rate, "wd": self.wd, "l1": self.l1}


def _penalty_levels(value: float) -> list[float]:
    if value == 0.0:
        return list(_WD_FROM_ZERO)
    levels = [0.0 if e is None else min(value * 10.0**e, _MAX_PENALTY) for e in _REG_EXPONENTS]
    return list(dict.fromkeys(levels))


def model_grid(num_models: int, learning_rate: float, wd: float, l1: float) -> list[ModelSpec]:
    """Settings of the parallel models: the given ones first, then variants on a log grid.

    Parameters
    ----------
    num_models : int
        How many models to train (1 to 64).
    learning_rate, wd, l1 : float
        The user's values; model 0 uses them exactly.

    Returns
    -------
    list of ModelSpec
        ``num_models`` distinct settings, ordered by distance from the given ones. Learning
        rates span 10**-3.5 to 10 times the given one (capped at 1). Weight decay spans 1e-6 to
        1e3 times the given value (capped at 1) plus 0, or 1e-6 to 0.1 when it is 0. The L1
        penalty varies (0.1x, 10x, 0) only when it is positive, because a subgradient L1 term
        makes weights jitter and nobody asked for sparsity otherwise.
    """
    lrs = list(dict.fromkeys(min(learning_rate * 10.0**e, _MAX_LR) for e in _LR_EXPONENTS))
    wds = _penalty_levels(wd)
    l1s = _penalty_levels(l1)[:4] if l1 > 0 else [0.0]
    combos = [(a + b + c, a, b, c) for a in range(len(lrs)) for b in range(len(wds)) for c in range(len(l1s))]
    combos.sort()
    return [ModelSpec(lrs[a], wds[b], l1s[c]) for _, a, b, c in combos[:num_models]]


# -- losses -------------------------------------------------------------------------------------


def loss_gradient(
    loss: str, z: np.ndarray, target: np.ndarray, n_outputs: int, weights: np.ndarray | None
) -> np.ndarray:
    """Gradient of the per-sample loss with respect to the outputs ``z`` (not yet averaged).

    Parameters
    ----------
    loss : str
        One of the losses of :data:`algorithms._linear_data.LOSSES`.
    z : ndarray of shape (batch, n_models * n_outputs)
        Outputs of every model, in training space; overwritten (it is a temporary of the caller).
    target : ndarray
        ``(batch, 1)`` scaled regression targets or 0/1 labels, or ``(batch,)`` class indices.
    n_outputs : int
        Outputs per model (classes for softmax, else 1).
    weights : ndarray of shape (batch,), optional
        Per-sample class weights.
    """
    if loss == "squared_loss":
        grad = z - target
    elif loss == "absolute_loss":
        grad = np.sign(z - target)
    elif loss == "logistic":
        # sigmoid(z) - target, in z's memory; the caller's errstate covers exp overflow (-> 0).
        grad = np.negative(z, out=z)
        np.exp(grad, out=grad)
        grad += 1.0
        np.reciprocal(grad, out=grad)
        grad -= target
    elif loss == "hinge_loss":
        sign = 2.0 * target - 1.0
        grad = np.where(sign * z < 1.0, -sign, 0.0)
    else:
        batch = z.shape[0]
        grad = softmax(z.reshape(batch, -1, n_outputs))
        grad[np.arange(batch), :, target] -= 1.0
        grad = grad.reshape(batch, -1)
    if weights is not None:
        grad *= weights[:, None]
    return grad


def _sample_losses(
    loss: str, z: np.ndarray, truth: np.ndarray, n_outputs: int, label_mean: float, label_scale: float
) -> np.ndarray:
    """Per-sample, per-model loss of shape (rows, n_models), regression losses in target units."""
    if loss in ("squared_loss", "absolute_loss"):
        residual = z * label_scale + label_mean - truth[:, None]
        return residual * residual if loss == "squared_loss" else np.abs(residual)
    if loss == "logistic":
        return np.logaddexp(0.0, z) - truth[:, None] * z
    if loss == "hinge_loss":
        return np.maximum(0.0, 1.0 - (2.0 * truth[:, None] - 1.0) * z)
    rows = z.shape[0]
    z3 = z.reshape(rows, -1, n_outputs)
    top = z3.max(axis=2)
    log_norm = top + np.log(np.exp(z3 - top[:, :, None]).sum(axis=2))
    return log_norm - z3[np.arange(rows), :, truth]


def model_losses(
    loss: str,
    design: np.ndarray,
    truth: np.ndarray,
    weights: np.ndarray | None,
    theta: np.ndarray,
    n_outputs: int,
    label_mean: float = 0.0,
    label_scale: float = 1.0,
) -> np.ndarray:
    """Mean (class-weighted) loss of every model on one channel.

    Parameters
    ----------
    design : ndarray of shape (n_samples, n_inputs)
        Standardized features (plus the bias column).
    truth : ndarray of shape (n_samples,)
        Targets in original units (regressor), 0/1 labels (binary) or class indices.
    weights : ndarray of shape (n_samples,), optional
        Class weight of every sample.
    theta : ndarray of shape (n_inputs, n_models * n_outputs)
        Weights of every model.

    Returns
    -------
    ndarray of shape (n_models,)
    """
    n_samples = design.shape[0]
    total = np.zeros(theta.shape[1] // n_outputs)
    rows = max(1, _EVAL_CHUNK // theta.shape[1])
    for start in range(0, n_samples, rows):
        values = _sample_losses(
            loss, design[start : start + rows] @ theta, truth[start : start + rows], n_outputs, label_mean, label_scale
        )
        if weights is not None:
            values *= weights[start : start + rows, None]
        total += values.sum(axis=0)
    return total / n_samples


# -- the optimizer ------------------------------------------------------------------------------


class Optimizer:
    """In-place Adam or plain SGD over one parameter matrix, with one learning rate per column.

    Adam's moments are element-wise, so the state of every parallel model is simply its own
    columns of ``m`` and ``v``; models never interact.
    """

    def __init__(self, kind: str, learning_rate: np.ndarray, shape: tuple[int, ...]) -> None:
        self.kind = kind
        self.learning_rate = np.asarray(learning_rate, dtype=np.float64)
        self.t = 0
        if kind == "adam":
            self.m = np.zeros(shape)
            self.v = np.zeros(shape)
            self._tmp = np.zeros(shape)

    def step(self, theta: np.ndarray, grad: np.ndarray) -> None:
        """Move ``theta`` against ``grad`` (modified in place)."""
        if self.kind == "sgd":
            grad *= self.learning_rate
            theta -= grad
            return
        self.t += 1
        # In-place updates: per-step Python overhead, not FLOPs, dominates small batches.
        self.m *= _ADAM_BETA1
        self.m += (1.0 - _ADAM_BETA1) * grad
        np.multiply(grad, grad, out=grad)
        self.v *= _ADAM_BETA2
        self.v += (1.0 - _ADAM_BETA2) * grad
        step_size = self.learning_rate * np.sqrt(1.0 - _ADAM_BETA2**self.t) / (1.0 - _ADAM_BETA1**self.t)
        np.sqrt(self.v, out=self._tmp)
        self._tmp += _ADAM_EPS
        np.divide(self.m, self._tmp, out=self._tmp)
        self._tmp *= step_size
        theta -= self._tmp

    def reset(self, columns: np.ndarray) -> None:
        """Forget the state of diverged columns and freeze them (learning rate 0)."""
        self.learning_rate[columns] = 0.0
        if self.kind == "adam":
            self.m[:, columns] = 0.0
            self.v[:, columns] = 0.0


# -- threshold and probability calibration ------------------------------------------------------


def tune_threshold(
    scores: np.ndarray,
    positive: np.ndarray,
    criterion: str,
    *,
    target_recall: float,
    target_precision: float,
    class_weights: tuple[float, float] = (1.0, 1.0),
) -> tuple[float, float]:
    """Decision threshold on the margin that maximizes a binary criterion.

    Parameters
    ----------
    scores : ndarray of shape (n_samples,)
        Margins; a sample is predicted positive when its score is above the threshold.
    positive : ndarray of bool, shape (n_samples,)
        True labels. Both classes must be present.
    criterion : {"accuracy", "f1", "precision_at_target_recall", "recall_at_target_precision"}
        ``"accuracy"`` is weighted by ``class_weights`` (balanced accuracy for balanced weights),
        so that tuning the threshold does not undo the weighting the user asked for.
    target_recall, target_precision : float
        Constraints of the two ``*_at_target_*`` criteria.
    class_weights : (float, float)
        Weights of negatives and positives.

    Returns
    -------
    (value, threshold) : (float, float)
        The criterion at the chosen threshold (``-1`` when no threshold reaches the target
        precision; the threshold then maximizes precision instead). Among equally good
        thresholds the one closest to the model's natural threshold 0 wins.
    """
    n = scores.size
    # Ties are handled by the valid mask below, so the order among equal scores does not matter.
    order = np.argsort(-scores)
    ranked = scores[order]
    # Cut k predicts the k highest scores positive; only cuts between distinct scores are real.
    tp = np.empty(n + 1)
    tp[0] = 0.0
    np.cumsum(positive[order], out=tp[1:])
    predicted = np.arange(n + 1, dtype=np.float64)
    n_pos = tp[-1]
    n_neg = n - n_pos
    valid = np.ones(n + 1, dtype=bool)
    np.greater(ranked[:-1], ranked[1:], out=valid[1:n])

    def threshold_at(cuts: np.ndarray) -> np.ndarray:
        # Midway between the last score predicted positive and the first predicted negative.
        above = ranked[np.maximum(cuts - 1, 0)]
        below = np.where(cuts < n, ranked[np.minimum(cuts, n - 1)], ranked[-1] - 2.0)
        return np.where(cuts == 0, ranked[0], 0.5 * (above + below))

    if criterion == "accuracy":
        w_neg, w_pos = class_weights
        value = (w_pos * tp + w_neg * (n_neg - (predicted - tp))) / (w_pos * n_pos + w_neg * n_neg)
    elif criterion == "f1":
        value = 2.0 * tp / (predicted + n_pos)
    else:
        predicted[0] = np.inf  # precision of an empty prediction: 0, never a division by zero
        precision = tp / predicted
        if criterion == "precision_at_target_recall":
            value = np.where(tp >= (target_recall - 1e-12) * n_pos, precision, -np.inf)
        elif criterion == "recall_at_target_precision":
            value = np.where(precision >= target_precision - 1e-12, tp / n_pos, -np.inf)
            if not np.any(np.isfinite(value) & valid):
                # Unreachable target: fall back to the most precise threshold, but rank it last.
                return -1.0, _best_cut(precision, valid, threshold_at)[1]
        else:
            raise ValueError(f"unknown threshold criterion {criterion!r}")
    best, threshold = _best_cut(value, valid, threshold_at)
    return float(value[best]), threshold


def _best_cut(
    value: np.ndarray, valid: np.ndarray, threshold_at: Callable[[np.ndarray], np.ndarray]
) -> tuple[int, float]:
    """The valid cut with the highest value; among ties, the threshold closest to 0."""
    value = np.where(valid, value, -np.inf)
    ties = np.flatnonzero(value == value.max())
    thresholds = threshold_at(ties)
    best = int(np.argmin(np.abs(thresholds)))
    return int(ties[best]), float(thresholds[best])


def platt_scale(scores: np.ndarray, positive: np.ndarray, weights: np.ndarray | None = None) -> tuple[float, float]:
    """Fit ``P(positive) = sigmoid(a * score + b)`` by Newton's method (Platt scaling).

    Used to give a hinge-loss model probabilities. Targets are Platt's smoothed
    ``(n+ + 1) / (n+ + 2)`` and ``1 / (n- + 2)``, so separable data still get a finite slope.

    Returns
    -------
    (a, b) : (float, float)
    """
    w = np.ones(scores.size) if weights is None else weights
    n_pos = float(w[positive].sum())
    n_neg = float(w[~positive].sum())
    target = np.where(positive, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))

    def objective(a: float, b: float) -> float:
        u = a * scores + b
        return float(w @ (np.logaddexp(0.0, u) - target * u))

    spread = float(np.std(scores))
    a, b = (1.0 / spread if spread > 0 else 1.0), 0.0
    current = objective(a, b)
    for _ in range(100):
        p = sigmoid(a * scores + b)
        residual = w * (p - target)
        curvature = w * p * (1.0 - p)
        g = np.array([residual @ scores, residual.sum()])
        h = np.array([[curvature @ (scores * scores), curvature @ scores], [curvature @ scores, curvature.sum()]])
        h[np.diag_indices(2)] += 1e-9 * w.sum()  # keeps the system solvable for constant scores
        delta = np.linalg.solve(h, g)
        # Halve the Newton step until the objective does not increase: a plain Newton step can
        # overshoot from a poor start on nearly separable margins.
        step = 1.0
        while step > 1e-10:
            candidate = objective(a - step * delta[0], b - step * delta[1])
            if candidate <= current:
                break
            step /= 2.0
        else:
            break
        a, b = a - step * float(delta[0]), b - step * float(delta[1])
        converged = current - candidate <= 1e-12 * max(1.0, abs(current))
        current = candidate
        if converged:
            break
    return a, b


# -- training every model at once ---------------------------------------------------------------


@dataclass
class TrainingState:
    """Everything :func:`train_models` needs to continue exactly where it stopped.

    ``weights`` stacks, each of shape ``(n_inputs, n_models * n_outputs)``: the current iterates,
    their running averages (what is evaluated), each model's best average so far and, for Adam,
    the first and second moments. ``best_epoch[j] == 0`` marks a model that never had a finite
    loss (diverged at once).
    """

    epoch: int
    step: int
    weights: np.ndarray
    learning_rate: np.ndarray
    adam_t: int
    alive: np.ndarray
    best_loss: np.ndarray
    best_epoch: np.ndarray
    reference: float
    since_improvement: int
    rng: dict[str, Any]

    def saved(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """``(arrays, json)``: the state as npz arrays and plain JSON values."""
        arrays = {
            "weights": self.weights,
            "learning_rates": self.learning_rate,
            "best_loss": self.best_loss,
            "best_epoch": self.best_epoch,
            "alive": self.alive,
        }
        info = {
            "epoch": self.epoch,
            "step": self.step,
            "adam_t": self.adam_t,
            "reference": None if np.isinf(self.reference) else self.reference,
            "since_improvement": self.since_improvement,
            "rng": self.rng,
        }
        return arrays, info

    @classmethod
    def restore(
        cls, arrays: dict[str, Any], info: dict[str, Any], shape: tuple[int, int], n_models: int, optimizer: str
    ) -> TrainingState:
        """Rebuild (copies of) a state saved by :meth:`saved`, checking it fits ``shape`` and ``n_models``.

        Raises
        ------
        ValueError
            When an array has the wrong shape or type, or a counter is invalid.
        """
        layers = 5 if optimizer == "adam" else 3
        expected = {
            "weights": ((layers, *shape), "f"),
            "learning_rates": ((shape[1],), "f"),
            "best_loss": ((n_models,), "f"),
            "best_epoch": ((n_models,), "iu"),
            "alive": ((n_models,), "b"),
        }
        checked: dict[str, np.ndarray] = {}
        for key, (array_shape, kinds) in expected.items():
            array = np.asarray(arrays[key])
            if array.shape != array_shape or array.dtype.kind not in kinds:
                raise ValueError(f"saved training state has {key} of shape {array.shape}, expected {array_shape}")
            checked[key] = array.copy()
        counters = [info.get(key) for key in ("epoch", "step", "adam_t", "since_improvement")]
        reference = info.get("reference")
        if not all(isinstance(value, int) and not isinstance(value, bool) and value >= 0 for value in counters) or not (
            reference is None or (isinstance(reference, int | float) and not isinstance(reference, bool))
        ):
            raise ValueError("saved training state has invalid counters")
        epoch, step, adam_t, since_improvement = counters
        return cls(
            epoch=epoch,
            step=step,
            weights=checked["weights"].astype(np.float64),
            learning_rate=checked["learning_rates"].astype(np.float64),
            adam_t=adam_t,
            alive=checked["alive"],
            best_loss=checked["best_loss"].astype(np.float64),
            best_epoch=checked["best_epoch"].astype(np.intp),
            reference=np.inf if reference is None else float(reference),
            since_improvement=since_improvement,
            rng=info.get("rng"),  # checked when train_models rebuilds the generator
        )


@dataclass
class TrainedModels:
    """Outcome of :func:`train_models`: every model at its own best epoch, and the state to resume.

    ``best_epoch[j] == 0`` marks a model that never had a finite loss (diverged at once).
    ``n_epochs`` counts every epoch trained, including those before a resumed state.
    """

    best_theta: np.ndarray
    best_loss: np.ndarray
    best_epoch: np.ndarray
    n_epochs: int
    stop_reason: str | None
    state: TrainingState


def train_models(
    loss: str,
    specs: list[ModelSpec],
    n_outputs: int,
    train: tuple[np.ndarray, np.ndarray, np.ndarray | None],
    monitored: tuple[np.ndarray, np.ndarray, np.ndarray | None],
    params: dict[str, Any],
    *,
    n_weights: int,
    label: tuple[float, float],
    report: Callable[[int, np.ndarray], bool],
    state: TrainingState | None = None,
) -> TrainedModels:
    """Mini-batch training of ``len(specs)`` models in one pass over the data per epoch.

    Parameters
    ----------
    loss : str
        Training loss.
    specs : list of ModelSpec
        Learning rate and penalties of each model.
    n_outputs : int
        Outputs per model.
    train : (design, target, weights)
        Standardized training design (with its bias column), the target as the gradient expects
        it, and per-sample class weights or None.
    monitored : (design, truth, weights)
        Channel whose loss picks each model's best epoch and drives early stopping; ``truth`` in
        original units (regressor) or class indices.
    params : dict
        Validated hyperparameters (optimizer, batch size, epochs, decay, patience, seed).
    n_weights : int
        Leading rows of ``theta`` that are penalized (all but the bias row).
    label : (mean, scale)
        Regression target standardization, to report losses in target units.
    report : callable
        ``report(epoch, theta_of_leader)`` after each epoch with the weights, shape
        ``(n_inputs, n_outputs)``, of the model with the lowest monitored loss at that epoch;
        returning False stops training.
    state : TrainingState, optional
        Continue from this state (epochs ``state.epoch + 1`` to ``params["epochs"]``) instead of
        starting from zero weights; the result is exactly that of one uninterrupted run.
    """
    design, target, weights = train
    n_samples, n_inputs = design.shape
    n_models = len(specs)
    per_column = np.repeat
    n_columns = n_models * n_outputs
    rates = per_column([spec.learning_rate for spec in specs], n_outputs)
    optimizer = Optimizer(params["optimizer"], rates, (n_inputs, n_columns))
    if state is None:
        theta = np.zeros((n_inputs, n_columns))
        # Each model is the running average of its iterates, not the last iterate: with a constant
        # learning rate the iterates jitter around the optimum, and averaging over about one
        # epoch removes that noise without slowing the first epochs (Polyak-Ruppert averaging).
        averaged = theta.copy()
        best_theta = theta.copy()
        rng = np.random.default_rng(params["random_state"])
        alive = np.ones(n_models, dtype=bool)
        best_loss = np.full(n_models, np.inf)
        best_epoch = np.zeros(n_models, dtype=np.intp)
        reference, since_improvement, step, epoch = np.inf, 0, 0, 0
    else:
        theta, averaged, best_theta = (state.weights[i].copy() for i in range(3))
        if optimizer.kind == "adam":
            optimizer.m, optimizer.v = state.weights[3].copy(), state.weights[4].copy()
        optimizer.learning_rate, optimizer.t = state.learning_rate.copy(), state.adam_t
        rng = rng_from_state(state.rng)
        alive, best_loss, best_epoch = state.alive.copy(), state.best_loss.copy(), state.best_epoch.copy()
        reference, since_improvement, step, epoch = state.reference, state.since_improvement, state.step, state.epoch
    wd = per_column([spec.wd for spec in specs], n_outputs)
    l1 = per_column([spec.l1 for spec in specs], n_outputs)
    use_wd, use_l1 = bool(wd.any()), bool(l1.any())
    batch = min(params["mini_batch_size"], n_samples)
    steps_per_epoch = -(-n_samples // batch)
    patience, tolerance = params["early_stopping_patience"], params["early_stopping_tolerance"]
    stop_reason: str | None = None
    first = epoch + 1
    for epoch in range(first, params["epochs"] + 1):
        order = rng.permutation(n_samples)
        shuffled_x = design[order]
        shuffled_t = target[order]
        shuffled_w = None if weights is None else weights[order]
        for start in range(0, n_samples, batch):
            xb = shuffled_x[start : start + batch]
            wb = None if shuffled_w is None else shuffled_w[start : start + batch]
            grad = xb.T @ loss_gradient(loss, xb @ theta, shuffled_t[start : start + batch], n_outputs, wb)
            grad /= xb.shape[0]
            if use_wd:
                grad[:n_weights] += wd * theta[:n_weights]
            if use_l1:
                # Subgradient: simple and shared by both optimizers; weights hover near 0
                # rather than land exactly on it.
                grad[:n_weights] += l1 * np.sign(theta[:n_weights])
            optimizer.step(theta, grad)
            step += 1
            averaged += (theta - averaged) * (1.0 / min(step, steps_per_epoch))
        optimizer.learning_rate *= params["learning_rate_decay"]

        losses = model_losses(loss, *monitored, averaged, n_outputs, *label)
        finite = np.isfinite(losses) & np.isfinite(averaged).reshape(-1, n_models, n_outputs).all(axis=(0, 2))
        diverged = alive & ~finite
        if diverged.any():
            # A diverged model is frozen at zero; the others, in their own columns, carry on.
            columns = per_column(diverged, n_outputs)
            theta[:, columns] = averaged[:, columns] = 0.0
            optimizer.reset(columns)
            alive &= ~diverged
        if not alive.any():
            stop_reason = "diverged"
            break
        losses = np.where(alive, losses, np.inf)
        improved = losses < best_loss
        best_loss[improved], best_epoch[improved] = losses[improved], epoch
        columns = per_column(improved, n_outputs)
        best_theta[:, columns] = averaged[:, columns]

        leader = int(np.argmin(losses))
        current = float(losses[leader])
        # Patience counts epochs without a *relative* improvement of the leading model over the
        # last reference, so a slow creep of tiny gains still ends training, as in SageMaker.
        if reference == np.inf or current < reference - tolerance * abs(reference):
            reference = current
            since_improvement = 0
        else:
            since_improvement += 1
        if not report(epoch, averaged[:, leader * n_outputs : (leader + 1) * n_outputs]):
            stop_reason = "callback"
            break
        if since_improvement >= patience:
            stop_reason = "early_stopping"
            break
    n_epochs = epoch - 1 if stop_reason == "diverged" else epoch
    stacked = [theta, averaged, best_theta] + ([optimizer.m, optimizer.v] if optimizer.kind == "adam" else [])
    final = TrainingState(
        epoch=n_epochs,
        step=step,
        weights=np.stack(stacked),
        learning_rate=optimizer.learning_rate,
        adam_t=optimizer.t,
        alive=alive,
        best_loss=best_loss,
        best_epoch=best_epoch,
        reference=reference,
        since_improvement=since_improvement,
        rng=rng.bit_generator.state,
    )
    return TrainedModels(best_theta, best_loss, best_epoch, n_epochs, stop_reason, final)
