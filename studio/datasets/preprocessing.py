"""From loaded columns to the numeric matrix an algorithm trains on, the same way at training and inference.

A :class:`TabularPreprocessor` is fitted on the training rows only (so validation metrics stay
honest) and saved with the model as ``preprocessing.json``, next to the algorithm's manifest.json
and arrays.npz; an endpoint loads it and turns request records into the same features.

- Text (categorical) columns are one-hot encoded with a vocabulary of at most ``max_categories``
  values, the most frequent in the training rows. Rarer values share an ``__other__`` column; a
  missing cell gets its own ``__missing__`` column. A value never seen in training goes to
  ``__other__`` when that column exists, else it sets no column at all (all zeros).
- Missing numbers are handled by the job's explicit ``missing_values`` strategy: ``mean``,
  ``median`` or ``zero`` fill them in (with statistics of the training rows), ``drop_rows`` leaves
  the rows out, ``fail`` refuses the data and names the rows.

JSON only, never pickle: the file may come from another user.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from studio.datasets.profiling import MISSING_TOKENS
from studio.datasets.tabular import DatasetError, TabularData, feature_value, rows_phrase

FILENAME = "preprocessing.json"
FORMAT = "studio-preprocessing"
FORMAT_VERSION = 1
MISSING_STRATEGIES = ("mean", "median", "zero", "drop_rows", "fail")
DEFAULT_MISSING_STRATEGY = "mean"
# "keep" passes NaN through untouched: only for models saved before preprocessing existed.
_ALL_STRATEGIES = (*MISSING_STRATEGIES, "keep")
MAX_CATEGORIES = 50
OTHER = "__other__"
MISSING = "__missing__"
MAX_LISTED_ROWS = 5
MAX_RECORD_ERRORS = 5


class InputError(ValueError):
    """Records sent for prediction do not fit the model's columns; the message says which and why."""


@dataclass
class NumericColumn:
    name: str
    fill: float  # what a missing cell becomes (mean, median or 0 of the training rows)

    @property
    def outputs(self) -> list[str]:
        return [self.name]


@dataclass
class CategoricalColumn:
    name: str
    categories: list[str]  # the vocabulary, most frequent first
    other: bool  # an __other__ column for values outside the vocabulary
    missing: bool  # a __missing__ column for missing cells

    @property
    def outputs(self) -> list[str]:
        names = [f"{self.name}={value}" for value in self.categories]
        if self.other:
            names.append(f"{self.name}={OTHER}")
        if self.missing:
            names.append(f"{self.name}={MISSING}")
        return names


Column = NumericColumn | CategoricalColumn


@dataclass
class Prepared:
    """The rows of one channel, ready for ``fit``/``evaluate``."""

    X: np.ndarray
    y: np.ndarray | None
    rows: np.ndarray  # data-row numbers in the file, after dropped rows
    notes: list[str]  # what was done, in words, for the job's log


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


