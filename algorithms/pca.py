"""PCA: principal component analysis by streamed covariance accumulation.

In the spirit of SageMaker's PCA built-in: the data are read in mini-batches of rows, so a
dataset larger than memory can be fed block by block (:meth:`PCA.partial_fit` or ``fit`` with an
iterator of blocks). Two modes:

``regular``
    Accumulates the mean and the ``d x d`` scatter matrix, then takes an exact symmetric
    eigendecomposition (``np.linalg.eigh``). Exact, one pass, best for up to a few thousand
    features.
``randomized``
    Never forms the ``d x d`` matrix: it accumulates a sketch ``X_c^T X_c Q`` of
    ``num_components + extra_components`` columns and recovers the leading components with a
    Nystrom approximation (Tropp et al., 2017). In-memory data get ``power_iterations``
    additional passes (subspace iteration, Halko et al., 2011), which make the result close to
    exact; a stream of blocks can only be read once and uses the single-pass sketch.

Results follow scikit-learn's ``PCA`` conventions (``explained_variance_`` with ``n - 1`` degrees
of freedom, component signs fixed so the largest-magnitude loading is positive), so ``regular``
mode matches ``PCA(svd_solver="covariance_eigh")`` to rounding.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import numpy as np

from algorithms._checks import as_matrix, check_channel, check_finite, check_saved_array, raise_non_finite
from algorithms.base import Callback, Estimator, Hyperparameter, Metric

__all__ = ["ALGORITHM_MODES", "MAX_REGULAR_FEATURES", "PCA"]

ALGORITHM_MODES = ("regular", "randomized")
# The regular mode holds several d x d float64 matrices and runs an O(d^3) eigendecomposition:
# at 10 000 features that is already 800 MB each and minutes of CPU.
MAX_REGULAR_FEATURES = 10_000
# Rows are processed in sub-chunks of about this many bytes (as float64) so that the centered
# copy stays in the L2 cache while BLAS reads it; bigger chunks were not faster in benchmarks.
_CHUNK_BYTES = 2 << 20
_MIN_CHUNK_ROWS = 64


# -- helpers -----------------------------------------------------------------------------------


def _chunk_rows(n_features: int) -> int:
    return max(_MIN_CHUNK_ROWS, _CHUNK_BYTES // (8 * (n_features + 1)))


def _flip_signs(vectors: np.ndarray) -> np.ndarray:
    """Make the largest-magnitude entry of every row positive (scikit-learn's ``svd_flip``)."""
    rows = np.arange(vectors.shape[0])
    signs = np.sign(vectors[rows, np.argmax(np.abs(vectors), axis=1)])
    signs[signs == 0] = 1.0
    return vectors * signs[:, None]


# -- the streaming accumulator ---------------------------------------------------------------


@dataclass
class _Eigen:
    """Leading eigenpairs of the (centered) scatter matrix ``X_c^T X_c``, largest first."""

    mean: np.ndarray
    values: np.ndarray  # (k,) eigenvalues of the scatter matrix, >= 0
    vectors: np.ndarray  # (k, n_features) unit rows
    total: float  # trace of the scatter matrix (total sum of squares)
    n_samples: int


class _Accumulator:
    """Sums of one pass over row blocks: scatter matrix (regular) or sketch (randomized).

    Rows are shifted by a fixed vector ``shift`` (the mean of the first rows seen) before they
    are accumulated: the final centering correction ``n * delta delta^T`` then stays tiny, which
    avoids the cancellation of ``X^T X - n * mean mean^T`` when the mean is large compared with
    the spread of the data.
    """

    def __init__(self, mode: str, n_features: int, subtract_mean: bool, test_matrix: np.ndarray | None) -> None:
        self.mode = mode
        self.n_features = n_features
        self.subtract_mean = subtract_mean
        self.shift: np.ndarray | None = None if subtract_mean else np.zeros(n_features)
        self.n_samples = 0
        self.chunk = _chunk_rows(n_features)
        if mode == "regular":
            # One extra column of ones makes the syrk also produce the column sums and the count.
            self.buffer = np.empty((self.chunk, n_features + 1))
            self.buffer[:, n_features] = 1.0
            self.gram = np.zeros((n_features + 1, n_features + 1))
        else:
            assert test_matrix is not None
            self.buffer = np.empty((self.chunk, n_features))
            self.test = test_matrix  # (d, l), orthonormal columns
            self.sketch = np.zeros_like(test_matrix)
            self.sums = np.zeros(n_features)
            self.sumsq = 0.0
            self.ones = np.ones(self.chunk)

    def restart(self, test_matrix: np.ndarray) -> None:
        """Begin another pass over the same rows with a new test matrix (randomized mode)."""
        self.test = test_matrix
        self.sketch = np.zeros_like(test_matrix)

    def add(self, X: np.ndarray, name: str, row_offset: int, first_pass: bool = True) -> None:
        """Accumulate the rows of ``X``; raise ``ValueError`` on NaN/inf before touching the sums."""
        d = self.n_features
        if self.shift is None:
            self.shift = X[: self.chunk].mean(axis=0, dtype=np.float64)
            if not np.all(np.isfinite(self.shift)):
                raise_non_finite(X[: self.chunk], name, row_offset=row_offset)
        for start in range(0, X.shape[0], self.chunk):
            rows = X[start : start + self.chunk]
            m = rows.shape[0]
            body = self.buffer[:m, :d]
            np.subtract(rows, self.shift, out=body)
            if self.mode == "regular":
                block = self.buffer[:m]
                part = block.T @ block  # numpy dispatches A.T @ A to BLAS syrk
                # A NaN or inf anywhere in the rows reaches the diagonal: one check per chunk.
                if not np.isfinite(np.trace(part)):
                    self._reject(rows, name, row_offset + start)
                self.gram += part
            else:
                projected = body @ self.test
                part = body.T @ projected
                if first_pass:
                    sumsq = float(np.vdot(body, body))
                    if not np.isfinite(sumsq) or not np.all(np.isfinite(part)):
                        self._reject(rows, name, row_offset + start)
                    self.sums += self.ones[:m] @ body
                    self.sumsq += sumsq
                self.sketch += part
            if first_pass:
                self.n_samples += m

    @staticmethod
    def _reject(rows: np.ndarray, name: str, row_offset: int) -> None:
        raise_non_finite(rows, name, row_offset=row_offset)
        raise ValueError(f"{name} has values too large to square in float64 (near row {row_offset}); rescale it")

    def _delta(self) -> np.ndarray:
        """Mean of the shifted rows (zero when the mean is not subtracted)."""
        d = self.n_features
        if not self.subtract_mean:
            return np.zeros(d)
        sums = self.gram[:d, d] if self.mode == "regular" else self.sums
        return sums / self.n_samples

    def mean(self) -> np.ndarray:
        assert self.shift is not None
        return self.shift + self._delta() if self.subtract_mean else np.zeros(self.n_features)

    def centered_sketch(self) -> np.ndarray:
        """``X_c^T X_c Q`` for the current test matrix ``Q`` (randomized mode)."""
        delta = self._delta()
        return self.sketch - self.n_samples * np.outer(delta, delta @ self.test)

    def eigen(self, n_components: int, sketch: tuple[np.ndarray, np.ndarray] | None = None) -> _Eigen:
        """Leading eigenpairs of the centered scatter matrix from what was accumulated.

        ``sketch`` replaces the current ``(Q, X_c^T X_c Q)`` of the randomized mode, e.g. by the
        last complete pass when a power-iteration pass was interrupted.
        """
        d = self.n_features
        delta = self._delta()
        n = self.n_samples
        if self.mode == "regular":
            scatter = self.gram[:d, :d] - n * np.outer(delta, delta)
            values, vectors = np.linalg.eigh(scatter)
            # eigh sorts ascending; rounding can make the smallest eigenvalues slightly negative.
            values = np.clip(values[::-1], 0.0, None)
            vectors = vectors[:, ::-1].T
            return _Eigen(self.mean(), values[:n_components], vectors[:n_components], float(values.sum()), n)
        total = max(self.sumsq - n * float(delta @ delta), 0.0)
        values, vectors = _nystrom(*(sketch or (self.test, self.centered_sketch())))
        return _Eigen(self.mean(), values[:n_components], vectors[:n_components], total, n)


def _nystrom(test: np.ndarray, sketch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenpairs of the Nystrom approximation ``Y (Q^T Y)^+ Y^T`` of a PSD matrix ``A``.

    Parameters
    ----------
    test : ndarray of shape (d, l)
        Orthonormal test matrix ``Q``.
    sketch : ndarray of shape (d, l)
        ``Y = A Q``.

    Returns
    -------
    values : ndarray of shape (l,)
        Approximate eigenvalues, largest first.
    vectors : ndarray of shape (l, d)
        Matching unit eigenvectors as rows.

    Notes
    -----
    The numerically stable variant of Tropp, Yurtsever, Udell and Cevher (2017, Algorithm 3):
    a tiny shift ``nu`` makes the core matrix positive definite so a Cholesky factor exists.
    """
    nu = np.finfo(np.float64).eps * max(float(np.linalg.norm(sketch)), np.finfo(np.float64).tiny)
    shifted = sketch + nu * test
    core = test.T @ shifted
    core = (core + core.T) / 2.0
    try:
        lower = np.linalg.cholesky(core)
        factor = np.linalg.solve(lower, shifted.T).T
    except np.linalg.LinAlgError:
        # Rank-deficient beyond what the shift covers: pseudo-inverse through the eigenbasis.
        w, u = np.linalg.eigh(core)
        keep = w > w.max() * core.shape[0] * np.finfo(np.float64).eps
        factor = (shifted @ u[:, keep]) / np.sqrt(w[keep])
    u, s, _ = np.linalg.svd(factor, full_matrices=False)
    return np.clip(s**2 - nu, 0.0, None), u.T


# -- the estimator -----------------------------------------------------------------------------


class PCA(Estimator):
    """Principal component analysis over mini-batches of rows.

    Parameters
    ----------
    num_components : int
        Number of principal components to keep; capped at the number of features (see
        ``n_components_``).
    algorithm_mode : {"regular", "randomized"}
        ``"regular"``: exact eigendecomposition of the accumulated ``d x d`` covariance (up to
        10 000 features). ``"randomized"``: sketch of ``num_components + extra_components``
        directions, for many features.
    subtract_mean : bool
        Center the data on the column means first (standard PCA). When false, the components
        are the leading right singular vectors of the raw data and ``mean_`` is zero.
    extra_components : int
        Oversampling of the randomized sketch; ``-1`` means ``max(10, num_components)``, as
        SageMaker. Ignored by the regular mode.
    power_iterations : int
        Extra passes over in-memory data in randomized mode; each one sharpens the
        components. ``-1`` chooses as scikit-learn's ``iterated_power="auto"``: 7 when
        ``num_components`` is below 10% of ``min(n_samples, n_features)``, else 4. Data given as
        a stream of blocks are read once (no power iteration).
    mini_batch_size : int
        Rows accumulated per step; a callback step is reported after each mini-batch.
    random_state : int
        Seed of the randomized sketch.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        Principal axes, by decreasing explained variance; unit rows whose largest-magnitude
        entry is positive.
    explained_variance_ : ndarray of shape (n_components,)
        Variance along each component (``n - 1`` degrees of freedom).
    explained_variance_ratio_ : ndarray of shape (n_components,)
        Fraction of the total variance explained by each component (zeros for constant data).
    singular_values_ : ndarray of shape (n_components,)
        Singular values of the centered data matrix.
    mean_ : ndarray of shape (n_features,)
        Column means (zeros when ``subtract_mean`` is false).
    noise_variance_ : float
        Average variance of the discarded directions (probabilistic PCA estimate).
    total_variance_ : float
        Sum of the variances of all features.
    n_components_ : int
        Number of components kept: ``min(num_components, n_features_in_)``.
    n_samples_seen_ : int
        Rows used for the fit.
    n_features_in_ : int
        Number of features.
    n_blocks_ : int
        Mini-batches accumulated (over all passes).
    stopped_early_ : bool
        Whether the callback stopped training; the model then uses the rows seen so far.
    """

    name: ClassVar[str] = "pca"
    title: ClassVar[str] = "PCA"
    task: ClassVar[str] = "dimensionality reduction"
    input: ClassVar[str] = "tabular"
    target: ClassVar[str] = "none"
    hyperparameters: ClassVar[tuple[Hyperparameter, ...]] = (
        Hyperparameter(
            "num_components",
            "int",
            10,
            min=1,
            max=10_000,
            scale="log",
            help="Number of principal components to keep; capped at the number of features.",
        ),
        Hyperparameter(
            "algorithm_mode",
            "categorical",
            "regular",
            choices=ALGORITHM_MODES,
            tunable=False,
            help="regular: exact, via the full covariance matrix (up to 10,000 features); "
            "randomized: approximate sketch, for many features.",
        ),
        Hyperparameter(
            "subtract_mean",
            "bool",
            True,
            tunable=False,
            help="Center the data on the column means first (standard PCA); off for data already centered.",
        ),
        Hyperparameter(
            "extra_components",
            "int",
            -1,
            min=-1,
            max=1000,
            tunable=False,
            help="Randomized mode: extra sketch directions for accuracy; -1 = max(10, num_components).",
        ),
        Hyperparameter(
            "power_iterations",
            "int",
            -1,
            min=-1,
            max=30,
            tunable=False,
            help="Randomized mode: extra passes over the data that sharpen the components; "
            "-1 = 7 when num_components < 10% of the data's smaller side, else 4.",
        ),
        Hyperparameter(
            "mini_batch_size",
            "int",
            10_000,
            min=1,
            max=10_000_000,
            scale="log",
            tunable=False,
            help="Rows accumulated per step; progress is reported after each mini-batch.",
        ),
        Hyperparameter(
            "random_state", "int", 0, min=0, max=2**32 - 1, tunable=False, help="Seed of the randomized sketch."
        ),
    )
    metrics: ClassVar[tuple[Metric, ...]] = (
        Metric("train:explained_variance_ratio", "maximize"),
        Metric("validation:explained_variance_ratio", "maximize"),
        Metric("train:reconstruction_error", "minimize"),
        Metric("validation:reconstruction_error", "minimize"),
    )
    # Held-out reconstruction error is what a tuner can compare; on the training rows it only
    # ever improves with more components.
    default_objective: ClassVar[str] = "validation:reconstruction_error"

    _fitted_arrays: ClassVar[tuple[str, ...]] = (
        "components_",
        "explained_variance_",
        "explained_variance_ratio_",
        "singular_values_",
        "mean_",
    )
    _fitted_json: ClassVar[tuple[str, ...]] = (
        "n_components_",
        "n_samples_seen_",
        "n_features_in_",
        "noise_variance_",
        "total_variance_",
        "n_blocks_",
        "stopped_early_",
    )

    def __init__(
        self,
        num_components: int = 10,
        algorithm_mode: str = "regular",
        subtract_mean: bool = True,
        extra_components: int = -1,
        power_iterations: int = -1,
        mini_batch_size: int = 10_000,
        random_state: int = 0,
    ) -> None:
        super().__init__(
            num_components=num_components,
            algorithm_mode=algorithm_mode,
            subtract_mean=subtract_mean,
            extra_components=extra_components,
            power_iterations=power_iterations,
            mini_batch_size=mini_batch_size,
            random_state=random_state,
        )

    @property
    def task_(self) -> str:
        """What the fitted model does, in the vocabulary shared by every estimator."""
        return "dimensionality_reduction"

    # -- training ------------------------------------------------------------------------------

    def _new_accumulator(self, params: dict[str, Any], n_features: int) -> _Accumulator:
        # Capped rather than rejected, so that the default works on narrow datasets too.
        k = min(params["num_components"], n_features)
        mode = params["algorithm_mode"]
        test = None
        if mode == "regular":
            if n_features > MAX_REGULAR_FEATURES:
                raise ValueError(
                    f"algorithm_mode='regular' supports up to {MAX_REGULAR_FEATURES} features "
                    f"(got {n_features}); use algorithm_mode='randomized'"
                )
        else:
            extra = params["extra_components"]
            width = min(n_features, k + (max(10, k) if extra < 0 else extra))
            rng = np.random.default_rng(params["random_state"])
            test = np.linalg.qr(rng.standard_normal((n_features, width)))[0]
        return _Accumulator(mode, n_features, params["subtract_mean"], test)

    def fit(
        self,
        X: Any,
        y: Any = None,
        *,
        X_val: Any = None,
        y_val: Any = None,
        callback: Callback | None = None,
    ) -> Self:
        """Find the principal components of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or an iterator of such blocks
            Numeric data without NaN. An iterator (e.g. a generator reading a large file in
            pieces) is consumed once, one block at a time; each block is one mini-batch.
        y : None
            Ignored: PCA is unsupervised.
        X_val : array-like of shape (n_val, n_features), optional
            Held-out rows for ``validation:*`` metrics.
        y_val : None
            Ignored.
        callback : callable, optional
            ``callback(step, metrics)`` with an empty ``metrics`` after every mini-batch (step =
            mini-batch number, counted over all passes), then once more at the end with
            ``train:explained_variance_ratio``, ``train:reconstruction_error`` and, given
            ``X_val``, the ``validation:*`` metrics. Returning ``False`` after a mini-batch stops
            reading data: the model is built from the rows seen so far.

        Returns
        -------
        PCA
            ``self``.

        Raises
        ------
        HyperparameterError
            If a hyperparameter is invalid.
        ValueError
            If the data are not numeric, contain NaN/inf or have fewer than 2 rows.
        """
        params = self._validated_params()
        streamed = isinstance(X, Iterator)
        array = None if streamed else as_matrix(X, "X", finite=False)
        Xv = None
        if X_val is not None:
            Xv = as_matrix(X_val, "X_val", None if array is None else array.shape[1], finite=False)
            check_finite(Xv, "X_val")
        self._state = None
        if array is None:
            acc, eigen, step, stopped = self._fit_stream(X, params, callback)
            resumable = True
        else:
            acc = self._new_accumulator(params, array.shape[1])
            eigen, step, stopped, resumable = self._fit_array(array, acc, params, callback)
        self._store(eigen, step, stopped)
        if Xv is not None and Xv.shape[1] != self.n_features_in_:
            raise ValueError(f"X_val has {Xv.shape[1]} features, but X has {self.n_features_in_}")
        # partial_fit may continue from the running sums, unless a power-iteration pass was cut short.
        self._state = (acc, params) if resumable else None
        if not stopped:
            metrics = self._train_metrics()
            if Xv is not None:
                metrics.update(self.evaluate(Xv, channel="validation"))
            self._emit(callback, step + 1, metrics)
        return self

    def _fit_stream(
        self, blocks: Iterator[Any], params: dict[str, Any], callback: Callback | None
    ) -> tuple[_Accumulator, _Eigen, int, bool]:
        """Accumulate an iterator of row blocks in one pass, one mini-batch per block."""
        acc: _Accumulator | None = None
        step = 0
        for index, block in enumerate(blocks):
            array = as_matrix(block, f"block {index} of X", acc.n_features if acc else None, finite=False)
            if acc is None:
                acc = self._new_accumulator(params, array.shape[1])
            acc.add(array, "X", acc.n_samples)
            step += 1
            if not self._emit(callback, step, {}):
                return acc, self._finish(acc, params), step, True
        if acc is None:
            raise ValueError("X yielded no blocks")
        return acc, self._finish(acc, params), step, False

    def _fit_array(
        self, X: np.ndarray, acc: _Accumulator, params: dict[str, Any], callback: Callback | None
    ) -> tuple[_Eigen, int, bool, bool]:
        """Accumulate an in-memory array in mini-batches, with power iterations when randomized.

        Returns the eigenpairs, the number of mini-batches, whether the callback stopped, and
        whether the accumulator still describes every row seen (no pass was cut short).
        """
        batch = params["mini_batch_size"]
        n_samples = X.shape[0]
        iterations = params["power_iterations"]
        if iterations < 0:
            # scikit-learn's "auto": more passes when few components are kept, where the
            # leading eigenvalues tend to be close together.
            iterations = 7 if params["num_components"] < 0.1 * min(X.shape) else 4
        passes = 1 + (iterations if acc.mode == "randomized" else 0)
        step = 0
        previous: tuple[np.ndarray, np.ndarray] | None = None  # (Q, X_c^T X_c Q) of the last full pass
        for pass_index in range(passes):
            if pass_index:
                previous = (acc.test, acc.centered_sketch())
                acc.restart(np.linalg.qr(previous[1])[0])
            for start in range(0, n_samples, batch):
                acc.add(X[start : start + batch], "X", start, first_pass=pass_index == 0)
                step += 1
                if not self._emit(callback, step, {}):
                    # A partial power-iteration pass is not a valid sketch: use the last full one.
                    return self._finish(acc, params, previous), step, True, previous is None
        return self._finish(acc, params), step, False, True

    @staticmethod
    def _finish(
        acc: _Accumulator, params: dict[str, Any], sketch: tuple[np.ndarray, np.ndarray] | None = None
    ) -> _Eigen:
        if acc.n_samples < 2:
            raise ValueError(f"PCA needs at least 2 rows, got {acc.n_samples}")
        return acc.eigen(min(params["num_components"], acc.n_features), sketch)

    def _store(self, eigen: _Eigen, n_blocks: int, stopped: bool) -> None:
        n = eigen.n_samples
        k = eigen.values.size
        d = eigen.vectors.shape[1]
        self.components_ = _flip_signs(eigen.vectors)
        self.explained_variance_ = eigen.values / (n - 1)
        self.singular_values_ = np.sqrt(eigen.values)
        self.total_variance_ = eigen.total / (n - 1)
        if self.total_variance_ > 0:
            self.explained_variance_ratio_ = self.explained_variance_ / self.total_variance_
        else:
            self.explained_variance_ratio_ = np.zeros(k)
        rank_bound = min(n, d)
        left = self.total_variance_ - float(self.explained_variance_.sum())
        self.noise_variance_ = max(left, 0.0) / (rank_bound - k) if rank_bound > k else 0.0
        self.mean_ = eigen.mean
        self.n_components_ = k
        self.n_samples_seen_ = n
        self.n_features_in_ = d
        self.n_blocks_ = n_blocks
        self.stopped_early_ = stopped

    def _train_metrics(self) -> dict[str, float]:
        """Training metrics from the accumulated sums: no second pass over the data."""
        n, d = self.n_samples_seen_, self.n_features_in_
        left = max(self.total_variance_ - float(self.explained_variance_.sum()), 0.0)
        return {
            "train:explained_variance_ratio": float(self.explained_variance_ratio_.sum()),
            "train:reconstruction_error": left * (n - 1) / (n * d),
        }

    # -- streaming -----------------------------------------------------------------------------

    def partial_fit(self, X: Any, y: Any = None, *, finalize: bool = True) -> Self:
        """Add one block of rows to the running fit.

        The first call starts a new accumulation (with the hyperparameters of that moment);
        every later call adds rows. Regular mode gives exactly the result of ``fit`` on all the
        rows; randomized mode is a single-pass sketch (no power iterations).

        Parameters
        ----------
        X : array-like of shape (n_rows, n_features)
            A block of rows.
        y : None
            Ignored.
        finalize : bool
            Recompute the fitted attributes now. Pass ``False`` to add many blocks cheaply and
            call :meth:`finalize` once at the end.

        Returns
        -------
        PCA
            ``self``.

        Raises
        ------
        ValueError
            If the block does not match earlier ones, contains NaN/inf, or the estimator was
            loaded from disk (the running sums are not saved; use ``fit`` instead).
        """
        state = getattr(self, "_state", None)
        if state is None:
            if hasattr(self, "components_"):
                raise ValueError(
                    "this PCA has no running sums to continue (it was loaded from disk, or its fit stopped "
                    "in the middle of a pass); fit it again or start with a new PCA"
                )
            params = self._validated_params()
            array = as_matrix(X, "X", finite=False)
            state = (self._new_accumulator(params, array.shape[1]), params)
        else:
            array = as_matrix(X, "X", state[0].n_features, finite=False)
        acc, params = state
        acc.add(array, "X", acc.n_samples)
        self._state = state
        if finalize:
            self.finalize()
        return self

    def finalize(self) -> Self:
        """Compute the fitted attributes from the rows added by :meth:`partial_fit`.

        Returns
        -------
        PCA
            ``self``.
        """
        state = getattr(self, "_state", None)
        if state is None:
            raise ValueError("call partial_fit() before finalize()")
        acc, params = state
        blocks = getattr(self, "n_blocks_", 0) if hasattr(self, "components_") else 0
        self._store(self._finish(acc, params), blocks + 1, False)
        return self

    # -- inference -----------------------------------------------------------------------------

    def _prepare(self, X: Any, name: str = "X") -> np.ndarray:
        self._check_is_fitted()
        array = as_matrix(X, name, self.n_features_in_, finite=False)
        check_finite(array, name)
        return array

    def _centered_chunks(self, X: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(start, X[start:stop] - mean_)`` as float64 chunks that fit in cache."""
        step = _chunk_rows(self.n_features_in_)
        for start in range(0, X.shape[0], step):
            yield start, np.subtract(X[start : start + step], self.mean_, dtype=np.float64)

    def transform(self, X: Any) -> np.ndarray:
        """Project rows onto the principal components.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_components)
            float32 for float32 input, float64 otherwise.
        """
        array = self._prepare(X)
        out = np.empty((array.shape[0], self.n_components_), dtype=array.dtype)
        components_t = self.components_.T
        for start, centered in self._centered_chunks(array):
            out[start : start + centered.shape[0]] = centered @ components_t
        return out

    def inverse_transform(self, Z: Any) -> np.ndarray:
        """Map projected rows back to the feature space (the rank-k reconstruction).

        Parameters
        ----------
        Z : array-like of shape (n_samples, n_components)

        Returns
        -------
        ndarray of shape (n_samples, n_features)
        """
        self._check_is_fitted()
        scores = as_matrix(Z, "Z", self.n_components_, finite=False)
        check_finite(scores, "Z")
        result = scores @ self.components_.astype(scores.dtype, copy=False)
        result += self.mean_.astype(scores.dtype, copy=False)
        return result

    def fit_transform(self, X: Any, y: Any = None, **fit_kwargs: Any) -> np.ndarray:
        """Fit on ``X`` and return its projection (``X`` must be an array, not an iterator).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : None
            Ignored.
        **fit_kwargs
            ``X_val``, ``callback`` as in :meth:`fit`.

        Returns
        -------
        ndarray of shape (n_samples, n_components)
        """
        if isinstance(X, Iterator):
            raise ValueError("fit_transform needs X as an array; an iterator can only be read once")
        array = as_matrix(X, "X", finite=False)
        return self.fit(array, **fit_kwargs).transform(array)

    def evaluate(self, X: Any, y: Any = None, *, channel: str = "validation") -> dict[str, float]:
        """Reconstruction quality on ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : None
            Ignored.
        channel : {"train", "validation"}
            Prefix of the metric names.

        Returns
        -------
        dict of str to float
            ``<channel>:reconstruction_error``: mean over all entries of
            ``(X - inverse_transform(transform(X)))**2``; ``<channel>:explained_variance_ratio``:
            share of the squared deviations of ``X`` from ``mean_`` captured by the components
            (on the training rows, ``explained_variance_ratio_.sum()``).
        """
        check_channel(channel)
        array = self._prepare(X)
        residual_ss = total_ss = 0.0
        for _, centered in self._centered_chunks(array):
            total_ss += float(np.vdot(centered, centered))
            # Explicit residuals rather than ||x||^2 - ||z||^2: no cancellation when the fit is good.
            centered -= (centered @ self.components_.T) @ self.components_
            residual_ss += float(np.vdot(centered, centered))
        return {
            f"{channel}:reconstruction_error": residual_ss / array.size,
            f"{channel}:explained_variance_ratio": 1.0 - residual_ss / total_ss if total_ss > 0 else 0.0,
        }

    def _after_load(self) -> None:
        k, d = self.n_components_, self.n_features_in_
        if not isinstance(d, int) or d < 1 or not isinstance(k, int) or not 1 <= k <= d:
            raise ValueError(f"saved PCA has invalid sizes n_components_={k!r}, n_features_in_={d!r}")
        expected = {
            "components_": (k, d),
            "explained_variance_": (k,),
            "explained_variance_ratio_": (k,),
            "singular_values_": (k,),
            "mean_": (d,),
        }
        for attr, shape in expected.items():
            check_saved_array(attr, getattr(self, attr), shape, owner="PCA")
