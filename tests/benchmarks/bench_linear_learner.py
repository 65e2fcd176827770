"""Linear learner benchmarks: the cost of 32 parallel models, and accuracy against scikit-learn.

Run with ``make bench`` or
``.venv/bin/python -m pytest tests/benchmarks/bench_linear_learner.py -o python_files='bench_*.py' -q -s``.
"""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from algorithms import LinearLearner
from tests.benchmarks.harness import best_time, record

EPOCHS = 3


def binary_problem(n_train: int = 200_000, n_val: int = 50_000, n_features: int = 50) -> tuple[np.ndarray, ...]:
    """A noisy linear binary problem (about 85% reachable accuracy), split into train and validation."""
    rng = np.random.default_rng(0)
    n = n_train + n_val
    X = rng.normal(size=(n, n_features))
    y = (X @ rng.normal(size=n_features) + 2.0 * rng.logistic(size=n) > 0).astype(np.int64)
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


def _fit(X, y, X_val, y_val, **params) -> LinearLearner:
    # Patience above the epoch count: both runs do the same number of passes over the data.
    model = LinearLearner(epochs=EPOCHS, early_stopping_patience=EPOCHS + 1, **params)
    return model.fit(X, y, X_val=X_val, y_val=y_val)


def test_bench_parallel_models_cost() -> None:
    """32 models in one pass vs one model, same data, epochs and mini-batch size (the default 32)."""
    X, y, X_val, y_val = binary_problem()
    ours_s, ours = best_time(lambda: _fit(X, y, X_val, y_val, num_models=32), repeats=3)
    single_s, single = best_time(lambda: _fit(X, y, X_val, y_val, num_models=1), repeats=3)
    ratio = ours_s / single_s
    record(
        name="linear-learner 32 parallel models",
        ours_s=ours_s,
        reference="our own single model (num_models=1)",
        reference_s=single_s,
        quality={
            "problem": "200k x 50 binary, 50k validation, 3 epochs, mini_batch_size 32",
            "val_accuracy_32": ours.score(X_val, y_val),
            "val_accuracy_1": single.score(X_val, y_val),
            "val_loss_32": ours.evaluate(X_val, y_val)["validation:loss"],
            "val_loss_1": single.evaluate(X_val, y_val)["validation:loss"],
            "best_model": ours.best_model_,
        },
        bar="time <= 2.5x",
        met=ratio <= 2.5,
    )


def test_bench_parallel_models_cost_large_batches() -> None:
    """Informational: with SageMaker's default mini-batch of 1000 the 32 models cost FLOPs, not overhead."""
    X, y, X_val, y_val = binary_problem()
    ours_s, ours = best_time(lambda: _fit(X, y, X_val, y_val, num_models=32, mini_batch_size=1000), repeats=3)
    single_s, single = best_time(lambda: _fit(X, y, X_val, y_val, num_models=1, mini_batch_size=1000), repeats=3)
    record(
        name="linear-learner 32 parallel models, mini_batch_size 1000",
        ours_s=ours_s,
        reference="our own single model (num_models=1)",
        reference_s=single_s,
        quality={
            "problem": "200k x 50 binary, 50k validation, 3 epochs, mini_batch_size 1000",
            "val_accuracy_32": ours.score(X_val, y_val),
            "val_accuracy_1": single.score(X_val, y_val),
        },
        bar="informational (time <= 2.5x)",
        met=ours_s / single_s <= 2.5,
    )


def test_bench_breast_cancer_accuracy() -> None:
    """Default 32-model learner vs StandardScaler + LogisticRegression (default C), same split, no validation."""
    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    ours_s, ours = best_time(lambda: LinearLearner().fit(X_train, y_train), repeats=3)
    reference = make_pipeline(StandardScaler(), LogisticRegression())
    ref_s, reference = best_time(lambda: reference.fit(X_train, y_train), repeats=3)
    ours_acc = ours.score(X_test, y_test)
    ref_acc = float(reference.score(X_test, y_test))
    record(
        name="linear-learner breast_cancer accuracy",
        ours_s=ours_s,
        reference="sklearn StandardScaler+LogisticRegression",
        reference_s=ref_s,
        quality={"accuracy_ours": ours_acc, "accuracy_sklearn": ref_acc, "best_model": ours.best_model_},
        bar="accuracy >= sklearn - 0.01",
        met=ours_acc >= ref_acc - 0.01,
    )
