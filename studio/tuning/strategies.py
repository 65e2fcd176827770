"""Search strategies of tuning jobs: random, grid and Bayesian search, the median stopping rule and Hyperband.

Pure numpy and stateless: every call receives the whole history (finished trials in creation order, then
the parameters of pending ones), so a crashed orchestrator resumes by calling again, and the same inputs
always give the same suggestions.

- ``random``: trial ``k`` is drawn from a generator seeded with ``(seed, k)``, so it never depends on how
  suggestions were batched.
- ``grid``: the cartesian grid of integer and categorical ranges in a fixed order (last range fastest),
  skipping points already tried or pending.
- ``bayesian``: ``n_startup`` random trials (the same ones random search would run), then a Gaussian process
  with expected improvement while the history is small (at most ``GP_MAX_OBSERVATIONS`` points), and a
  multivariate TPE beyond, where the GP's cubic cost would dominate. Failed trials count as the worst value
  seen; pending trials are constant liars with that same worst value, so parallel suggestions spread out.

All models work in a unit encoding of the space: each numeric range maps to [0, 1] (after a log for log
scales; integers own equal-width cells), each categorical range to a one-hot block.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from studio.tuning import _tpe
from studio.tuning._gp import GaussianProcess, fit_gp
from studio.tuning._hyperband import (
    HyperbandAction,
    RungTrial,
    hyperband_brackets,
    hyperband_finished,
    hyperband_plan,
)
from studio.tuning._normal import log_expected_improvement
from studio.tuning._space import PARAMETER_TYPES, SCALES, ParameterRange, SearchSpace, _is_number

__all__ = [
    "GOALS",
    "GP_MAX_OBSERVATIONS",
    "PARAMETER_TYPES",
    "SCALES",
    "STRATEGIES",
    "HyperbandAction",
    "Observation",
    "ParameterRange",
    "RungTrial",
    "SearchSpace",
    "hyperband_brackets",
    "hyperband_finished",
    "hyperband_plan",
    "median_stopping_rule",
    "suggest",
]

STRATEGIES = ("random", "grid", "bayesian")
GOALS = ("maximize", "minimize")
N_STARTUP = 10
# Past this many observations (finished + pending) the Bayesian strategy switches from the GP to TPE.
GP_MAX_OBSERVATIONS = 200
# Fully discrete spaces up to this size are scored exhaustively instead of by sampled candidates.
_ENUMERATE_LIMIT = 4096
_SEED_MASK = 2**64 - 1


@dataclass(frozen=True)
class Observation:
    """A finished trial.

    Attributes
    ----------
    params : dict
    value : float or None
        Objective value; None (or a non-finite number) when the trial failed or produced no value.
    """

    params: dict[str, Any]
    value: float | None


def _rng(seed: int, k: int) -> np.random.Generator:
    return np.random.default_rng([int(seed) & _SEED_MASK, k])


def suggest(*, strategy: str, space: SearchSpace, goal: str, history: Sequence[Observation],
            pending: Sequence[Mapping[str, Any]], n: int, seed: int,
            n_startup: int | None = None) -> list[dict[str, Any]]:
    """The next ``n`` parameter sets to try.

    Parameters
    ----------
    strategy : {"random", "grid", "bayesian"}
    space : SearchSpace
    goal : {"maximize", "minimize"}
    history : sequence of Observation
        Finished trials in creation order (warm-start parents' trials may come first). Trials outside the
        space are ignored by the models.
    pending : sequence of mapping
        Parameters of trials still queued or running.
    n : int
        How many suggestions.
    seed : int
        Seed of the tuning job.
    n_startup : int, optional
        Random trials before the Bayesian model takes over; default 10, fewer on small discrete spaces
        (a third of the grid, at least 1).

    Returns
    -------
    list of dict
        ``n`` parameter sets, except: ``grid`` returns fewer when the grid is exhausted, and ``bayesian`` on a
        fully discrete space never repeats a tried or pending point, so it also returns fewer once all are
        taken. ``random`` may repeat points of a discrete space.

    Raises
    ------
    ValueError
        On an unknown strategy or goal, a negative ``n``, or a grid over continuous ranges.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if goal not in GOALS:
        raise ValueError(f"goal must be 'maximize' or 'minimize', got {goal!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    first = len(history) + len(pending)
    if strategy == "grid":
        return _suggest_grid(space, history, pending, n)
    if strategy == "random":
        return [space.sample(_rng(seed, first + j)) for j in range(n)]
    return _Bayesian(space, goal, history, pending, seed, n_startup).run(first, n)


def _suggest_grid(space: SearchSpace, history: Sequence[Observation], pending: Sequence[Mapping[str, Any]],
                  n: int) -> list[dict[str, Any]]:
    size = space.grid_size()
    taken = [p for p in itertools.chain((o.params for o in history), pending) if space.contains(p)]
    seen = set(space._keys(*space._internal(taken))) if taken else set()
    out: list[dict[str, Any]] = []
    index = 0
    # At most len(seen) + n grid points are visited, however large the grid.
    while len(out) < n and index < size:
        point = space._grid_point(index)
        key = space._keys(*space._internal([point]))[0]
        if key not in seen:
            seen.add(key)
            out.append(point)
        index += 1
    return out


class _Bayesian:
    """One call of the Bayesian strategy: the history in model form plus the suggestions made so far."""

    def __init__(self, space: SearchSpace, goal: str, history: Sequence[Observation],
                 pending: Sequence[Mapping[str, Any]], seed: int, n_startup: int | None) -> None:
        self.space, self.seed = space, seed
        sign = -1.0 if goal == "maximize" else 1.0
        finished = [o for o in history if space.contains(o.params)]
        self.U, self.C = space._internal([o.params for o in finished])
        self.y = np.array([sign * float(o.value) if o.value is not None and _is_number(o.value)
                           and math.isfinite(o.value) else np.nan for o in finished], dtype=np.float64)
        inside = [p for p in pending if space.contains(p)]
        self.Up, self.Cp = space._internal(inside)
        self.discrete = space.is_discrete
        self.grid_size = space.grid_size() if self.discrete else None
        self.seen: set[tuple[Any, ...]] = set()
        if self.discrete:
            self.seen = set(space._keys(self.U, self.C)) | set(space._keys(self.Up, self.Cp))
        if n_startup is None:
            n_startup = N_STARTUP if self.grid_size is None else min(N_STARTUP, max(1, self.grid_size // 3))
        self.n_startup = n_startup
        self._gp: tuple[GaussianProcess, np.ndarray] | None = None

    def run(self, first: int, n: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for j in range(n):
            if self.discrete and len(self.seen) >= (self.grid_size or 0):
                break
            rng = _rng(self.seed, first + j)
            if first + j < self.n_startup or int(np.isfinite(self.y).sum()) < 2:
                U, C = self._random_unseen(rng)
            elif self.U.shape[0] + self.Up.shape[0] <= GP_MAX_OBSERVATIONS:
                U, C = self._gp_step(rng)
            else:
                U, C = self._tpe_step(rng)
            out.append(self.space._dicts(U, C)[0])
            self.Up, self.Cp = np.vstack([self.Up, U]), np.vstack([self.Cp, C])
            if self.discrete:
                self.seen.add(self.space._keys(U, C)[0])
        return out

    # -- candidates ------------------------------------------------------------------------------

    def _random_unseen(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        U, C = self.space._sample(rng, 1)
        if not self.discrete or self.space._keys(U, C)[0] not in self.seen:
            return U, C
        for _ in range(32):
            U, C = self.space._sample(rng, 1)
            if self.space._keys(U, C)[0] not in self.seen:
                return U, C
        U, C = self._unseen_grid()
        pick = int(rng.integers(U.shape[0]))
        return U[pick:pick + 1], C[pick:pick + 1]

    def _unseen_grid(self) -> tuple[np.ndarray, np.ndarray]:
        """The first (in grid order) up to ``_ENUMERATE_LIMIT`` points not yet tried or pending.

        The caller checked that at least one exists.
        """
        size = self.grid_size or 0
        Us, Cs, found = [], [], 0
        for start in range(0, size, 1024):
            U, C = self.space._internal([self.space._grid_point(i) for i in range(start, min(size, start + 1024))])
            keep = np.array([k not in self.seen for k in self.space._keys(U, C)], dtype=bool)
            Us.append(U[keep])
            Cs.append(C[keep])
            found += int(keep.sum())
            if found >= _ENUMERATE_LIMIT:
                break
        return np.vstack(Us)[:_ENUMERATE_LIMIT], np.vstack(Cs)[:_ENUMERATE_LIMIT]

    def _mask_seen(self, U: np.ndarray, C: np.ndarray, scores: np.ndarray) -> np.ndarray:
        if self.discrete:
            scores = np.where([k in self.seen for k in self.space._keys(U, C)], -np.inf, scores)
        return scores

    def _perturb(self, U: np.ndarray, C: np.ndarray, scale: float, count: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``count`` random neighbours of each point: Gaussian steps on numeric dims, category flips."""
        U = np.repeat(U, count, axis=0)
        C = np.repeat(C, count, axis=0)
        U = U + scale * rng.standard_normal(U.shape)
        U = np.abs(U)  # reflect at 0 and 1 rather than pile up on the bounds
        U = 1.0 - np.abs(1.0 - U)
        n_dims = U.shape[1] + C.shape[1]
        for j, k in enumerate(self.space._n_choices):
            flip = rng.random(C.shape[0]) < 1.0 / n_dims
            C[flip, j] = rng.integers(k, size=int(flip.sum()))
        return self.space._snap(np.clip(U, 0.0, 1.0)), C

    # -- Gaussian process ------------------------------------------------------------------------

    def _gp_step(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        if self._gp is None:
            # Hyperparameters come from the finished trials only and serve the whole batch: the liars below
            # only condition the posterior, they must not bend the model's idea of the function.
            y = self.y.copy()
            y[~np.isfinite(y)] = np.nanmax(y)  # failed trials count as the worst value seen
            scores = _winsorized_scores(y)
            self._gp = (fit_gp(self.space._onehot(self.U, self.C), scores, rng), scores)
        gp, ys = self._gp
        if self.Up.shape[0]:
            gp = gp.conditioned(self.space._onehot(self.Up, self.Cp), np.full(self.Up.shape[0], ys.max()))
        best = float(ys.min())

        def score(U: np.ndarray, C: np.ndarray) -> np.ndarray:
            mean, std = gp.predict(self.space._onehot(U, C))
            return self._mask_seen(U, C, log_expected_improvement(mean, std, best))

        if self.discrete and (self.grid_size or 0) <= _ENUMERATE_LIMIT:
            U, C = self._unseen_grid()
            pick = int(np.argmax(score(U, C)))
            return U[pick:pick + 1], C[pick:pick + 1]

        U_rand, C_rand = self.space._sample(rng, 1024)
        top = np.argsort(ys[: self.U.shape[0]])[:5]
        local = [self._perturb(self.U[top], self.C[top], s, 32, rng) for s in (0.15, 0.05, 0.01)]
        U = np.vstack([U_rand, *(u for u, _ in local)])
        C = np.vstack([C_rand, *(c for _, c in local)])
        scores = score(U, C)
        # Refine around the best candidates with shrinking steps (EI is not differentiable across integers).
        for s in (0.05, 0.02, 0.005):
            lead = np.argsort(-scores)[:5]
            U_new, C_new = self._perturb(U[lead], C[lead], s, 32, rng)
            U, C = np.vstack([U[lead], U_new]), np.vstack([C[lead], C_new])
            scores = np.concatenate([scores[lead], score(U_new, C_new)])
        if not np.isfinite(scores).any():  # every candidate was taken (large discrete space)
            return self._random_unseen(rng)
        pick = int(np.argmax(scores))
        return U[pick:pick + 1], C[pick:pick + 1]

    # -- TPE -------------------------------------------------------------------------------------

    def _tpe_step(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        U_all = np.vstack([self.U, self.Up])
        C_all = np.vstack([self.C, self.Cp])
        values = np.concatenate([np.where(np.isfinite(self.y), self.y, np.inf), np.full(self.Up.shape[0], np.inf)])
        finished = np.arange(values.size) < self.U.shape[0]
        good, bad = _tpe.mixtures(U_all, C_all, values, finished, self.space._n_choices)
        if self.discrete and (self.grid_size or 0) <= _ENUMERATE_LIMIT:
            U, C = self._unseen_grid()
        else:
            U, C = good.sample(rng, _tpe.N_CANDIDATES)
            U = self.space._snap(U)
        lower, upper = self.space._cells(U)
        discrete = self.space._is_int
        scores = good.log_pdf(U, C, lower, upper, discrete) - bad.log_pdf(U, C, lower, upper, discrete)
        scores = self._mask_seen(U, C, scores)
        if not np.isfinite(scores).any():  # every sampled candidate was taken
            return self._random_unseen(rng)
        pick = int(np.argmax(scores))
        return U[pick:pick + 1], C[pick:pick + 1]


def _winsorized_scores(y: np.ndarray) -> np.ndarray:
    """Standardised targets (minimised) with the bad tail capped at Tukey's upper fence.

    A few diverged or absurd trials would otherwise own the whole variance, and the GP would spend its
    resolution explaining them instead of the differences between good trials (as Ax winsorizes too).
    """
    q25, q75 = np.percentile(y, [25, 75])
    y = np.minimum(y, q75 + 1.5 * (q75 - q25))
    scale = float(y.std())
    return (y - y.mean()) / (scale if scale > 0 else 1.0)


def median_stopping_rule(*, value: float, step: int, others: Sequence[Sequence[tuple[int, float]]], goal: str,
                         min_trials: int = 3, min_step: int = 1) -> tuple[bool, float | None]:
    """SageMaker's median stopping rule for one running trial.

    Each earlier trial that reached ``step`` (reported a value at ``step`` or later) contributes the mean of
    its values at steps ``<= step``; the current trial stops when its value at ``step`` is worse than the
    median of those running averages.

    Parameters
    ----------
    value : float
        Objective of the current trial at ``step``; a missing or non-finite value counts as worse.
    step : int
    others : sequence of sequence of (int, float)
        The ``(step, value)`` curves of the earlier trials; non-finite values are skipped.
    goal : {"maximize", "minimize"}
    min_trials : int
        Fewer earlier trials at ``step`` give no median and never stop.
    min_step : int
        No stop before this step (the median is still returned).

    Returns
    -------
    tuple
        ``(stop, median)``; ``median`` is None when fewer than ``min_trials`` trials reached ``step``.
    """
    if goal not in GOALS:
        raise ValueError(f"goal must be 'maximize' or 'minimize', got {goal!r}")
    averages = []
    for curve in others:
        points = [(s, float(v)) for s, v in curve if v is not None and math.isfinite(v)]
        if not points or max(s for s, _ in points) < step:
            continue
        upto = [v for s, v in points if s <= step]
        if upto:
            averages.append(sum(upto) / len(upto))
    if len(averages) < max(1, min_trials):
        return False, None
    median = float(np.median(averages))
    if step < min_step:
        return False, median
    if value is None or not math.isfinite(value):
        return True, median
    return (value < median if goal == "maximize" else value > median), median
