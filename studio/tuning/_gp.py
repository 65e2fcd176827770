"""Gaussian-process regression in numpy for Bayesian optimisation: Matern-5/2 ARD kernel, MAP hyperparameters.

Inputs live in the search space's unit encoding (numeric dimensions in [0, 1], categories one-hot), targets
are standardised and always minimised. Hyperparameters (one lengthscale per dimension, signal and noise
variance) maximise the log marginal likelihood plus weak log-normal priors, found by a small projected
L-BFGS with analytic gradients; the priors keep a fit on ten points from collapsing to zero noise or
absurd lengthscales.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

_SQRT5 = np.sqrt(5.0)
_JITTER = 1e-8
# Bounds of the log hyperparameters: lengthscales, signal variance, noise variance (standardised targets).
_LOG_LENGTH_BOUNDS = (np.log(1e-2), np.log(50.0))
_LOG_SIGNAL_BOUNDS = (np.log(5e-2), np.log(20.0))
_LOG_NOISE_BOUNDS = (np.log(1e-6), np.log(1.0))
# Prior means and spreads (log space). Lengthscales grow with sqrt(dim): in more dimensions, points sit
# further apart and a short default would make the model forget everything between them.
_LENGTH_PRIOR_SD = 1.0
_SIGNAL_PRIOR = (0.0, 1.0)
_NOISE_PRIOR = (np.log(1e-3), 2.0)


def _matern(sqdist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Matern-5/2 correlation of scaled squared distances, and ``(5/3) (1 + sqrt5 r) exp(-sqrt5 r)``.

    The second array is the factor of the lengthscale gradient: ``dk / dlog l_d = s2 * g * delta_d**2 / l_d**2``.
    """
    r = np.sqrt(np.maximum(sqdist, 0.0))
    e = np.exp(-_SQRT5 * r)
    poly = 1.0 + _SQRT5 * r
    return (poly + (5.0 / 3.0) * sqdist) * e, (5.0 / 3.0) * poly * e


def _sqdist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    sq = np.sum(a * a, axis=1)[:, None] + np.sum(b * b, axis=1)[None, :] - 2.0 * (a @ b.T)
    return np.maximum(sq, 0.0)


