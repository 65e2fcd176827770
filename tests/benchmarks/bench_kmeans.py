"""KMeans against scikit-learn: full Lloyd from the same start, and web-scale streaming against MiniBatchKMeans.

Run with ``make bench`` or
``.venv/bin/python -m pytest tests/benchmarks/bench_kmeans.py -o python_files='bench_*.py' -q -s``.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans as SklearnKMeans
from sklearn.cluster import MiniBatchKMeans, kmeans_plusplus
from sklearn.datasets import make_blobs

from algorithms import KMeans
from tests.benchmarks.harness import alternate, record

ROUNDS = 2  # alternating rounds of ours and the reference
REPEATS = 2  # calls per round, unless a benchmark says otherwise


def test_bench_full_lloyd_same_initial_centers() -> None:
    """500k x 3, k=20 overlapping blobs; both start from the same k-means++ centers, max_iter=300, tol=1e-4."""
    X, _ = make_blobs(
        n_samples=500_000, n_features=3, centers=20, cluster_std=2.0, center_box=(-10.0, 10.0), random_state=0
    )
    init, _ = kmeans_plusplus(X, 20, random_state=0)
    ours_s, ours, reference_s, reference = alternate(
        lambda: KMeans(k=20, epochs=300, tol=1e-4).fit(X, init_centers=init),
        lambda: SklearnKMeans(20, init=init, n_init=1, algorithm="lloyd", max_iter=300, tol=1e-4).fit(X),
        rounds=ROUNDS,
        repeats=3,
    )
    inertia_ratio = ours.inertia_ / reference.inertia_
    ratio = ours_s / reference_s
    record(
        name="kmeans fit 500k x 3, k=20, same initial centers",
        ours_s=ours_s,
        reference="sklearn KMeans(lloyd, n_init=1, same init)",
        reference_s=reference_s,
        quality={
            "inertia_ratio": inertia_ratio,
            "n_iter_ours": ours.n_iter_,
            "n_iter_sklearn": reference.n_iter_,
            "max_center_diff": float(np.abs(ours.cluster_centers_ - reference.cluster_centers_).max()),
        },
        bar="time <= 2.0x, inertia <= 1.01x",
        met=ratio <= 2.0 and inertia_ratio <= 1.01,
    )


def test_bench_web_scale_one_pass() -> None:
    """1M x 10, k=25 overlapping blobs, one pass of 5000-row mini-batches, vs MiniBatchKMeans (same batch, one pass).

    Quality is the inertia relative to full Lloyd: scikit-learn's KMeans (lloyd, k-means++, best of 3 inits).
    """
    X, _ = make_blobs(
        n_samples=1_000_000, n_features=10, centers=25, cluster_std=3.0, center_box=(-10.0, 10.0), random_state=0
    )
    ours_s, ours, reference_s, reference = alternate(
        lambda: KMeans(k=25, mode="web-scale", epochs=1, mini_batch_size=5000, random_state=0).fit(X),
        lambda: MiniBatchKMeans(25, batch_size=5000, max_iter=1, random_state=0).fit(X),
        rounds=ROUNDS,
        repeats=REPEATS,
    )
    full = SklearnKMeans(25, algorithm="lloyd", n_init=3, random_state=0).fit(X)
    inertia_ratio = ours.inertia_ / full.inertia_
    record(
        name="kmeans web-scale, one pass over 1M x 10, k=25",
        ours_s=ours_s,
        reference="sklearn MiniBatchKMeans(batch 5000, one pass)",
        reference_s=reference_s,
        quality={
            "inertia_vs_full_lloyd": inertia_ratio,
            "minibatch_inertia_vs_full_lloyd": reference.inertia_ / full.inertia_,
            "passes": ours.n_iter_,
        },
        bar="inertia <= 1.05x full Lloyd (time vs MiniBatchKMeans recorded)",
        met=inertia_ratio <= 1.05,
    )
