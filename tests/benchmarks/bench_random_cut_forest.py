"""RandomCutForest against scikit-learn's IsolationForest: fit + score 100k x 10 rows with 1% planted anomalies."""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score

from algorithms import RandomCutForest
from tests.benchmarks.harness import best_time, record


def planted_anomalies(
    n: int = 100_000, d: int = 10, fraction: float = 0.01, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Five Gaussian clusters; anomalies half in the empty space between them, half far outside."""
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-10.0, 10.0, size=(5, d))
    scales = rng.uniform(0.5, 2.0, size=5)
    n_anomalies = int(n * fraction)
    component = rng.integers(0, 5, n - n_anomalies)
    normal = centers[component] + rng.normal(size=(n - n_anomalies, d)) * scales[component, None]
    low, high = normal.min(axis=0), normal.max(axis=0)
    # Empty regions: uniform in the data's bounding box, at least 4 standard deviations from every cluster.
    candidates = rng.uniform(low, high, size=(4 * n_anomalies, d))
    distance = np.linalg.norm(candidates[:, None, :] - centers[None], axis=2) / (scales * np.sqrt(d))
    empty = candidates[(distance > 4.0).all(axis=1)][: n_anomalies // 2]
    direction = rng.normal(size=(n_anomalies - empty.shape[0], d))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    radius = rng.uniform(0.5, 0.75, size=(direction.shape[0], 1)) * (high - low).max()
    far = normal.mean(axis=0) + direction * radius
    X = np.vstack([normal, empty, far])
    y = np.r_[np.zeros(normal.shape[0], dtype=int), np.ones(n_anomalies, dtype=int)]
    order = rng.permutation(n)
    return X[order], y[order]


def test_bench_random_cut_forest_fit_score() -> None:
    X, y = planted_anomalies()

    def ours() -> np.ndarray:
        return RandomCutForest(num_trees=100, num_samples_per_tree=256, random_state=0).fit(X).score_samples(X)

    def reference() -> np.ndarray:
        # scikit-learn defaults (n_jobs=None: one process); higher score_samples = more normal.
        return -IsolationForest(n_estimators=100, max_samples=256, random_state=0).fit(X).score_samples(X)

    ours()  # warm-up: first-touch allocations
    ref_s, ref_scores = best_time(reference, repeats=5)
    ours_s, our_scores = best_time(ours, repeats=5)
    auc, ref_auc = roc_auc_score(y, our_scores), roc_auc_score(y, ref_scores)
    record(
        name="random-cut-forest fit+score 100k×10 with 1% planted anomalies",  # noqa: RUF001
        ours_s=ours_s,
        reference="sklearn IsolationForest(n_estimators=100, max_samples=256, n_jobs=None)",
        reference_s=ref_s,
        quality={"auc": auc, "reference_auc": ref_auc},
        bar="time <= 1.5x, auc >= reference auc - 0.01",
        met=ours_s <= 1.5 * ref_s and auc >= ref_auc - 0.01,
    )