class TabularPreprocessor:
    """Fit on training rows, transform any rows; see the module docstring for the rules."""

    def __init__(self, *, missing_values: str = DEFAULT_MISSING_STRATEGY, max_categories: int = MAX_CATEGORIES):
        if missing_values not in _ALL_STRATEGIES:
            raise ValueError(f"missing_values must be one of {', '.join(MISSING_STRATEGIES)} (got {missing_values!r})")
        if not isinstance(max_categories, int) or max_categories < 1:
            raise ValueError(f"max_categories must be a positive integer (got {max_categories!r})")
        self.missing_values = missing_values
        self.max_categories = max_categories
        self.columns: list[Column] = []
        self.fitted = False

    # --- what it produces -------------------------------------------------------------------------

    @property
    def input_names(self) -> list[str]:
        """The dataset columns the model reads, in order: what a prediction request must send."""
        return [c.name for c in self.columns]

    @property
    def output_names(self) -> list[str]:
        """The model's feature names after encoding (``city=Paris``...)."""
        return [name for c in self.columns for name in c.outputs]

    @property
    def categorical_names(self) -> list[str]:
        return [c.name for c in self.columns if isinstance(c, CategoricalColumn)]

    @classmethod
    def passthrough(cls, names: Sequence[str]) -> TabularPreprocessor:
        """Numeric columns as they are, NaN included: for models saved before preprocessing existed."""
        pre = cls(missing_values="keep")
        pre.columns = [NumericColumn(name=str(n), fill=math.nan) for n in names]
        pre.fitted = True
        return pre

    def describe(self) -> list[dict[str, Any]]:
        """One row per input column for pages: what happens to it."""
        out = []
        for c in self.columns:
            if isinstance(c, CategoricalColumn):
                extra = [f"'{OTHER}'"] * c.other + [f"'{MISSING}'"] * c.missing
                treatment = f"one-hot, {_plural(len(c.categories), 'value')}" + (
                    f" + {' + '.join(extra)}" if extra else "")
                out.append({"name": c.name, "kind": "categorical", "treatment": treatment,
                            "features": len(c.outputs)})
            else:
                treatment = {
                    "mean": f"missing → training mean {_fmt(c.fill)}",
                    "median": f"missing → training median {_fmt(c.fill)}",
                    "zero": "missing → 0",
                    "drop_rows": "rows with a missing value are dropped (refused at prediction)",
                    "fail": "missing values are refused",
                    "keep": "as is",
                }[self.missing_values]
                out.append({"name": c.name, "kind": "numeric", "treatment": treatment, "features": 1})
        return out

    # --- fitting ----------------------------------------------------------------------------------

    def fit(self, data: TabularData) -> Prepared:
        """Learn fill values and vocabularies from the training rows and return them transformed."""
        notes: list[str] = []
        data = self._handle_missing_rows(data, notes, channel="training")
        columns: list[Column] = []
        for name in data.feature_names:
            values = data.column(name)
            if name in data.text:
                columns.append(self._fit_categorical(name, values, notes))
            else:
                columns.append(self._fit_numeric(name, values, notes))
        self.columns = columns
        self.fitted = True
        X = self._encode(data, notes=None)
        if data.text:
            notes.append(f"Encoded {_plural(len(self.columns), 'column')} into {_plural(X.shape[1], 'feature')}.")
        return Prepared(X=X, y=data.y, rows=data.rows, notes=notes)

    def _fit_numeric(self, name: str, values: np.ndarray, notes: list[str]) -> NumericColumn:
        missing = np.isnan(values)
        n_missing = int(missing.sum())
        present = values[~missing]
        if self.missing_values == "zero" or present.size == 0:
            fill = 0.0
        elif self.missing_values == "median":
            fill = float(np.median(present))
        else:
            fill = float(present.mean())
        if n_missing and self.missing_values in ("mean", "median", "zero"):
            if present.size == 0:
                notes.append(f"Column '{name}' has no values at all; filled it with 0.")
            elif self.missing_values == "zero":
                notes.append(f"Imputed {_plural(n_missing, 'missing value')} in '{name}' with 0.")
            else:
                notes.append(f"Imputed {_plural(n_missing, 'missing value')} in '{name}' with the "
                             f"{self.missing_values} {_fmt(fill)}.")
        return NumericColumn(name=name, fill=fill)

    def _fit_categorical(self, name: str, values: np.ndarray, notes: list[str]) -> CategoricalColumn:
        counts = Counter(values.tolist())
        n_missing = counts.pop("", 0)
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        kept = [value for value, _ in ranked[: self.max_categories]]
        rest = ranked[self.max_categories:]
        column = CategoricalColumn(name=name, categories=kept, other=bool(rest), missing=bool(n_missing))
        text = f"One-hot encoded '{name}' ({_plural(len(kept), 'value')})"
        if rest:
            rows = sum(count for _, count in rest)
            text += (f"; kept the {len(kept)} most frequent of {len(ranked):,} values, the other {len(rest):,} "
                     f"({_plural(rows, 'row')}) become '{OTHER}'")
        if n_missing:
            text += f"; {_plural(n_missing, 'missing value')} {'becomes' if n_missing == 1 else 'become'} '{MISSING}'"
        notes.append(text + ".")
        return column

    def _handle_missing_rows(self, data: TabularData, notes: list[str], *, channel: str) -> TabularData:
        """Apply ``drop_rows`` and ``fail``: both act on rows with a missing number."""
        if self.missing_values not in ("drop_rows", "fail") or not data.numeric.size:
            return data
        missing = np.isnan(data.numeric)
        per_row = missing.any(axis=1)
        if not per_row.any():
            return data
        per_column = {name: int(missing[:, j].sum()) for j, name in enumerate(data.numeric_names)
                      if missing[:, j].any()}
        where = ", ".join(f"'{name}' ({count:,})" for name, count in per_column.items())
        if self.missing_values == "fail":
            problems = []
            for j, name in enumerate(data.numeric_names):
                rows = data.rows[missing[:, j]]
                if rows.size:
                    problems.append(f"column '{name}' has missing values in "
                                    f"{rows_phrase(rows[:MAX_LISTED_ROWS].tolist(), int(rows.size))}")
            raise DatasetError("; ".join(problems) + f" of the {channel} data, and missing_values is 'fail': fill "
                               "them in, or choose a strategy: mean, median, zero or drop_rows")
        n_drop = int(per_row.sum())
        if n_drop == data.n_rows:
            raise DatasetError(f"every row of the {channel} data has a missing value (in {where}), so "
                               "missing_values 'drop_rows' leaves nothing: choose mean, median or zero instead")
        notes.append(f"Dropped {_plural(n_drop, 'row')} of {data.n_rows:,} {channel} rows with missing values "
                     f"(in {where}).")
        return data.take(~per_row)

    # --- transforming -----------------------------------------------------------------------------

    def transform(self, data: TabularData, *, channel: str = "validation") -> Prepared:
        """Transform other rows (a validation channel) with what was learned from the training rows."""
        self._check_fitted()
        missing_columns = [name for name in self.input_names if name not in data.feature_names]
        if missing_columns:
            raise DatasetError(f"the {channel} data lacks column(s) " + ", ".join(f"'{c}'" for c in missing_columns))
        notes: list[str] = []
        data = self._handle_missing_rows(data, notes, channel=channel)
        X = self._encode(data, notes=notes, channel=channel)
        return Prepared(X=X, y=data.y, rows=data.rows, notes=notes)

    def transform_records(self, records: Sequence[Mapping[str, Any] | Sequence[Any]]) -> np.ndarray:
        """Request records (``{column: value}`` objects or lists in :attr:`input_names` order) -> features.

        Raises :class:`InputError` naming the record (1-based) and column of every problem.
        """
        self._check_fitted()
        data = self._records_to_data(records)
        self._refuse_missing(data)
        return self._encode(data, notes=None)

    def transform_columns(self, columns: Mapping[str, Sequence[str]]) -> np.ndarray:
        """Cells given column by column (``{column: [cell, ...]}``) -> features, as :meth:`transform_records` would.

        The same cell rules as :meth:`transform_records` (``feature_value`` for numbers, the missing tokens
        for categories), applied to whole columns: a numeric column is parsed by numpy in one call, and only
        a column numpy cannot read as finite plain numbers goes cell by cell. Extra columns are ignored.

        Parameters
        ----------
        columns : mapping of str to sequence of str
            Every column of :attr:`input_names` (and possibly others), all of one length, at least 1; a
            column may be an Arrow string array (read that way by batch transform, no Python string per cell).

        Returns
        -------
        ndarray of shape (n_records, len(output_names))
            Equal, value for value, to ``transform_records`` of the same records as ``{column: cell}`` objects.

        Raises
        ------
        InputError
            Exactly the error ``transform_records`` raises for those records (a lacking column, a cell that is
            not a number, a missing number the strategy cannot fill).
        """
        self._check_fitted()
        names = self.input_names
        lengths = {len(cells) for cells in columns.values()}
        if len(lengths) != 1 or any(name not in columns for name in names):
            return self.transform_records(_column_records(columns))
        n = lengths.pop()
        categorical = set(self.categorical_names)
        numeric_names = [name for name in names if name not in categorical]
        numeric = np.empty((n, len(numeric_names)), dtype=np.float64)
        for k, name in enumerate(numeric_names):
            values = _number_column(columns[name])
            if values is None:  # a cell that is not a number: the per-record path words the error
                return self.transform_records(_column_records(columns))
            numeric[:, k] = values
        text = {name: _text_column(_as_list(columns[name])) for name in names if name in categorical}
        data = TabularData(feature_names=list(names), numeric=numeric, numeric_names=numeric_names, text=text,
                           y=None, rows=np.arange(1, n + 1), n_dropped=0)
        self._refuse_missing(data)
        return self._encode(data, notes=None)

    def _refuse_missing(self, data: TabularData) -> None:
        """InputError naming the records with a missing number, when the strategy cannot fill one in."""
        if self.missing_values in ("drop_rows", "fail") and data.numeric.size:
            missing = np.isnan(data.numeric)
            if missing.any():
                problems = [f"record {int(data.rows[i])} has no value for '{data.numeric_names[j]}'"
                            for i, j in zip(*np.nonzero(missing), strict=True)][:MAX_RECORD_ERRORS]
                raise InputError("; ".join(problems) + f": the model was trained with missing_values="
                                 f"'{self.missing_values}', so it cannot fill in missing numbers")

    def _records_to_data(self, records: Sequence[Mapping[str, Any] | Sequence[Any]]) -> TabularData:
        if isinstance(records, str | bytes | Mapping) or not isinstance(records, Sequence):
            raise InputError("send a list of records: objects of column: value, or lists of values in column order")
        names = self.input_names
        categorical = set(self.categorical_names)
        numeric_names = [n for n in names if n not in categorical]
        n = len(records)
        numeric = np.empty((n, len(numeric_names)), dtype=np.float64)
        text = {name: np.empty(n, dtype=object) for name in names if name in categorical}
        errors: list[str] = []
        for i, record in enumerate(records):
            number = i + 1
            if isinstance(record, Mapping):
                absent = [c for c in names if c not in record]
                if absent:
                    errors.append(f"record {number} lacks column(s) " + ", ".join(f"'{c}'" for c in absent)
                                  + " (send null for a missing value)")
                    continue
                cells = [record[c] for c in names]
            elif isinstance(record, Sequence) and not isinstance(record, str | bytes):
                if len(record) != len(names):
                    errors.append(f"record {number} has {len(record)} values, the model expects {len(names)}: "
                                  + ", ".join(names))
                    continue
                cells = list(record)
            else:
                errors.append(f"record {number} must be an object of column: value or a list of values")
                continue
            k = 0
            for name, cell in zip(names, cells, strict=True):
                if name in categorical:
                    text[name][i] = _text_cell(cell)
                    continue
                value = _number_cell(cell)
                if value is None:
                    errors.append(f"record {number}: column '{name}' must be a number (got {cell!r})")
                    value = math.nan
                numeric[i, k] = value
                k += 1
            if len(errors) >= MAX_RECORD_ERRORS:
                break
        if errors:
            raise InputError("; ".join(errors[:MAX_RECORD_ERRORS]))
        return TabularData(feature_names=list(names), numeric=numeric, numeric_names=numeric_names, text=text,
                           y=None, rows=np.arange(1, n + 1), n_dropped=0)

    def _encode(self, data: TabularData, *, notes: list[str] | None, channel: str = "validation") -> np.ndarray:
        n = data.n_rows
        X = np.zeros((n, len(self.output_names)), dtype=np.float64)
        offset = 0
        for column in self.columns:
            if isinstance(column, NumericColumn):
                values = np.asarray(data.column(column.name), dtype=np.float64)
                missing = np.isnan(values)
                if missing.any() and self.missing_values != "keep":
                    values = np.where(missing, column.fill, values)
                    if notes is not None:
                        how = "0" if self.missing_values == "zero" else (
                            f"the training {self.missing_values} {_fmt(column.fill)}")
                        notes.append(f"Imputed {_plural(int(missing.sum()), 'missing value')} in '{column.name}' "
                                     f"of the {channel} rows with {how}.")
                X[:, offset] = values
                offset += 1
                continue
            width = len(column.outputs)
            index = {value: j for j, value in enumerate(column.categories)}
            other = len(column.categories) if column.other else -1
            missing_at = width - 1 if column.missing else -1
            values = np.asarray(data.column(column.name), dtype=object)
            uniques, inverse = np.unique(values.astype(str), return_inverse=True)
            codes = np.empty(uniques.shape[0], dtype=np.int64)
            unseen: Counter[str] = Counter()
            for u, value in enumerate(uniques.tolist()):
                if value == "":
                    codes[u] = missing_at
                elif value in index:
                    codes[u] = index[value]
                else:
                    codes[u] = other
                    unseen[value] = 0
            row_codes = codes[inverse.reshape(-1)]
            hit = row_codes >= 0
            X[np.nonzero(hit)[0], offset + row_codes[hit]] = 1.0
            if notes is not None:
                self._encode_notes(column, uniques, inverse.reshape(-1), unseen, notes, channel)
            offset += width
        return X

    @staticmethod
    def _encode_notes(column: CategoricalColumn, uniques: np.ndarray, inverse: np.ndarray, unseen: Counter,
                      notes: list[str], channel: str) -> None:
        counts = np.bincount(inverse, minlength=uniques.shape[0])
        by_value = dict(zip(uniques.tolist(), counts.tolist(), strict=True))
        n_unseen = sum(by_value[value] for value in unseen)
        if n_unseen:
            example = ", ".join(f"'{v}'" for v in sorted(unseen, key=lambda v: -by_value[v])[:3])
            where = f"'{OTHER}'" if column.other else "no column (all zeros)"
            verb = "was" if n_unseen == 1 else "were"
            notes.append(f"{_plural(n_unseen, 'value')} of '{column.name}' in the {channel} rows {verb} not seen in "
                         f"training (e.g. {example}) and {'goes' if n_unseen == 1 else 'go'} to {where}.")
        n_missing = by_value.get("", 0)
        if n_missing and not column.missing:
            notes.append(f"{_plural(n_missing, 'missing value')} of '{column.name}' in the {channel} rows "
                         "(none in training) set no column (all zeros).")

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise RuntimeError("the preprocessor is not fitted yet: call fit() on the training rows first")

    # --- saving -----------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        self._check_fitted()
        columns: list[dict[str, Any]] = []
        for c in self.columns:
            if isinstance(c, CategoricalColumn):
                columns.append({"name": c.name, "kind": "categorical", "categories": list(c.categories),
                                "other": c.other, "missing": c.missing})
            else:
                columns.append({"name": c.name, "kind": "numeric",
                                "fill": None if math.isnan(c.fill) else c.fill})
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "missing_values": self.missing_values,
                "max_categories": self.max_categories, "columns": columns, "features": self.output_names}

    @classmethod
    def from_json(cls, document: Any) -> TabularPreprocessor:
        """Rebuild from :meth:`to_json`, checking everything: the document may come from another user."""
        if not isinstance(document, Mapping) or document.get("format") != FORMAT:
            raise ValueError(f"not a Studio preprocessing document (format must be {FORMAT!r})")
        version = document.get("format_version")
        if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
            raise ValueError(f"unsupported preprocessing format_version {version!r}")
        strategy = document.get("missing_values")
        max_categories = document.get("max_categories", MAX_CATEGORIES)
        try:
            pre = cls(missing_values=strategy, max_categories=max_categories)
        except ValueError as exc:
            raise ValueError(f"invalid preprocessing document: {exc}") from None
        raw_columns = document.get("columns")
        if not isinstance(raw_columns, list) or not raw_columns:
            raise ValueError("invalid preprocessing document: columns must be a non-empty list")
        columns: list[Column] = []
        for i, raw in enumerate(raw_columns):
            columns.append(_column_from_json(raw, i, strategy))
        names = [c.name for c in columns]
        if len(set(names)) != len(names):
            raise ValueError("invalid preprocessing document: column names repeat")
        pre.columns = columns
        pre.fitted = True
        return pre

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / FILENAME
        path.write_text(json.dumps(self.to_json(), indent=2, ensure_ascii=False), encoding="utf-8")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> TabularPreprocessor:
        path = Path(directory) / FILENAME
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{FILENAME} is not valid JSON: {exc}") from None
        return cls.from_json(document)


