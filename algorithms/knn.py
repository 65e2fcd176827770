"""k-nearest neighbors: brute-force search by blocked matrix products, classification or regression.

In the spirit of SageMaker's k-NN built-in: ``fit`` builds an index of the (optionally randomly
projected) training rows; a query is answered by its ``k`` closest training rows under the L2
or cosine distance, which vote (classifier) or are averaged (regressor).

The search is exact and follows scikit-learn's brute-force ``KNeighborsClassifier`` /
``KNeighborsRegressor``: the same distances, neighbors ordered by distance then by training
index, the same votes and probabilities. The speed comes from three choices:

* Distances come from one matrix product per block of queries. The index stores
  ``[-2 x, ||x||^2]`` (or ``[-x, 1]`` for cosine), and queries get a column of ones, so the
  product is directly ``||x||^2 - 2 q.x`` (``1 - cos``): no extra pass to add the norms.
* The ``k`` smallest of each row are found without a partial sort of the whole row: the row is
  cut into groups, one vectorized ``min`` per group, and only the ``k`` groups with the smallest
  minima can hold the ``k`` nearest rows (ties are detected and resolved exactly).
* The block of queries is sized from a memory budget (``max_block_mb``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, ClassVar, Self

import numpy as np

# Aliased: ``metrics`` is also the class attribute declaring the reported metrics.
from algorithms import metrics as metric_fns
from algorithms._checks import (
    as_labels,
    as_matrix,
    check_channel,
    check_saved_count,
    infer_predictor_type,
)
from algorithms.base import Callback, Estimator, Hyperparameter, Metric

__all__ = ["DIMENSION_REDUCTION_TYPES", "DISTANCES", "KNN", "PREDICTOR_TYPES", "WEIGHTS"]

PREDICTOR_TYPES = ("auto", "classifier", "regressor")
DISTANCES = ("l2", "cosine")
WEIGHTS = ("uniform", "distance")
DIMENSION_REDUCTION_TYPES = ("none", "sign", "fjlt")
# Queries per block: beyond ~128 rows the product is already at full BLAS speed, and smaller
# blocks keep the distance block closer to the caches.
_MAX_QUERY_BLOCK = 128
# Under these sizes, grouping does not pay for itself and rows are partitioned directly.
_MIN_GROUPED_ROWS = 4096
_MIN_GROUP, _MAX_GROUP = 16, 128
# scikit-learn's normalize() treats smaller norms as zero (a zero vector stays zero).
_ZERO_NORM = 10 * np.finfo(np.float64).eps
_VALIDATION_STEPS = 10


# -- helpers -----------------------------------------------------------------------------------


def _normalize_rows(X: np.ndarray) -> np.ndarray:
    """Unit rows, zero rows left at zero: scikit-learn's ``normalize`` for the cosine distance."""
    norms = np.sqrt(np.einsum("ij,ij->i", X, X))
    norms[norms < _ZERO_NORM] = 1.0
    return X / norms[:, None]


# -- selection of the k smallest ---------------------------------------------------------------


def _take(values: np.ndarray, positions: np.ndarray) -> np.ndarray:
    return np.take_along_axis(values, positions, axis=1)


