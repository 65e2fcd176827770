"""Turn a stored tabular dataset into numpy arrays for training.

This is the one door between stored data and the algorithms: the training worker calls
:func:`load_tabular` and gets float64 features with NaN for missing cells, or a :class:`DatasetError`
whose message can be shown to the user as the job's failure reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from studio.core.storage import storage_local_copy
from studio.datasets.models import DatasetKind
from studio.datasets.profiling import (
    BOOL_TOKENS,
    MISSING_TOKENS,
    CsvError,
    is_missing,
    open_csv,
    parse_number,
    ragged_message,
)

if TYPE_CHECKING:
    from studio.datasets.models import Dataset

MAX_LISTED_ROWS = 5


class DatasetError(ValueError):
    """The dataset cannot be used as asked; the message names the column, rows or setting at fault."""


@dataclass
class TabularData:
    X: np.ndarray  # (n, d) float64, NaN where a cell is missing
    y: np.ndarray | None  # (n,) float64 when every target value is a number, else str labels; None without target
    feature_names: list[str]
    n_dropped: int  # rows left out because their target was missing
    target: str = ""

    @property
    def is_numeric_target(self) -> bool:
        return self.y is not None and self.y.dtype.kind == "f"


@dataclass
class _BadColumn:
    rows: list[int]
    count: int = 0
    example: str = ""


def _rows_phrase(bad: _BadColumn) -> str:
    listed = ", ".join(str(r) for r in bad.rows)
    noun = "row" if bad.count == 1 else "rows"
    more = f" and {bad.count - len(bad.rows)} more" if bad.count > len(bad.rows) else ""
    return f"{noun} {listed}{more}"


def _columns_phrase(names: list[str]) -> str:
    shown = ", ".join(names[:20])
    return shown + (f", … ({len(names)} in all)" if len(names) > 20 else "")


def _resolve_columns(names: list[str], target: str, feature_columns: list[str] | None) -> list[str]:
    if target and target not in names:
        raise DatasetError(f"target '{target}' is not a column; columns: {_columns_phrase(names)}")
    if feature_columns is None:
        features = [n for n in names if n != target]
    else:
        features = list(dict.fromkeys(feature_columns))  # keep the caller's order, drop repeats
        unknown = [c for c in features if c not in names]
        if unknown:
            listed = ", ".join(f"'{c}'" for c in unknown)
            raise DatasetError(f"feature column {listed} is not a column; columns: {_columns_phrase(names)}")
        if target and target in features:
            raise DatasetError(f"target '{target}' cannot also be a feature column")
    if not features:
        raise DatasetError("no feature columns left: the dataset needs at least one column besides the target")
    return features


def _feature_value(raw: str) -> float | None:
    """The cell as a number (NaN when missing, 1/0 for true/false), or None when it is not numeric.

    The same rules as profiling (parse_number, MISSING_TOKENS), with the common case, a plain number,
    taking one float() call.
    """
    try:
        number = float(raw)
    except ValueError:
        word = raw.strip().lower()
        return np.nan if word in MISSING_TOKENS else BOOL_TOKENS.get(word)
    if math.isfinite(number):
        return None if "_" in raw else number
    return np.nan if is_missing(raw) else None  # "nan" is a missing cell, "inf" is not a number


def _labels_to_array(labels: list[str]) -> np.ndarray:
    numbers = [parse_number(v) for v in labels]
    if all(n is not None for n in numbers):
        return np.asarray(numbers, dtype=np.float64)
    return np.asarray(labels, dtype=str)


def load_tabular(*, dataset: Dataset, target: str, feature_columns: list[str] | None = None) -> TabularData:
    """Read the stored CSV of ``dataset`` into ``TabularData``.

    ``target`` may be empty for unsupervised algorithms (then ``y`` is None and no row is dropped).
    Rows whose target is missing are dropped and counted in ``n_dropped``. Feature cells must be
    numbers (or true/false, read as 1/0) or missing; anything else raises :class:`DatasetError`
    naming the column and the 1-based data rows.
    """
    if dataset.kind != DatasetKind.TABULAR:
        raise DatasetError(f"dataset '{dataset.name}' is {dataset.kind}, not tabular")
    if not dataset.file:
        raise DatasetError(f"dataset '{dataset.name}' has no stored file")
    target = (target or "").strip()
    delimiter = (dataset.profile or {}).get("delimiter", ",")
    try:
        with storage_local_copy(dataset.file, suffix=".csv") as path, \
                open_csv(path, delimiter=delimiter) as (names, records):
            return _read(dataset, names, records, target, feature_columns)
    except CsvError as exc:
        raise DatasetError(f"dataset '{dataset.name}' could not be read: {exc}") from None
    except FileNotFoundError:
        raise DatasetError(f"the stored file of dataset '{dataset.name}' is missing") from None


def _read(dataset: Dataset, names: list[str], records, target: str,
          feature_columns: list[str] | None) -> TabularData:
    features = _resolve_columns(names, target, feature_columns)
    feature_index = [names.index(c) for c in features]
    target_index = names.index(target) if target else -1
    width = len(names)

    # The row count is known from upload, so X is allocated once instead of built from Python lists.
    capacity = max(int(dataset.rows or 0), 16)
    X = np.empty((capacity, len(features)), dtype=np.float64)
    labels: list[str] = []
    bad: dict[str, _BadColumn] = {}
    n = seen = dropped = 0
    for row, line, fields in records:
        seen += 1
        if len(fields) != width:
            raise DatasetError(ragged_message(row=row, line=line, fields=len(fields), columns=width))
        if target_index >= 0:
            raw_target = fields[target_index]
            if is_missing(raw_target):
                dropped += 1
                continue
            labels.append(raw_target.strip())
        if n == X.shape[0]:
            X = np.resize(X, (X.shape[0] * 2, X.shape[1]))
        for j, i in enumerate(feature_index):
            value = _feature_value(fields[i])
            if value is None:
                entry = bad.setdefault(features[j], _BadColumn(rows=[], example=fields[i].strip()[:40]))
                entry.count += 1
                if len(entry.rows) < MAX_LISTED_ROWS:
                    entry.rows.append(row)
                value = np.nan
            X[n, j] = value
        n += 1

    if bad:
        raise DatasetError("; ".join(
            f"column '{name}' has non-numeric values in {_rows_phrase(entry)} (e.g. '{entry.example}')"
            for name, entry in bad.items()
        ))
    if seen == 0:
        raise DatasetError(f"dataset '{dataset.name}' has no rows")
    if n == 0:
        raise DatasetError(f"every row of dataset '{dataset.name}' is missing the target '{target}'")
    y = _labels_to_array(labels) if target else None
    X = X if n == X.shape[0] else X[:n].copy()  # a copy frees the unused tail
    return TabularData(X=X, y=y, feature_names=features, n_dropped=dropped, target=target)
