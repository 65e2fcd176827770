"""K-means clustering: exact Lloyd iterations with Hamerly's bounds, or SageMaker's web-scale streaming.

In the spirit of SageMaker's k-means built-in with a scikit-learn style API:

- ``mode="full"`` runs Lloyd's algorithm over all rows, as scikit-learn's ``KMeans(algorithm="lloyd")``
  (same convergence rule, same empty-cluster handling), but skips the rows whose nearest center
  provably did not change, using Hamerly's bounds: one upper bound on the distance to the assigned
  center and one lower bound on the distance to any other center per row. Only the remaining rows
  get their distances recomputed, as one matrix product per block.
- ``mode="web-scale"`` streams mini-batches (Sculley's web-scale k-means) through
  ``k * extra_center_factor`` centers, each moved towards the mean of the rows it received, then
  reduces them to ``k`` centers with a weighted k-means++ seeding and weighted Lloyd iterations,
  as SageMaker does at the end of training. The extra centers help on clustered data (they
  avoid the local optima where one center sits between two clusters); on data without cluster
  structure the reduction costs a few percent of inertia compared with full mode.

Row-wise work runs in a few threads over contiguous shards of rows: numpy releases the GIL in its
loops, so this uses the cores the way scikit-learn's OpenMP loops do.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, Self, TypeVar

import numpy as np

from algorithms.base import Callback, Estimator, Hyperparameter, Metric

__all__ = ["INIT_METHODS", "MODES", "KMeans"]

_T = TypeVar("_T")

INIT_METHODS = ("kmeans++", "random")
MODES = ("full", "web-scale")

# Threads for row-wise work (numpy releases the GIL in its loops), and the fewest rows worth a thread.
_MAX_THREADS = 8
_MIN_SHARD_ROWS = 50_000
# Above this fraction of rows to re-examine, an assignment pass over all rows is cheaper.
_DENSE_FRACTION = 0.6
# Up to this many centers, distances are laid out centers x rows (see _nearest).
_FEW_CENTERS = 64
# Half the distance between centers is only needed by the bounds test; beyond this many centers the
# k x k computation would cost more than it saves, and the lower bound alone keeps the test valid.
_MAX_CENTERS_FOR_SEPARATION = 2048
# Callback steps per pass in web-scale mode, so that a long pass still reports progress and stops.
_STEPS_PER_PASS = 10
# Seedings tried when web-scale reduces its streaming centers to k: cheap, as it runs on the
# centers rather than the rows.
_REDUCTION_TRIALS = 5
_REDUCTION_MAX_ITER = 300


# -- input checks ------------------------------------------------------------------------------


def _as_features(X: Any, name: str, n_features: int | None = None) -> np.ndarray:
    """Return ``X`` as a finite 2-D float32 or float64 array, or raise a ``ValueError`` a user can act on."""
    if X is None:
        raise ValueError(f"{name} is required")
    array = np.asarray(X)
    if array.dtype not in (np.float32, np.float64):
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"{name} must contain only numbers; encode text or categorical columns first ({exc})"
            ) from None
    if array.ndim != 2:
        hint = f"; for a single feature use {name}.reshape(-1, 1)" if array.ndim == 1 else ""
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got {array.ndim}-D{hint}")
    if array.shape[0] == 0:
        raise ValueError(f"{name} has no rows")
    if array.shape[1] == 0:
        raise ValueError(f"{name} has no feature columns")
    if n_features is not None and array.shape[1] != n_features:
        raise ValueError(f"{name} has {array.shape[1]} features, but the model expects {n_features}")
    # One sum is much cheaper than an element-wise test; it can only overflow for huge finite
    # values, which the exact test below then clears.
    with np.errstate(over="ignore", invalid="ignore"):
        total = array.sum(dtype=np.float64)
    if not np.isfinite(total):
        column_bad = ~np.isfinite(array).all(axis=0)
        if column_bad.any():
            column = int(np.flatnonzero(column_bad)[0])
            if np.isnan(array[:, column]).any():
                raise ValueError(f"{name} contains NaN in column {column}; impute or drop missing values first")
            raise ValueError(f"{name} contains infinite values in column {column}; only finite numbers are allowed")
    return array


# -- distances ---------------------------------------------------------------------------------


def _block_rows(n: int, k: int, d: int) -> int:
    """Rows per block of a (rows x k) distance computation with d features.

    Products stay below OpenBLAS's threading threshold (m * n * k < 2**18) when they can: BLAS
    threads on top of the row shards oversubscribe the cores, and starting them costs more than such
    a product, much more when other processes share the machine.
    """
    return max(1, min(n, max(64, min(8192, (1 << 18) // (k * d)))))


def _row_norms_sq(X: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", X, X, dtype=np.float64)


def _nearest(
    X: np.ndarray,
    x_sq: np.ndarray | None,
    centers: np.ndarray,
    c_sq: np.ndarray | None = None,
    *,
    second: bool = False,
    offset: np.ndarray | None = None,
    out: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Nearest center of every row, by blocks of rows.

    Parameters
    ----------
    X : ndarray of shape (n, d)
        Rows (float32 rows are promoted block by block).
    x_sq : ndarray of shape (n,) or None
        Squared norms of the rows (after ``offset``); computed block by block when None.
    centers : ndarray of shape (k, d)
    c_sq : ndarray of shape (k,), optional
        Squared norms of the centers.
    second : bool
        Also return the squared distance to the second nearest center (``inf`` when k == 1).
    offset : ndarray of shape (d,), optional
        Subtracted from each block of rows first (the data mean: centering avoids cancellation in
        ``|x|^2 - 2 x.c + |c|^2`` without copying the whole data set).
    out : tuple of ndarray, optional
        ``(labels, d1, d2)`` arrays to write into (``d2`` may be None when ``second`` is false).

    Returns
    -------
    labels : ndarray of shape (n,) of intp
    d1 : ndarray of shape (n,)
        Squared distance to the nearest center (clipped at 0).
    d2 : ndarray of shape (n,) or None
        Squared distance to the second nearest center.
    """
    n = X.shape[0]
    k = centers.shape[0]
    if c_sq is None:
        c_sq = _row_norms_sq(centers)
    if out is None:
        out = (np.empty(n, dtype=np.intp), np.empty(n), np.empty(n) if second else None)
    labels, d1, d2 = out
    rows = _block_rows(n, k, X.shape[1])
    if k <= _FEW_CENTERS:
        # Centers x rows layout: reductions over the few centers become element-wise operations on
        # contiguous rows, several times faster than numpy's per-row argmin over short rows.
        neg2_centers = -2.0 * centers
        c_sq_col = c_sq[:, None]
        # argmin over axis 0 would transpose each block; instead mark the minima, weight center j by
        # k - j in uint8 and take the (SIMD) maximum: the first center attaining the minimum wins, as argmin.
        rank = np.arange(k, 0, -1, dtype=np.uint8)[:, None]
        is_min = np.empty((k, rows), dtype=bool)
        ranked = np.empty((k, rows), dtype=np.uint8)
        arange = np.arange(rows)
        for start in range(0, n, rows):
            stop = min(n, start + rows)
            m = stop - start
            block = X[start:stop]
            if offset is not None:
                block = block - offset
            block_sq = x_sq[start:stop] if x_sq is not None else _row_norms_sq(block)
            g = neg2_centers @ block.T
            g += c_sq_col
            best = g.min(axis=0)
            np.equal(g, best, out=is_min[:, :m])
            np.multiply(is_min[:, :m], rank, out=ranked[:, :m])
            label = k - ranked[:, :m].max(axis=0).astype(np.intp)
            labels[start:stop] = label
            np.add(best, block_sq, out=d1[start:stop])
            if d2 is not None:
                if k > 1:
                    g[label, arange[:m]] = np.inf
                    np.add(g.min(axis=0), block_sq, out=d2[start:stop])
                else:
                    d2[start:stop] = np.inf
    else:
        neg2_centers_t = np.ascontiguousarray(-2.0 * centers.T)
        arange = np.arange(rows)
        for start in range(0, n, rows):
            stop = min(n, start + rows)
            block = X[start:stop]
            if offset is not None:
                block = block - offset
            block_sq = x_sq[start:stop] if x_sq is not None else _row_norms_sq(block)
            g = block @ neg2_centers_t
            g += c_sq
            label = g.argmin(axis=1)
            labels[start:stop] = label
            index = arange[: stop - start]
            np.add(g[index, label], block_sq, out=d1[start:stop])
            if d2 is not None:
                if k > 1:
                    g[index, label] = np.inf
                    np.add(g.min(axis=1), block_sq, out=d2[start:stop])
                else:
                    d2[start:stop] = np.inf
    np.maximum(d1, 0.0, out=d1)
    if d2 is not None:
        np.maximum(d2, 0.0, out=d2)
    return labels, d1, d2