def _column_from_json(raw: Any, i: int, strategy: str) -> Column:
    where = f"invalid preprocessing document: column {i + 1}"
    if not isinstance(raw, Mapping) or not isinstance(raw.get("name"), str) or not raw["name"]:
        raise ValueError(f"{where} needs a name")
    kind = raw.get("kind")
    if kind == "numeric":
        fill = raw.get("fill")
        if fill is None and strategy == "keep":
            return NumericColumn(name=raw["name"], fill=math.nan)
        if isinstance(fill, bool) or not isinstance(fill, int | float) or not math.isfinite(fill):
            raise ValueError(f"{where}: fill must be a finite number")
        return NumericColumn(name=raw["name"], fill=float(fill))
    if kind == "categorical":
        categories = raw.get("categories")
        if (not isinstance(categories, list) or not all(isinstance(c, str) and c for c in categories)
                or len(set(categories)) != len(categories)):
            raise ValueError(f"{where}: categories must be a list of distinct non-empty strings")
        other, missing = raw.get("other"), raw.get("missing")
        if not isinstance(other, bool) or not isinstance(missing, bool):
            raise ValueError(f"{where}: other and missing must be true or false")
        return CategoricalColumn(name=raw["name"], categories=categories, other=other, missing=missing)
    raise ValueError(f"{where}: kind must be numeric or categorical")


