"""k-NN against scikit-learn's brute-force KNeighborsClassifier: same labels, time of predict.

Run with ``make bench`` or
``.venv/bin/python -m pytest tests/benchmarks/bench_knn.py -o python_files='bench_*.py' -q -s``.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

from algorithms import KNN
from tests.benchmarks.harness import alternate, record

ROUNDS = 3  # alternating rounds of ours and the reference
REPEATS = 2  # calls per round, unless a benchmark says otherwise


@cache
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """60k training rows and 10k queries, 64 features, 10 overlapping Gaussian classes."""
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((10, 64)) * 0.6
    labels = rng.integers(0, 10, 70_000)
    X = centers[labels] + rng.standard_normal((70_000, 64))
    return X[:60_000], labels[:60_000], X[60_000:], labels[60_000:]


@pytest.mark.parametrize("k", [5, 10])
def test_bench_predict_10k_queries_over_60k_x_64(k: int) -> None:
    X, y, Q, y_q = data()
    ours = KNN(k=k).fit(X, y)
    reference = KNeighborsClassifier(n_neighbors=k, algorithm="brute").fit(X, y)
    ours_s, ours_labels, reference_s, reference_labels = alternate(
        lambda: ours.predict(Q), lambda: reference.predict(Q), rounds=ROUNDS, repeats=REPEATS
    )
    same = float(np.mean(ours_labels == reference_labels))
    ratio = ours_s / reference_s
    record(
        name=f"knn predict 10k queries over 60k x 64, k={k}",
        ours_s=ours_s,
        reference=f'sklearn KNeighborsClassifier(algorithm="brute", n_neighbors={k})',
        reference_s=reference_s,
        quality={"same_labels": same, "accuracy_ours": float(np.mean(ours_labels == y_q))},
        bar="time <= 1.2x, identical labels",
        met=ratio <= 1.2 and same == 1.0,
    )
