"""Linear learner data: the task vocabulary, checks of the data given to ``fit``, and preprocessing.

Everything here runs once per ``fit`` (or per prediction) on whole arrays; the numerical core
that trains the parallel models is :mod:`algorithms._linear`.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from algorithms._checks import MAX_AUTO_CLASSES, as_matrix
from algorithms._checks import as_labels as _as_labels
from algorithms._checks import infer_predictor_type as _classifier_or_regressor

if TYPE_CHECKING:
    from algorithms.linear_learner import LinearLearner

__all__ = [
    "BINARY",
    "LOSSES",
    "MAX_AUTO_CLASSES",
    "MULTICLASS",
    "REGRESSOR",
    "as_features",
    "as_labels",
    "check_saved_model",
    "class_weights",
    "design_matrix",
    "encode",
    "fit_scaling",
    "infer_predictor_type",
    "label_scaling",
    "preview",
    "read_training_data",
    "resolve_task",
    "training_target",
]

REGRESSOR, BINARY, MULTICLASS = "regressor", "binary_classifier", "multiclass_classifier"
# Losses each predictor type accepts; the first is what loss="auto" means.
LOSSES: dict[str, tuple[str, ...]] = {
    REGRESSOR: ("squared_loss", "absolute_loss"),
    BINARY: ("logistic", "hinge_loss"),
    MULTICLASS: ("softmax_loss",),
}


# -- input checks -------------------------------------------------------------------------------


def as_features(X: Any, name: str, n_features: int | None = None) -> np.ndarray:
    """Return ``X`` as a 2-D float64 array (NaN = missing), or raise a ``ValueError`` a user can act on."""
    return as_matrix(X, name, n_features, allow_nan=True)


def as_labels(y: Any, name: str, n_samples: int) -> np.ndarray:
    """Return ``y`` as a 1-D array of numbers or fixed-width strings (never object dtype)."""
    return _as_labels(y, name, n_samples, learner="the linear learner")


def preview(values: np.ndarray, limit: int = 10) -> str:
    shown = ", ".join(repr(value.item()) for value in values[:limit])
    return f"[{shown}{', ...' if values.size > limit else ''}]"


def infer_predictor_type(y: np.ndarray) -> str:
    """Guess the task from the targets, as documented on the ``predictor_type`` hyperparameter."""
    if _classifier_or_regressor(y) == "regressor":
        return REGRESSOR
    if y.dtype.kind == "b":
        return BINARY
    return BINARY if np.unique(y).size == 2 else MULTICLASS


def encode(classes: np.ndarray, y: np.ndarray, name: str) -> np.ndarray:
    """Map labels to indices into sorted ``classes``; reject labels unseen at training time."""
    if (y.dtype.kind in "US") != (classes.dtype.kind in "US"):
        raise ValueError(f"{name} labels have type {y.dtype}, but the classes are {preview(classes)}")
    index = np.clip(np.searchsorted(classes, y), 0, classes.size - 1)
    unknown = classes[index] != y
    if unknown.any():
        raise ValueError(
            f"{name} contains labels not seen in training: {preview(np.unique(y[unknown]))}; "
            f"known classes: {preview(classes)}"
        )
    return index


_LOSS_TASK = {loss: kind for kind, losses in LOSSES.items() for loss in losses}


def _task_of(requested: str, y: np.ndarray) -> tuple[str, np.ndarray | None, np.ndarray]:
    """Return ``(predictor_type, classes, encoded targets)`` after checking ``y`` fits the task."""
    kind = infer_predictor_type(y) if requested == "auto" else requested
    if kind == REGRESSOR:
        if y.dtype.kind not in "biuf":
            raise ValueError(
                f"predictor_type='regressor' needs a numeric y, got labels like {preview(np.unique(y), 3)}"
            )
        return kind, None, y.astype(np.float64)
    classes, encoded = np.unique(y, return_inverse=True)
    if classes.size < 2:
        raise ValueError(f"classification needs at least 2 classes in y, got only {preview(classes)}")
    if kind == BINARY and classes.size != 2:
        raise ValueError(
            f"predictor_type='binary_classifier' needs exactly 2 classes in y, got {classes.size}: "
            f"{preview(classes)}; use 'multiclass_classifier'"
        )
    return kind, classes, encoded.ravel()


def resolve_task(requested: str, loss: str, y: np.ndarray) -> tuple[str, str, np.ndarray | None, np.ndarray]:
    """Return ``(predictor_type, loss, classes, truth)`` for the requested task and loss.

    ``truth`` holds regression targets as float64 or class indices into the sorted ``classes``.
    With ``predictor_type="auto"`` an explicit loss decides the task (hinge_loss -> binary...);
    otherwise it is inferred from ``y`` and ``loss="auto"`` picks that task's usual loss.
    """
    if loss == "auto" or requested != "auto":
        kind, classes, truth = _task_of(requested, y)
        return kind, LOSSES[kind][0] if loss == "auto" else loss, classes, truth
    try:
        kind, classes, truth = _task_of(_LOSS_TASK[loss], y)
    except ValueError as exc:
        raise ValueError(f"loss={loss!r} implies predictor_type={_LOSS_TASK[loss]!r}: {exc}") from None
    return kind, loss, classes, truth


def read_training_data(
    X: Any, y: Any, X_val: Any, y_val: Any, params: dict[str, Any], n_features: int | None = None
) -> tuple[np.ndarray, str, str, np.ndarray | None, np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """Check the data of ``fit``: ``(X, predictor_type, loss, classes, truth, (X_val, val_truth) or None)``.

    ``truth`` holds regression targets as float64 or class indices into ``classes``, for both
    channels; ``n_features``, when given, is the number of features ``X`` must have.
    """
    X_arr = as_features(X, "X", n_features)
    y_arr = as_labels(y, "y", X_arr.shape[0])
    kind, loss, classes, truth = resolve_task(params["predictor_type"], params["loss"], y_arr)
    if X_val is None and y_val is None:
        return X_arr, kind, loss, classes, truth, None
    if X_val is None or y_val is None:
        raise ValueError("X_val and y_val must be given together")
    Xv_arr = as_features(X_val, "X_val", X_arr.shape[1])
    yv_arr = as_labels(y_val, "y_val", Xv_arr.shape[0])
    if classes is not None:
        return X_arr, kind, loss, classes, truth, (Xv_arr, encode(classes, yv_arr, "y_val"))
    if yv_arr.dtype.kind not in "biuf":
        raise ValueError("y_val must be numeric for a regressor")
    return X_arr, kind, loss, classes, truth, (Xv_arr, yv_arr.astype(np.float64))


def class_weights(kind: str, truth: np.ndarray, positive_mult: float, balance_multiclass: bool) -> np.ndarray | None:
    """Per-class loss weights, rescaled to average 1 over the training rows; None when uniform.

    Binary: positives weigh ``positive_mult`` times the negatives, and 0 balances the classes
    (``n / (2 * count)`` each, scikit-learn's "balanced"). Multiclass with ``balance_multiclass``:
    ``n / (n_classes * count)``. A mean of 1 keeps the loss scale, hence the effective learning
    rate and penalties, as without weights.
    """
    if kind == BINARY and positive_mult != 1.0:
        n_pos = int(truth.sum())
        n_neg = truth.size - n_pos
        balanced = np.array([truth.size / (2.0 * n_neg), truth.size / (2.0 * n_pos)])
        raw = balanced if positive_mult == 0 else np.array([1.0, positive_mult])
    elif kind == MULTICLASS and balance_multiclass:
        counts = np.bincount(truth).astype(np.float64)
        raw = truth.size / (counts.size * counts)
    else:
        return None
    return raw / raw[truth].mean()


# -- preprocessing ------------------------------------------------------------------------------


def fit_scaling(X: np.ndarray, normalize: bool, use_bias: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Learn ``(impute_values, center, scale)`` of the features from the training matrix ``X``.

    NaN are imputed with the column means (0 for an all-NaN column). With ``normalize`` the
    filled columns are standardized (centered only with ``use_bias``, so that a model without
    intercept still passes through the origin); otherwise center is 0 and scale 1.
    """
    missing = np.isnan(X)
    with warnings.catch_warnings():
        # An all-NaN column has no mean; it is imputed with 0 below, no warning needed.
        warnings.simplefilter("ignore", RuntimeWarning)
        impute = np.nanmean(X, axis=0) if missing.any() else X.mean(axis=0)
    impute = np.where(np.isfinite(impute), impute, 0.0)
    filled = np.where(missing, impute, X) if missing.any() else X
    n_features = X.shape[1]
    if normalize:
        center = filled.mean(axis=0) if use_bias else np.zeros(n_features)
        scale = filled.std(axis=0)
        # Constant columns carry no information; scale 1 avoids dividing by zero.
        scale[~(scale > 1e-12 * np.maximum(1.0, np.abs(center)))] = 1.0
    else:
        center, scale = np.zeros(n_features), np.ones(n_features)
    return impute, center, scale


def design_matrix(
    X: np.ndarray, impute: np.ndarray, center: np.ndarray, scale: np.ndarray, use_bias: bool
) -> np.ndarray:
    """Impute, standardize and append the bias column, in one new float64 array."""
    n_samples, n_features = X.shape
    design = np.empty((n_samples, n_features + int(use_bias)))
    body = design[:, :n_features]
    np.subtract(X, center, out=body)
    body /= scale
    missing = np.isnan(body)
    if missing.any():
        fill = (impute - center) / scale
        body[missing] = np.broadcast_to(fill, body.shape)[missing]
    if use_bias:
        design[:, n_features] = 1.0
    return design


def label_scaling(kind: str, target: np.ndarray, normalize: bool, use_bias: bool) -> tuple[float, float]:
    """``(mean, scale)`` standardizing a regression target; ``(0, 1)`` for classifiers or without ``normalize``."""
    if kind != REGRESSOR or not normalize:
        return 0.0, 1.0
    mean = float(target.mean()) if use_bias else 0.0
    spread = float(target.std()) if use_bias else float(np.sqrt(np.mean(target**2)))
    return mean, spread if spread > 0 else 1.0


def training_target(kind: str, truth: np.ndarray, label: tuple[float, float]) -> np.ndarray:
    """The training target in the form :func:`algorithms._linear.loss_gradient` expects.

    Class indices (multiclass), a column of 0/1 labels (binary), or a column of regression
    targets standardized by ``label = (mean, scale)``.
    """
    if kind == MULTICLASS:
        return truth
    if kind == BINARY:
        return truth.astype(np.float64)[:, None]
    return ((truth - label[0]) / label[1])[:, None]


# -- a loaded model -----------------------------------------------------------------------------


def check_saved_model(model: LinearLearner) -> None:
    """Check the fitted attributes of a loaded model; raise ``ValueError`` if they are inconsistent.

    The files may come from another user, so everything prediction relies on (task, loss,
    shapes and kinds of the arrays, the binary decision settings) is verified at load time
    rather than failing later in an endpoint.
    """
    kind = model.predictor_type_
    if kind not in (REGRESSOR, BINARY, MULTICLASS):
        raise ValueError(f"saved model has an unknown predictor_type_ {kind!r}")
    if model.loss_ not in LOSSES[kind]:
        raise ValueError(f"saved model has loss_ {model.loss_!r}, which does not fit {kind!r}")
    n_features = model.n_features_in_
    if not isinstance(n_features, int) or n_features < 1:
        raise ValueError(f"saved model has an invalid n_features_in_ {n_features!r}")
    classes = model.classes_
    n_outputs = 1
    if kind != REGRESSOR:
        if classes is None or classes.ndim != 1 or classes.size < 2:
            raise ValueError("saved classifier lacks its classes_")
        n_outputs = classes.size if kind == MULTICLASS else 1
    coef_shape = (n_features,) if kind == REGRESSOR else (n_outputs, n_features)
    intercept_shape = () if kind == REGRESSOR else (n_outputs,)
    expected = {
        "coef_": coef_shape,
        "intercept_": intercept_shape,
        "impute_values_": (n_features,),
        "feature_mean_": (n_features,),
        "feature_scale_": (n_features,),
    }
    if model.class_weights_ is not None:
        expected["class_weights_"] = (0 if classes is None else classes.size,)
    for attr, shape in expected.items():
        value = np.asarray(getattr(model, attr))
        if value.shape != shape or value.dtype.kind not in "iuf":
            raise ValueError(f"saved model has {attr} of shape {value.shape}, expected {shape}")
    if kind == BINARY:
        calibration = model.proba_calibration_
        if not _finite_number(model.threshold_) or not (
            isinstance(calibration, list) and len(calibration) == 2 and all(map(_finite_number, calibration))
        ):
            raise ValueError("saved binary model lacks a finite threshold_ and proba_calibration_ [a, b]")
    if not isinstance(model.best_model_, int) or not 0 <= model.best_model_ < len(model.model_params_ or ()):
        raise ValueError(f"saved model has an invalid best_model_ {model.best_model_!r}")


def _finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and bool(np.isfinite(value))