def _text_cell(cell: Any) -> str:
    if cell is None:
        return ""
    if isinstance(cell, bool):
        text = "true" if cell else "false"
    elif isinstance(cell, float) and cell.is_integer():
        text = str(int(cell))  # 3.0 from a JSON client is the category "3" of the CSV
    else:
        text = str(cell).strip()
    return "" if text.lower() in MISSING_TOKENS else text


def _number_cell(cell: Any) -> float | None:
    """A request cell as a float (NaN when missing), or None when it is not a number."""
    if cell is None:
        return math.nan
    if isinstance(cell, bool):
        return 1.0 if cell else 0.0
    if isinstance(cell, int | float | np.integer | np.floating):
        value = float(cell)
        return value if math.isfinite(value) else (math.nan if math.isnan(value) else None)
    if isinstance(cell, str):
        return feature_value(cell)
    return None


def _column_records(columns: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Columns back as ``{column: cell}`` records: only to word an error the way the per-record path does."""
    names = list(columns)
    cells = [_as_list(column) for column in columns.values()]
    return [dict(zip(names, row, strict=True)) for row in zip(*cells, strict=False)]


def _as_list(cells: Any) -> Sequence[Any]:
    """A column as Python values: an Arrow string array (a batch transform part read by Arrow) as its strings."""
    return cells.to_pylist() if hasattr(cells, "to_pylist") else cells


def _number_column(cells: Sequence[Any]) -> np.ndarray | None:
    """A column of cells as floats by the rules of :func:`_number_cell`; None when a cell is not a number.

    A column of strings is parsed by Arrow's C parser (:func:`_arrow_number_column`); only a column it
    cannot settle (a cell Arrow does not read, "inf", non-string cells) goes through ``_number_cell``
    cell by cell.
    """
    if hasattr(cells, "to_pylist"):  # already an Arrow string array: no Python string per cell
        import pyarrow.compute as pc

        if not pc.any(pc.match_substring(cells, "_")).as_py():
            values = _arrow_number_column(cells)
            if values is not None:
                return values
        cells = cells.to_pylist()
    else:
        try:
            joined = "".join(cells)  # a TypeError tells a column holding something other than strings
        except TypeError:
            joined = None
        if joined is not None and "_" not in joined:  # float() takes "1_000", feature_value refuses it
            values = _arrow_number_column(cells)
            if values is not None:
                return values
    parsed = [_number_cell(cell) for cell in cells]
    if any(value is None for value in parsed):
        return None
    return np.array(parsed, dtype=np.float64)


def _arrow_number_column(cells: Sequence[str]) -> np.ndarray | None:
    """A column of strings as :func:`feature_value` reads them, vectorised; None to leave it to the per-cell path.

    Arrow reads a subset of what float() reads (no surrounding whitespace, no "1_000", no non-ASCII
    digits), to the same double, so every cell it reads gives float()'s value. Missing tokens and
    true/false are matched after ASCII strip + lower-case: if that matches, str.strip().lower() does too.
    A non-finite value ("nan" outside the tokens, "inf") or a cell Arrow does not read returns None.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    strings = cells if isinstance(cells, pa.Array) else pa.array(cells, type=pa.string())
    try:
        values = pc.cast(strings, pa.float64()).to_numpy(zero_copy_only=False, writable=True)
    except pa.ArrowInvalid:
        values = None
    if values is not None and np.isfinite(values).all():
        return values
    trimmed = pc.ascii_trim_whitespace(strings)
    words = pc.ascii_lower(trimmed)
    missing = pc.is_in(words, value_set=pa.array(sorted(MISSING_TOKENS), type=pa.string()))
    true = pc.equal(words, "true")
    false = pc.equal(words, "false")
    special = pc.or_(missing, pc.or_(true, false))
    try:
        values = pc.cast(pc.if_else(special, "0", trimmed), pa.float64()).to_numpy(zero_copy_only=False, writable=True)
    except pa.ArrowInvalid:
        return None
    if not np.isfinite(values).all():
        return None
    values[missing.to_numpy(zero_copy_only=False)] = np.nan
    values[true.to_numpy(zero_copy_only=False)] = 1.0
    values[false.to_numpy(zero_copy_only=False)] = 0.0
    return values


def _text_column(cells: Sequence[Any]) -> np.ndarray:
    """A column of cells as the object array of :func:`_text_cell` values, one call per distinct cell."""
    try:
        "".join(cells)  # a TypeError tells a column holding something other than strings
    except TypeError:
        return np.array([_text_cell(cell) for cell in cells] or [], dtype=object)
    uniques, inverse = np.unique(np.array(cells, dtype=str), return_inverse=True)
    cleaned = np.array([_text_cell(value) for value in uniques.tolist()], dtype=object)
    return cleaned[inverse.reshape(-1)]
