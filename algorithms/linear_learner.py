"""Linear learner: linear and logistic regression trained by mini-batch SGD or Adam.

In the spirit of SageMaker's Linear Learner: one algorithm for regression (squared loss), binary
classification (logistic loss) and multiclass classification (softmax cross-entropy), with
feature standardization, mean imputation of missing values, L1/L2 penalties, per-epoch metrics
and early stopping on the validation loss.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar, Self

import numpy as np

# Aliased: ``metrics`` is also the class attribute declaring the reported metrics.
from algorithms import metrics as metric_fns
from algorithms.base import Callback, Estimator, Hyperparameter, Metric

__all__ = ["PREDICTOR_TYPES", "LinearLearner"]

PREDICTOR_TYPES = ("auto", "regressor", "binary_classifier", "multiclass_classifier")
# With "auto", integer targets with more distinct values than this are treated as a regression
# target (ages, counts, prices) rather than as that many classes.
MAX_AUTO_CLASSES = 20

_REGRESSOR, _BINARY, _MULTICLASS = PREDICTOR_TYPES[1:]
_TASKS = {_REGRESSOR: "regression", _BINARY: "binary_classification", _MULTICLASS: "multiclass_classification"}
_ADAM_BETA1, _ADAM_BETA2, _ADAM_EPS = 0.9, 0.999, 1e-8


def _as_features(X: Any, name: str, n_features: int | None = None) -> np.ndarray:
    """Return ``X`` as a 2-D float64 array, or raise a ``ValueError`` a user can act on."""
    if X is None:
        raise ValueError(f"{name} is required")
    try:
        array = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{name} must contain only numbers (NaN allowed for missing values); "
            f"encode text or categorical columns first ({exc})"
        ) from None
    if array.ndim != 2:
        hint = f"; for a single feature use {name}.reshape(-1, 1)" if array.ndim == 1 else ""
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got {array.ndim}-D{hint}")
    if array.shape[0] == 0:
        raise ValueError(f"{name} has no rows")
    if array.shape[1] == 0:
        raise ValueError(f"{name} has no feature columns")
    if n_features is not None and array.shape[1] != n_features:
        raise ValueError(f"{name} has {array.shape[1]} features, but the model expects {n_features}")
    if np.isinf(array).any():
        raise ValueError(f"{name} contains infinite values; only finite numbers or NaN (missing) are allowed")
    return array


def _as_labels(y: Any, name: str, n_samples: int) -> np.ndarray:
    """Return ``y`` as a 1-D array of numbers or fixed-width strings (never object dtype)."""
    if y is None:
        raise ValueError(f"{name} is required: the linear learner is supervised")
    array = np.asarray(y)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D (n_samples,), got shape {array.shape}")
    if array.shape[0] != n_samples:
        raise ValueError(f"{name} has {array.shape[0]} values but X{name[1:]} has {n_samples} rows")
    if array.dtype.kind == "O":
        # Object arrays come from CSV readers and lists of mixed Python values; they must become
        # unicode or float so that classes_ can be saved without pickle.
        if all(isinstance(value, str) for value in array):
            array = array.astype(str)
        else:
            try:
                array = array.astype(np.float64)
            except (TypeError, ValueError):
                raise ValueError(
                    f"{name} mixes strings with other values (or holds None); use one label type"
                ) from None
    if array.dtype.kind not in "biufUS":
        raise ValueError(f"{name} has unsupported dtype {array.dtype}")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values; drop rows without a target")
    return array


def _preview(values: np.ndarray, limit: int = 10) -> str:
    shown = ", ".join(repr(value.item()) for value in values[:limit])
    return f"[{shown}{', ...' if values.size > limit else ''}]"


def _infer_predictor_type(y: np.ndarray) -> str:
    """Guess the task from the targets, as documented on the ``predictor_type`` hyperparameter."""
    if y.dtype.kind in "US":
        return _BINARY if np.unique(y).size == 2 else _MULTICLASS
    if y.dtype.kind == "b":
        return _BINARY
    distinct = np.unique(y)
    if y.dtype.kind == "f" and not np.all(distinct == np.round(distinct)):
        return _REGRESSOR
    if distinct.size > MAX_AUTO_CLASSES:
        return _REGRESSOR
    return _BINARY if distinct.size == 2 else _MULTICLASS


def _encode(classes: np.ndarray, y: np.ndarray, name: str) -> np.ndarray:
    """Map labels to indices into sorted ``classes``; reject labels unseen at training time."""
    if (y.dtype.kind in "US") != (classes.dtype.kind in "US"):
        raise ValueError(f"{name} labels have type {y.dtype}, but the classes are {_preview(classes)}")
    index = np.clip(np.searchsorted(classes, y), 0, classes.size - 1)
    unknown = classes[index] != y
    if unknown.any():
        raise ValueError(
            f"{name} contains labels not seen in training: {_preview(np.unique(y[unknown]))}; "
            f"known classes: {_preview(classes)}"
        )
    return index


def _sigmoid(z: np.ndarray) -> np.ndarray:
    # exp may overflow to inf for very negative z; 1 / inf is the correct limit 0.
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-z))


def _softmax(z: np.ndarray) -> np.ndarray:
    shifted = np.exp(z - z.max(axis=1, keepdims=True))
    shifted /= shifted.sum(axis=1, keepdims=True)
    return shifted


def _log_loss_from_logits(kind: str, z: np.ndarray, target: np.ndarray) -> float:
    """Mean cross-entropy computed from logits, exact where probabilities would round to 0 or 1."""
    if kind == _BINARY:
        return float(np.mean(np.logaddexp(0.0, z) - target * z))
    top = z.max(axis=1)
    log_norm = top + np.log(np.exp(z - top[:, None]).sum(axis=1))
    return float(np.mean(log_norm - z[np.arange(z.shape[0]), target]))


class LinearLearner(Estimator):
    """Linear model for regression, binary or multiclass classification.

    Trained by mini-batch Adam or SGD on standardized features; the model is the running
    average of the iterates over about the last epoch, which removes the jitter of a constant
    learning rate. Missing values (NaN) in ``X`` are replaced by the training column means.
    Classification accepts any label values (integers, strings, bools); they are exposed in
    ``classes_``.

    Parameters
    ----------
    predictor_type : {"auto", "regressor", "binary_classifier", "multiclass_classifier"}
        Task; ``"auto"`` infers it from ``y`` (non-integer floats or more than 20 distinct
        numbers -> regressor, 2 classes -> binary, otherwise multiclass).
    epochs : int
        Maximum passes over the training data.
    mini_batch_size : int
        Samples per optimizer step.
    learning_rate : float
        Step size of the optimizer.
    learning_rate_decay : float
        Factor applied to the learning rate after every epoch (1 keeps it constant).
    optimizer : {"adam", "sgd"}
        Optimizer.
    l1 : float
        L1 penalty on the weights (not the bias), in standardized feature space.
    wd : float
        L2 penalty (weight decay) on the weights, in standardized feature space.
    use_bias : bool
        Fit an intercept. Without it, features and labels are scaled but not centered, so the
        model passes through the origin of the original space.
    normalize_data : bool
        Standardize features with the training mean and standard deviation.
    normalize_label : bool
        Standardize the regression target; ignored by classifiers.
    early_stopping_patience : int
        Epochs without a relative improvement of the monitored loss before training stops.
    early_stopping_tolerance : float
        Relative loss improvement below which an epoch counts as no improvement.
    random_state : int
        Seed of the mini-batch shuffling.

    Attributes
    ----------
    predictor_type_ : str
        Resolved task.
    classes_ : ndarray of shape (n_classes,) or None
        Sorted class labels (classifiers only).
    coef_ : ndarray
        Weights in the original feature space: ``(n_features,)`` for a regressor,
        ``(1, n_features)`` binary, ``(n_classes, n_features)`` multiclass, as scikit-learn.
    intercept_ : float or ndarray
        Bias in the original feature space (``float`` for a regressor).
    n_features_in_ : int
        Number of features seen in ``fit``.
    impute_values_ : ndarray of shape (n_features,)
        Training column means that replace NaN.
    feature_mean_, feature_scale_ : ndarray of shape (n_features,)
        Standardization used during training (0 and 1 when disabled).
    label_mean_, label_scale_ : float
        Target standardization of a regressor (0 and 1 otherwise).
    n_epochs_ : int
        Epochs actually run.
    best_epoch_ : int
        Epoch whose weights were kept (lowest monitored loss).
    best_loss_ : float
        Monitored loss at ``best_epoch_``.
    monitor_ : str
        Metric watched by early stopping: ``"validation:loss"`` or ``"train:loss"``.
    stopped_early_ : bool
        Whether training ended before ``epochs`` (callback, early stopping or divergence).
    stop_reason_ : str or None
        ``"callback"``, ``"early_stopping"``, ``"diverged"`` or None.
    """

    name: ClassVar[str] = "linear-learner"
    title: ClassVar[str] = "Linear Learner"
    task: ClassVar[str] = "regression / binary classification / multiclass classification"
    input: ClassVar[str] = "tabular"
    hyperparameters: ClassVar[tuple[Hyperparameter, ...]] = (
        Hyperparameter(
            "predictor_type",
            "categorical",
            "auto",
            choices=PREDICTOR_TYPES,
            tunable=False,
            help="Task; auto infers it from the target column.",
        ),
        Hyperparameter("epochs", "int", 15, min=1, max=1000, help="Maximum passes over the training data."),
        Hyperparameter(
            "mini_batch_size", "int", 32, min=1, max=100_000, scale="log", help="Samples per optimizer step."
        ),
        Hyperparameter("learning_rate", "float", 0.1, min=1e-6, max=1.0, scale="log", help="Optimizer step size."),
        Hyperparameter(
            "learning_rate_decay",
            "float",
            1.0,
            min=0.01,
            max=1.0,
            help="Factor applied to the learning rate after every epoch; 1 keeps it constant.",
        ),
        Hyperparameter("optimizer", "categorical", "adam", choices=("adam", "sgd"), help="Optimizer."),
        Hyperparameter("l1", "float", 0.0, min=0.0, max=1.0, help="L1 penalty on the weights."),
        Hyperparameter("wd", "float", 0.0, min=0.0, max=1.0, help="L2 penalty (weight decay) on the weights."),
        Hyperparameter("use_bias", "bool", True, tunable=False, help="Fit an intercept term."),
        Hyperparameter("normalize_data", "bool", True, tunable=False, help="Standardize features (mean 0, std 1)."),
        Hyperparameter(
            "normalize_label",
            "bool",
            True,
            tunable=False,
            help="Standardize the target of a regressor; ignored by classifiers.",
        ),
        Hyperparameter(
            "early_stopping_patience",
            "int",
            3,
            min=1,
            max=1000,
            tunable=False,
            help="Epochs without improvement of the loss before training stops.",
        ),
        Hyperparameter(
            "early_stopping_tolerance",
            "float",
            0.001,
            min=0.0,
            max=1.0,
            tunable=False,
            help="Relative loss improvement that counts as progress.",
        ),
        Hyperparameter(
            "random_state", "int", 0, min=0, max=2**32 - 1, tunable=False, help="Seed of the data shuffling."
        ),
    )
    metrics: ClassVar[tuple[Metric, ...]] = (
        Metric("train:loss", "minimize"),
        Metric("validation:loss", "minimize"),
        Metric("train:rmse", "minimize"),
        Metric("validation:rmse", "minimize"),
        Metric("train:mae", "minimize"),
        Metric("validation:mae", "minimize"),
        Metric("train:r2", "maximize"),
        Metric("validation:r2", "maximize"),
        Metric("train:accuracy", "maximize"),
        Metric("validation:accuracy", "maximize"),
        Metric("train:auc", "maximize"),
        Metric("validation:auc", "maximize"),
        Metric("train:f1", "maximize"),
        Metric("validation:f1", "maximize"),
    )
    # The loss is the one metric every predictor type reports, so it is a safe default objective.
    default_objective: ClassVar[str] = "validation:loss"

    _fitted_arrays: ClassVar[tuple[str, ...]] = (
        "coef_",
        "intercept_",
        "classes_",
        "impute_values_",
        "feature_mean_",
        "feature_scale_",
    )
    _fitted_json: ClassVar[tuple[str, ...]] = (
        "predictor_type_",
        "n_features_in_",
        "label_mean_",
        "label_scale_",
        "n_epochs_",
        "best_epoch_",
        "best_loss_",
        "monitor_",
        "stopped_early_",
        "stop_reason_",
    )

    def __init__(
        self,
        predictor_type: str = "auto",
        epochs: int = 15,
        mini_batch_size: int = 32,
        learning_rate: float = 0.1,
        learning_rate_decay: float = 1.0,
        optimizer: str = "adam",
        l1: float = 0.0,
        wd: float = 0.0,
        use_bias: bool = True,
        normalize_data: bool = True,
        normalize_label: bool = True,
        early_stopping_patience: int = 3,
        early_stopping_tolerance: float = 0.001,
        random_state: int = 0,
    ) -> None:
        super().__init__(
            predictor_type=predictor_type,
            epochs=epochs,
            mini_batch_size=mini_batch_size,
            learning_rate=learning_rate,
            learning_rate_decay=learning_rate_decay,
            optimizer=optimizer,
            l1=l1,
            wd=wd,
            use_bias=use_bias,
            normalize_data=normalize_data,
            normalize_label=normalize_label,
            early_stopping_patience=early_stopping_patience,
            early_stopping_tolerance=early_stopping_tolerance,
            random_state=random_state,
        )

    # -- input checks --------------------------------------------------------------------------

    def _resolve_task(self, requested: str, y: np.ndarray) -> tuple[str, np.ndarray | None, np.ndarray]:
        """Return ``(predictor_type, classes, encoded targets)`` after checking ``y`` fits the task."""
        kind = _infer_predictor_type(y) if requested == "auto" else requested
        if kind == _REGRESSOR:
            if y.dtype.kind not in "biuf":
                raise ValueError(
                    f"predictor_type='regressor' needs a numeric y, got labels like {_preview(np.unique(y), 3)}"
                )
            return kind, None, y.astype(np.float64)
        classes, encoded = np.unique(y, return_inverse=True)
        if classes.size < 2:
            raise ValueError(f"classification needs at least 2 classes in y, got only {_preview(classes)}")
        if kind == _BINARY and classes.size != 2:
            raise ValueError(
                f"predictor_type='binary_classifier' needs exactly 2 classes in y, got {classes.size}: "
                f"{_preview(classes)}; use 'multiclass_classifier'"
            )
        return kind, classes, encoded.ravel()

    # -- training ------------------------------------------------------------------------------

    def fit(
        self,
        X: Any,
        y: Any = None,
        *,
        X_val: Any = None,
        y_val: Any = None,
        callback: Callback | None = None,
    ) -> Self:
        """Train on ``(X, y)``, optionally monitoring ``(X_val, y_val)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Numeric features; NaN marks a missing value.
        y : array-like of shape (n_samples,)
            Numeric targets (regressor) or labels of any type (classifiers).
        X_val, y_val : array-like, optional
            Validation data, given together. Early stopping watches its loss.
        callback : callable, optional
            ``callback(epoch, metrics)`` after each epoch (``epoch`` counts from 1) with
            ``train:loss`` and, per task, ``train:rmse`` / ``train:accuracy``; with validation
            data also ``validation:loss`` and ``validation:rmse, mae, r2`` (regressor),
            ``validation:accuracy, auc, f1`` (binary) or ``validation:accuracy, f1`` (multiclass,
            macro F1). Returning ``False`` stops training after that epoch.

        Returns
        -------
        LinearLearner
            ``self``, fitted with the weights of the best epoch.

        Raises
        ------
        HyperparameterError
            If a hyperparameter is invalid.
        ValueError
            If the data do not fit the task, or training diverges before any usable epoch.
        """
        params = self._validated_params()
        X_arr = _as_features(X, "X")
        y_arr = _as_labels(y, "y", X_arr.shape[0])
        # truth: targets in original units (regressor) or class indices, for metrics.
        kind, classes, train_truth = self._resolve_task(params["predictor_type"], y_arr)
        has_val = X_val is not None or y_val is not None
        if has_val:
            if X_val is None or y_val is None:
                raise ValueError("X_val and y_val must be given together")
            Xv_arr = _as_features(X_val, "X_val", X_arr.shape[1])
            yv_arr = _as_labels(y_val, "y_val", Xv_arr.shape[0])
            if classes is None:
                if yv_arr.dtype.kind not in "biuf":
                    raise ValueError("y_val must be numeric for a regressor")
                val_truth = yv_arr.astype(np.float64)
            else:
                val_truth = _encode(classes, yv_arr, "y_val")

        self.predictor_type_ = kind
        self.classes_ = classes
        self.n_features_in_ = X_arr.shape[1]
        use_bias = params["use_bias"]
        train_design = self._fit_preprocessing(X_arr, params)
        train_target = self._fit_target(kind, train_truth, params)
        val_design = self._design(Xv_arr) if has_val else None

        n_outputs = classes.size if kind == _MULTICLASS else 1
        theta = np.zeros((train_design.shape[1], n_outputs))
        # The model is the running average of the iterates, not the last iterate: with a constant
        # learning rate the iterates jitter around the optimum, and averaging over about one
        # epoch removes that noise without slowing the first epochs (Polyak-Ruppert averaging).
        averaged = theta.copy()
        best_theta = theta.copy()
        optimizer = _Optimizer(params["optimizer"], params["learning_rate"], theta.shape)
        rng = np.random.default_rng(params["random_state"])
        n_samples = train_design.shape[0]
        batch = min(params["mini_batch_size"], n_samples)
        steps_per_epoch = -(-n_samples // batch)
        step = 0
        n_weights = self.n_features_in_  # the bias row (last, when present) is not penalized
        l1, wd = params["l1"], params["wd"]
        patience, tolerance = params["early_stopping_patience"], params["early_stopping_tolerance"]

        monitor = "validation:loss" if has_val else "train:loss"
        reference = best_loss = np.inf
        best_epoch = 0
        since_improvement = 0
        stop_reason: str | None = None
        epoch = 0
        # Overflow/invalid warnings only happen when training diverges, which is detected below
        # and reported through stop_reason_ instead.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            for epoch in range(1, params["epochs"] + 1):
                order = rng.permutation(n_samples)
                shuffled_x = train_design[order]
                shuffled_t = train_target[order]
                for start in range(0, n_samples, batch):
                    xb = shuffled_x[start : start + batch]
                    grad_z = self._loss_gradient(kind, xb @ theta, shuffled_t[start : start + batch])
                    grad = xb.T @ grad_z
                    grad /= xb.shape[0]
                    if wd:
                        grad[:n_weights] += wd * theta[:n_weights]
                    if l1:
                        # Subgradient: simple and shared by both optimizers; weights hover near 0
                        # rather than land exactly on it.
                        grad[:n_weights] += l1 * np.sign(theta[:n_weights])
                    optimizer.step(theta, grad)
                    step += 1
                    averaged += (theta - averaged) * (1.0 / min(step, steps_per_epoch))
                optimizer.learning_rate *= params["learning_rate_decay"]

                metrics = self._epoch_metrics(kind, train_design @ averaged, train_truth, "train", False)
                if has_val:
                    metrics.update(self._epoch_metrics(kind, val_design @ averaged, val_truth, "validation", True))
                loss = metrics[monitor]
                if not np.all(np.isfinite(list(metrics.values()))) or not np.all(np.isfinite(averaged)):
                    stop_reason = "diverged"
                    break
                if loss < best_loss:
                    best_loss, best_epoch = loss, epoch
                    best_theta[...] = averaged
                # Patience counts epochs without a *relative* improvement over the last reference,
                # so a slow creep of tiny gains still ends training, as in SageMaker.
                if reference == np.inf or loss < reference - tolerance * abs(reference):
                    reference = loss
                    since_improvement = 0
                else:
                    since_improvement += 1
                if not self._emit(callback, epoch, metrics):
                    stop_reason = "callback"
                    break
                if since_improvement >= patience:
                    stop_reason = "early_stopping"
                    break

        if best_epoch == 0:
            raise ValueError(
                "training diverged in the first epoch (loss is not finite); lower learning_rate"
                + ("" if params["normalize_data"] else " or enable normalize_data")
            )
        self.n_epochs_ = epoch - 1 if stop_reason == "diverged" else epoch
        self.best_epoch_ = best_epoch
        self.best_loss_ = float(best_loss)
        self.monitor_ = monitor
        self.stop_reason_ = stop_reason
        self.stopped_early_ = stop_reason is not None
        self._store_weights(best_theta, use_bias)
        return self

    def _fit_preprocessing(self, X: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        """Learn imputation and scaling from ``X``; return the training design matrix."""
        missing = np.isnan(X)
        with warnings.catch_warnings():
            # An all-NaN column has no mean; it is imputed with 0 below, no warning needed.
            warnings.simplefilter("ignore", RuntimeWarning)
            impute = np.nanmean(X, axis=0) if missing.any() else X.mean(axis=0)
        self.impute_values_ = np.where(np.isfinite(impute), impute, 0.0)
        filled = np.where(missing, self.impute_values_, X) if missing.any() else X
        n_features = X.shape[1]
        if params["normalize_data"]:
            center = filled.mean(axis=0) if params["use_bias"] else np.zeros(n_features)
            scale = filled.std(axis=0)
            # Constant columns carry no information; scale 1 avoids dividing by zero.
            scale[~(scale > 1e-12 * np.maximum(1.0, np.abs(center)))] = 1.0
        else:
            center, scale = np.zeros(n_features), np.ones(n_features)
        self.feature_mean_, self.feature_scale_ = center, scale
        self._use_bias = params["use_bias"]
        return self._design(X)

    def _design(self, X: np.ndarray) -> np.ndarray:
        """Impute, standardize and append the bias column, in one new float64 array."""
        n_samples, n_features = X.shape
        design = np.empty((n_samples, n_features + int(self._use_bias)))
        body = design[:, :n_features]
        np.subtract(X, self.feature_mean_, out=body)
        body /= self.feature_scale_
        missing = np.isnan(body)
        if missing.any():
            fill = (self.impute_values_ - self.feature_mean_) / self.feature_scale_
            body[missing] = np.broadcast_to(fill, body.shape)[missing]
        if self._use_bias:
            design[:, n_features] = 1.0
        return design

    def _fit_target(self, kind: str, target: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        """Return the training target in the form the loss gradient expects."""
        self.label_mean_, self.label_scale_ = 0.0, 1.0
        if kind == _MULTICLASS:
            return target  # class indices
        if kind == _BINARY:
            return target.astype(np.float64)[:, None]
        if params["normalize_label"]:
            self.label_mean_ = float(target.mean()) if params["use_bias"] else 0.0
            spread = float(target.std()) if params["use_bias"] else float(np.sqrt(np.mean(target**2)))
            self.label_scale_ = spread if spread > 0 else 1.0
        return ((target - self.label_mean_) / self.label_scale_)[:, None]

    @staticmethod
    def _loss_gradient(kind: str, z: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Gradient of the per-sample loss with respect to the outputs ``z`` (not yet averaged)."""
        if kind == _REGRESSOR:
            return z - target
        if kind == _BINARY:
            return _sigmoid(z) - target
        grad = _softmax(z)
        grad[np.arange(z.shape[0]), target] -= 1.0
        return grad

    def _epoch_metrics(self, kind: str, z: np.ndarray, truth: np.ndarray, channel: str, full: bool) -> dict[str, float]:
        """Metrics of one channel from training-space outputs ``z`` of shape (n_samples, n_outputs)."""
        if kind == _REGRESSOR:
            return _channel_metrics(kind, z[:, 0] * self.label_scale_ + self.label_mean_, truth, channel, full)
        return _channel_metrics(kind, z[:, 0] if kind == _BINARY else z, truth, channel, full)

    def _store_weights(self, theta: np.ndarray, use_bias: bool) -> None:
        """Express the trained weights in the original feature (and label) space."""
        n_features = self.n_features_in_
        weights = theta[:n_features] / self.feature_scale_[:, None]
        bias = theta[n_features] if use_bias else np.zeros(theta.shape[1])
        bias = bias - self.feature_mean_ @ weights
        if self.predictor_type_ == _REGRESSOR:
            self.coef_ = weights[:, 0] * self.label_scale_
            self.intercept_ = float(bias[0] * self.label_scale_ + self.label_mean_)
        else:
            self.coef_ = np.ascontiguousarray(weights.T)
            self.intercept_ = bias

    def _after_load(self) -> None:
        kind = self.predictor_type_
        if kind not in PREDICTOR_TYPES[1:]:
            raise ValueError(f"saved model has an unknown predictor_type_ {kind!r}")
        n_features = self.n_features_in_
        if not isinstance(n_features, int) or n_features < 1:
            raise ValueError(f"saved model has an invalid n_features_in_ {n_features!r}")
        n_outputs = 1
        if kind != _REGRESSOR:
            if self.classes_ is None or self.classes_.ndim != 1 or self.classes_.size < 2:
                raise ValueError("saved classifier lacks its classes_")
            n_outputs = self.classes_.size if kind == _MULTICLASS else 1
        coef_shape = (n_features,) if kind == _REGRESSOR else (n_outputs, n_features)
        intercept_shape = () if kind == _REGRESSOR else (n_outputs,)
        expected = {
            "coef_": coef_shape,
            "intercept_": intercept_shape,
            "impute_values_": (n_features,),
            "feature_mean_": (n_features,),
            "feature_scale_": (n_features,),
        }
        for attr, shape in expected.items():
            value = np.asarray(getattr(self, attr))
            if value.shape != shape or value.dtype.kind not in "iuf":
                raise ValueError(f"saved model has {attr} of shape {value.shape}, expected {shape}")
        if kind == _REGRESSOR:
            self.intercept_ = float(self.intercept_)

    # -- inference -----------------------------------------------------------------------------

    def _prepare(self, X: Any) -> np.ndarray:
        self._check_is_fitted()
        array = _as_features(X, "X", self.n_features_in_)
        missing = np.isnan(array)
        return np.where(missing, self.impute_values_, array) if missing.any() else array

    def decision_function(self, X: Any) -> np.ndarray:
        """Raw model output.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray
            Predictions (regressor), logits of ``classes_[1]`` of shape (n_samples,) (binary) or
            logits of shape (n_samples, n_classes) (multiclass).
        """
        z = self._prepare(X) @ np.atleast_2d(self.coef_).T + self.intercept_
        return z[:, 0] if z.shape[1] == 1 else z

    @property
    def task_(self) -> str:
        """What the fitted model does, in the vocabulary shared by every estimator."""
        return _TASKS[self.predictor_type_]

    def predict(self, X: Any) -> np.ndarray:
        """Predict targets (regressor) or class labels (classifiers).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            NaN values are imputed with the training means.

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        z = self.decision_function(X)
        if self.predictor_type_ == _REGRESSOR:
            return z
        assert self.classes_ is not None
        index = (z > 0).astype(np.intp) if z.ndim == 1 else z.argmax(axis=1)
        return self.classes_[index]

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns in the order of ``classes_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Rows sum to 1.

        Raises
        ------
        AttributeError
            For a regressor, which has no probabilities.
        """
        self._check_is_fitted()
        if self.predictor_type_ == _REGRESSOR:
            raise AttributeError("predict_proba is only available for classifiers, not a regressor")
        z = self.decision_function(X)
        if z.ndim == 1:
            positive = _sigmoid(z)
            return np.column_stack([1.0 - positive, positive])
        return _softmax(z)

    def score(self, X: Any, y: Any) -> float:
        """Accuracy (classifiers) or R^2 (regressor), as scikit-learn's ``score``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)

        Returns
        -------
        float
        """
        prediction = self.predict(X)
        truth = _as_labels(y, "y", prediction.shape[0])
        if self.predictor_type_ == _REGRESSOR:
            return metric_fns.r2(truth, prediction)
        return metric_fns.accuracy(truth, prediction)

    def evaluate(self, X: Any, y: Any = None, *, channel: str = "validation") -> dict[str, float]:
        """Final metrics of the fitted model on one channel.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        channel : {"train", "validation"}
            Prefix of the metric names.

        Returns
        -------
        dict of str to float
            ``<channel>:loss`` plus ``rmse, mae, r2`` (regressor), ``accuracy, auc, f1`` (binary;
            ``auc`` omitted when ``y`` holds one class) or ``accuracy, f1`` (multiclass, macro).
        """
        if channel not in ("train", "validation"):
            raise ValueError(f"channel must be 'train' or 'validation', got {channel!r}")
        z = self.decision_function(X)
        labels = _as_labels(y, "y", z.shape[0])
        if self.predictor_type_ == _REGRESSOR:
            if labels.dtype.kind not in "biuf":
                raise ValueError("y must be numeric for a regressor")
            return _channel_metrics(_REGRESSOR, z, labels.astype(np.float64), channel, True)
        return _channel_metrics(self.predictor_type_, z, _encode(self.classes_, labels, "y"), channel, True)