def _assign_rows(X: np.ndarray, centers: np.ndarray, origin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest center and squared distance of every row, in thread shards, without copying ``X``.

    Rows and centers are shifted by ``origin`` block by block: near the data, the expansion
    ``|x|^2 - 2 x.c + |c|^2`` keeps its precision.
    """
    n = X.shape[0]
    shifted = centers - origin
    c_sq = _row_norms_sq(shifted)
    labels = np.empty(n, dtype=np.intp)
    d1 = np.empty(n)

    def shard(start: int, stop: int) -> None:
        out = (labels[start:stop], d1[start:stop], None)
        _nearest(X[start:stop], None, shifted, c_sq, offset=origin, out=out)

    with _Shards(n) as shards:
        shards.map(shard)
    return labels, d1


def _squared_distances(X: np.ndarray, x_sq: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Full (n, k) matrix of squared distances, clipped at 0."""
    out = X @ (-2.0 * centers.T)
    out += _row_norms_sq(centers)
    out += x_sq[:, None]
    np.maximum(out, 0.0, out=out)
    return out


def _tolerance(X: np.ndarray, tol: float, weights: np.ndarray | None = None) -> float:
    """scikit-learn's rule: ``tol`` times the mean per-feature variance of the data."""
    if tol == 0.0:
        return 0.0
    if weights is None:
        return float(np.mean(np.var(X, axis=0)) * tol)
    mean = weights @ X / weights.sum()
    return float(np.mean(weights @ (X - mean) ** 2 / weights.sum()) * tol)


# -- seeding -----------------------------------------------------------------------------------


def _kmeans_plusplus(
    X: np.ndarray,
    x_sq: np.ndarray,
    k: int,
    rng: np.random.Generator,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii; scikit-learn's variant).

    Each new center is the best, by resulting potential, of ``2 + log(k)`` candidates drawn with
    probability proportional to the (weighted) squared distance to the nearest chosen center.
    """
    n, d = X.shape
    trials = 2 + int(math.log(k))
    centers = np.empty((k, d))
    if weights is None:
        first = int(rng.integers(n))
    else:
        first = int(np.searchsorted(np.cumsum(weights), rng.uniform() * weights.sum(), side="right"))
        first = min(first, n - 1)
    centers[0] = X[first]
    closest = np.empty(n)
    # Candidates x rows distances, kept (when affordable) so that the winner's needs no recomputation.
    kept = np.empty((trials, n)) if trials * n <= 1 << 25 else None
    rows = _block_rows(n, trials, d)

    def to_center(center: np.ndarray) -> Callable[[int, int], None]:
        def shard(start: int, stop: int) -> None:
            diff = X[start:stop] - center
            np.minimum(closest[start:stop], np.einsum("ij,ij->i", diff, diff), out=closest[start:stop])

        return shard

    with _Shards(n) as shards:
        closest[:] = np.inf
        shards.map(to_center(centers[0]))
        potential_rows = closest if weights is None else closest * weights
        potential = float(potential_rows.sum())
        for c in range(1, k):
            if not potential > 0.0:
                # Every row sits on a chosen center (duplicates): any row is as good as another.
                centers[c] = X[int(rng.integers(n))]
                continue
            draws = rng.uniform(size=trials) * potential
            candidates = np.minimum(np.searchsorted(np.cumsum(potential_rows), draws, side="right"), n - 1)
            candidate_rows = np.take(X, candidates, axis=0)
            neg2_candidates = -2.0 * candidate_rows
            candidate_sq = _row_norms_sq(candidate_rows)[:, None]

            def potentials(
                start: int,
                stop: int,
                neg2_candidates: np.ndarray = neg2_candidates,
                candidate_sq: np.ndarray = candidate_sq,
            ) -> np.ndarray:
                pots = np.zeros(trials)
                for lo in range(start, stop, rows):
                    hi = min(stop, lo + rows)
                    # Candidates x rows: the per-candidate sums run over contiguous memory.
                    dist = neg2_candidates @ X[lo:hi].T
                    dist += x_sq[lo:hi]
                    dist += candidate_sq
                    np.maximum(dist, 0.0, out=dist)
                    np.minimum(dist, closest[lo:hi], out=dist)
                    pots += dist.sum(axis=1) if weights is None else dist @ weights[lo:hi]
                    if kept is not None:
                        kept[:, lo:hi] = dist
                return pots

            pots = np.sum(shards.map(potentials), axis=0)
            best = int(np.argmin(pots))
            centers[c] = candidate_rows[best]
            if kept is not None:
                closest[:] = kept[best]
            else:
                shards.map(to_center(centers[c]))
            potential_rows = closest if weights is None else closest * weights
            potential = float(pots[best])
    return centers


def _random_rows(X: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    return X[np.sort(rng.choice(X.shape[0], size=k, replace=False))].astype(np.float64)


# -- Lloyd with Hamerly's bounds ---------------------------------------------------------------


def _cluster_sums(
    X: np.ndarray, x_sq: np.ndarray, labels: np.ndarray, k: int, weights: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-cluster weighted sums of the rows, weights and squared norms.

    One ``bincount`` per feature: much faster than ``np.add.at`` or a one-hot product.
    """
    d = X.shape[1]
    sums = np.empty((k, d))
    if weights is None:
        for j in range(d):
            sums[:, j] = np.bincount(labels, weights=X[:, j], minlength=k)
        counts = np.bincount(labels, minlength=k).astype(np.float64)
        sq = np.bincount(labels, weights=x_sq, minlength=k)
    else:
        for j in range(d):
            sums[:, j] = np.bincount(labels, weights=X[:, j] * weights, minlength=k)
        counts = np.bincount(labels, weights=weights, minlength=k)
        sq = np.bincount(labels, weights=x_sq * weights, minlength=k)
    return sums, counts, sq


def _half_separation(centers: np.ndarray, n_rows: int) -> np.ndarray:
    """Half the distance from each center to its nearest other center (0 when not worth computing for n_rows)."""
    k = centers.shape[0]
    if k == 1:
        return np.full(1, np.inf)
    if k > _MAX_CENTERS_FOR_SEPARATION or k * k > 4 * n_rows:
        return np.zeros(k)
    c_sq = _row_norms_sq(centers)
    dist = _squared_distances(centers, c_sq, centers)
    np.fill_diagonal(dist, np.inf)
    return 0.5 * np.sqrt(dist.min(axis=1))


def _thread_count() -> int:
    """Threads for row-wise work: the usable cores, at most ``_MAX_THREADS`` and at most ``OMP_NUM_THREADS``.

    ``OMP_NUM_THREADS`` is the limit OpenMP code such as scikit-learn's honours, so one setting
    caps both in a worker that must share its machine.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    limit = os.environ.get("OMP_NUM_THREADS", "").strip()
    if limit.isdigit() and int(limit) > 0:
        cpus = min(cpus, int(limit))
    return max(1, min(cpus, _MAX_THREADS))


class _Shards:
    """Contiguous row ranges processed concurrently by a few threads.

    numpy releases the GIL inside its loops, so row-wise work over large arrays uses the cores the
    way scikit-learn's OpenMP loops do. Each range is written by one thread only, and results are
    combined in range order, so they do not depend on scheduling.
    """

    def __init__(self, n: int) -> None:
        count = max(1, min(_thread_count(), n // _MIN_SHARD_ROWS))
        edges = [n * i // count for i in range(count + 1)]
        self.ranges = list(itertools.pairwise(edges))
        self._pool = ThreadPoolExecutor(count - 1, thread_name_prefix="kmeans") if count > 1 else None

    def map(self, fn: Callable[[int, int], _T]) -> list[_T]:
        """``[fn(start, stop) for each range]``, the first range on the calling thread."""
        if self._pool is None:
            return [fn(start, stop) for start, stop in self.ranges]
        futures = [self._pool.submit(fn, start, stop) for start, stop in self.ranges[1:]]
        try:
            first = fn(*self.ranges[0])
        finally:
            results = [future.result() for future in futures]
        return [first, *results]

    def __enter__(self) -> _Shards:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown()


class _Hamerly:
    """Lloyd iterations with Hamerly's bounds over rows split into thread shards.

    Per row: the label, an upper bound on the distance to its center and a lower bound on the distance
    to every other center, both in distance units. Per cluster: running weighted sums of the rows, of
    their weights and of their squared norms, updated only for the rows that change cluster.
    """

    def __init__(
        self, X: np.ndarray, x_sq: np.ndarray, weights: np.ndarray | None, centers: np.ndarray, shards: _Shards
    ) -> None:
        n = X.shape[0]
        self.X, self.x_sq, self.weights, self.shards = X, x_sq, weights, shards
        self.k = centers.shape[0]
        self.labels = np.empty(n, dtype=np.intp)
        self.upper = np.empty(n)
        self.lower = np.empty(n)
        self.scratch = np.empty(n)
        c_sq = _row_norms_sq(centers)

        def first(start: int, stop: int) -> None:
            out = (self.labels[start:stop], self.upper[start:stop], self.lower[start:stop])
            _nearest(X[start:stop], x_sq[start:stop], centers, c_sq, second=True, out=out)
            np.sqrt(out[1], out=out[1])
            np.sqrt(out[2], out=out[2])

        shards.map(first)

        def sums(start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            part = None if weights is None else weights[start:stop]
            return _cluster_sums(X[start:stop], x_sq[start:stop], self.labels[start:stop], self.k, part)

        partial = shards.map(sums)
        self.sums, self.counts, self.sq_sums = (np.sum(parts, axis=0) for parts in zip(*partial, strict=True))

    # -- assignment ------------------------------------------------------------------------------

    def assign(self, centers: np.ndarray, shift: np.ndarray) -> bool:
        """Loosen the bounds by the center ``shift``, reassign the rows they do not settle; return whether any moved."""
        k = self.k
        separation = _half_separation(centers, self.X.shape[0])
        # Centers that coincide (up to rounding; they appear when the data hold fewer distinct rows
        # than clusters) must not split identical rows between them: their rows are all re-examined,
        # and identical rows then get the same nearest center, leaving the duplicate empty.
        coincident = np.flatnonzero(separation <= 1e-7 * np.sqrt(_row_norms_sq(centers).max()))
        # A row's other centers moved at most the largest shift among the centers it is not assigned to.
        others: np.ndarray | float = 0.0
        if k > 1 and shift.any():
            top = int(np.argmax(shift))
            runner_up = float(np.max(np.delete(shift, top)))
            if runner_up == shift[top]:
                others = runner_up
            else:
                others = np.full(k, shift[top])
                others[top] = runner_up
        moving = bool(shift.any())
        c_sq = _row_norms_sq(centers)

        def shard(start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
            labels, upper, lower = self.labels[start:stop], self.upper[start:stop], self.lower[start:stop]
            scratch = self.scratch[start:stop]
            if moving:
                np.take(shift, labels, out=scratch)
                upper += scratch
                if isinstance(others, np.ndarray):
                    np.take(others, labels, out=scratch)
                    lower -= scratch
                else:
                    lower -= others
            np.take(separation, labels, out=scratch)
            np.maximum(scratch, lower, out=scratch)
            if coincident.size:
                scratch[np.isin(labels, coincident)] = -np.inf
            moved = self._reassign(start, stop, centers, c_sq, labels, upper, lower, scratch)
            return None if moved is None else (moved[0] + start, moved[1], moved[2])

        changes = [change for change in self.shards.map(shard) if change is not None]
        if not changes:
            return False
        rows, old, new = (np.concatenate(parts) for parts in zip(*changes, strict=True))
        self._transfer(rows, old, new)
        return True

    def _reassign(
        self,
        start: int,
        stop: int,
        centers: np.ndarray,
        c_sq: np.ndarray,
        labels: np.ndarray,
        upper: np.ndarray,
        lower: np.ndarray,
        bound: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Reassign the rows of one shard whose upper bound reaches ``bound``; return (rows, old, new) that moved."""
        X, x_sq = self.X[start:stop], self.x_sq[start:stop]
        # ">=": a row tied between its center and another is re-examined, so that ties go to the
        # lowest center index as with a plain argmin.
        candidates = np.flatnonzero(upper >= bound)
        if candidates.size == 0:
            return None
        if candidates.size > _DENSE_FRACTION * X.shape[0]:
            # Most rows need a look: one pass over the contiguous rows beats gathering them.
            new, d1, d2 = _nearest(X, x_sq, centers, c_sq, second=True)
            assert d2 is not None
            np.sqrt(d1, out=upper)
            np.sqrt(d2, out=lower)
            moved = np.flatnonzero(new != labels)
            if moved.size == 0:
                return None
            old = labels[moved]
            new = new[moved]
            labels[moved] = new
            return moved, old, new
        old = labels[candidates]
        # np.take and np.compress: several times faster than fancy or boolean indexing of 2-D arrays.
        rows = np.take(X, candidates, axis=0)
        # Tighten the upper bound to the exact distance first: it settles many rows at d flops each.
        exact = np.sqrt(_row_norms_sq(rows - np.take(centers, old, axis=0)))
        upper[candidates] = exact
        unsettled = exact >= bound[candidates]
        candidates = candidates[unsettled]
        if candidates.size == 0:
            return None
        new, d1, d2 = _nearest(np.compress(unsettled, rows, axis=0), x_sq[candidates], centers, c_sq, second=True)
        assert d2 is not None
        upper[candidates] = np.sqrt(d1)
        lower[candidates] = np.sqrt(d2)
        moved = new != old[unsettled]
        if not moved.any():
            return None
        rows_moved = candidates[moved]
        old = old[unsettled][moved]
        new = new[moved]
        labels[rows_moved] = new
        return rows_moved, old, new

    def _transfer(self, rows: np.ndarray, old: np.ndarray, new: np.ndarray) -> None:
        """Move ``rows`` from clusters ``old`` to clusters ``new`` in the running sums."""
        X = np.take(self.X, rows, axis=0)
        x_sq = self.x_sq[rows]
        weights = None if self.weights is None else self.weights[rows]
        removed = _cluster_sums(X, x_sq, old, self.k, weights)
        added = _cluster_sums(X, x_sq, new, self.k, weights)
        for total, minus, plus in zip((self.sums, self.counts, self.sq_sums), removed, added, strict=True):
            total -= minus
            total += plus

    # -- update ----------------------------------------------------------------------------------

    def update(self, centers: np.ndarray) -> tuple[np.ndarray, bool]:
        """Means of the clusters; an empty cluster takes the row farthest from its center, as scikit-learn.

        Returns the new centers and whether a row was moved to an empty cluster.
        """
        counts = self.counts
        # Weighted counts are updated by additions and subtractions: treat rounding residue as empty.
        floor = 0.0 if self.weights is None else 1e-12 * float(counts.sum())
        empty = np.flatnonzero(counts <= floor)
        relocated = False
        if empty.size:
            far = self.distances_to(centers)
            if self.weights is not None:
                far[self.weights <= 0] = -1.0  # a weightless row would leave the cluster empty
            # Every row sits on its center (fewer distinct rows than clusters): nothing to gain.
            if far.max() > 0:
                # Same choice and order as scikit-learn, so that runs from the same start stay identical.
                count = min(empty.size, far.size)
                for cluster, row in zip(empty, np.argpartition(far, -count)[: -count - 1 : -1], strict=False):
                    if far[row] <= 0:
                        break
                    self._transfer(np.array([row]), self.labels[row : row + 1].copy(), np.array([cluster]))
                    self.labels[row] = cluster
                    relocated = True
                    # Forces an exact recomputation of the row at the next assignment.
                    self.upper[row] = np.inf
                    self.lower[row] = 0.0
        nonempty = counts > floor
        new_centers = centers.copy()
        new_centers[nonempty] = self.sums[nonempty] / counts[nonempty, None]
        return new_centers, relocated

    def distances_to(self, centers: np.ndarray) -> np.ndarray:
        """Exact squared distance of each row to the given center of its cluster."""
        out = np.empty(self.X.shape[0])

        def shard(start: int, stop: int) -> None:
            diff = self.X[start:stop] - np.take(centers, self.labels[start:stop], axis=0)
            np.einsum("ij,ij->i", diff, diff, out=out[start:stop])

        self.shards.map(shard)
        return out

    def sse(self, centers: np.ndarray) -> float:
        """Weighted sum of squared distances of the rows to the given centers of their clusters, from the sums.

        ``sum |x - c|^2 = sum |x|^2 - 2 c.sum x + n |c|^2`` per cluster: exact up to rounding, at no
        pass over the rows.
        """
        sse = self.sq_sums.sum() - 2.0 * np.einsum("ij,ij->", centers, self.sums) + self.counts @ _row_norms_sq(centers)
        return max(float(sse), 0.0)


class _LloydResult:
    __slots__ = ("centers", "converged", "inertia", "labels", "n_iter", "stopped")

    def __init__(
        self, centers: np.ndarray, labels: np.ndarray, inertia: float, n_iter: int, converged: bool, stopped: bool
    ) -> None:
        self.centers = centers
        self.labels = labels
        self.inertia = inertia
        self.n_iter = n_iter
        self.converged = converged
        self.stopped = stopped


def _lloyd(
    X: np.ndarray,
    x_sq: np.ndarray,
    centers: np.ndarray,
    *,
    max_iter: int,
    tol: float,
    weights: np.ndarray | None = None,
    on_iteration: Callable[[int, np.ndarray, float], bool] | None = None,
) -> _LloydResult:
    """Lloyd's algorithm with Hamerly's bounds: the iterates of plain Lloyd (scikit-learn's loop), faster.

    Parameters
    ----------
    X : ndarray of shape (n, d), float64
        Rows, ideally centered (the distance expansion then loses no precision).
    x_sq : ndarray of shape (n,)
        Squared row norms.
    centers : ndarray of shape (k, d)
        Initial centers.
    max_iter : int
        Maximum number of iterations (assignment + update).
    tol : float
        Absolute tolerance on the summed squared center shift (scikit-learn's rule).
    weights : ndarray of shape (n,), optional
        Row weights.
    on_iteration : callable, optional
        ``on_iteration(iteration, new_centers, sse)`` after each update, with the weighted sum of
        squared distances of the rows to the new centers of their current clusters (after the
        last iteration: to their nearest center, i.e. the final inertia); returning ``False`` stops.

    Returns
    -------
    _LloydResult
        Labels are those of the final centers (one last assignment is run when needed); the inertia
        is computed exactly from them.
    """
    centers = np.array(centers, dtype=np.float64, copy=True)
    with _Shards(X.shape[0]) as shards:
        state = _Hamerly(X, x_sq, weights, centers, shards)
        converged = stopped = False
        n_iter = 0
        changed = True  # the first assignment counts as a change, as in scikit-learn
        shift = np.zeros(centers.shape[0])
        for iteration in range(1, max_iter + 1):
            n_iter = iteration
            if iteration > 1:
                changed = state.assign(centers, shift)
            new_centers, relocated = state.update(centers)
            changed = changed or relocated
            shift = np.sqrt(_row_norms_sq(new_centers - centers))
            centers = new_centers
            # No row changed cluster: the new centers equal the old ones and the labels are final.
            strict = iteration > 1 and not changed
            converged = strict or float(shift @ shift) <= tol
            last = converged or iteration == max_iter
            settled = strict
            if last and not settled:
                # One more assignment so that the labels, and the reported metrics, match the final centers.
                state.assign(centers, shift)
                settled = True
            if on_iteration is not None and not on_iteration(iteration, centers, state.sse(centers)):
                stopped = True
            if last or stopped:
                if not settled:
                    state.assign(centers, shift)
                break
        distances = state.distances_to(centers)
        inertia = float(distances.sum() if weights is None else weights @ distances)
    return _LloydResult(centers, state.labels, inertia, n_iter, converged, stopped)


# -- web-scale streaming -----------------------------------------------------------------------


def _reduce_centers(
    centers: np.ndarray,
    weights: np.ndarray,
    k: int,
    rng: np.random.Generator,
    trials: int,
    tol: float,
    start: np.ndarray | None = None,
) -> np.ndarray:
    """Reduce weighted streaming centers to ``k``: the best of ``trials`` weighted k-means++ + Lloyd runs.

    ``start``, a previous reduction, adds a Lloyd run warm-started from it.
    """
    keep = weights > 0
    points, point_weights = centers[keep], weights[keep]
    if points.shape[0] <= k:
        # Fewer informative centers than clusters: keep them all, fill with weightless ones.
        return np.concatenate([points, centers[~keep][: k - points.shape[0]]])
    mean = point_weights @ points / point_weights.sum()
    points = points - mean
    p_sq = _row_norms_sq(points)
    abs_tol = _tolerance(points, tol, point_weights)
    best, best_sse = None, np.inf
    starts = [None] * trials if start is None else [start - mean, *[None] * trials]
    for seeds in starts:
        if seeds is None:
            seeds = _kmeans_plusplus(points, p_sq, k, rng, point_weights)
        result = _lloyd(points, p_sq, seeds, max_iter=_REDUCTION_MAX_ITER, tol=abs_tol, weights=point_weights)
        sse = result.inertia
        if sse < best_sse:
            best, best_sse = result.centers, sse
    assert best is not None
    return best + mean


# -- the estimator -----------------------------------------------------------------------------


class KMeans(Estimator):
    """K-means clustering, full Lloyd (accelerated) or SageMaker-style web-scale streaming.

    Full mode reproduces scikit-learn's ``KMeans(algorithm="lloyd")`` iterates from the same initial
    centers (same labels, centers to rounding, same iteration count, except on data with exact
    distance ties); web-scale mode trades some inertia for one pass over the data. Row-wise work
    is split between up to 8 threads (numpy releases the GIL), capped by ``OMP_NUM_THREADS``.
    Input may be float32 or float64; computations and centers are float64.

    Parameters
    ----------
    k : int
        Number of clusters.
    init_method : {"kmeans++", "random"}
        Seeding: greedy k-means++ (as scikit-learn) or ``k`` distinct random rows.
    epochs : int
        Maximum Lloyd iterations (``mode="full"``) or passes over the data (``mode="web-scale"``).
    tol : float
        Training stops when the squared movement of the centers, summed over ``k`` centers, falls
        to ``tol`` times the mean feature variance (scikit-learn's rule). In web-scale mode the
        movement over a pass of the streaming centers is scaled to ``k`` centers.
    mode : {"full", "web-scale"}
        ``"full"``: exact Lloyd iterations over all rows, accelerated with Hamerly's bounds.
        ``"web-scale"``: mini-batch streaming through ``k * extra_center_factor`` centers, reduced
        to ``k`` at the end; one pass is often enough on large data.
    mini_batch_size : int
        Rows per streaming update (web-scale only).
    extra_center_factor : int
        Web-scale keeps ``k * extra_center_factor`` centers while streaming: extra centers soak up
        the early mistakes of streaming and are merged by the final reduction.
    half_life_time_size : int
        Web-scale only: number of rows after which a row's weight in its center's mean has halved,
        so that centers follow drifting data; 0 disables the decay.
    random_state : int
        Seed of the seeding and of the streaming order.

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (k, n_features)
        Centers, float64.
    cluster_sizes_ : ndarray of shape (k,)
        Training rows assigned to each center (a center may be empty on data with fewer distinct
        rows than ``k``).
    inertia_ : float
        Sum of squared distances of the training rows to their nearest center.
    n_iter_ : int
        Lloyd iterations (full) or passes (web-scale) run.
    n_features_in_ : int
        Features seen in ``fit``.
    converged_ : bool
        Whether the ``tol`` rule (or an unchanged assignment) ended training.
    stopped_early_ : bool
        Whether the callback stopped training.
    stop_reason_ : str or None
        ``"callback"`` or None.
    """

    name: ClassVar[str] = "kmeans"
    title: ClassVar[str] = "K-Means"
    task: ClassVar[str] = "clustering"
    input: ClassVar[str] = "tabular"
    target: ClassVar[str] = "none"
    hyperparameters: ClassVar[tuple[Hyperparameter, ...]] = (
        Hyperparameter(
            "k",
            "int",
            8,
            min=1,
            max=100_000,
            scale="log",
            tunable=False,
            help="Number of clusters. More clusters always lower the distances, so it is chosen, not tuned.",
        ),
        Hyperparameter(
            "init_method",
            "categorical",
            "kmeans++",
            choices=INIT_METHODS,
            help="Initial centers: kmeans++ spreads them out (better, slower to seed); random picks random rows.",
        ),
        Hyperparameter(
            "epochs",
            "int",
            300,
            min=1,
            max=10_000,
            scale="log",
            help="Maximum Lloyd iterations (full mode) or passes over the data (web-scale mode).",
        ),
        Hyperparameter(
            "tol",
            "float",
            1e-4,
            min=0.0,
            max=1.0,
            tunable=False,
            help="Stop when the centers move less than tol times the mean feature variance; 0 runs all epochs.",
        ),
        Hyperparameter(
            "mode",
            "categorical",
            "full",
            choices=MODES,
            tunable=False,
            help="full: exact Lloyd iterations over all rows. web-scale: stream mini-batches, for very large data.",
        ),
        Hyperparameter(
            "mini_batch_size",
            "int",
            5000,
            min=1,
            max=1_000_000,
            scale="log",
            help="Web-scale mode: rows per streaming update.",
        ),
        Hyperparameter(
            "extra_center_factor",
            "int",
            4,
            min=1,
            max=100,
            help="Web-scale mode: stream through k x this many centers, merged into k at the end.",
        ),
        Hyperparameter(
            "half_life_time_size",
            "int",
            0,
            min=0,
            max=10**9,
            tunable=False,
            help="Web-scale mode: rows after which an old row's weight in its center halves (drifting data); 0 = none.",
        ),
        Hyperparameter(
            "random_state",
            "int",
            0,
            min=0,
            max=2**32 - 1,
            tunable=False,
            help="Seed of the initial centers and of the streaming order.",
        ),
    )
    metrics: ClassVar[tuple[Metric, ...]] = (
        Metric("train:msd", "minimize"),
        Metric("validation:msd", "minimize"),
        Metric("train:ssd", "minimize"),
        Metric("validation:ssd", "minimize"),
    )
    # Mean squared distance does not grow with the number of rows, so it compares across splits.
    default_objective: ClassVar[str] = "validation:msd"

    _fitted_arrays: ClassVar[tuple[str, ...]] = ("cluster_centers_", "cluster_sizes_")
    _fitted_json: ClassVar[tuple[str, ...]] = (
        "inertia_",
        "n_iter_",
        "n_features_in_",
        "converged_",
        "stopped_early_",
        "stop_reason_",
    )

    def __init__(
        self,
        k: int = 8,
        init_method: str = "kmeans++",
        epochs: int = 300,
        tol: float = 1e-4,
        mode: str = "full",
        mini_batch_size: int = 5000,
        extra_center_factor: int = 4,
        half_life_time_size: int = 0,
        random_state: int = 0,
    ) -> None:
        super().__init__(
            k=k,
            init_method=init_method,
            epochs=epochs,
            tol=tol,
            mode=mode,
            mini_batch_size=mini_batch_size,
            extra_center_factor=extra_center_factor,
            half_life_time_size=half_life_time_size,
            random_state=random_state,
        )

    @property
    def task_(self) -> str:
        """What the fitted model does, in the vocabulary shared by every estimator."""
        return "clustering"

    # -- training ------------------------------------------------------------------------------

    def fit(
        self,
        X: Any,
        y: Any = None,
        *,
        X_val: Any = None,
        y_val: Any = None,
        callback: Callback | None = None,
        init_centers: Any = None,
    ) -> Self:
        """Cluster the rows of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Finite numbers; float32 input is processed in float64.
        y : ignored
            Accepted for API consistency.
        X_val : array-like of shape (n_val, n_features), optional
            Validation rows; ``validation:msd`` and ``validation:ssd`` are then reported.
        y_val : ignored
        callback : callable, optional
            ``callback(step, metrics)`` with ``train:msd`` and ``train:ssd`` (plus the validation
            ones): after every Lloyd iteration in full mode, where they measure the rows against the
            updated centers of their current clusters; in web-scale mode about ten times per pass,
            where they estimate the distance of recent rows to the ``k`` centers the streaming
            centers reduce to (the last step reports the exact values of the final model).
            Returning ``False`` stops training after that step; the model stays usable.
        init_centers : array-like of shape (k, n_features), optional
            Initial centers, replacing ``init_method`` (to reproduce a run or compare with another
            implementation from the same start).

        Returns
        -------
        KMeans
            ``self``.

        Raises
        ------
        HyperparameterError
            If a hyperparameter is invalid.
        ValueError
            If the data are not finite numbers, or ``k`` exceeds the number of rows.
        """
        params = self._validated_params()
        X_arr = _as_features(X, "X")
        n, d = X_arr.shape
        k = params["k"]
        if k > n:
            raise ValueError(f"k={k} clusters need at least {k} rows, but X has {n}; lower k or add rows")
        Xv_arr = _as_features(X_val, "X_val", d) if X_val is not None else None
        seeds = None
        if init_centers is not None:
            seeds = _as_features(init_centers, "init_centers", d).astype(np.float64)
            if seeds.shape[0] != k:
                raise ValueError(f"init_centers has {seeds.shape[0]} rows, but k={k}")
        rng = np.random.default_rng(params["random_state"])
        self.n_features_in_ = d
        self.stop_reason_: str | None = None
        if params["mode"] == "full":
            self._fit_full(X_arr, Xv_arr, params, rng, seeds, callback)
        else:
            self._fit_web_scale(X_arr, Xv_arr, params, rng, seeds, callback)
        self.stopped_early_ = self.stop_reason_ is not None
        return self

    def _fit_full(
        self,
        X: np.ndarray,
        X_val: np.ndarray | None,
        params: dict[str, Any],
        rng: np.random.Generator,
        seeds: np.ndarray | None,
        callback: Callback | None,
    ) -> None:
        n = X.shape[0]
        k = params["k"]
        mean = X.mean(axis=0, dtype=np.float64)
        # A centered float64 copy: the distance expansion then keeps its precision, and the
        # caller's array is never modified.
        centered = np.empty(X.shape)
        x_sq = np.empty(n)

        def prepare(start: int, stop: int) -> None:
            np.subtract(X[start:stop], mean, out=centered[start:stop])
            np.einsum("ij,ij->i", centered[start:stop], centered[start:stop], out=x_sq[start:stop])

        with _Shards(n) as shards:
            shards.map(prepare)
        if seeds is not None:
            start = seeds - mean
        elif params["init_method"] == "kmeans++":
            start = _kmeans_plusplus(centered, x_sq, k, rng)
        else:
            start = _random_rows(centered, k, rng)

        def on_iteration(iteration: int, centers: np.ndarray, sse: float) -> bool:
            metrics = {"train:msd": sse / n, "train:ssd": sse}
            if X_val is not None:
                metrics.update(self._channel_metrics(X_val, centers + mean, "validation"))
            keep_going = self._emit(callback, iteration, metrics)
            if not keep_going:
                self.stop_reason_ = "callback"
            return keep_going

        result = _lloyd(
            centered,
            x_sq,
            start,
            max_iter=params["epochs"],
            # scikit-learn's tol times the mean feature variance; the data are centered, so that
            # variance is the mean squared norm over the features (no pass over the data).
            tol=params["tol"] * float(x_sq.sum()) / (n * X.shape[1]),
            on_iteration=on_iteration if callback is not None else None,
        )
        self.inertia_ = result.inertia
        self.cluster_centers_ = result.centers + mean
        self.cluster_sizes_ = np.bincount(result.labels, minlength=k).astype(np.int64)
        self.n_iter_ = result.n_iter
        self.converged_ = result.converged

    def _fit_web_scale(
        self,
        X: np.ndarray,
        X_val: np.ndarray | None,
        params: dict[str, Any],
        rng: np.random.Generator,
        seeds: np.ndarray | None,
        callback: Callback | None,
    ) -> None:
        n = X.shape[0]
        k = params["k"]
        n_stream = min(n, k * params["extra_center_factor"])
        batch = min(params["mini_batch_size"], n)
        n_batches = -(-n // batch)
        group = -(-n_batches // _STEPS_PER_PASS)
        # Centering is applied per mini-batch, so the data are never copied as a whole.
        mean = X.mean(axis=0, dtype=np.float64)
        decay = 0.5 ** (batch / params["half_life_time_size"]) if params["half_life_time_size"] else 1.0
        tol = params["tol"]

        order = rng.permutation(n)
        # A sample of the stream seeds the streaming centers, as SageMaker seeds from its first
        # mini-batches, and gives the data variance that scales tol.
        sample = np.subtract(np.take(X, np.sort(order[: min(n, max(batch, 3 * n_stream))]), axis=0), mean)
        abs_tol = tol * float(np.mean(sample.var(axis=0))) if tol else 0.0
        if seeds is not None and n_stream == k:
            centers = seeds - mean
        else:
            if params["init_method"] == "kmeans++":
                centers = _kmeans_plusplus(sample, _row_norms_sq(sample), n_stream, rng)
            else:
                centers = _random_rows(sample, n_stream, rng)
            if seeds is not None:
                centers[:k] = seeds - mean
        counts = np.zeros(n_stream)
        # Progress reports reduce the streaming centers with their own generator, so that the model
        # does not depend on whether anyone listens; without a callback they are skipped.
        report_rng = np.random.default_rng(rng.integers(2**63))
        reported: np.ndarray | None = None

        step = 0
        passes = 0
        converged = False
        final_centers: np.ndarray | None = None
        for epoch in range(1, params["epochs"] + 1):
            passes = epoch
            if epoch > 1:
                order = rng.permutation(n)
            pass_start = centers.copy()
            group_sse = 0.0
            group_rows = 0
            for b in range(n_batches):
                rows = order[b * batch : (b + 1) * batch]
                block = np.subtract(np.take(X, rows, axis=0), mean, dtype=np.float64)
                block_sq = _row_norms_sq(block)
                labels, d1, _ = _nearest(block, block_sq, centers)
                group_sse += float(d1.sum())
                group_rows += rows.size
                sums, sizes, _ = _cluster_sums(block, block_sq, labels, n_stream, None)
                if decay != 1.0:
                    counts *= decay
                counts += sizes
                hit = sizes > 0
                # Each center becomes the (decayed) running mean of the rows it received.
                centers[hit] += (sums[hit] - sizes[hit, None] * centers[hit]) / counts[hit, None]
                last_batch = b == n_batches - 1
                if not last_batch and (b + 1) % group:
                    continue
                step += 1
                if last_batch:
                    movement = _row_norms_sq(centers - pass_start).sum() * (k / n_stream)
                    converged = bool(movement <= abs_tol)
                final = last_batch and (converged or epoch == params["epochs"])
                if final:
                    reduced = final_centers = _reduce_centers(centers, counts, k, rng, _REDUCTION_TRIALS, tol)
                    metrics = self._finish_web_scale(X, mean, reduced)
                elif callback is not None:
                    reduced = reported = _reduce_centers(centers, counts, k, report_rng, 1, tol, reported)
                    metrics = self._streaming_estimate(centers, counts, reduced, group_sse, group_rows, n)
                else:
                    continue
                group_sse, group_rows = 0.0, 0
                if X_val is not None:
                    metrics.update(self._channel_metrics(X_val, reduced + mean, "validation"))
                if not self._emit(callback, step, metrics):
                    self.stop_reason_ = "callback"
                    if not final:
                        final_centers = _reduce_centers(centers, counts, k, rng, _REDUCTION_TRIALS, tol)
                        self._finish_web_scale(X, mean, final_centers)
                    break
            if self.stop_reason_ is not None or converged:
                break
        assert final_centers is not None
        self.n_iter_ = passes
        self.converged_ = converged

    @staticmethod
    def _streaming_estimate(
        centers: np.ndarray, counts: np.ndarray, reduced: np.ndarray, group_sse: float, group_rows: int, n_train: int
    ) -> dict[str, float]:
        """Two-level estimate of the current model's mean squared distance, at no pass over the data.

        Recent rows' distance to their streaming center, plus the weighted distance of the
        streaming centers to the ``k`` centers they reduce to.
        """
        _, d1, _ = _nearest(centers, _row_norms_sq(centers), reduced)
        weight = float(counts.sum())
        msd = group_sse / max(group_rows, 1) + (float(counts @ d1) / weight if weight > 0 else 0.0)
        return {"train:msd": msd, "train:ssd": msd * n_train}

    def _finish_web_scale(self, X: np.ndarray, mean: np.ndarray, reduced: np.ndarray) -> dict[str, float]:
        """Store the final model and return its exact training metrics."""
        k = reduced.shape[0]
        labels, d1 = _assign_rows(X, reduced + mean, mean)
        sizes = np.bincount(labels, minlength=k).astype(np.int64)
        sse = float(d1.sum())
        self.cluster_centers_ = reduced + mean
        self.cluster_sizes_ = sizes
        self.inertia_ = sse
        return {"train:msd": sse / X.shape[0], "train:ssd": sse}

    # -- inference -----------------------------------------------------------------------------

    def _prepare(self, X: Any) -> np.ndarray:
        self._check_is_fitted()
        return _as_features(X, "X", self.n_features_in_)

    def _labels_and_distances(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        rows = self._prepare(X)
        centers = self.cluster_centers_
        return _assign_rows(rows, centers, centers.mean(axis=0))

    @staticmethod
    def _channel_metrics(X: np.ndarray, centers: np.ndarray, channel: str) -> dict[str, float]:
        _, d1 = _assign_rows(X, centers, centers.mean(axis=0))
        ssd = float(d1.sum())
        return {f"{channel}:msd": ssd / X.shape[0], f"{channel}:ssd": ssd}

    def predict(self, X: Any) -> np.ndarray:
        """Index of the nearest center of each row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,) of int64
        """
        return self._labels_and_distances(X)[0].astype(np.int64)

    def fit_predict(self, X: Any, y: Any = None, **fit_params: Any) -> np.ndarray:
        """Fit, then return the cluster index of each training row."""
        return self.fit(X, **fit_params).predict(X)

    def transform(self, X: Any) -> np.ndarray:
        """Euclidean distance of each row to each center.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, k)
        """
        rows = self._prepare(X)
        origin = self.cluster_centers_.mean(axis=0)
        centers = self.cluster_centers_ - origin
        out = np.empty((rows.shape[0], centers.shape[0]))

        def shard(start: int, stop: int) -> None:
            block = np.subtract(rows[start:stop], origin, dtype=np.float64)
            np.sqrt(_squared_distances(block, _row_norms_sq(block), centers), out=out[start:stop])

        with _Shards(rows.shape[0]) as shards:
            shards.map(shard)
        return out

    def score(self, X: Any, y: Any = None) -> float:
        """Opposite of the sum of squared distances to the nearest centers, as scikit-learn (higher is better).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : ignored

        Returns
        -------
        float
        """
        return -float(self._labels_and_distances(X)[1].sum())

    def evaluate(self, X: Any, y: Any = None, *, channel: str = "validation") -> dict[str, float]:
        """Mean and sum of squared distances of the rows to their nearest center.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : ignored
        channel : {"train", "validation"}
            Prefix of the metric names.

        Returns
        -------
        dict of str to float
            ``{"<channel>:msd": ..., "<channel>:ssd": ...}``.
        """
        if channel not in ("train", "validation"):
            raise ValueError(f"channel must be 'train' or 'validation', got {channel!r}")
        d1 = self._labels_and_distances(X)[1]
        ssd = float(d1.sum())
        return {f"{channel}:msd": ssd / d1.shape[0], f"{channel}:ssd": ssd}

    def _after_load(self) -> None:
        n_features = self.n_features_in_
        if not isinstance(n_features, int) or n_features < 1:
            raise ValueError(f"saved model has an invalid n_features_in_ {n_features!r}")
        centers = np.asarray(self.cluster_centers_)
        expected = (self.k, n_features)
        if centers.shape != expected or centers.dtype.kind != "f":
            raise ValueError(f"saved model has cluster_centers_ of shape {centers.shape}, expected {expected}")
        if not np.isfinite(centers).all():
            raise ValueError("saved model has non-finite cluster_centers_")
        sizes = np.asarray(self.cluster_sizes_)
        if sizes.shape != (self.k,) or sizes.dtype.kind not in "iu":
            raise ValueError(f"saved model has cluster_sizes_ of shape {sizes.shape}, expected ({self.k},)")
        self.cluster_centers_ = centers.astype(np.float64)
