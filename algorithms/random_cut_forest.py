"""Random Cut Forest: unsupervised anomaly detection with an ensemble of random cut trees.

In the spirit of SageMaker's Random Cut Forest (Guha et al., "Robust Random Cut Forest Based
Anomaly Detection on Streams", ICML 2016):

* **Sampling.** Every tree keeps a uniform sample of ``num_samples_per_tree`` rows drawn by
  reservoir sampling over the stream of rows, using Li's Algorithm L for all trees at once. The
  replacement events of Algorithm L (which row replaces which reservoir slot) depend only on the
  number of rows, so they are drawn in vectorized batches; a streaming reader would copy each row
  when its event comes up, here the rows are gathered once at the end: the same sample, without
  a Python loop over rows. (Drawing random keys per row and tree and keeping the smallest would
  be equivalent for a fixed dataset, but costs O(rows x trees) instead of
  O(trees x samples x log(rows / samples)).)
* **Random cuts.** A node's cut dimension is chosen with probability proportional to the range
  (max - min) of the node's points in that dimension, and the cut value uniformly inside that
  range. This is what distinguishes a random cut tree from an isolation tree (which picks the
  dimension uniformly): a dimension where a point lies far from the others is cut more often,
  and a constant dimension is never cut.
* **Score.** The anomaly score of a point is the expected inverse isolation depth, on the scale
  of AWS's ``randomcutforest`` library: ``log2(1 + s) * mean over trees of 1 / (1 + h)``, where
  ``s`` is the sample size and ``h`` the depth at which the tree isolates the point. As in
  Isolation Forest, trees are grown to height ``ceil(log2(s))``; a point that reaches a node of
  ``m > 1`` sample points at that height is credited the expected remaining depth ``c(m)`` of a
  random binary tree. Normal points score about 0.7 with the default sample size, points
  isolated in the first cuts several times more; higher means more anomalous.

  The library's exact score also adds, at every node, the probability that a random cut of the
  bounding box extended to the point separates the point there (an approximation of collusive
  displacement, CoDisp). That needs a d-dimensional box distance at every node of every path;
  the depth-based form keeps scoring to a few table look-ups per tree level, which is what makes
  scoring 100,000 rows with 100 trees take a fraction of a second in numpy.

Trees are stored as flat heap-ordered arrays (node ``i`` has children ``2i`` and ``2i + 1``) and
all rows are pushed through a tree one level at a time with numpy fancy indexing.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Self

import numpy as np

# Aliased: ``metrics`` is also the class attribute declaring the reported metrics.
from algorithms import metrics as metric_fns
from algorithms._checks import as_matrix, as_vector, check_channel, check_saved_count
from algorithms.base import Callback, Estimator, Hyperparameter, Metric

__all__ = ["RandomCutForest"]

# Trees built between two callback steps.
TREES_PER_STEP = 10
# Training rows scored during fit (for the progress metrics and the anomaly threshold); the
# final train metrics of a job come from evaluate() on every row.
THRESHOLD_ROWS = 10_000
# Rows scored together: the per-level work arrays then stay in the CPU's L2 cache.
_CHUNK_ROWS = 8192
# Replacement events of Algorithm L drawn per batch and tree.
_RESERVOIR_BATCH = 512
# Text labels understood as anomaly (True) or normal (False).
_TEXT_LABELS = {"1": True, "1.0": True, "true": True, "0": False, "0.0": False, "false": False}


def _average_path_length(mass: np.ndarray) -> np.ndarray:
    """Expected depth ``c(m)`` at which a random binary tree on ``m`` points isolates one more.

    The unsuccessful-search length of a binary search tree, ``2 H(m - 1) - 2 (m - 1) / m`` with
    ``H(i) ~ ln(i) + Euler's constant``, as Isolation Forest uses it; ``c(1) = 0``, ``c(2) = 1``.
    """
    m = np.asarray(mass, dtype=np.float64)
    out = np.zeros_like(m)
    out[m == 2] = 1.0
    big = m > 2
    out[big] = 2.0 * (np.log(m[big] - 1.0) + np.euler_gamma) - 2.0 * (m[big] - 1.0) / m[big]
    return out


def _as_features(X: Any, name: str, n_features: int | None = None) -> np.ndarray:
    """Return ``X`` as a C-contiguous 2-D float32 or float64 array, or raise a clear ``ValueError``."""
    return np.ascontiguousarray(as_matrix(X, name, n_features))


def _as_labels(y: Any, name: str, n_samples: int) -> np.ndarray | None:
    """Return 0/1 anomaly labels as a bool array (``True`` = anomaly), or ``None`` when not given."""
    if y is None:
        return None
    array = as_vector(y, name, n_samples)
    message = f"{name} must hold 0/1 labels (1 = anomaly)"
    if array.dtype.kind in "OUS":
        # CSV label columns arrive as text when a cell is not a number ("true"/"false").
        text = np.char.lower(np.char.strip(array.astype(str)))
        known = np.isin(text, list(_TEXT_LABELS))
        if not known.all():
            shown = ", ".join(repr(str(value)) for value in np.unique(text[~known])[:5])
            raise ValueError(f"{message}; found {shown}")
        return np.isin(text, [key for key, value in _TEXT_LABELS.items() if value])
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{message}, got dtype {array.dtype}")
    valid = (array == 0) | (array == 1)
    if not valid.all():
        shown = ", ".join(repr(value.item()) for value in np.unique(array[~valid])[:5])
        raise ValueError(f"{message}; found {shown}")
    return array.astype(bool)


def _reservoir_indices(n_rows: int, n_trees: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Rows kept by ``n_trees`` independent reservoirs of ``size`` over a stream of ``n_rows`` rows.

    Algorithm L (Li, 1994): the reservoir holds the first ``size`` rows; then the ``j``-th
    replacement happens after a geometric skip and puts that row in a uniformly chosen slot.
    The events depend on the row count only, so batches of events are drawn for all trees at
    once; ``size >= n_rows`` keeps every row.

    Returns
    -------
    ndarray of shape (n_trees, min(size, n_rows))
        Row indices, each row of the result a uniform sample without replacement.
    """
    if size >= n_rows:
        return np.broadcast_to(np.arange(n_rows), (n_trees, n_rows)).copy()
    reservoir = np.broadcast_to(np.arange(size), (n_trees, size)).copy()
    flat = reservoir.ravel()
    tree_base = np.arange(n_trees)[:, None] * size
    # Per tree: log W of the next event and the row index of the last event (the reservoir
    # already holds rows 0..size-1).
    log_w = np.log(1.0 - rng.random(n_trees)) / size
    position = np.full(n_trees, size - 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        while True:
            # 1 - random() lies in (0, 1], so these logarithms are finite; W shrinks by U**(1/size)
            # after every event.
            shrink = np.cumsum(np.log(1.0 - rng.random((n_trees, _RESERVOIR_BATCH))) / size, axis=1)
            log_w_events = log_w[:, None] + np.concatenate((np.zeros((n_trees, 1)), shrink[:, :-1]), axis=1)
            # Geometric skip floor(log(U) / log(1 - W)); an overflowing skip (inf) means "never".
            skip = np.floor(np.log(1.0 - rng.random((n_trees, _RESERVOIR_BATCH))) / np.log1p(-np.exp(log_w_events)))
            positions = position[:, None] + np.cumsum(skip + 1.0, axis=1)
            slots = rng.integers(0, size, size=(n_trees, _RESERVOIR_BATCH))
            hit = positions < n_rows
            # Later events of a tree have larger row indices than anything it already holds, so
            # "keep the maximum" is "keep the last", even when a batch hits a slot twice.
            np.maximum.at(flat, (tree_base + slots)[hit], positions[hit].astype(np.intp))
            if not hit[:, -1].any():
                return reservoir
            log_w, position = log_w + shrink[:, -1], positions[:, -1]


def _cut_value(low: np.ndarray, high: np.ndarray, fraction: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Uniform cut in ``[low, high)`` in ``dtype``, so that both sides of a cut keep a point."""
    value = (low.astype(np.float64) * (1.0 - fraction) + high.astype(np.float64) * fraction).astype(dtype)
    below_high = np.nextafter(high, np.asarray(-np.inf, dtype=dtype))
    return np.clip(value, low, below_high)


def _build_trees(points: np.ndarray, height: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Grow random cut trees on ``points`` of shape (n_trees, size, n_features), all trees at once.

    Nodes are grown level by level: the points of a level are kept sorted by (tree, node), so
    per-node bounding boxes are one ``reduceat`` and the split is one stable sort.

    Returns
    -------
    cut_feature : ndarray of shape (n_trees, 2**height), int32
        Heap-ordered cut dimension of node ``i`` (children ``2i``, ``2i + 1``); -1 for no cut.
    cut_value : ndarray of shape (n_trees, 2**height)
        Cut value; points with ``x[feature] > value`` go right. ``+inf`` where there is no cut,
        so every point goes left down to the bottom level.
    leaf_depth : ndarray of shape (n_trees, 2**height), float64
        Isolation depth credited to a point that ends at each bottom-level slot.
    """
    n_trees, size, n_features = points.shape
    dtype = points.dtype
    width = 1 << height
    cut_feature = np.full((n_trees, width), -1, dtype=np.int32)
    cut_value = np.full((n_trees, width), np.inf, dtype=dtype)
    leaf_depth = np.zeros((n_trees, width), dtype=np.float64)

    # Features x points: reduceat then runs along contiguous memory, several times faster than
    # reducing the rows of a points x features array.
    pts = np.ascontiguousarray(points.reshape(n_trees * size, n_features).T)
    tree = np.repeat(np.arange(n_trees, dtype=np.intp), size)
    slot = np.ones(n_trees * size, dtype=np.intp)
    for level in range(height + 1):
        key = tree * (2 * width) + slot
        starts = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
        counts = np.diff(np.append(starts, key.size))
        node_tree, node_slot = tree[starts], slot[starts]
        low = np.minimum.reduceat(pts, starts, axis=1).T
        high = np.maximum.reduceat(pts, starts, axis=1).T
        # Half ranges: the same proportions as the ranges, without overflow near the float limits.
        span = high.astype(np.float64) * 0.5 - low.astype(np.float64) * 0.5
        cumulative = np.cumsum(span, axis=1)
        total = cumulative[:, -1]
        leaf = (total <= 0.0) | (level == height)
        if leaf.any():
            # A leaf spreads its depth over every bottom slot below it; points only reach the
            # leftmost one (cut_value is +inf under it), the others keep the table consistent.
            below = height - level
            first = (node_slot[leaf] << below) - width
            columns = first[:, None] + np.arange(1 << below)
            depth = level + _average_path_length(counts[leaf])
            leaf_depth[node_tree[leaf][:, None], columns] = depth[:, None]
        split = ~leaf
        if not split.any():
            break
        # Dimension with probability proportional to its range: the first cumulative range above
        # a uniform draw. A zero-range dimension adds nothing to the cumulative sum, so it can
        # never be the first to exceed it.
        target = rng.random(int(split.sum())) * total[split]
        chosen = (cumulative[split] <= target[:, None]).sum(axis=1)
        last_positive = n_features - 1 - np.argmax(span[split][:, ::-1] > 0.0, axis=1)
        chosen = np.minimum(chosen, last_positive)  # target rounded up to the total
        rows = np.flatnonzero(split)
        cut = _cut_value(low[rows, chosen], high[rows, chosen], rng.random(rows.size), dtype)
        cut_feature[node_tree[split], node_slot[split]] = chosen
        cut_value[node_tree[split], node_slot[split]] = cut

        # Push the points of split nodes one level down (points of leaves are done), sorted by
        # (tree, node) again: a stable sort keeps each parent's points together, left child first.
        node_of_point = np.repeat(np.arange(starts.size), counts)
        node_feature = np.zeros(starts.size, dtype=np.intp)
        node_feature[rows] = chosen
        node_cut = np.zeros(starts.size, dtype=dtype)
        node_cut[rows] = cut
        n_points = pts.shape[1]
        along = pts.ravel().take(node_feature[node_of_point] * n_points + np.arange(n_points))
        right = along > node_cut[node_of_point]
        child = 2 * slot + right
        kept = np.flatnonzero(split[node_of_point])
        order = kept[np.argsort(tree[kept] * (2 * width) + child[kept], kind="stable")]
        # np.take: fancy indexing along axis 1 is several times slower.
        pts, tree, slot = np.take(pts, order, axis=1), tree[order], child[order]
    return cut_feature, cut_value, leaf_depth


class _Scorer:
    """Pushes rows through heap-ordered trees level by level; holds the per-call lookup tables."""

    def __init__(self, cut_feature: np.ndarray, cut_value: np.ndarray, leaf_depth: np.ndarray, dtype: Any) -> None:
        self.height = int(cut_feature.shape[1]).bit_length() - 1
        width = 1 << self.height
        self.feature = np.maximum(cut_feature, 0).astype(np.intp)
        self.value = cut_value.astype(dtype, copy=False)
        # Index = heap slot, so the bottom level (slots width..2*width-1) needs no offset.
        self.leaf_score = np.zeros((cut_feature.shape[0], 2 * width))
        self.leaf_score[:, width:] = 1.0 / (1.0 + leaf_depth)
        self.dtype = dtype

    def sum_scores(self, X: np.ndarray, trees: range, out: np.ndarray) -> None:
        """Add, for every row of ``X``, the per-tree score ``1 / (1 + h)`` of ``trees`` to ``out``."""
        for start in range(0, X.shape[0], _CHUNK_ROWS):
            chunk = X[start : start + _CHUNK_ROWS]
            acc = out[start : start + _CHUNK_ROWS]
            self._chunk(chunk, trees, acc)

    def _chunk(self, chunk: np.ndarray, trees: range, acc: np.ndarray) -> None:
        n_rows, n_features = chunk.shape
        flat = chunk.ravel()
        row_offset = np.arange(n_rows, dtype=np.intp) * n_features
        loc = np.empty(n_rows, dtype=np.intp)
        index = np.empty(n_rows, dtype=np.intp)
        x = np.empty(n_rows, dtype=self.dtype)
        cut = np.empty(n_rows, dtype=self.dtype)
        right = np.empty(n_rows, dtype=bool)
        right_of_left = np.empty(n_rows, dtype=bool)
        right_of_right = np.empty(n_rows, dtype=bool)
        # mode="clip": indices are valid by construction, and the default mode="raise" buffers `out`.
        for t in trees:
            feature, value = self.feature[t], self.value[t]
            if self.height == 0:
                loc.fill(1)
            elif self.height == 1:
                np.greater(chunk[:, feature[1]], value[1], out=right)
                np.add(right, 2, out=loc)
            else:
                # The first two levels have one and two nodes: column comparisons, no gathers.
                np.greater(chunk[:, feature[1]], value[1], out=right)
                np.greater(chunk[:, feature[2]], value[2], out=right_of_left)
                np.greater(chunk[:, feature[3]], value[3], out=right_of_right)
                np.copyto(right_of_left, right_of_right, where=right)
                np.multiply(right, 2, out=loc)
                loc += right_of_left
                loc += 4
            for _ in range(2, self.height):
                np.take(feature, loc, out=index, mode="clip")
                index += row_offset
                np.take(flat, index, out=x, mode="clip")
                np.take(value, loc, out=cut, mode="clip")
                np.greater(x, cut, out=right)
                loc <<= 1
                loc += right
            acc += self.leaf_score[t].take(loc, mode="clip")


class RandomCutForest(Estimator):
    """Random Cut Forest anomaly detector (unsupervised; labels only measure it).

    See the module docstring for the sampling, the random cuts and the score.

    Parameters
    ----------
    num_trees : int
        Trees in the forest; more trees make the scores less noisy, linearly slower.
    num_samples_per_tree : int
        Rows sampled (reservoir sampling) for each tree; all rows when the data has fewer.
    anomaly_threshold_sigma : float
        ``threshold_`` is the mean plus this many standard deviations of the training scores;
        ``predict`` flags rows scoring above it.
    random_state : int
        Seed of the sampling and of the cuts.

    Attributes
    ----------
    n_features_in_ : int
        Number of features seen in ``fit`` (SageMaker's ``feature_dim``).
    samples_per_tree_ : int
        Rows in each tree's sample, ``min(num_samples_per_tree, n_rows)``.
    max_depth_ : int
        Height of the trees, ``ceil(log2(samples_per_tree_))``.
    n_trees_ : int
        Trees built (fewer than ``num_trees`` when a callback stopped training).
    cut_feature_ : ndarray of shape (n_trees_, 2**max_depth_), int32
        Cut dimension of each heap-ordered node (children of node ``i`` are ``2i`` and ``2i + 1``,
        the root is 1, slot 0 is unused); -1 for leaves and slots below them.
    cut_value_ : ndarray of shape (n_trees_, 2**max_depth_)
        Cut values in the training dtype; rows with ``x[feature] > value`` go right; ``+inf``
        where there is no cut.
    leaf_depth_ : ndarray of shape (n_trees_, 2**max_depth_)
        Isolation depth credited to a row ending at each bottom-level slot (depth of its leaf
        plus ``c(mass)``).
    score_mean_, score_std_ : float
        Mean and standard deviation of the scores of (up to 10,000 randomly chosen) training rows.
    threshold_ : float
        ``score_mean_ + anomaly_threshold_sigma * score_std_``.
    stopped_early_ : bool
        Whether a callback stopped training before ``num_trees`` trees.
    """

    name: ClassVar[str] = "random-cut-forest"
    title: ClassVar[str] = "Random Cut Forest"
    task: ClassVar[str] = "anomaly detection"
    input: ClassVar[str] = "tabular"
    target: ClassVar[str] = "optional"
    hyperparameters: ClassVar[tuple[Hyperparameter, ...]] = (
        Hyperparameter(
            "num_trees",
            "int",
            100,
            min=50,
            max=1000,
            help="Trees in the forest; more trees give steadier scores, training and scoring take longer.",
        ),
        Hyperparameter(
            "num_samples_per_tree",
            "int",
            256,
            min=1,
            max=2048,
            scale="log",
            help="Rows sampled for each tree; SageMaker suggests about 1 / the expected share of anomalies.",
        ),
        Hyperparameter(
            "anomaly_threshold_sigma",
            "float",
            3.0,
            min=0.0,
            max=10.0,
            tunable=False,
            help="Rows scoring this many standard deviations above the mean training score are flagged.",
        ),
        Hyperparameter(
            "random_state", "int", 0, min=0, max=2**32 - 1, tunable=False, help="Seed of the sampling and the cuts."
        ),
    )
    metrics: ClassVar[tuple[Metric, ...]] = (
        # Scores summarize the data more than they measure quality: direction is a convention.
        Metric("train:score_mean", "minimize"),
        Metric("validation:score_mean", "minimize"),
        Metric("train:score_std", "minimize"),
        Metric("validation:score_std", "minimize"),
        Metric("train:anomaly_rate", "minimize"),
        Metric("validation:anomaly_rate", "minimize"),
        Metric("train:auc", "maximize"),
        Metric("validation:auc", "maximize"),
    )
    default_objective: ClassVar[str] = "validation:auc"

    _fitted_arrays: ClassVar[tuple[str, ...]] = ("cut_feature_", "cut_value_", "leaf_depth_")
    _fitted_json: ClassVar[tuple[str, ...]] = (
        "n_features_in_",
        "samples_per_tree_",
        "max_depth_",
        "n_trees_",
        "score_mean_",
        "score_std_",
        "threshold_",
        "stopped_early_",
    )

    def __init__(
        self,
        num_trees: int = 100,
        num_samples_per_tree: int = 256,
        anomaly_threshold_sigma: float = 3.0,
        random_state: int = 0,
    ) -> None:
        super().__init__(
            num_trees=num_trees,
            num_samples_per_tree=num_samples_per_tree,
            anomaly_threshold_sigma=anomaly_threshold_sigma,
            random_state=random_state,
        )

    @property
    def task_(self) -> str:
        """What the fitted model does, in the vocabulary shared by every estimator."""
        return "anomaly_detection"

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
        """Build the forest on ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Finite numbers; float32 data is kept in float32.
        y : array-like of shape (n_samples,), optional
            0/1 labels (1 = anomaly), used only to report ``train:auc``.
        X_val, y_val : array-like, optional
            Validation rows and optional 0/1 labels (``validation:auc``).
        callback : callable, optional
            ``callback(step, metrics)`` after every 10 trees (``step`` counts from 1) with the
            forest built so far: ``train:score_mean``, ``train:score_std`` (on up to 10,000
            training rows), ``train:auc`` when ``y`` has both classes, and the same
            ``validation:*`` metrics with validation data. Returning ``False`` stops training;
            the trees already built form the model.

        Returns
        -------
        RandomCutForest
            ``self``.

        Raises
        ------
        HyperparameterError
            If a hyperparameter is invalid.
        ValueError
            If the data are not finite numbers or the labels are not 0/1.
        """
        params = self._validated_params()
        X_arr = _as_features(X, "X")
        n_rows, n_features = X_arr.shape
        y_arr = _as_labels(y, "y", n_rows)
        if X_val is None and y_val is not None:
            raise ValueError("y_val was given without X_val")
        Xv_arr = None if X_val is None else _as_features(X_val, "X_val", n_features)
        if Xv_arr is not None:
            Xv_arr = Xv_arr.astype(np.result_type(Xv_arr.dtype, X_arr.dtype), copy=False)
        yv_arr = None if Xv_arr is None else _as_labels(y_val, "y_val", Xv_arr.shape[0])

        rng = np.random.default_rng(params["random_state"])
        size = min(params["num_samples_per_tree"], n_rows)
        height = math.ceil(math.log2(size)) if size > 1 else 0
        num_trees = params["num_trees"]
        monitor = np.sort(rng.choice(n_rows, THRESHOLD_ROWS, replace=False)) if n_rows > THRESHOLD_ROWS else None
        X_mon = X_arr if monitor is None else X_arr[monitor]
        y_mon = y_arr if monitor is None or y_arr is None else y_arr[monitor]
        sums_mon = np.zeros(X_mon.shape[0])
        sums_val = None if Xv_arr is None else np.zeros(Xv_arr.shape[0])
        norm = math.log2(1.0 + size)

        features, values, depths = [], [], []
        built, step, stopped = 0, 0, False
        while built < num_trees:
            count = min(TREES_PER_STEP, num_trees - built)
            rows = _reservoir_indices(n_rows, count, size, rng)
            cut_feature, cut_value, leaf_depth = _build_trees(X_arr[rows], height, rng)
            features.append(cut_feature)
            values.append(cut_value)
            depths.append(leaf_depth)
            built += count
            step += 1
            scorer = _Scorer(cut_feature, cut_value, leaf_depth, X_arr.dtype)
            scorer.sum_scores(X_mon, range(count), sums_mon)
            metrics = _score_metrics(sums_mon * (norm / built), y_mon, "train")
            if Xv_arr is not None and sums_val is not None:
                if Xv_arr.dtype != X_arr.dtype:
                    # float64 validation rows against float32 cuts: compare in float64, as score_samples.
                    scorer = _Scorer(cut_feature, cut_value, leaf_depth, Xv_arr.dtype)
                scorer.sum_scores(Xv_arr, range(count), sums_val)
                metrics.update(_score_metrics(sums_val * (norm / built), yv_arr, "validation"))
            if not self._emit(callback, step, metrics) and built < num_trees:
                stopped = True
                break

        self.n_features_in_ = n_features
        self.samples_per_tree_ = size
        self.max_depth_ = height
        self.n_trees_ = built
        self.cut_feature_ = np.concatenate(features)
        self.cut_value_ = np.concatenate(values)
        self.leaf_depth_ = np.concatenate(depths)
        train_scores = sums_mon * (norm / built)
        self.score_mean_ = float(train_scores.mean())
        self.score_std_ = float(train_scores.std())
        self.threshold_ = self.score_mean_ + params["anomaly_threshold_sigma"] * self.score_std_
        self.stopped_early_ = stopped
        self._scorer = None
        return self

    # -- inference -----------------------------------------------------------------------------

    def score_samples(self, X: Any) -> np.ndarray:
        """Anomaly score of each row; higher means more anomalous.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,), float64
            ``log2(1 + samples_per_tree_) * mean over trees of 1 / (1 + isolation depth)``.
        """
        self._check_is_fitted()
        array = _as_features(X, "X", self.n_features_in_)
        dtype = np.result_type(array.dtype, self.cut_value_.dtype)
        array = array.astype(dtype, copy=False)
        scorer = getattr(self, "_scorer", None)
        if scorer is None or scorer.dtype != dtype:
            scorer = self._scorer = _Scorer(self.cut_feature_, self.cut_value_, self.leaf_depth_, dtype)
        sums = np.zeros(array.shape[0])
        scorer.sum_scores(array, range(self.n_trees_), sums)
        sums *= math.log2(1.0 + self.samples_per_tree_) / self.n_trees_
        return sums

    def predict(self, X: Any) -> np.ndarray:
        """Flag anomalies: 1 where the score exceeds ``threshold_``, else 0.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,), int64
        """
        return (self.score_samples(X) > self.threshold_).astype(np.int64)

    def evaluate(self, X: Any, y: Any = None, *, channel: str = "validation") -> dict[str, float]:
        """Final metrics of the fitted model on one channel.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,), optional
            0/1 labels (1 = anomaly).
        channel : {"train", "validation"}
            Prefix of the metric names.

        Returns
        -------
        dict of str to float
            ``<channel>:score_mean``, ``score_std``, ``anomaly_rate`` (share of rows above
            ``threshold_``) and, when ``y`` holds both classes, ``auc``.
        """
        check_channel(channel)
        scores = self.score_samples(X)
        labels = _as_labels(y, "y", scores.shape[0])
        out = _score_metrics(scores, labels, channel)
        out[f"{channel}:anomaly_rate"] = float(np.mean(scores > self.threshold_))
        return out

    def _after_load(self) -> None:
        for attr in ("n_features_in_", "samples_per_tree_", "max_depth_", "n_trees_"):
            check_saved_count(attr, getattr(self, attr), minimum=0 if attr == "max_depth_" else 1)
        for attr in ("score_mean_", "score_std_", "threshold_"):
            value = getattr(self, attr)
            if not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"saved model has an invalid {attr} {value!r}")
        expected_depth = math.ceil(math.log2(self.samples_per_tree_))
        if self.samples_per_tree_ > 2048 or self.max_depth_ != expected_depth:
            raise ValueError(
                f"saved model has max_depth_ {self.max_depth_} and samples_per_tree_ {self.samples_per_tree_}; "
                f"expected depth {expected_depth} and at most 2048 samples"
            )
        shape = (self.n_trees_, 1 << self.max_depth_)
        for attr, kinds in (("cut_feature_", "iu"), ("cut_value_", "f"), ("leaf_depth_", "f")):
            value = getattr(self, attr)
            if not isinstance(value, np.ndarray) or value.shape != shape or value.dtype.kind not in kinds:
                raise ValueError(f"saved model has {attr} of shape {np.shape(value)}, expected {shape}")
        if self.cut_value_.dtype not in (np.float32, np.float64) or np.isnan(self.cut_value_).any():
            raise ValueError("saved model has invalid cut_value_")
        if self.cut_feature_.min() < -1 or self.cut_feature_.max() >= self.n_features_in_:
            raise ValueError("saved model has cut_feature_ outside the feature range")
        if not (np.isfinite(self.leaf_depth_).all() and (self.leaf_depth_ >= 0).all()):
            raise ValueError("saved model has invalid leaf_depth_")
        self.cut_feature_ = self.cut_feature_.astype(np.int32, copy=False)
        self.stopped_early_ = bool(self.stopped_early_)
        self._scorer = None


def _score_metrics(scores: np.ndarray, labels: np.ndarray | None, channel: str) -> dict[str, float]:
    """``score_mean``, ``score_std`` and, when the labels hold both classes, the rank ``auc``."""
    out = {f"{channel}:score_mean": float(scores.mean()), f"{channel}:score_std": float(scores.std())}
    # AUC is undefined for a one-class sample; leaving it out beats reporting NaN.
    if labels is not None and 0 < labels.sum() < labels.size:
        out[f"{channel}:auc"] = metric_fns.roc_auc(labels, scores)
    return out
