"""Multivariate Tree-structured Parzen Estimator in numpy, modelled on Optuna's TPESampler defaults.

Observations are split into the best ``min(ceil(0.1 n), 25)`` ("below") and the rest ("above", which also
holds failed trials and constant-liar pending points). Each group becomes a mixture of product kernels, one
per observation plus a wide prior kernel: truncated normals on the unit interval for numeric dimensions
(probability mass of the integer's cell for integers) and smoothed one-hot distributions for categories.
Candidates are drawn from the "below" mixture and the one maximising ``log l(x) - log g(x)`` wins.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from studio.tuning._normal import log_norm_mass, log_norm_pdf

PRIOR_WEIGHT = 1.0
N_CANDIDATES = 24
_MAX_CELLS = 2**22  # elements of one (candidates x kernels) block, to bound memory on big histories


def n_below(n_finished: int) -> int:
    """Optuna's default gamma: size of the "good" group."""
    return min(math.ceil(0.1 * n_finished), 25)


def default_weights(n: int) -> np.ndarray:
    """Optuna's default weights: older observations of a large group fade linearly, the last 25 count fully."""
    if n < 25:
        return np.ones(n)
    return np.concatenate([np.linspace(1.0 / n, 1.0, num=n - 25), np.ones(25)])


class ParzenMixture:
    """Mixture of product kernels over numeric unit dimensions and categorical dimensions.

    Parameters
    ----------
    U : ndarray of shape (n, p)
        Numeric observations in [0, 1].
    C : ndarray of shape (n, q)
        Category indices.
    weights : ndarray of shape (n,)
        Unnormalised kernel weights (the prior kernel gets ``PRIOR_WEIGHT``).
    n_choices : sequence of int
        Number of categories of each categorical dimension.
    """

    def __init__(self, U: np.ndarray, C: np.ndarray, weights: np.ndarray, n_choices: Sequence[int]) -> None:
        n, p = U.shape
        w = np.append(np.asarray(weights, dtype=np.float64), PRIOR_WEIGHT)
        self.log_weights = np.log(w / w.sum())
        n_kernels = n + 1
        self.mus = np.vstack([U, np.full((1, p), 0.5)])  # (K, p)
        self.sigmas = np.vstack([_bandwidths(U, n_kernels), np.ones((1, p))]) if p else np.ones((n_kernels, 0))
        self.log_z = log_norm_mass(-self.mus / self.sigmas, (1.0 - self.mus) / self.sigmas)
        # Categorical kernel k puts its observation's category up by 1 over a uniform prior_weight / K floor.
        self.cat_probs = []
        for j, k in enumerate(n_choices):
            probs = np.full((n_kernels, k), PRIOR_WEIGHT / n_kernels)
            probs[np.arange(n), C[:, j]] += 1.0
            probs[-1] = 1.0  # the prior kernel itself is uniform
            self.cat_probs.append(probs / probs.sum(axis=1, keepdims=True))

    def sample(self, rng: np.random.Generator, m: int) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``m`` points: numeric values in [0, 1] (not yet snapped to integers) and category indices."""
        kernel = rng.choice(self.mus.shape[0], size=m, p=np.exp(self.log_weights))
        mu, sigma = self.mus[kernel], self.sigmas[kernel]
        U = mu + sigma * rng.standard_normal(mu.shape)
        # Rejection keeps the draw a truncated normal; every kernel has at least a third of its mass inside.
        for _ in range(100):
            outside = (U < 0.0) | (U > 1.0)
            if not outside.any():
                break
            U[outside] = mu[outside] + sigma[outside] * rng.standard_normal(int(outside.sum()))
        U = np.clip(U, 0.0, 1.0)
        C = np.empty((m, len(self.cat_probs)), dtype=np.int64)
        for j, probs in enumerate(self.cat_probs):
            cumulative = np.cumsum(probs[kernel], axis=1)
            C[:, j] = np.minimum((cumulative < rng.random((m, 1)) * cumulative[:, -1:]).sum(axis=1),
                                 probs.shape[1] - 1)
        return U, C

    def log_pdf(self, U: np.ndarray, C: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                discrete: np.ndarray) -> np.ndarray:
        """Log density of points; integer dimensions use the kernel mass of their cell ``[lower, upper]``.

        Parameters
        ----------
        U : ndarray of shape (m, p)
        C : ndarray of shape (m, q)
        lower, upper : ndarray of shape (m, p)
            Cell bounds (used where ``discrete``).
        discrete : ndarray of bool, shape (p,)

        Returns
        -------
        ndarray of shape (m,)
        """
        m, kernels = U.shape[0], self.mus.shape[0]
        chunk = max(1, _MAX_CELLS // kernels)
        out = np.empty(m)
        for start in range(0, m, chunk):
            rows = slice(start, min(m, start + chunk))
            total = np.broadcast_to(self.log_weights, (rows.stop - rows.start, kernels)).copy()
            for d in range(U.shape[1]):
                mu, sigma = self.mus[:, d], self.sigmas[:, d]
                if discrete[d]:
                    lp = log_norm_mass((lower[rows, d, None] - mu) / sigma, (upper[rows, d, None] - mu) / sigma)
                else:
                    lp = log_norm_pdf((U[rows, d, None] - mu) / sigma) - np.log(sigma)
                total += lp - self.log_z[:, d]
            for j, probs in enumerate(self.cat_probs):
                total += np.log(probs[:, C[rows, j]].T)
            peak = total.max(axis=1, keepdims=True)
            out[rows] = peak[:, 0] + np.log(np.exp(total - peak).sum(axis=1))
        return out


def _bandwidths(U: np.ndarray, n_kernels: int) -> np.ndarray:
    """Optuna's per-dimension bandwidths: distance to the farther neighbour, clipped to [1/min(100, K+1), 1]."""
    n, p = U.shape
    if n == 0:
        return np.ones((0, p))
    order = np.argsort(U, axis=0, kind="stable")
    sorted_mus = np.take_along_axis(U, order, axis=0)
    padded = np.vstack([np.zeros((1, p)), sorted_mus, np.ones((1, p))])
    sigmas = np.maximum(padded[1:-1] - padded[:-2], padded[2:] - padded[1:-1])
    if n >= 2:
        # Without "consider_endpoints", the extreme kernels look at their inner neighbour only.
        sigmas[0] = padded[2] - padded[1]
        sigmas[-1] = padded[-2] - padded[-3]
    result = np.empty_like(sigmas)
    np.put_along_axis(result, order, sigmas, axis=0)
    return np.clip(result, 1.0 / min(100.0, 1.0 + n_kernels), 1.0)