@dataclass(frozen=True)
class GaussianProcess:
    """A fitted GP posterior (zero prior mean on standardised targets).

    Attributes
    ----------
    X : ndarray of shape (n, d)
        Inputs.
    y : ndarray of shape (n,)
        Standardised targets.
    lengthscales : ndarray of shape (d,)
    signal : float
        Signal variance.
    noise : float
        Noise variance.
    """

    X: np.ndarray
    y: np.ndarray
    lengthscales: np.ndarray
    signal: float
    noise: float
    _chol_inv: np.ndarray
    _alpha: np.ndarray

    @classmethod
    def build(cls, X: np.ndarray, y: np.ndarray, lengthscales: np.ndarray, signal: float,
              noise: float) -> GaussianProcess:
        """Condition a GP with fixed hyperparameters on ``(X, y)``.

        Parameters
        ----------
        X : ndarray of shape (n, d)
        y : ndarray of shape (n,)
        lengthscales : ndarray of shape (d,)
        signal, noise : float

        Returns
        -------
        GaussianProcess
        """
        scaled = X / lengthscales
        corr, _ = _matern(_sqdist(scaled, scaled))
        K = signal * corr + (noise + _JITTER * signal) * np.eye(X.shape[0])
        L = _cholesky(K)
        chol_inv = np.linalg.inv(L)
        alpha = chol_inv.T @ (chol_inv @ y)
        return cls(X, y, lengthscales, float(signal), float(noise), chol_inv, alpha)

    def conditioned(self, X_new: np.ndarray, y_new: np.ndarray) -> GaussianProcess:
        """The same GP (same hyperparameters) conditioned on extra points, e.g. constant-liar fantasies.

        Parameters
        ----------
        X_new : ndarray of shape (m, d)
        y_new : ndarray of shape (m,)

        Returns
        -------
        GaussianProcess
        """
        return GaussianProcess.build(np.vstack([self.X, X_new]), np.concatenate([self.y, y_new]),
                                     self.lengthscales, self.signal, self.noise)

    def predict(self, Xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation of the latent function at ``Xs``.

        Parameters
        ----------
        Xs : ndarray of shape (m, d)

        Returns
        -------
        tuple of ndarray
            ``(mean, std)``, each of shape (m,).
        """
        corr, _ = _matern(_sqdist(Xs / self.lengthscales, self.X / self.lengthscales))
        Ks = self.signal * corr  # (m, n)
        mean = Ks @ self._alpha
        v = Ks @ self._chol_inv.T  # rows are (L^-1 k_*)^T
        var = self.signal - np.sum(v * v, axis=1)
        return mean, np.sqrt(np.maximum(var, 1e-12 * self.signal))


def _cholesky(K: np.ndarray) -> np.ndarray:
    # Duplicate inputs with tiny noise can lose definiteness to rounding; more jitter is the standard fix.
    jitter = 0.0
    scale = float(np.mean(np.diag(K)))
    for _ in range(6):
        try:
            return np.linalg.cholesky(K + jitter * np.eye(K.shape[0]))
        except np.linalg.LinAlgError:
            jitter = scale * (1e-8 if jitter == 0.0 else jitter / scale * 100.0)
    raise np.linalg.LinAlgError("kernel matrix is not positive definite")


def _neg_log_posterior(theta: np.ndarray, X: np.ndarray, y: np.ndarray,
                       prior_mean: np.ndarray, prior_sd: np.ndarray) -> tuple[float, np.ndarray]:
    """Negative log marginal likelihood plus log-normal priors, and its gradient in ``theta``.

    ``theta = [log l_1 .. log l_d, log signal, log noise]``.
    """
    n, d = X.shape
    lengthscales = np.exp(theta[:d])
    signal, noise = np.exp(theta[d]), np.exp(theta[d + 1])
    scaled = X / lengthscales
    corr, grad_factor = _matern(_sqdist(scaled, scaled))
    K = signal * corr
    K[np.diag_indices(n)] += noise + _JITTER * signal
    try:
        L = np.linalg.cholesky(K)
    except np.linalg.LinAlgError:
        return np.inf, np.zeros_like(theta)
    chol_inv = np.linalg.inv(L)
    K_inv = chol_inv.T @ chol_inv
    alpha = K_inv @ y
    nll = 0.5 * float(y @ alpha) + float(np.sum(np.log(np.diag(L)))) + 0.5 * n * np.log(2.0 * np.pi)
    # d nll / d theta = 0.5 * tr(W dK/dtheta), W = K^-1 - alpha alpha^T.
    W = K_inv - np.outer(alpha, alpha)
    grad = np.empty_like(theta)
    M = W * (signal * grad_factor)
    row = M.sum(axis=1)
    # sum_ij M_ij (x_id - x_jd)^2 over scaled inputs, for every d at once (M is symmetric).
    grad[:d] = 0.5 * (2.0 * (scaled * scaled).T @ row - 2.0 * np.sum(scaled * (M @ scaled), axis=0))
    grad[d] = 0.5 * float(np.sum(W * (signal * corr)))
    grad[d + 1] = 0.5 * float(np.trace(W)) * noise
    z = (theta - prior_mean) / prior_sd
    return nll + 0.5 * float(z @ z), grad + z / prior_sd


def _lbfgs(fun: Callable[[np.ndarray], tuple[float, np.ndarray]], x0: np.ndarray, lower: np.ndarray,
           upper: np.ndarray, *, max_iter: int = 50, memory: int = 8) -> tuple[np.ndarray, float]:
    """Minimise ``fun`` in a box by L-BFGS directions, projection on the box and Armijo backtracking."""
    x = np.clip(x0, lower, upper)
    fx, g = fun(x)
    if not np.isfinite(fx):
        return x, fx
    s_list: list[np.ndarray] = []
    y_list: list[np.ndarray] = []
    for _ in range(max_iter):
        # Two-loop recursion for the quasi-Newton direction.
        q = g.copy()
        coefs = []
        for s, yv in zip(reversed(s_list), reversed(y_list), strict=True):
            rho = 1.0 / float(yv @ s)
            a = rho * float(s @ q)
            q -= a * yv
            coefs.append((rho, a))
        if s_list:
            q *= float(s_list[-1] @ y_list[-1]) / float(y_list[-1] @ y_list[-1])
        for (s, yv), (rho, a) in zip(zip(s_list, y_list, strict=True), reversed(coefs), strict=True):
            q += s * (a - rho * float(yv @ q))
        direction = -q
        # Coordinates pinned at a bound and pushed outward take no part in the step.
        pinned = ((x <= lower) & (direction < 0)) | ((x >= upper) & (direction > 0))
        direction[pinned] = 0.0
        if float(g @ direction) >= 0.0:
            direction = -g
            direction[((x <= lower) & (direction < 0)) | ((x >= upper) & (direction > 0))] = 0.0
            s_list.clear()
            y_list.clear()
        if not np.any(direction):
            break
        step = 1.0 if s_list else min(1.0, 1.0 / max(float(np.max(np.abs(direction))), 1e-12))
        for _ in range(25):
            x_new = np.clip(x + step * direction, lower, upper)
            f_new, g_new = fun(x_new)
            if np.isfinite(f_new) and f_new <= fx + 1e-4 * float(g @ (x_new - x)):
                break
            step *= 0.5
        else:
            break
        s, yv = x_new - x, g_new - g
        converged = fx - f_new <= 1e-7 * (1.0 + abs(fx)) and float(np.max(np.abs(s))) < 1e-5
        if float(s @ yv) > 1e-10:
            s_list.append(s)
            y_list.append(yv)
            if len(s_list) > memory:
                s_list.pop(0)
                y_list.pop(0)
        x, fx, g = x_new, f_new, g_new
        if converged:
            break
    return x, fx


def fit_gp(X: np.ndarray, y: np.ndarray, rng: np.random.Generator, *, restarts: int = 2,
           max_iter: int = 50) -> GaussianProcess:
    """Fit the hyperparameters (MAP) of a Matern-5/2 ARD GP and condition it on ``(X, y)``.

    Parameters
    ----------
    X : ndarray of shape (n, d)
        Unit-encoded inputs.
    y : ndarray of shape (n,)
        Standardised targets.
    rng : numpy.random.Generator
        Draws the starting points after the first (default) one.
    restarts : int
        Number of starting points of the optimiser.
    max_iter : int
        L-BFGS iterations per start.

    Returns
    -------
    GaussianProcess
    """
    d = X.shape[1]
    length_mean = np.log(0.5 * np.sqrt(d))
    prior_mean = np.concatenate([np.full(d, length_mean), [_SIGNAL_PRIOR[0], _NOISE_PRIOR[0]]])
    prior_sd = np.concatenate([np.full(d, _LENGTH_PRIOR_SD), [_SIGNAL_PRIOR[1], _NOISE_PRIOR[1]]])
    lower = np.concatenate([np.full(d, _LOG_LENGTH_BOUNDS[0]), [_LOG_SIGNAL_BOUNDS[0], _LOG_NOISE_BOUNDS[0]]])
    upper = np.concatenate([np.full(d, _LOG_LENGTH_BOUNDS[1]), [_LOG_SIGNAL_BOUNDS[1], _LOG_NOISE_BOUNDS[1]]])

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        return _neg_log_posterior(theta, X, y, prior_mean, prior_sd)

    best_theta, best_f = prior_mean.copy(), np.inf
    for start in range(restarts):
        theta0 = prior_mean.copy() if start == 0 else prior_mean + prior_sd * 0.7 * rng.standard_normal(d + 2)
        theta, f = _lbfgs(objective, theta0, lower, upper, max_iter=max_iter)
        if f < best_f:
            best_theta, best_f = theta, f
    return GaussianProcess.build(X, y, np.exp(best_theta[:d]), float(np.exp(best_theta[d])),
                                 float(np.exp(best_theta[d + 1])))
