"""The k-means kernels: distances, k-means++ seeding, and Lloyd's algorithm with Hamerly's bounds.

Row-wise work runs in a few threads over contiguous shards of rows (:class:`_Shards`): numpy
releases the GIL in its loops, so this uses the cores the way scikit-learn's OpenMP loops do.
Used by :mod:`algorithms.kmeans`, which holds the estimator and the web-scale streaming mode.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np

_T = TypeVar("_T")

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