def split(values: np.ndarray, finished: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the "below" and "above" groups, each in creation order.

    Parameters
    ----------
    values : ndarray of shape (n,)
        Objective to minimise; ``inf`` for failed trials.
    finished : ndarray of bool, shape (n,)
        False for pending points (constant liar: they always go "above").

    Returns
    -------
    tuple of ndarray
    """
    valid = np.flatnonzero(finished & np.isfinite(values))
    count = n_below(int(valid.size))
    best = valid[np.argsort(values[valid], kind="stable")[:count]]
    below = np.zeros(values.size, dtype=bool)
    below[best] = True
    return np.flatnonzero(below), np.flatnonzero(~below)


def mixtures(U: np.ndarray, C: np.ndarray, values: np.ndarray, finished: np.ndarray,
             n_choices: Sequence[int]) -> tuple[ParzenMixture, ParzenMixture]:
    """The "below" (good) and "above" (bad) mixtures of the observations.

    Parameters
    ----------
    U, C : ndarray
        Observations (numeric unit values, category indices), in creation order.
    values : ndarray of shape (n,)
        Objective to minimise, ``inf`` where failed.
    finished : ndarray of bool
        False for pending points.
    n_choices : sequence of int
        Categories of each categorical dimension.

    Returns
    -------
    tuple of ParzenMixture
        ``(good, bad)``; the acquisition is ``good.log_pdf(x) - bad.log_pdf(x)``.
    """
    below, above = split(values, finished)
    good = ParzenMixture(U[below], C[below], default_weights(below.size), n_choices)
    bad = ParzenMixture(U[above], C[above], default_weights(above.size), n_choices)
    return good, bad