def _channel_metrics(kind: str, scores: np.ndarray, truth: np.ndarray, channel: str, full: bool) -> dict[str, float]:
    """Metrics of one channel.

    Parameters
    ----------
    kind : str
        Resolved predictor type.
    scores : ndarray
        Predictions in target units (regressor), logits of class 1 (binary), or logits
        (n_samples, n_classes) (multiclass).
    truth : ndarray
        Targets (regressor) or class indices (classifiers).
    channel : str
        Metric name prefix.
    full : bool
        Whether to add the slower metrics (MAE, R^2, AUC, F1) that per-epoch train metrics skip.
    """
    out: dict[str, float] = {}
    if kind == _REGRESSOR:
        out["loss"] = metric_fns.mse(truth, scores)
        out["rmse"] = float(np.sqrt(out["loss"]))
        if full:
            out["mae"] = metric_fns.mae(truth, scores)
            out["r2"] = metric_fns.r2(truth, scores)
    elif kind == _BINARY:
        predicted = (scores > 0).astype(np.intp)
        out["loss"] = _log_loss_from_logits(kind, scores, truth)
        out["accuracy"] = metric_fns.accuracy(truth, predicted)
        if full:
            # AUC is undefined for a one-class sample; leaving it out beats reporting NaN.
            if 0 < truth.sum() < truth.size:
                out["auc"] = metric_fns.roc_auc(truth, scores)
            out["f1"] = metric_fns.f1_score(truth, predicted, average="binary", pos_label=1)
    else:
        predicted = scores.argmax(axis=1)
        out["loss"] = _log_loss_from_logits(kind, scores, truth)
        out["accuracy"] = metric_fns.accuracy(truth, predicted)
        if full:
            out["f1"] = metric_fns.f1_score(truth, predicted, average="macro")
    return {f"{channel}:{key}": value for key, value in out.items()}


class _Optimizer:
    """In-place Adam or plain SGD over one parameter matrix."""

    def __init__(self, kind: str, learning_rate: float, shape: tuple[int, ...]) -> None:
        self.kind = kind
        self.learning_rate = learning_rate
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