def _smallest(values: np.ndarray, index: np.ndarray | None, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` smallest of every row, ordered by (value, index) as a stable sort would give.

    Parameters
    ----------
    values : ndarray of shape (n_rows, m)
        Candidate scores; ``m >= k``.
    index : ndarray of shape (n_rows, m), optional
        Training index of each candidate; by default the column number.
    k : int

    Returns
    -------
    values, index : ndarray of shape (n_rows, k)
    """
    n_rows, m = values.shape
    if index is None:
        index = np.broadcast_to(np.arange(m), values.shape)
    part = np.argpartition(values, k - 1, axis=1)[:, :k] if m > k else np.broadcast_to(np.arange(m), (n_rows, m))
    best = _take(values, part)
    best_index = _take(index, part)
    # argpartition breaks ties arbitrarily: where more than k values reach the k-th smallest, the
    # kept set must be the lowest indices, so those (rare) rows are sorted exactly.
    tied = np.flatnonzero(np.count_nonzero(values <= best.max(axis=1)[:, None], axis=1) > k)
    for row in tied:
        order = np.lexsort((index[row], values[row]))[:k]
        best[row] = values[row, order]
        best_index[row] = index[row, order]
    order = np.lexsort((best_index, best), axis=1)
    return _take(best, order), _take(best_index, order)


def _select(
    scores: np.ndarray, n_samples: int, group: int, k: int, floor: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest training rows of every query from one block of scores.

    Parameters
    ----------
    scores : ndarray of shape (n_queries, n_padded)
        ``||x||^2 - 2 q.x`` (or ``1 - cos``); padding columns hold ``+inf``.
    n_samples : int
        Number of real training rows.
    group : int
        Group size; 1 partitions every row directly.
    k : int
    floor : float, optional
        Scores are clipped from below at this value (0 for cosine, as scikit-learn does), which
        can create ties.

    Returns
    -------
    values, index : ndarray of shape (n_queries, k)
        Scores and training indices, nearest first.
    """
    n_rows, n_padded = scores.shape
    if group == 1:
        values = scores[:, :n_samples]
        if floor is not None:
            values = np.maximum(values, floor)
        return _smallest(values, None, k)
    n_groups = n_padded // group
    # Group j holds columns j, j + n_groups, j + 2 n_groups...: the minimum over groups is then an
    # element-wise minimum of contiguous slices, the fastest reduction numpy has.
    grouped = scores.reshape(n_rows, group, n_groups)
    minima = grouped.min(axis=1)
    chosen = np.argpartition(minima, k - 1, axis=1)[:, :k]
    threshold = _take(minima, chosen).max(axis=1)
    rows = np.arange(n_rows)[:, None]
    candidates = grouped[rows, :, chosen].reshape(n_rows, k * group)
    index = (chosen[:, :, None] + n_groups * np.arange(group)).reshape(n_rows, k * group)
    if floor is not None:
        candidates = np.maximum(candidates, floor)
    values, best = _smallest(candidates, index, k)
    # Every row outside the k chosen groups scores >= threshold, so the choice is exact unless
    # another group also reaches the threshold (a tie the index order must decide), or the floor
    # turns scores below it into ties.
    unsafe = np.count_nonzero(minima <= threshold[:, None], axis=1) > k
    if floor is not None:
        unsafe |= threshold <= floor
    for row in np.flatnonzero(unsafe):
        line = scores[row, :n_samples]
        if floor is not None:
            line = np.maximum(line, floor)
        order = np.argsort(line, kind="stable")[:k]
        values[row], best[row] = line[order], order
    return values, best


def _group_size(n_samples: int, k: int) -> int:
    """Group size balancing the group minima (n / g values) against the candidates (k g)."""
    if n_samples < _MIN_GROUPED_ROWS or 32 * k > n_samples:
        return 1
    size = 2 ** math.floor(math.log2(math.sqrt(n_samples / k)))
    return int(min(max(size, _MIN_GROUP), _MAX_GROUP))


def _projection(kind: str, n_features: int, target: int, seed: int) -> np.ndarray:
    """Random projection matrix of shape (n_features, target) that preserves distances on average.

    ``sign``: independent +-1 / sqrt(target) entries. ``fjlt``: a subsampled randomized Hadamard
    transform (random signs, Walsh-Hadamard mixing, ``target`` sampled coordinates), the
    structured fast Johnson-Lindenstrauss transform; it is applied as a dense product here.
    """
    rng = np.random.default_rng(seed)
    if kind == "sign":
        return rng.choice(np.array([-1.0, 1.0]), size=(n_features, target)) / math.sqrt(target)
    padded = 1 << max(n_features - 1, 0).bit_length()
    columns = rng.choice(padded, size=target, replace=False)
    signs = rng.choice(np.array([-1.0, 1.0]), size=n_features)
    # Entry (i, j) of the Sylvester-Hadamard matrix is (-1) ** popcount(i & j).
    parity = np.bitwise_count(np.arange(n_features)[:, None] & columns[None, :]) & 1
    hadamard = 1.0 - 2.0 * parity
    return signs[:, None] * hadamard / math.sqrt(target)


# -- the estimator -----------------------------------------------------------------------------


class KNN(Estimator):
    """k-nearest neighbors classifier or regressor with an exact brute-force search.

    Parameters
    ----------
    k : int
        Number of neighbors consulted per query; at most the number of training rows.
    predictor_type : {"auto", "classifier", "regressor"}
        Task; ``"auto"`` infers it from ``y`` (text, booleans or at most 20 distinct integers ->
        classifier; non-integer numbers or more distinct integers -> regressor).
    distance : {"l2", "cosine"}
        Euclidean distance, or cosine distance ``1 - cos(angle)`` (rows scaled to unit length;
        zero rows stay zero).
    weights : {"uniform", "distance"}
        Equal votes, or votes weighted by ``1 / distance`` (a neighbor at distance 0 then takes
        all the weight, as in scikit-learn).
    dimension_reduction_type : {"none", "sign", "fjlt"}
        Random projection of the features to ``dimension_reduction_target`` dimensions before
        indexing: ``sign`` (random +-1 matrix) or ``fjlt`` (subsampled randomized Hadamard
        transform). Faster searches, approximate distances.
    dimension_reduction_target : int
        Number of dimensions after projection; must be below the number of features.
    max_block_mb : int
        Memory budget in MB for one block of query-to-training distances; the block holds at
        most 128 queries, fewer when the training set is large.
    random_state : int
        Seed of the random projection.

    Attributes
    ----------
    predictor_type_ : {"classifier", "regressor"}
        Resolved task.
    classes_ : ndarray of shape (n_classes,) or None
        Sorted class labels (classifier).
    train_X_ : ndarray of shape (n_samples_fit_, n_dims)
        Indexed training vectors: projected when a dimension reduction is set, scaled to unit
        length for the cosine distance.
    train_y_ : ndarray of shape (n_samples_fit_,)
        Class index into ``classes_`` (classifier) or target value (regressor) of every row.
    projection_ : ndarray of shape (n_features_in_, n_dims) or None
        Random projection applied to every input row.
    distance_ : str
        Distance the index was built for.
    group_size_ : int
        Columns per group in the k-smallest search (1 = direct partition).
    n_features_in_ : int
        Number of input features.
    n_samples_fit_ : int
        Number of training rows.
    stopped_early_ : bool
        Whether the callback stopped the validation pass (the model is complete either way).
    """

    name: ClassVar[str] = "knn"
    title: ClassVar[str] = "k-Nearest Neighbors"
    task: ClassVar[str] = "binary classification / multiclass classification / regression"
    input: ClassVar[str] = "tabular"
    target: ClassVar[str] = "required"
    hyperparameters: ClassVar[tuple[Hyperparameter, ...]] = (
        Hyperparameter(
            "k",
            "int",
            5,
            min=1,
            max=10_000,
            scale="log",
            help="Number of neighbors that vote on (or average) a prediction.",
        ),
        Hyperparameter(
            "predictor_type",
            "categorical",
            "auto",
            choices=PREDICTOR_TYPES,
            tunable=False,
            help="Task; auto infers it from the target column (text or few distinct integers: classifier).",
        ),
        Hyperparameter(
            "distance",
            "categorical",
            "l2",
            choices=DISTANCES,
            help="l2: Euclidean distance; cosine: 1 - cosine similarity (ignores row length).",
        ),
        Hyperparameter(
            "weights",
            "categorical",
            "uniform",
            choices=WEIGHTS,
            help="uniform: every neighbor counts the same; distance: closer neighbors count more (1/distance).",
        ),
        Hyperparameter(
            "dimension_reduction_type",
            "categorical",
            "none",
            choices=DIMENSION_REDUCTION_TYPES,
            tunable=False,
            help="Random projection before indexing, for faster approximate search: sign or fjlt (Hadamard).",
        ),
        Hyperparameter(
            "dimension_reduction_target",
            "int",
            16,
            min=1,
            max=10_000,
            scale="log",
            tunable=False,
            help="Dimensions kept by the random projection; below the number of features.",
        ),
        Hyperparameter(
            "max_block_mb",
            "int",
            256,
            min=1,
            max=65_536,
            scale="log",
            tunable=False,
            help="Memory budget (MB) of one block of query-to-training distances.",
        ),
        Hyperparameter(
            "random_state", "int", 0, min=0, max=2**32 - 1, tunable=False, help="Seed of the random projection."
        ),
    )
    metrics: ClassVar[tuple[Metric, ...]] = (
        Metric("validation:accuracy", "maximize"),
        Metric("validation:f1", "maximize"),
        Metric("validation:rmse", "minimize"),
        Metric("validation:mae", "minimize"),
        Metric("validation:r2", "maximize"),
        Metric("train:accuracy", "maximize"),
        Metric("train:f1", "maximize"),
        Metric("train:rmse", "minimize"),
        Metric("train:mae", "minimize"),
        Metric("train:r2", "maximize"),
    )
    # Classification is the common use; a regression tuning job should name validation:rmse.
    default_objective: ClassVar[str] = "validation:accuracy"

    _fitted_arrays: ClassVar[tuple[str, ...]] = ("train_X_", "train_y_", "classes_", "projection_")
    _fitted_json: ClassVar[tuple[str, ...]] = (
        "predictor_type_",
        "distance_",
        "group_size_",
        "n_features_in_",
        "n_samples_fit_",
        "stopped_early_",
    )

    def __init__(
        self,
        k: int = 5,
        predictor_type: str = "auto",
        distance: str = "l2",
        weights: str = "uniform",
        dimension_reduction_type: str = "none",
        dimension_reduction_target: int = 16,
        max_block_mb: int = 256,
        random_state: int = 0,
    ) -> None:
        super().__init__(
            k=k,
            predictor_type=predictor_type,
            distance=distance,
            weights=weights,
            dimension_reduction_type=dimension_reduction_type,
            dimension_reduction_target=dimension_reduction_target,
            max_block_mb=max_block_mb,
            random_state=random_state,
        )

    # -- the index -------------------------------------------------------------------------------

    # The index stores [-2 x, ||x||^2] (l2) or [-x, 1] (cosine): a query row [q, 1] times it gives
    # the score directly. train_X_ is read back from it exactly (scaling by -2 or -1 is exact in
    # floating point), so the training rows are held in memory once.

    @property
    def train_X_(self) -> np.ndarray:
        index = self.__dict__.get("_index")
        if index is None:
            raise AttributeError("train_X_")
        body = index[: self.n_samples_fit_, :-1]
        return body * -0.5 if self.distance_ == "l2" else -body

    @train_X_.setter
    def train_X_(self, vectors: np.ndarray) -> None:
        vectors = np.asarray(vectors, dtype=np.float64)
        if vectors.ndim != 2:
            raise ValueError(f"train_X_ must be 2-D, got shape {vectors.shape}")
        n_samples, n_dims = vectors.shape
        group = self.group_size_
        padded = -(-n_samples // group) * group
        index = np.zeros((padded, n_dims + 1))
        if self.distance_ == "l2":
            np.multiply(vectors, -2.0, out=index[:n_samples, :n_dims])
            index[:n_samples, n_dims] = np.einsum("ij,ij->i", vectors, vectors)
            if not np.all(np.isfinite(index[:n_samples, n_dims])):
                raise ValueError("X has values too large to square in float64; rescale it")
        else:
            np.negative(vectors, out=index[:n_samples, :n_dims])
            index[:n_samples, n_dims] = 1.0
        # Padding rows score +inf (0 * q + inf * 1), so they are never among the nearest.
        index[n_samples:, n_dims] = np.inf
        self._index = index

    def _check_is_fitted(self) -> None:
        # The base check reads every fitted attribute, and train_X_ is rebuilt on each read.
        if "_index" not in self.__dict__:
            super()._check_is_fitted()

    def _prepare(self, X: Any, name: str = "X") -> np.ndarray:
        """Queries as float64 rows in the index space (projected, unit length for cosine)."""
        array = as_matrix(X, name, self.n_features_in_)
        # The projection product already yields a new float64 array.
        array = np.asarray(array, dtype=np.float64) if self.projection_ is None else array @ self.projection_
        if self.distance_ == "cosine":
            array = _normalize_rows(array)
        return array

    # -- training ------------------------------------------------------------------------------

    def fit(
        self,
        X: Any,
        y: Any = None,
        *,
        X_val: Any = None,
        y_val: Any = None,
        callback: Callback | None = None,
    ) -> Self:
        """Index the training rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Numeric features without NaN.
        y : array-like of shape (n_samples,)
            Labels of any type (classifier) or numbers (regressor).
        X_val, y_val : array-like, optional
            Validation data, given together.
        callback : callable, optional
            Without validation data, ``callback(1, {})`` once the index is built. With it, the
            validation rows are predicted in up to 10 parts and ``callback(part, metrics)``
            reports the metrics of the rows predicted so far: ``validation:accuracy, f1``
            (classifier; F1 of ``classes_[1]`` for two classes, macro F1 otherwise) or
            ``validation:rmse, mae, r2`` (regressor); the last part's are the final validation
            metrics. Returning ``False`` skips the remaining validation rows. No ``train:*``
            metrics are reported while fitting: they would need a search for every training row.

        Returns
        -------
        KNN
            ``self``.

        Raises
        ------
        HyperparameterError
            If a hyperparameter is invalid.
        ValueError
            If the data do not fit the task, ``k`` exceeds the training rows, or the projection
            target is not below the number of features.
        """
        params = self._validated_params()
        X_arr = as_matrix(X, "X")
        y_arr = as_labels(y, "y", X_arr.shape[0], learner="k-NN")
        n_samples, n_features = X_arr.shape
        if params["k"] > n_samples:
            raise ValueError(f"k={params['k']} is larger than the number of training rows ({n_samples}); lower k")
        kind = infer_predictor_type(y_arr) if params["predictor_type"] == "auto" else params["predictor_type"]
        if kind == "regressor":
            if y_arr.dtype.kind not in "biuf":
                raise ValueError("predictor_type='regressor' needs a numeric y")
            classes, train_y = None, y_arr.astype(np.float64)
        else:
            classes, train_y = np.unique(y_arr, return_inverse=True)
            train_y = train_y.ravel()
        has_val = X_val is not None or y_val is not None
        if has_val:
            if X_val is None or y_val is None:
                raise ValueError("X_val and y_val must be given together")
            Xv_arr = as_matrix(X_val, "X_val", n_features)
            yv_arr = as_labels(y_val, "y_val", Xv_arr.shape[0], learner="k-NN")
        reduction = params["dimension_reduction_type"]
        projection = None
        if reduction != "none":
            target = params["dimension_reduction_target"]
            if target >= n_features:
                raise ValueError(
                    f"dimension_reduction_target={target} must be smaller than the number of features "
                    f"({n_features}); lower it or set dimension_reduction_type='none'"
                )
            projection = _projection(reduction, n_features, target, params["random_state"])

        self.predictor_type_ = kind
        self.classes_ = classes
        self.train_y_ = train_y
        self.projection_ = projection
        self.distance_ = params["distance"]
        self.n_features_in_ = n_features
        self.n_samples_fit_ = n_samples
        self.group_size_ = _group_size(n_samples, params["k"])
        self.train_X_ = self._prepare(X_arr)
        self.stopped_early_ = False
        if has_val:
            self.stopped_early_ = not self._validate(Xv_arr, yv_arr, callback)
        else:
            self.stopped_early_ = not self._emit(callback, 1, {})
        return self

    def _validate(self, X: np.ndarray, y: np.ndarray, callback: Callback | None) -> bool:
        """Predict the validation rows in parts, reporting running metrics; False if stopped."""
        n_rows = X.shape[0]
        self._check_label_type(y, "y_val")
        part = max(-(-n_rows // _VALIDATION_STEPS), self._block_rows())
        predictions = np.empty(n_rows, dtype=self.classes_.dtype if self.classes_ is not None else np.float64)
        for step, start in enumerate(range(0, n_rows, part), start=1):
            stop = min(start + part, n_rows)
            predictions[start:stop] = self.predict(X[start:stop])
            if not self._emit(callback, step, self._metrics(y[:stop], predictions[:stop], "validation")):
                return stop == n_rows
        return True

    # -- search --------------------------------------------------------------------------------

    def _block_rows(self) -> int:
        budget = self._validated_params()["max_block_mb"] << 20
        return int(min(max(budget // (8 * self._index.shape[0]), 1), _MAX_QUERY_BLOCK))

    def _search(self, queries: np.ndarray, k: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Yield ``(start, scores, indices)`` of the k nearest rows, one block of queries at a time."""
        index = self._index
        n_dims = index.shape[1] - 1
        rows = self._block_rows()
        augmented = np.empty((min(rows, queries.shape[0]), n_dims + 1))
        augmented[:, n_dims] = 1.0
        block = np.empty((augmented.shape[0], index.shape[0]))
        floor = 0.0 if self.distance_ == "cosine" else None
        # A k much larger than at fit time would make the candidates most of the row: go direct.
        group = self.group_size_ if 4 * k * self.group_size_ <= self.n_samples_fit_ else 1
        for start in range(0, queries.shape[0], rows):
            count = min(rows, queries.shape[0] - start)
            augmented[:count, :n_dims] = queries[start : start + count]
            scores = block[:count]
            np.matmul(augmented[:count], index.T, out=scores)
            values, neighbors = _select(scores, self.n_samples_fit_, group, k, floor)
            yield start, values, neighbors

    def _distances(self, queries: np.ndarray, start: int, values: np.ndarray) -> np.ndarray:
        if self.distance_ == "cosine":
            return np.clip(values, 0.0, 2.0)
        rows = queries[start : start + values.shape[0]]
        squared = values + np.einsum("ij,ij->i", rows, rows)[:, None]
        return np.sqrt(np.maximum(squared, 0.0))

    def _k(self, k: int | None) -> int:
        value = self._validated_params()["k"] if k is None else int(k)
        if not 1 <= value <= self.n_samples_fit_:
            raise ValueError(f"k={value} must be between 1 and the number of training rows ({self.n_samples_fit_})")
        return value

    def kneighbors(self, X: Any, k: int | None = None, return_distance: bool = True) -> Any:
        """Find the nearest training rows of every query.

        Parameters
        ----------
        X : array-like of shape (n_queries, n_features)
        k : int, optional
            Number of neighbors; by default the ``k`` hyperparameter.
        return_distance : bool
            Return the distances too, as scikit-learn's ``kneighbors``.

        Returns
        -------
        distances : ndarray of shape (n_queries, k)
            Euclidean or cosine distances in the index space, nearest first (only when
            ``return_distance``).
        indices : ndarray of shape (n_queries, k)
            Row numbers in the training data; equal distances are ordered by row number.
        """
        self._check_is_fitted()
        count = self._k(k)
        queries = self._prepare(X)
        distances = np.empty((queries.shape[0], count))
        indices = np.empty((queries.shape[0], count), dtype=np.intp)
        for start, values, neighbors in self._search(queries, count):
            stop = start + values.shape[0]
            distances[start:stop] = self._distances(queries, start, values)
            indices[start:stop] = neighbors
        return (distances, indices) if return_distance else indices

    def _neighbor_weights(self, distances: np.ndarray) -> np.ndarray:
        """``1 / distance``; a row with an exact match weighs only its zero-distance neighbors."""
        with np.errstate(divide="ignore"):
            weights = 1.0 / distances
        exact = np.isinf(weights)
        rows = exact.any(axis=1)
        weights[rows] = exact[rows]
        return weights

    def _votes(self, X: Any) -> np.ndarray:
        """Class probabilities (classifier) or predictions (regressor), block by block."""
        self._check_is_fitted()
        params = self._validated_params()
        count = self._k(None)
        distance_weights = params["weights"] == "distance"
        queries = self._prepare(X)
        n_queries = queries.shape[0]
        regressor = self.predictor_type_ == "regressor"
        out = np.empty(n_queries) if regressor else np.empty((n_queries, self.classes_.size))
        for start, values, neighbors in self._search(queries, count):
            stop = start + values.shape[0]
            targets = self.train_y_[neighbors]
            weights = self._neighbor_weights(self._distances(queries, start, values)) if distance_weights else None
            if regressor:
                if weights is None:
                    out[start:stop] = np.mean(targets, axis=1)
                else:
                    out[start:stop] = np.sum(targets * weights, axis=1) / np.sum(weights, axis=1)
                continue
            n_rows, n_classes = values.shape[0], self.classes_.size
            if weights is None:
                flat = (np.arange(n_rows)[:, None] * n_classes + targets).ravel()
                scores = np.bincount(flat, minlength=n_rows * n_classes).reshape(n_rows, n_classes).astype(np.float64)
            else:
                scores = np.zeros((n_rows, n_classes))
                rows = np.arange(n_rows)
                # Neighbor by neighbor, as scikit-learn adds them: identical rounding.
                for column in range(count):
                    scores[rows, targets[:, column]] += weights[:, column]
            scores /= scores.sum(axis=1, keepdims=True)
            out[start:stop] = scores
        return out

    # -- inference -----------------------------------------------------------------------------

    @property
    def task_(self) -> str:
        """What the fitted model does, in the vocabulary shared by every estimator."""
        if self.predictor_type_ == "regressor":
            return "regression"
        return "binary_classification" if self.classes_.size <= 2 else "multiclass_classification"

    def predict(self, X: Any) -> np.ndarray:
        """Majority (or distance-weighted) class of the neighbors, or their mean target.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
            Labels from ``classes_``; a tied vote goes to the class listed first in ``classes_``.
        """
        votes = self._votes(X)
        if self.predictor_type_ == "regressor":
            return votes
        return self.classes_[np.argmax(votes, axis=1)]

    def predict_proba(self, X: Any) -> np.ndarray:
        """Share of the (weighted) neighbor votes per class.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Columns in the order of ``classes_``; rows sum to 1.

        Raises
        ------
        AttributeError
            For a regressor.
        """
        self._check_is_fitted()
        if self.predictor_type_ == "regressor":
            raise AttributeError("predict_proba is only available for classifiers, not a regressor")
        return self._votes(X)

    def _check_label_type(self, y: np.ndarray, name: str) -> None:
        if self.predictor_type_ == "regressor":
            if y.dtype.kind not in "biuf":
                raise ValueError(f"{name} must be numeric for a regressor")
        elif (y.dtype.kind in "US") != (self.classes_.dtype.kind in "US"):
            raise ValueError(f"{name} labels have type {y.dtype}, but the classes are {self.classes_.dtype}")

    def _metrics(self, truth: np.ndarray, predicted: np.ndarray, channel: str) -> dict[str, float]:
        if self.predictor_type_ == "regressor":
            truth = truth.astype(np.float64)
            out = {
                "rmse": metric_fns.rmse(truth, predicted),
                "mae": metric_fns.mae(truth, predicted),
                "r2": metric_fns.r2(truth, predicted),
            }
        else:
            if self.classes_.size == 2:
                f1 = metric_fns.f1_score(truth, predicted, average="binary", pos_label=self.classes_[1])
            else:
                f1 = metric_fns.f1_score(truth, predicted, average="macro")
            out = {"accuracy": metric_fns.accuracy(truth, predicted), "f1": f1}
        return {f"{channel}:{key}": value for key, value in out.items()}

    def score(self, X: Any, y: Any) -> float:
        """Accuracy (classifier) or R^2 (regressor), as scikit-learn's ``score``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)

        Returns
        -------
        float
        """
        prediction = self.predict(X)
        truth = as_labels(y, "y", prediction.shape[0], learner="k-NN")
        if self.predictor_type_ == "regressor":
            return metric_fns.r2(truth.astype(np.float64), prediction)
        return metric_fns.accuracy(truth, prediction)

    def evaluate(self, X: Any, y: Any = None, *, channel: str = "validation") -> dict[str, float]:
        """Final metrics of the fitted model on one channel.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        channel : {"train", "validation"}
            Prefix of the metric names.

        Returns
        -------
        dict of str to float
            ``accuracy, f1`` (classifier; F1 of ``classes_[1]`` with two classes, macro F1
            otherwise) or ``rmse, mae, r2`` (regressor). On the training rows every query finds
            itself, so ``train:*`` metrics are optimistic (perfect with ``k=1``).
        """
        check_channel(channel)
        self._check_is_fitted()
        prediction = self.predict(X)
        truth = as_labels(y, "y", prediction.shape[0], learner="k-NN")
        self._check_label_type(truth, "y")
        return self._metrics(truth, prediction, channel)

    def _after_load(self) -> None:
        kind = self.predictor_type_
        if kind not in ("classifier", "regressor"):
            raise ValueError(f"saved model has an unknown predictor_type_ {kind!r}")
        if self.distance_ not in DISTANCES:
            raise ValueError(f"saved model has an unknown distance_ {self.distance_!r}")
        n_samples, n_features = self.n_samples_fit_, self.n_features_in_
        for name, value in (
            ("n_samples_fit_", n_samples),
            ("n_features_in_", n_features),
            ("group_size_", self.group_size_),
        ):
            check_saved_count(name, value)
        n_dims = self._index.shape[1] - 1
        if self._index.shape[0] < n_samples or self._index.shape[0] % self.group_size_:
            raise ValueError(f"saved model has train_X_ of {self._index.shape[0]} rows, expected {n_samples}")
        if self.projection_ is None:
            if n_dims != n_features:
                raise ValueError(f"saved model has train_X_ with {n_dims} columns, expected {n_features}")
        elif self.projection_.shape != (n_features, n_dims) or self.projection_.dtype.kind != "f":
            raise ValueError(f"saved model has projection_ of shape {self.projection_.shape}")
        if np.shape(self.train_y_) != (n_samples,):
            raise ValueError(f"saved model has train_y_ of shape {np.shape(self.train_y_)}, expected ({n_samples},)")
        if kind == "classifier":
            if self.classes_ is None or self.classes_.ndim != 1 or self.classes_.size < 1:
                raise ValueError("saved classifier lacks its classes_")
            labels = self.train_y_
            if labels.dtype.kind not in "iu" or labels.min() < 0 or labels.max() >= self.classes_.size:
                raise ValueError("saved classifier has train_y_ outside its classes_")
        elif self.train_y_.dtype.kind != "f":
            raise ValueError("saved regressor has non-numeric train_y_")
