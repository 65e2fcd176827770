"""Linear learner: linear models for regression and classification, many trained at once.

In the spirit of SageMaker's Linear Learner: one algorithm for regression (squared or absolute
loss), binary classification (logistic or hinge loss) and multiclass classification (softmax
cross-entropy), with feature standardization, mean imputation of missing values, L1/L2 penalties,
class weights, per-epoch metrics and early stopping. It trains ``num_models`` variants with
different learning rates and penalties in one pass over the data, keeps the one that does best on
the validation data, and for binary problems tunes the decision threshold to a chosen criterion.
The numerical core lives in :mod:`algorithms._linear`.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar, Self

import numpy as np

# Aliased: ``metrics`` is also the class attribute declaring the reported metrics.
from algorithms import metrics as metric_fns
from algorithms._linear import (
    BINARY,
    LOSSES,
    MAX_AUTO_CLASSES,
    MULTICLASS,
    REGRESSOR,
    THRESHOLD_CRITERIA,
    as_features,
    as_labels,
    class_weights,
    encode,
    model_grid,
    resolve_task,
    sigmoid,
    softmax,
    train_models,
)
from algorithms._linear_selection import channel_metrics, select_model
from algorithms.base import Callback, Estimator, Hyperparameter, Metric

__all__ = ["LOSS_CHOICES", "MAX_AUTO_CLASSES", "PREDICTOR_TYPES", "SELECTION_CRITERIA", "LinearLearner"]

PREDICTOR_TYPES = ("auto", REGRESSOR, BINARY, MULTICLASS)
LOSS_CHOICES = ("auto", "squared_loss", "absolute_loss", "logistic", "softmax_loss", "hinge_loss")
SELECTION_CRITERIA = (*THRESHOLD_CRITERIA, "cross_entropy_loss", "loss_function")
# A mini-batch of every model is a (batch, num_models * n_outputs) matrix; beyond this many
# elements (512 MB in float64) the parallel models would rather exhaust memory than speed anything up.
_MAX_BATCH_ELEMENTS = 2**26

_TASKS = {REGRESSOR: "regression", BINARY: "binary_classification", MULTICLASS: "multiclass_classification"}
_METRIC_NAMES = (
    *(("loss", "minimize"), ("rmse", "minimize"), ("mae", "minimize"), ("r2", "maximize")),
    *(("accuracy", "maximize"), ("precision", "maximize"), ("recall", "maximize"), ("f1", "maximize")),
    *(("auc", "maximize"), ("log_loss", "minimize")),
)


class LinearLearner(Estimator):
    """Linear model for regression, binary or multiclass classification, trained as many variants.

    Trained by mini-batch Adam or SGD on standardized features; each model is the running
    average of its iterates over about the last epoch, which removes the jitter of a constant
    learning rate. ``num_models`` models with different learning rates and penalties train
    together (one matrix product per mini-batch for all of them); the best on the validation
    data (the training data when there is none) is kept. Missing values (NaN) in ``X`` are
    replaced by the training column means. Classification accepts any label values (integers,
    strings, bools); they are exposed in ``classes_``.

    Parameters
    ----------
    predictor_type : {"auto", "regressor", "binary_classifier", "multiclass_classifier"}
        Task; ``"auto"`` follows an explicit ``loss``, or else infers it from ``y`` (non-integer
        floats or more than 20 distinct numbers -> regressor, 2 classes -> binary, otherwise
        multiclass).
    epochs : int
        Maximum passes over the training data.
    mini_batch_size : int
        Samples per optimizer step.
    learning_rate : float
        Step size of the optimizer, used exactly by model 0.
    learning_rate_decay : float
        Factor applied to the learning rates after every epoch (1 keeps them constant).
    optimizer : {"adam", "sgd"}
        Optimizer.
    loss : {"auto", "squared_loss", "absolute_loss", "logistic", "softmax_loss", "hinge_loss"}
        Training loss. ``"auto"``: squared (regressor), logistic (binary), softmax (multiclass).
        ``absolute_loss`` fits the conditional median; ``hinge_loss`` is a linear SVM, whose
        ``predict_proba`` comes from a logistic (Platt) calibration of the margin.
    num_models : int
        Models trained in parallel. Model 0 uses the given ``learning_rate``, ``wd`` and ``l1``;
        the others spread them on a log grid (see :func:`algorithms._linear.model_grid`).
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
    positive_example_weight_mult : float
        Weight of positive examples relative to negatives (binary only); 0 balances the two
        classes. Weights are rescaled to average 1 over the training data.
    balance_multiclass_weights : bool
        Weight each class by ``n_samples / (n_classes * class_count)`` (multiclass only).
    binary_classifier_model_selection_criteria : str
        How a binary model and its decision threshold are chosen on the validation (else
        training) data: ``"accuracy"`` (class-weighted), ``"f1"``, ``"precision_at_target_recall"``,
        ``"recall_at_target_precision"`` tune the threshold; ``"cross_entropy_loss"`` and
        ``"loss_function"`` choose by loss and keep the threshold at margin 0.
    target_recall, target_precision : float
        Constraints of the two ``*_at_target_*`` criteria.
    early_stopping_patience : int
        Epochs without a relative improvement of the best model's loss before training stops.
    early_stopping_tolerance : float
        Relative loss improvement below which an epoch counts as no improvement.
    random_state : int
        Seed of the mini-batch shuffling.

    Attributes
    ----------
    predictor_type_, loss_ : str
        Resolved task and loss.
    classes_ : ndarray of shape (n_classes,) or None
        Sorted class labels (classifiers only).
    coef_ : ndarray
        Weights of the chosen model in the original feature space: ``(n_features,)`` for a
        regressor, ``(1, n_features)`` binary, ``(n_classes, n_features)`` multiclass.
    intercept_ : float or ndarray
        Bias in the original feature space (``float`` for a regressor).
    threshold_ : float or None
        Binary: ``predict`` says ``classes_[1]`` where ``decision_function(X) > threshold_``.
    proba_calibration_ : list of 2 floats or None
        Binary: ``predict_proba`` is ``sigmoid(a * decision_function(X) + b)`` for ``[a, b]``
        (``[1, 0]`` for the logistic loss).
    class_weights_ : ndarray of shape (n_classes,) or None
        Weight of each class in the loss, or None when all are 1.
    n_features_in_ : int
        Number of features seen in ``fit``.
    impute_values_ : ndarray of shape (n_features,)
        Training column means that replace NaN.
    feature_mean_, feature_scale_ : ndarray of shape (n_features,)
        Standardization used during training (0 and 1 when disabled).
    label_mean_, label_scale_ : float
        Target standardization of a regressor (0 and 1 otherwise).
    best_model_ : int
        Index of the chosen model in ``model_params_``.
    model_params_ : list of dict
        ``{"learning_rate", "wd", "l1"}`` of every parallel model.
    model_scores_ : list of float or None
        Each model's value of ``selection_metric_`` at its own best epoch (None: never finite;
        -1: ``target_precision`` out of reach).
    selection_metric_ : str
        What chose the model, e.g. ``"validation:loss"`` or ``"validation:f1"``.
    n_epochs_ : int
        Epochs actually run.
    best_epoch_ : int
        Epoch whose weights of the chosen model were kept (its lowest monitored loss).
    best_loss_ : float
        Monitored loss of the chosen model at ``best_epoch_``.
    monitor_ : str
        Loss watched by early stopping: ``"validation:loss"`` or ``"train:loss"``.
    stopped_early_ : bool
        Whether training ended before ``epochs`` (callback, early stopping or divergence).
    stop_reason_ : str or None
        ``"callback"``, ``"early_stopping"``, ``"diverged"`` (every model) or None.
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
            help="Task; auto follows the loss, or infers the task from the target column.",
        ),
        Hyperparameter("epochs", "int", 15, min=1, max=1000, help="Maximum passes over the training data."),
        Hyperparameter(
            "mini_batch_size", "int", 32, min=1, max=100_000, scale="log", help="Samples per optimizer step."
        ),
        Hyperparameter(
            "learning_rate",
            "float",
            0.1,
            min=1e-6,
            max=1.0,
            scale="log",
            help="Optimizer step size of the first model; the other parallel models try 10^-3.5 to 10 times it.",
        ),
        Hyperparameter(
            "learning_rate_decay",
            "float",
            1.0,
            min=0.01,
            max=1.0,
            help="Factor applied to the learning rate after every epoch; 1 keeps it constant.",
        ),
        Hyperparameter("optimizer", "categorical", "adam", choices=("adam", "sgd"), help="Optimizer."),
        Hyperparameter(
            "loss",
            "categorical",
            "auto",
            choices=LOSS_CHOICES,
            tunable=False,
            help="Training loss. auto: squared (regressor), logistic (binary), softmax (multiclass). "
            "absolute_loss fits the median; hinge_loss is a linear SVM (binary).",
        ),
        Hyperparameter(
            "num_models",
            "int",
            32,
            min=1,
            max=64,
            tunable=False,
            help="Models trained at once with different learning rates and penalties; the best on "
            "validation data is kept. 1 trains exactly the given settings.",
        ),
        Hyperparameter(
            "l1", "float", 0.0, min=0.0, max=1.0, help="L1 penalty on the weights; when > 0, models also try 0.1x-10x."
        ),
        Hyperparameter(
            "wd",
            "float",
            0.0,
            min=0.0,
            max=1.0,
            help="L2 penalty (weight decay) on the weights; other models try values around it (1e-6 to 0.1 if 0).",
        ),
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
            "positive_example_weight_mult",
            "float",
            1.0,
            min=0.0,
            max=1e6,
            tunable=False,
            help="Binary: weight of positive examples relative to negatives; 0 = auto, balance the two classes.",
        ),
        Hyperparameter(
            "balance_multiclass_weights",
            "bool",
            False,
            tunable=False,
            help="Multiclass: weight classes inversely to their frequency so each counts equally.",
        ),
        Hyperparameter(
            "binary_classifier_model_selection_criteria",
            "categorical",
            "accuracy",
            choices=SELECTION_CRITERIA,
            tunable=False,
            help="Binary: what picks the model and its decision threshold on validation (else training) data. "
            "cross_entropy_loss and loss_function keep the threshold at 0.",
        ),
        Hyperparameter(
            "target_recall",
            "float",
            0.8,
            min=0.0,
            max=1.0,
            tunable=False,
            help="Recall that precision_at_target_recall must reach.",
        ),
        Hyperparameter(
            "target_precision",
            "float",
            0.8,
            min=0.0,
            max=1.0,
            tunable=False,
            help="Precision that recall_at_target_precision must reach.",
        ),
        Hyperparameter(
            "early_stopping_patience",
            "int",
            3,
            min=1,
            max=1000,
            tunable=False,
            help="Epochs without improvement of the best model's loss before training stops.",
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
    metrics: ClassVar[tuple[Metric, ...]] = tuple(
        Metric(f"{channel}:{name}", direction)
        for name, direction in _METRIC_NAMES
        for channel in ("train", "validation")
    )
    # The loss is the one metric every predictor type reports, so it is a safe default objective.
    default_objective: ClassVar[str] = "validation:loss"

    _fitted_arrays: ClassVar[tuple[str, ...]] = (
        "coef_",
        "intercept_",
        "classes_",
        "class_weights_",
        "impute_values_",
        "feature_mean_",
        "feature_scale_",
    )
    _fitted_json: ClassVar[tuple[str, ...]] = (
        "predictor_type_",
        "loss_",
        "n_features_in_",
        "label_mean_",
        "label_scale_",
        "threshold_",
        "proba_calibration_",
        "best_model_",
        "model_params_",
        "model_scores_",
        "selection_metric_",
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
        loss: str = "auto",
        num_models: int = 32,
        l1: float = 0.0,
        wd: float = 0.0,
        use_bias: bool = True,
        normalize_data: bool = True,
        normalize_label: bool = True,
        positive_example_weight_mult: float = 1.0,
        balance_multiclass_weights: bool = False,
        binary_classifier_model_selection_criteria: str = "accuracy",
        target_recall: float = 0.8,
        target_precision: float = 0.8,
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
            loss=loss,
            num_models=num_models,
            l1=l1,
            wd=wd,
            use_bias=use_bias,
            normalize_data=normalize_data,
            normalize_label=normalize_label,
            positive_example_weight_mult=positive_example_weight_mult,
            balance_multiclass_weights=balance_multiclass_weights,
            binary_classifier_model_selection_criteria=binary_classifier_model_selection_criteria,
            target_recall=target_recall,
            target_precision=target_precision,
            early_stopping_patience=early_stopping_patience,
            early_stopping_tolerance=early_stopping_tolerance,
            random_state=random_state,
        )

    @classmethod
    def _check_combination(cls, values: dict[str, Any]) -> dict[str, list[str]]:
        kind, loss = values["predictor_type"], values["loss"]
        if kind != "auto" and loss != "auto" and loss not in LOSSES[kind]:
            allowed = ", ".join(("auto", *LOSSES[kind]))
            return {"loss": [f"loss {loss!r} does not fit predictor_type {kind!r}; use one of {allowed}"]}
        return {}

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
        """Train every parallel model on ``(X, y)`` and keep the best.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Numeric features, float32 or float64 (computed in float64); NaN marks a missing value.
        y : array-like of shape (n_samples,)
            Numeric targets (regressor) or labels of any type (classifiers).
        X_val, y_val : array-like, optional
            Validation data, given together. Model selection, the binary threshold and early
            stopping use it; without it they use the training data.
        callback : callable, optional
            ``callback(epoch, metrics)`` after each epoch (``epoch`` counts from 1) with the
            metrics of the model whose monitored loss is lowest at that epoch:
            ``train:loss, rmse, mae, r2`` (regressor) or ``train:loss, accuracy, precision,
            recall, f1`` and ``log_loss`` (classifiers; not for hinge before calibration), the
            same for ``validation:`` plus ``validation:auc`` (binary). Epoch metrics use the
            decision threshold 0. Returning ``False`` stops training after that epoch.

        Returns
        -------
        LinearLearner
            ``self``, fitted with the chosen model at its best epoch.

        Raises
        ------
        HyperparameterError
            If a hyperparameter is invalid.
        ValueError
            If the data do not fit the task, or every model diverges before a usable epoch.
        """
        params = self._validated_params()
        X_arr = as_features(X, "X")
        y_arr = as_labels(y, "y", X_arr.shape[0])
        # truth: targets in original units (regressor) or class indices, for metrics.
        kind, loss, classes, train_truth = resolve_task(params["predictor_type"], params["loss"], y_arr)
        has_val = X_val is not None or y_val is not None
        if has_val:
            if X_val is None or y_val is None:
                raise ValueError("X_val and y_val must be given together")
            Xv_arr = as_features(X_val, "X_val", X_arr.shape[1])
            yv_arr = as_labels(y_val, "y_val", Xv_arr.shape[0])
            if classes is None:
                if yv_arr.dtype.kind not in "biuf":
                    raise ValueError("y_val must be numeric for a regressor")
                val_truth = yv_arr.astype(np.float64)
            else:
                val_truth = encode(classes, yv_arr, "y_val")

        n_outputs = classes.size if kind == MULTICLASS else 1
        specs = model_grid(params["num_models"], params["learning_rate"], params["wd"], params["l1"])
        batch = min(params["mini_batch_size"], X_arr.shape[0])
        if len(specs) > 1 and batch * len(specs) * n_outputs > _MAX_BATCH_ELEMENTS:
            raise ValueError(
                f"num_models={len(specs)} x {n_outputs} outputs x mini_batch_size={batch} needs too much memory; "
                "lower num_models or mini_batch_size"
            )

        self.predictor_type_, self.loss_, self.classes_ = kind, loss, classes
        self.n_features_in_ = X_arr.shape[1]
        self.model_params_ = [spec.to_dict() for spec in specs]
        train_design = self._fit_preprocessing(X_arr, params)
        train_target = self._fit_target(kind, train_truth, params)
        self.class_weights_ = class_weights(
            kind, train_truth, params["positive_example_weight_mult"], params["balance_multiclass_weights"]
        )
        weights = self.class_weights_
        train = (train_design, train_truth, None if weights is None else weights[train_truth])
        val = (self._design(Xv_arr), val_truth, None if weights is None else weights[val_truth]) if has_val else None
        monitored = val if val is not None else train

        def report(epoch: int, leader: np.ndarray) -> bool:
            metrics = self._epoch_metrics(leader, *train, "train", full=False)
            if val is not None:
                metrics.update(self._epoch_metrics(leader, *val, "validation", full=True))
            return self._emit(callback, epoch, metrics)

        # Overflow/invalid warnings only happen when a model diverges, which train_models detects:
        # that model is dropped, and stop_reason_ says so once all of them are.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            run = train_models(
                loss,
                specs,
                n_outputs,
                (train_design, train_target, train[2]),
                monitored,
                params,
                n_weights=self.n_features_in_,
                label=(self.label_mean_, self.label_scale_),
                report=report,
            )
        if not run.best_epoch.any():
            raise ValueError(
                "training diverged in the first epoch (loss is not finite); lower learning_rate"
                + ("" if params["normalize_data"] else " or enable normalize_data")
            )
        self.n_epochs_ = run.n_epochs
        self.monitor_ = "validation:loss" if has_val else "train:loss"
        self.stop_reason_ = run.stop_reason
        self.stopped_early_ = run.stop_reason is not None

        # Each model at its own best epoch competes; a binary model also gets its threshold here.
        criterion = params["binary_classifier_model_selection_criteria"] if kind == BINARY else None
        chosen = select_model(
            run,
            monitored,
            loss,
            criterion,
            target_recall=params["target_recall"],
            target_precision=params["target_precision"],
            class_weights=None if weights is None else tuple(weights),
        )
        self.best_model_, self.model_scores_ = chosen.index, chosen.scores
        self.selection_metric_ = f"{'validation' if has_val else 'train'}:{chosen.metric}"
        self.threshold_ = chosen.threshold if criterion else None
        self.proba_calibration_ = list(chosen.calibration) if criterion else None
        self.best_epoch_ = int(run.best_epoch[chosen.index])
        self.best_loss_ = float(run.best_loss[chosen.index])
        columns = slice(chosen.index * n_outputs, (chosen.index + 1) * n_outputs)
        self._store_weights(run.best_theta[:, columns], params["use_bias"])
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
        if kind == MULTICLASS:
            return target  # class indices
        if kind == BINARY:
            return target.astype(np.float64)[:, None]
        if params["normalize_label"]:
            self.label_mean_ = float(target.mean()) if params["use_bias"] else 0.0
            spread = float(target.std()) if params["use_bias"] else float(np.sqrt(np.mean(target**2)))
            self.label_scale_ = spread if spread > 0 else 1.0
        return ((target - self.label_mean_) / self.label_scale_)[:, None]

    def _epoch_metrics(
        self,
        theta: np.ndarray,
        design: np.ndarray,
        truth: np.ndarray,
        weights: np.ndarray | None,
        channel: str,
        *,
        full: bool,
    ) -> dict[str, float]:
        """Metrics of one model (``theta`` of shape (n_inputs, n_outputs)) on one channel."""
        z = design @ theta
        kind = self.predictor_type_
        if kind == REGRESSOR:
            scores = z[:, 0] * self.label_scale_ + self.label_mean_
        else:
            scores = z[:, 0] if kind == BINARY else z
        # A hinge model has no probabilities until it is calibrated after training.
        calibration = (1.0, 0.0) if self.loss_ == "logistic" else None
        return channel_metrics(
            kind, self.loss_, scores, truth, channel, weights=weights, calibration=calibration, full=full
        )

    def _store_weights(self, theta: np.ndarray, use_bias: bool) -> None:
        """Express the trained weights in the original feature (and label) space."""
        n_features = self.n_features_in_
        weights = theta[:n_features] / self.feature_scale_[:, None]
        bias = theta[n_features] if use_bias else np.zeros(theta.shape[1])
        bias = bias - self.feature_mean_ @ weights
        if self.predictor_type_ == REGRESSOR:
            self.coef_ = weights[:, 0] * self.label_scale_
            self.intercept_ = float(bias[0] * self.label_scale_ + self.label_mean_)
        else:
            self.coef_ = np.ascontiguousarray(weights.T)
            self.intercept_ = bias

    def _after_load(self) -> None:
        kind = self.predictor_type_
        if kind not in PREDICTOR_TYPES[1:]:
            raise ValueError(f"saved model has an unknown predictor_type_ {kind!r}")
        if self.loss_ not in LOSSES[kind]:
            raise ValueError(f"saved model has loss_ {self.loss_!r}, which does not fit {kind!r}")
        n_features = self.n_features_in_
        if not isinstance(n_features, int) or n_features < 1:
            raise ValueError(f"saved model has an invalid n_features_in_ {n_features!r}")
        n_outputs = 1
        if kind != REGRESSOR:
            if self.classes_ is None or self.classes_.ndim != 1 or self.classes_.size < 2:
                raise ValueError("saved classifier lacks its classes_")
            n_outputs = self.classes_.size if kind == MULTICLASS else 1
        coef_shape = (n_features,) if kind == REGRESSOR else (n_outputs, n_features)
        intercept_shape = () if kind == REGRESSOR else (n_outputs,)
        expected = {
            "coef_": coef_shape,
            "intercept_": intercept_shape,
            "impute_values_": (n_features,),
            "feature_mean_": (n_features,),
            "feature_scale_": (n_features,),
        }
        if self.class_weights_ is not None:
            expected["class_weights_"] = (0 if self.classes_ is None else self.classes_.size,)
        for attr, shape in expected.items():
            value = np.asarray(getattr(self, attr))
            if value.shape != shape or value.dtype.kind not in "iuf":
                raise ValueError(f"saved model has {attr} of shape {value.shape}, expected {shape}")
        if kind == REGRESSOR:
            self.intercept_ = float(self.intercept_)
        if kind == BINARY:
            calibration = self.proba_calibration_
            if not _finite_number(self.threshold_) or not (
                isinstance(calibration, list) and len(calibration) == 2 and all(map(_finite_number, calibration))
            ):
                raise ValueError("saved binary model lacks a finite threshold_ and proba_calibration_ [a, b]")
            self.threshold_ = float(self.threshold_)
        if not isinstance(self.best_model_, int) or not 0 <= self.best_model_ < len(self.model_params_ or ()):
            raise ValueError(f"saved model has an invalid best_model_ {self.best_model_!r}")

    # -- inference -----------------------------------------------------------------------------

    def _prepare(self, X: Any) -> np.ndarray:
        self._check_is_fitted()
        array = as_features(X, "X", self.n_features_in_)
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
            Predictions (regressor), margins of ``classes_[1]`` of shape (n_samples,) (binary;
            logits for the logistic loss) or logits of shape (n_samples, n_classes) (multiclass).
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
            Binary models say ``classes_[1]`` where the margin exceeds ``threshold_``.
        """
        z = self.decision_function(X)
        if self.predictor_type_ == REGRESSOR:
            return z
        assert self.classes_ is not None
        index = (z > self.threshold_).astype(np.intp) if z.ndim == 1 else z.argmax(axis=1)
        return self.classes_[index]

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns in the order of ``classes_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Rows sum to 1. Binary: ``sigmoid(a * margin + b)`` with ``[a, b] = proba_calibration_``,
            so a tuned ``threshold_`` can make ``predict`` differ from the likelier class.

        Raises
        ------
        AttributeError
            For a regressor, which has no probabilities.
        """
        self._check_is_fitted()
        if self.predictor_type_ == REGRESSOR:
            raise AttributeError("predict_proba is only available for classifiers, not a regressor")
        z = self.decision_function(X)
        if z.ndim == 1:
            a, b = self.proba_calibration_
            positive = sigmoid(a * z + b)
            return np.column_stack([1.0 - positive, positive])
        return softmax(z)

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
        truth = as_labels(y, "y", prediction.shape[0])
        if self.predictor_type_ == REGRESSOR:
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
            ``<channel>:loss`` (the class-weighted training loss) plus ``rmse, mae, r2``
            (regressor) or ``accuracy, precision, recall, f1, log_loss`` (classifiers; binary
            ones at ``threshold_``, multiclass macro-averaged) and ``auc`` (binary, omitted when
            ``y`` holds one class).
        """
        if channel not in ("train", "validation"):
            raise ValueError(f"channel must be 'train' or 'validation', got {channel!r}")
        z = self.decision_function(X)
        labels = as_labels(y, "y", z.shape[0])
        if self.predictor_type_ == REGRESSOR:
            if labels.dtype.kind not in "biuf":
                raise ValueError("y must be numeric for a regressor")
            return channel_metrics(REGRESSOR, self.loss_, z, labels.astype(np.float64), channel)
        truth = encode(self.classes_, labels, "y")
        binary = self.predictor_type_ == BINARY
        return channel_metrics(
            self.predictor_type_,
            self.loss_,
            z,
            truth,
            channel,
            weights=None if self.class_weights_ is None else self.class_weights_[truth],
            threshold=self.threshold_ if binary else 0.0,
            calibration=tuple(self.proba_calibration_) if binary else None,
        )


def _finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and bool(np.isfinite(value))
