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

from typing import Any, ClassVar, Self

import numpy as np

from algorithms._checks import as_matrix, check_channel, check_saved_array, check_saved_count
from algorithms._kmeans_lloyd import (
    _assign_rows,
    _cluster_sums,
    _kmeans_plusplus,
    _lloyd,
    _nearest,
    _random_rows,
    _row_norms_sq,
    _Shards,
    _squared_distances,
    _tolerance,
)
from algorithms.base import Callback, Estimator, Hyperparameter, Metric

__all__ = ["INIT_METHODS", "MODES", "KMeans"]

INIT_METHODS = ("kmeans++", "random")
MODES = ("full", "web-scale")

# Callback steps per pass in web-scale mode, so that a long pass still reports progress and stops.
_STEPS_PER_PASS = 10
# Seedings tried when web-scale reduces its streaming centers to k: cheap, as it runs on the
# centers rather than the rows.
_REDUCTION_TRIALS = 5
_REDUCTION_MAX_ITER = 300


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
        X_arr = as_matrix(X, "X")
        n, d = X_arr.shape
        k = params["k"]
        if k > n:
            raise ValueError(f"k={k} clusters need at least {k} rows, but X has {n}; lower k or add rows")
        Xv_arr = as_matrix(X_val, "X_val", d) if X_val is not None else None
        seeds = None
        if init_centers is not None:
            seeds = as_matrix(init_centers, "init_centers", d).astype(np.float64)
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
        return as_matrix(X, "X", self.n_features_in_)

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
        check_channel(channel)
        d1 = self._labels_and_distances(X)[1]
        ssd = float(d1.sum())
        return {f"{channel}:msd": ssd / d1.shape[0], f"{channel}:ssd": ssd}

    def _after_load(self) -> None:
        n_features = self.n_features_in_
        check_saved_count("n_features_in_", n_features)
        centers = check_saved_array("cluster_centers_", self.cluster_centers_, (self.k, n_features))
        if not np.isfinite(centers).all():
            raise ValueError("saved model has non-finite cluster_centers_")
        check_saved_array("cluster_sizes_", self.cluster_sizes_, (self.k,), "iu")
        self.cluster_centers_ = centers.astype(np.float64)
