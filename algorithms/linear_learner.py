"""Linear learner: linear models for regression and classification, many trained at once.

In the spirit of SageMaker's Linear Learner: one algorithm for regression (squared or absolute
loss), binary classification (logistic or hinge loss) and multiclass classification (softmax
cross-entropy), with feature standardization, mean imputation of missing values, L1/L2 penalties,
class weights, per-epoch metrics and early stopping. It trains ``num_models`` variants with
different learning rates and penalties in one pass over the data, keeps the one that does best on
the validation data, and for binary problems tunes the decision threshold to a chosen criterion.
The numerical core lives in :mod:`algorithms._linear`, data checks and preprocessing in
:mod:`algorithms._linear_data`, model selection and metrics in :mod:`algorithms._linear_selection`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

import numpy as np

# Aliased: ``metrics`` is also the class attribute declaring the reported metrics.
from algorithms import metrics as metric_fns
from algorithms._linear import THRESHOLD_CRITERIA, TrainingState, model_grid, sigmoid, softmax, train_models
from algorithms._linear_data import (
    BINARY,
    LOSSES,
    MAX_AUTO_CLASSES,
    MULTICLASS,
    REGRESSOR,
    as_features,
    as_labels,
    check_saved_model,
    class_weights,
    design_matrix,
    encode,
    fit_scaling,
    label_scaling,
    preview,
    read_training_data,
    training_target,
)
from algorithms._linear_selection import channel_metrics, epoch_metrics, select_model
from algorithms.base import Callback, Estimator, Hyperparameter, Metric

__all__ = ["LOSS_CHOICES", "MAX_AUTO_CLASSES", "PREDICTOR_TYPES", "SELECTION_CRITERIA", "LinearLearner"]

PREDICTOR_TYPES = ("auto", REGRESSOR, BINARY, MULTICLASS)
LOSS_CHOICES = ("auto", "squared_loss", "absolute_loss", "logistic", "softmax_loss", "hinge_loss")
SELECTION_CRITERIA = (*THRESHOLD_CRITERIA, "cross_entropy_loss", "loss_function")
# A mini-batch of every model is a (batch, num_models * n_outputs) matrix; beyond this many
# elements (512 MB in float64) the parallel models would rather exhaust memory than speed anything up.
_MAX_BATCH_ELEMENTS = 2**26

# Saved training state (see TrainingState.saved), attribute state_<key>_ for each array.
_STATE_KEYS = ("weights", "learning_rates", "best_loss", "best_epoch", "alive")
_STATE_ARRAYS = tuple(f"state_{key}_" for key in _STATE_KEYS)
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
    training_state_ : dict
        Counters, early-stopping bookkeeping, the shuffling generator's state and the
        hyperparameters of the last epoch, from which ``fit(resume=True)`` continues.
    state_weights_ : ndarray of shape (3 or 5, n_features + use_bias, num_models * n_outputs)
        Every parallel model's current iterate, running average and best average in standardized
        space, plus Adam's two moments: the saved model holds 3 (SGD) or 5 (Adam) float64 copies
        of all parallel weights besides ``coef_``, i.e. ``8 * n_inputs * num_models * n_outputs``
        bytes each (260 KB for 100 features, 32 models and 10 classes).
    state_learning_rates_, state_best_loss_, state_best_epoch_, state_alive_ : ndarray
        Per output column: the decayed learning rate (0 once diverged); per model: its best
        monitored loss, that loss's epoch (0: never finite) and whether it is still training.
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
    budget_hyperparameter: ClassVar[str | None] = "epochs"
    resumable: ClassVar[bool] = True

    _fitted_arrays: ClassVar[tuple[str, ...]] = (
        "coef_",
        "intercept_",
        "classes_",
        "class_weights_",
        "impute_values_",
        "feature_mean_",
        "feature_scale_",
        *_STATE_ARRAYS,
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
        "training_state_",
    )
    _training_state: ClassVar[tuple[str, ...]] = (*_STATE_ARRAYS, "training_state_")

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
        resume: bool = False,
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
        resume : bool
            Continue the fitted (or loaded) estimator's training from the current state of
            every parallel model (not from the kept best epoch) up to ``epochs`` in total, the
            callback's epochs continuing from ``n_epochs_ + 1``; the kept model is then again
            each model's best epoch over all epochs. The learning rates decay per epoch,
            independently of ``epochs``, so ``fit(epochs=3)``, ``save``, ``load``,
            ``set_params(epochs=6)``, ``fit(resume=True)`` gives exactly what ``fit(epochs=6)``
            gives on the same data, also after a callback stopped training. The saved
            preprocessing (imputation, scaling, class weights) is kept; the data need the same
            features, task and classes, validation data if and only if the first fit had some,
            and only ``epochs`` may differ from the trained hyperparameters. When ``epochs`` is
            not above ``n_epochs_``, or training already ended by early stopping or divergence,
            no epoch runs and the estimator is returned unchanged (after the data checks).

        Returns
        -------
        LinearLearner
            ``self``, fitted with the chosen model at its best epoch.

        Raises
        ------
        HyperparameterError
            If a hyperparameter is invalid.
        ValueError
            If the data do not fit the task, or every model diverges before a usable epoch; when
            resuming, if the estimator is not fitted, lacks its training state (saved by an older
            version) or the data or hyperparameters do not match it.
        """
        params = self._validated_params()
        state = self._resume_state(params) if resume else None
        X_arr, kind, loss, classes, train_truth, validation = read_training_data(
            X, y, X_val, y_val, params, self.n_features_in_ if resume else None
        )
        has_val = validation is not None
        if resume:
            self._check_same_task(kind, loss, classes, has_val)

        n_outputs = classes.size if kind == MULTICLASS else 1
        specs = model_grid(params["num_models"], params["learning_rate"], params["wd"], params["l1"])
        batch = min(params["mini_batch_size"], X_arr.shape[0])
        if len(specs) > 1 and batch * len(specs) * n_outputs > _MAX_BATCH_ELEMENTS:
            raise ValueError(
                f"num_models={len(specs)} x {n_outputs} outputs x mini_batch_size={batch} needs too much memory; "
                "lower num_models or mini_batch_size"
            )

        if state is None:
            self.predictor_type_, self.loss_, self.classes_ = kind, loss, classes
            self.n_features_in_ = X_arr.shape[1]
            self.model_params_ = [spec.to_dict() for spec in specs]
            use_bias = params["use_bias"]
            self.impute_values_, self.feature_mean_, self.feature_scale_ = fit_scaling(
                X_arr, params["normalize_data"], use_bias
            )
            self.label_mean_, self.label_scale_ = label_scaling(kind, train_truth, params["normalize_label"], use_bias)
            self.class_weights_ = class_weights(
                kind, train_truth, params["positive_example_weight_mult"], params["balance_multiclass_weights"]
            )
        elif (
            state.epoch >= params["epochs"]
            or self.stop_reason_ in ("early_stopping", "diverged")
            or state.since_improvement >= params["early_stopping_patience"]
        ):
            return self
        label = (self.label_mean_, self.label_scale_)
        train_design = self._design(X_arr, params["use_bias"])
        train_target = training_target(kind, train_truth, label)
        weights = self.class_weights_
        train = (train_design, train_truth, None if weights is None else weights[train_truth])
        val = None
        if validation is not None:
            Xv_arr, val_truth = validation
            val = (self._design(Xv_arr, params["use_bias"]), val_truth, None if weights is None else weights[val_truth])
        monitored = val if val is not None else train

        def report(epoch: int, leader: np.ndarray) -> bool:
            metrics = epoch_metrics(kind, loss, leader, train, "train", label=label, full=False)
            if val is not None:
                metrics.update(epoch_metrics(kind, loss, leader, val, "validation", label=label, full=True))
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
                label=label,
                report=report,
                state=state,
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
        arrays, self.training_state_ = run.state.saved()
        self.training_state_["hyperparameters"] = params
        for key in _STATE_KEYS:
            setattr(self, f"state_{key}_", arrays[key])

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

    def _resume_state(self, params: dict[str, Any]) -> TrainingState:
        """The saved training state, checked against the hyperparameters and the model's shapes."""
        info = self._check_resumable(params)
        n_inputs = self.n_features_in_ + int(params["use_bias"])
        n_outputs = self.classes_.size if self.predictor_type_ == MULTICLASS else 1
        arrays = {key: getattr(self, f"state_{key}_") for key in _STATE_KEYS}
        n_models = len(self.model_params_)
        return TrainingState.restore(arrays, info, (n_inputs, n_models * n_outputs), n_models, params["optimizer"])

    def _check_same_task(self, kind: str, loss: str, classes: np.ndarray | None, has_val: bool) -> None:
        """Resuming: the new data must give the trained task, loss and classes, and the same channels."""
        if has_val != (self.monitor_ == "validation:loss"):
            # The best epochs so far were judged on one channel; switching would mix two scales.
            raise ValueError(
                f"cannot resume: the model was trained {'with' if not has_val else 'without'} validation data; "
                "give the same channels again"
            )
        if (kind, loss) != (self.predictor_type_, self.loss_):
            raise ValueError(
                f"cannot resume: y gives predictor_type {kind!r} with loss {loss!r}, the model was trained as "
                f"{self.predictor_type_!r} with {self.loss_!r}"
            )
        if classes is not None and not np.array_equal(classes, self.classes_):
            raise ValueError(f"cannot resume: y has classes {preview(classes)}, the model {preview(self.classes_)}")

    def _design(self, X: np.ndarray, use_bias: bool) -> np.ndarray:
        """Training-space design matrix of ``X`` with the fitted imputation and scaling."""
        return design_matrix(X, self.impute_values_, self.feature_mean_, self.feature_scale_, use_bias)

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
        check_saved_model(self)
        if self.predictor_type_ == REGRESSOR:
            self.intercept_ = float(self.intercept_)
        elif self.predictor_type_ == BINARY:
            self.threshold_ = float(self.threshold_)

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

