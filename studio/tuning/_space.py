"""Search spaces of tuning jobs: parameter ranges, sampling, grids and the unit encoding the models use.

Each numeric range maps to [0, 1] (after a log for log scales; integers own equal-width cells, so uniform
unit draws give uniform integers), each categorical range to a one-hot block in declared order.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["PARAMETER_TYPES", "SCALES", "ParameterRange", "SearchSpace"]

PARAMETER_TYPES = ("continuous", "integer", "categorical")
SCALES = ("linear", "log")


def _is_number(value: Any) -> bool:
    # Exact type checks first: this runs for every parameter of every trial of the history.
    kind = type(value)
    return kind is float or kind is int or isinstance(value, np.integer | np.floating)


def _category_key(value: Any) -> tuple[bool, Any]:
    # True == 1 and hash alike in Python; the flag keeps a bool and an int category apart.
    return (isinstance(value, bool | np.bool_), value)


@dataclass(frozen=True)
class ParameterRange:
    """One tunable hyperparameter.

    Parameters
    ----------
    name : str
    type : {"continuous", "integer", "categorical"}
    min, max : float or int, optional
        Bounds (inclusive) of a continuous or integer range.
    values : tuple, optional
        Choices of a categorical range (str, int, float or bool).
    scale : {"linear", "log"}
        Log scale searches ``log(value)`` uniformly; it needs ``min > 0``.

    Raises
    ------
    ValueError
        With a message naming the parameter, for any inconsistent definition.
    """

    name: str
    type: str
    min: float | None = None
    max: float | None = None
    values: tuple[Any, ...] | None = None
    scale: str = "linear"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError("a parameter range needs a non-empty name")
        label = f"parameter {self.name!r}"
        if self.type not in PARAMETER_TYPES:
            raise ValueError(f"{label}: type must be one of {', '.join(PARAMETER_TYPES)}, got {self.type!r}")
        if self.scale not in SCALES:
            raise ValueError(f"{label}: scale must be 'linear' or 'log', got {self.scale!r}")
        if self.type == "categorical":
            self._check_categorical(label)
        else:
            self._check_numeric(label)

    def _check_categorical(self, label: str) -> None:
        if self.min is not None or self.max is not None:
            raise ValueError(f"{label}: a categorical range takes values, not min/max")
        if self.scale == "log":
            raise ValueError(f"{label}: a categorical range cannot have a log scale")
        if self.values is None or isinstance(self.values, str | bytes) or len(self.values) == 0:
            raise ValueError(f"{label}: a categorical range needs at least one value")
        values = tuple(self.values)
        for value in values:
            if not isinstance(value, str | bool | int | float):
                raise ValueError(f"{label}: categorical values must be str, int, float or bool, got {value!r}")
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{label}: categorical values must be finite, got {value!r}")
        if len({_category_key(v) for v in values}) != len(values):
            raise ValueError(f"{label}: categorical values must be distinct, got {list(values)!r}")
        object.__setattr__(self, "values", values)

    def _check_numeric(self, label: str) -> None:
        if self.values is not None:
            raise ValueError(f"{label}: a {self.type} range takes min and max, not values")
        if self.min is None or self.max is None:
            raise ValueError(f"{label}: a {self.type} range needs both min and max")
        for bound in (self.min, self.max):
            if not _is_number(bound) or not math.isfinite(bound):
                raise ValueError(f"{label}: min and max must be finite numbers, got {bound!r}")
        if self.type == "integer":
            if self.min != int(self.min) or self.max != int(self.max):
                raise ValueError(f"{label}: an integer range needs whole-number bounds, got {self.min}..{self.max}")
            object.__setattr__(self, "min", int(self.min))
            object.__setattr__(self, "max", int(self.max))
            if self.min > self.max:
                raise ValueError(f"{label}: min ({self.min}) must not exceed max ({self.max})")
        else:
            object.__setattr__(self, "min", float(self.min))
            object.__setattr__(self, "max", float(self.max))
            if self.min >= self.max:
                raise ValueError(f"{label}: min ({self.min}) must be below max ({self.max})")
        if self.scale == "log" and self.min <= 0:
            raise ValueError(f"{label}: a log scale needs min > 0, got min={self.min}")


class SearchSpace:
    """The ranges of a tuning job and their unit encoding.

    Parameters
    ----------
    ranges : sequence of ParameterRange
        At least one, with distinct names.

    Attributes
    ----------
    names : list of str
        Parameter names in range order.
    ranges : tuple of ParameterRange
    dim : int
        Length of an encoded vector (one per numeric range, one per category).
    """

    def __init__(self, ranges: Sequence[ParameterRange]) -> None:
        self.ranges = tuple(ranges)
        if not self.ranges:
            raise ValueError("a search space needs at least one parameter range")
        for r in self.ranges:
            if not isinstance(r, ParameterRange):
                raise ValueError(f"expected ParameterRange objects, got {r!r}")
        self.names = [r.name for r in self.ranges]
        duplicates = sorted({n for n in self.names if self.names.count(n) > 1})
        if duplicates:
            raise ValueError(f"parameter names must be distinct; repeated: {', '.join(duplicates)}")
        numeric = [r for r in self.ranges if r.type != "categorical"]
        self._categorical = [r for r in self.ranges if r.type == "categorical"]
        self._numeric = numeric
        self._is_log = np.array([r.scale == "log" for r in numeric], dtype=bool)
        self._is_int = np.array([r.type == "integer" for r in numeric], dtype=bool)
        self._vmin = np.array([r.min for r in numeric], dtype=np.float64)
        self._vmax = np.array([r.max for r in numeric], dtype=np.float64)
        # Integers own [v - 0.5, v + 0.5], so every integer gets the same share of the unit interval.
        half = np.where(self._is_int, 0.5, 0.0)
        lo, hi = self._vmin - half, self._vmax + half
        self._lo = np.where(self._is_log, np.log(np.where(self._is_log, lo, 1.0)), lo)
        self._hi = np.where(self._is_log, np.log(np.where(self._is_log, hi, 1.0)), hi)
        self._n_choices = [len(r.values or ()) for r in self._categorical]
        self._lookup = [{_category_key(v): j for j, v in enumerate(r.values or ())} for r in self._categorical]
        # Encoded layout follows range order: a numeric range is one column, a categorical one a block.
        self._num_cols: list[int] = []
        self._cat_starts: list[int] = []
        col = 0
        for r in self.ranges:
            if r.type == "categorical":
                self._cat_starts.append(col)
                col += len(r.values or ())
            else:
                self._num_cols.append(col)
                col += 1
        self.dim = col
        self._checks = [(r.name, self._checker(r)) for r in self.ranges]

    # -- public API ------------------------------------------------------------------------------

    @property
    def is_discrete(self) -> bool:
        """Whether every range is integer or categorical (a finite grid)."""
        return all(r.type != "continuous" for r in self.ranges)

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """One uniform draw (log-uniform on log scales).

        Parameters
        ----------
        rng : numpy.random.Generator

        Returns
        -------
        dict
            Integers as ``int``, continuous values as ``float``, categories as the declared value.
        """
        return self._dicts(*self._sample(rng, 1))[0]

    def grid_size(self) -> int:
        """Number of points of the full grid, without building it.

        Returns
        -------
        int

        Raises
        ------
        ValueError
            If a range is continuous.
        """
        self._require_discrete()
        return math.prod(self._level_count(r) for r in self.ranges)

    def grid(self) -> list[dict[str, Any]]:
        """The full cartesian grid, in a fixed order: ranges in declaration order, the last one fastest.

        Returns
        -------
        list of dict

        Raises
        ------
        ValueError
            If a range is continuous.
        """
        self._require_discrete()
        return [dict(zip(self.names, combo, strict=True)) for combo in itertools.product(*map(self._levels,
                                                                                           self.ranges))]

    def encode(self, params: Mapping[str, Any]) -> np.ndarray:
        """Parameters -> unit vector (numeric in [0, 1] after log where set; categories one-hot).

        Parameters
        ----------
        params : mapping
            A value for every range (extra keys are ignored).

        Returns
        -------
        ndarray of shape (dim,)

        Raises
        ------
        ValueError
            If the parameters are outside the space.
        """
        if not self.contains(params):
            raise ValueError(f"parameters {dict(params)!r} are outside the search space")
        return self._onehot(*self._internal([params]))[0]

    def decode(self, x: np.ndarray) -> dict[str, Any]:
        """Unit vector -> parameters: clip to the bounds, round integers, pick the largest category entry.

        Parameters
        ----------
        x : ndarray of shape (dim,)

        Returns
        -------
        dict
        """
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        if x.size != self.dim:
            raise ValueError(f"expected a vector of length {self.dim}, got {x.size}")
        U = np.clip(x[self._num_cols], 0.0, 1.0)[None, :]
        C = np.array([[int(np.argmax(x[s:s + k])) for s, k in zip(self._cat_starts, self._n_choices,
                                                                   strict=True)]], dtype=np.int64)
        return self._dicts(U, C.reshape(1, -1))[0]

    def contains(self, params: Mapping[str, Any]) -> bool:
        """Whether ``params`` names a point of this space (extra keys ignored), e.g. to filter warm-start trials.

        Parameters
        ----------
        params : mapping

        Returns
        -------
        bool
        """
        try:
            for name, check in self._checks:
                if not check(params[name]):
                    return False
        except (KeyError, TypeError):  # a missing name, an unhashable category
            return False
        return True

    # -- internal representation -----------------------------------------------------------------

    def _checker(self, r: ParameterRange) -> Any:
        """A predicate telling whether a value belongs to range ``r`` (used by :meth:`contains`)."""
        if r.type == "categorical":
            lookup = self._lookup[self._categorical.index(r)]
            return lambda value: _category_key(value) in lookup
        low, high = float(r.min or 0.0), float(r.max or 0.0)
        if r.type == "integer":
            return lambda value: _is_number(value) and low <= value <= high and value == int(value)
        # A relative tolerance absorbs float round trips through JSON or the log transform.
        slack = 1e-9 * max(high - low, abs(low), abs(high))
        low, high = low - slack, high + slack
        return lambda value: _is_number(value) and low <= value <= high

    def _require_discrete(self) -> None:
        continuous = [r.name for r in self.ranges if r.type == "continuous"]
        if continuous:
            raise ValueError("grid search needs integer or categorical ranges only; continuous: "
                             + ", ".join(continuous))

    @staticmethod
    def _level_count(r: ParameterRange) -> int:
        return len(r.values or ()) if r.type == "categorical" else int(r.max) - int(r.min) + 1

    @staticmethod
    def _levels(r: ParameterRange) -> Sequence[Any]:
        return r.values or () if r.type == "categorical" else range(int(r.min), int(r.max) + 1)

    def _grid_point(self, index: int) -> dict[str, Any]:
        point: dict[str, Any] = {}
        for r in reversed(self.ranges):
            index, digit = divmod(index, self._level_count(r))
            point[r.name] = r.values[digit] if r.type == "categorical" else int(r.min) + digit
        return {name: point[name] for name in self.names}

    def _to_unit(self, values: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(self._is_log, np.log(np.where(self._is_log, values, 1.0)), values)
        return (t - self._lo) / (self._hi - self._lo)

    def _from_unit(self, U: np.ndarray) -> np.ndarray:
        t = self._lo + np.clip(U, 0.0, 1.0) * (self._hi - self._lo)
        values = np.where(self._is_log, np.exp(t), t)
        values = np.where(self._is_int, np.round(values), values)
        return np.clip(values, self._vmin, self._vmax)

    def _snap(self, U: np.ndarray) -> np.ndarray:
        """Move numeric unit values onto valid points (integer values; bounds)."""
        return self._to_unit(self._from_unit(U))

    def _cells(self, U: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Unit bounds of each integer's cell (meaningless on continuous dimensions)."""
        values = self._from_unit(U)
        return self._to_unit(values - 0.5), self._to_unit(values + 0.5)

    def _internal(self, params_list: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        """Parameter dicts (inside the space) -> numeric unit values (m, p) and category indices (m, q)."""
        m = len(params_list)
        values = np.array([[float(p[r.name]) for r in self._numeric] for p in params_list],
                          dtype=np.float64).reshape(m, len(self._numeric))
        C = np.array([[self._lookup[j][_category_key(p[r.name])] for j, r in enumerate(self._categorical)]
                      for p in params_list], dtype=np.int64).reshape(m, len(self._categorical))
        return self._to_unit(values), C

    def _dicts(self, U: np.ndarray, C: np.ndarray) -> list[dict[str, Any]]:
        values = self._from_unit(U)
        out = []
        for row, cats in zip(values, C, strict=True):
            num = iter(row)
            cat = iter(cats)
            point: dict[str, Any] = {}
            for r in self.ranges:
                if r.type == "categorical":
                    point[r.name] = (r.values or ())[int(next(cat))]
                elif r.type == "integer":
                    point[r.name] = int(next(num))
                else:
                    point[r.name] = float(next(num))
            out.append(point)
        return out

    def _onehot(self, U: np.ndarray, C: np.ndarray) -> np.ndarray:
        X = np.zeros((U.shape[0], self.dim))
        X[:, self._num_cols] = U
        for j, start in enumerate(self._cat_starts):
            X[np.arange(U.shape[0]), start + C[:, j]] = 1.0
        return X

    def _sample(self, rng: np.random.Generator, m: int) -> tuple[np.ndarray, np.ndarray]:
        U = np.empty((m, len(self._numeric)))
        C = np.empty((m, len(self._categorical)), dtype=np.int64)
        i = j = 0
        for r in self.ranges:  # range order, so a draw depends only on the ranges before it
            if r.type == "categorical":
                C[:, j] = rng.integers(len(r.values or ()), size=m)
                j += 1
            else:
                U[:, i] = rng.random(m)
                i += 1
        return self._snap(U), C

    def _keys(self, U: np.ndarray, C: np.ndarray) -> list[tuple[Any, ...]]:
        """Hashable identity of points, for de-duplication in discrete spaces."""
        values = self._from_unit(U)
        return [tuple(v.tolist()) + tuple(c.tolist()) for v, c in zip(values, C, strict=True)]
