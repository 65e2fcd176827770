"""PCA against scikit-learn: the exact covariance solver, and the randomized solver on many features.

Run with ``make bench`` or
``.venv/bin/python -m pytest tests/benchmarks/bench_pca.py -o python_files='bench_*.py' -q -s``.
"""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA as SklearnPCA

from algorithms import PCA
from tests.benchmarks.harness import alternate, record

ROUNDS = 4  # alternating rounds of ours and the reference
REPEATS = 3  # calls per round, unless a benchmark says otherwise


def correlated(n_samples: int, n_features: int, seed: int) -> np.ndarray:
    """Gaussian rows with a decaying spectrum (distinct components) and a non-zero mean."""
    rng = np.random.default_rng(seed)
    mixing = rng.standard_normal((n_features, n_features)) * np.geomspace(1.0, 0.01, n_features)[:, None]
    return rng.standard_normal((n_samples, n_features)) @ mixing + rng.uniform(-5, 5, n_features)


def test_bench_regular_500k_x_100() -> None:
    """500k x 100 float64, 10 components, exact: regular mode vs PCA(svd_solver="covariance_eigh")."""
    X = correlated(500_000, 100, seed=0)
    ours_s, ours, reference_s, reference = alternate(
        lambda: PCA(num_components=10).fit(X),
        lambda: SklearnPCA(n_components=10, svd_solver="covariance_eigh").fit(X),
        rounds=ROUNDS,
        repeats=REPEATS,
    )
    variance_rel = float(np.max(np.abs(ours.explained_variance_ / reference.explained_variance_ - 1.0)))
    ratio_diff = float(np.max(np.abs(ours.explained_variance_ratio_ - reference.explained_variance_ratio_)))
    component_diff = float(np.max(np.abs(ours.components_ - reference.components_)))
    ratio = ours_s / reference_s
    record(
        name="pca regular 500k x 100, 10 components",
        ours_s=ours_s,
        reference='sklearn PCA(svd_solver="covariance_eigh")',
        reference_s=reference_s,
        # As text: the harness rounds floats to 6 decimals, which would show these as 0.
        quality={
            "explained_variance_max_rel_diff": f"{variance_rel:.1e}",
            "explained_variance_ratio_max_abs_diff": f"{ratio_diff:.1e}",
            "components_max_abs_diff_same_signs": f"{component_diff:.1e}",
        },
        bar="time <= 1.2x, explained variance equal to 1e-6",
        met=ratio <= 1.2 and variance_rel <= 1e-6 and ratio_diff <= 1e-6,
    )


def power_law(n_samples: int, n_features: int, seed: int) -> np.ndarray:
    """Rows whose covariance eigenvalues decay as 1 / i^2 in a random basis, with a non-zero mean."""
    rng = np.random.default_rng(seed)
    rotation = np.linalg.qr(rng.standard_normal((n_features, n_features)))[0]
    scales = 1.0 / np.arange(1, n_features + 1)
    return (rng.standard_normal((n_samples, n_features)) * scales) @ rotation + rng.uniform(-5, 5, n_features)


def test_bench_randomized_100k_x_1000() -> None:
    """100k x 1000 float64, 10 components: randomized mode vs PCA(svd_solver="randomized"), both with their
    default power iterations (7 here) and 10 oversampling directions.

    Quality is each one's largest relative error of the explained variance against the exact solver.
    """
    X = power_law(100_000, 1000, seed=1)
    ours_s, ours, reference_s, reference = alternate(
        lambda: PCA(num_components=10, algorithm_mode="randomized").fit(X),
        lambda: SklearnPCA(n_components=10, svd_solver="randomized", random_state=0).fit(X),
        rounds=ROUNDS,
        repeats=2,
    )
    exact = SklearnPCA(n_components=10, svd_solver="covariance_eigh").fit(X)
    ours_rel = float(np.max(np.abs(ours.explained_variance_ / exact.explained_variance_ - 1.0)))
    reference_rel = float(np.max(np.abs(reference.explained_variance_ / exact.explained_variance_ - 1.0)))
    ratio = ours_s / reference_s
    record(
        name="pca randomized 100k x 1000, 10 components",
        ours_s=ours_s,
        reference='sklearn PCA(svd_solver="randomized")',
        reference_s=reference_s,
        quality={
            "explained_variance_rel_err_ours": f"{ours_rel:.1e}",
            "explained_variance_rel_err_sklearn": f"{reference_rel:.1e}",
        },
        bar="time <= 1.2x, explained variance within 1e-4 (relative) of exact",
        met=ratio <= 1.2 and ours_rel <= 1e-4,
    )
