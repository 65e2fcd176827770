"""The tabular operations of processing steps, on pyarrow tables whose every column is text.

Cells are read as the text in the file and written back untouched unless the operation computes them,
so numbers that only pass through keep their exact digits. Computed numbers are written as the
shortest text that reads back as the same float64. "Missing" means what it means to dataset profiling
(an empty cell, NA, null, none, nan... in any case), so a processed dataset profiles as expected.
Nothing here knows Django: a problem is an :class:`OperationError` whose message names the column.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from studio.datasets.profiling import MISSING_TOKENS, CsvError, open_csv

SPLIT_PARTS = ("train", "validation", "test")
NORMALIZE_METHODS = ("standard", "minmax")
IMPUTE_STRATEGIES = ("mean", "median", "most_frequent", "constant")
FILTER_OPS = ("==", "!=", ">", ">=", "<", "<=", "is_null", "not_null", "in")
JOIN_HOWS = ("inner", "left", "right", "outer")
# One-hot makes a column per distinct value: past this many, the column is an id or free text, not a category.
MAX_ONE_HOT_VALUES = 1000
MAX_LISTED_COLUMNS = 30

# What parse_number (profiling) reads as a number, minus "inf"/"nan" words, as one regex pyarrow can run.
_NUMBER_RE = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
_MISSING = pa.array(sorted(MISSING_TOKENS), pa.string())
_JOIN_TYPES = {"inner": "inner", "left": "left outer", "right": "right outer", "outer": "full outer"}
_LEFT_ROW, _RIGHT_ROW = "__studio_left_row", "__studio_right_row"


class OperationError(ValueError):
    """The operation cannot run on this table; the message names the column or setting at fault."""


# --- reading and writing ----------------------------------------------------------------------------


def read_table(path: Path, *, delimiter: str = ",") -> pa.Table:
    """A stored CSV as a table of text columns named as profiling names them (header cells stripped)."""
    try:
        with open_csv(path, delimiter=delimiter) as (names, _records):
            pass
    except CsvError as exc:
        raise OperationError(f"the file could not be read: {exc}") from None
    try:
        return pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(column_types={name: pa.string() for name in names},
                                                 strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise OperationError(f"the file could not be read: {exc}") from None


def write_table(table: pa.Table, path: Path) -> None:
    """Write ``table`` as a comma-separated CSV with a header row.

    Unquoted when no cell needs quotes (the common case, and what people expect to read); otherwise every
    text cell is quoted.
    """
    table = pa.table({name: pc.fill_null(column.cast(pa.string()), "") for name, column in
                      zip(table.column_names, table.columns, strict=True)})
    try:
        pacsv.write_csv(table, path, write_options=pacsv.WriteOptions(quoting_style="none"))
        return
    except pa.ArrowInvalid:
        pass  # a cell holds a comma, quote or newline
    pacsv.write_csv(table, path, write_options=pacsv.WriteOptions(quoting_style="needed"))


# --- cells ------------------------------------------------------------------------------------------


def columns_phrase(names: Sequence[str]) -> str:
    shown = ", ".join(names[:MAX_LISTED_COLUMNS])
    return shown + (f", … ({len(names)} in all)" if len(names) > MAX_LISTED_COLUMNS else "")


def require_columns(table: pa.Table, names: Sequence[str], *, argument: str = "columns") -> None:
    unknown = [name for name in names if name not in table.column_names]
    if unknown:
        listed = ", ".join(f"'{name}'" for name in unknown)
        noun = "no column" if len(unknown) == 1 else "no columns"
        raise OperationError(f"{argument}: {noun} {listed}; the columns are {columns_phrase(table.column_names)}.")


def _stripped(column: pa.ChunkedArray) -> pa.ChunkedArray:
    return pc.utf8_trim_whitespace(column)


def _missing(column: pa.ChunkedArray) -> np.ndarray:
    """A boolean mask of the missing cells (the profiling rule: stripped, lower-cased, in MISSING_TOKENS)."""
    mask = pc.is_in(pc.utf8_lower(_stripped(column)), value_set=_MISSING)
    return np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)


def _numeric_mask(column: pa.ChunkedArray) -> np.ndarray:
    return np.asarray(pc.match_substring_regex(_stripped(column), _NUMBER_RE).to_numpy(zero_copy_only=False),
                      dtype=bool)


def _to_float(column: pa.ChunkedArray, usable: np.ndarray) -> np.ndarray:
    """The cells where ``usable`` as float64, NaN elsewhere."""
    text = pc.if_else(pa.array(usable), _stripped(column), pa.scalar(None, pa.string()))
    values = np.array(pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    values[~usable] = np.nan
    return values


def numbers(table: pa.Table, name: str) -> np.ndarray:
    """A column as float64, NaN for missing cells; OperationError when a present cell is not a number."""
    require_columns(table, [name], argument="column")
    column = table.column(name)
    missing = _missing(column)
    numeric = _numeric_mask(column)
    bad = ~missing & ~numeric
    values = _to_float(column, numeric & ~missing)
    bad |= ~missing & ~np.isfinite(values)
    if bad.any():
        rows = np.flatnonzero(bad)
        example = column[int(rows[0])].as_py()
        raise OperationError(f"column '{name}' is not numeric: row {rows[0] + 1} holds {example!r}"
                             + (f" ({len(rows)} such rows)" if len(rows) > 1 else "") + ".")
    return values


def number_text(value: float) -> str:
    """A number as a cell: whole numbers without a fraction, others as the shortest round-trip text."""
    if math.isfinite(value) and float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _number_texts(values: np.ndarray) -> pa.Array:
    """Shortest round-trip text of each float64 (pyarrow formats like repr), "" for NaN."""
    nan = np.isnan(values)
    return pc.fill_null(pc.cast(pa.array(values, mask=nan), pa.string()), "")


def _value_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return number_text(float(value))
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _replace(table: pa.Table, name: str, values: pa.Array | pa.ChunkedArray) -> pa.Table:
    return table.set_column(table.column_names.index(name), name, values)


# --- split --------------------------------------------------------------------------------------------


def _allocate(size: int, fractions: list[float], carry: np.ndarray) -> list[int]:
    """How many of ``size`` rows each part gets: floors of the shares, leftovers to the largest remainders.

    ``carry`` holds each part's fractional remainder from earlier groups, so many small groups (a
    stratified split) still add up to the asked fractions overall.
    """
    wanted = size * np.asarray(fractions) + carry
    counts = np.floor(wanted).astype(int)
    counts = np.minimum(counts, size)
    while counts.sum() > size:
        counts[int(np.argmax(counts))] -= 1
    left = size - int(counts.sum())
    remainder = wanted - counts
    for index in np.argsort(-remainder, kind="stable")[:left]:
        counts[index] += 1
    carry[:] = wanted - counts
    return counts.tolist()


def split(table: pa.Table, *, fractions: dict[str, float], seed: int = 0,
          stratify: str | None = None) -> dict[str, pa.Table]:
    """Random disjoint parts whose union is the table, each in the file's row order.

    Rows are shuffled with ``seed`` (the same seed gives the same parts); with ``stratify`` each value of
    that column is split on its own, so every part keeps the column's class ratios.
    """
    parts = [part for part in SPLIT_PARTS if (fractions.get(part) or 0) > 0]
    shares = [float(fractions[part]) for part in parts]
    n = table.num_rows
    rng = np.random.default_rng(int(seed))
    if stratify:
        require_columns(table, [stratify], argument="stratify")
        column = table.column(stratify)
        keys = pc.if_else(pa.array(_missing(column)), "", _stripped(column))
        codes = np.asarray(pc.dictionary_encode(keys).combine_chunks().indices.to_numpy(zero_copy_only=False))
        order = np.argsort(codes, kind="stable")
        groups = np.split(order, np.flatnonzero(np.diff(codes[order])) + 1) if n else []
    else:
        groups = [np.arange(n)]
    chosen: dict[str, list[np.ndarray]] = {part: [] for part in parts}
    carry = np.zeros(len(parts))
    for group in groups:
        shuffled = rng.permutation(group)
        start = 0
        for part, count in zip(parts, _allocate(len(group), shares, carry), strict=True):
            chosen[part].append(shuffled[start:start + count])
            start += count
    out = {}
    for part in parts:
        rows = np.sort(np.concatenate(chosen[part])) if chosen[part] else np.empty(0, dtype=np.int64)
        if rows.size == 0:
            raise OperationError(f"the {part} part would be empty: {n} row(s) are too few for fractions "
                                 + ", ".join(f"{p} {f:g}" for p, f in zip(parts, shares, strict=True)) + ".")
        out[part] = table.take(pa.array(rows, pa.int64()))
    return out


# --- normalize, impute, one-hot --------------------------------------------------------------------------


def normalize(table: pa.Table, *, columns: Sequence[str], method: str = "standard") -> tuple[pa.Table, dict]:
    """Scale numeric columns: ``standard`` to mean 0 and (population) std 1, ``minmax`` to [0, 1].

    Missing cells stay missing. A constant column becomes 0, as there is no spread to scale by. Returns the
    table and each column's statistics (to scale new data the same way).
    """
    if method not in NORMALIZE_METHODS:
        raise OperationError(f"method must be one of {', '.join(NORMALIZE_METHODS)} (got {method!r}).")
    require_columns(table, columns)
    stats: dict[str, dict[str, float]] = {}
    for name in columns:
        values = numbers(table, name)
        present = values[~np.isnan(values)]
        if present.size == 0:
            raise OperationError(f"column '{name}' has no values to {method}-normalize: every cell is missing.")
        if method == "standard":
            center, scale = float(present.mean()), float(present.std())
            stats[name] = {"mean": center, "std": scale}
        else:
            center, high = float(present.min()), float(present.max())
            scale = high - center
            stats[name] = {"min": center, "max": high}
        scaled = (values - center) / scale if scale > 0 else np.where(np.isnan(values), np.nan, 0.0)
        table = _replace(table, name, _number_texts(scaled))
    return table, stats


def columns_with_missing(table: pa.Table, *, numeric_only: bool = False) -> list[str]:
    """Columns with a missing cell (and, with ``numeric_only``, every other cell a number)."""
    out = []
    for name in table.column_names:
        missing = _missing(table.column(name))
        if missing.any() and not (numeric_only and not (missing | _numeric_mask(table.column(name))).all()):
            out.append(name)
    return out


def _most_frequent(column: pa.ChunkedArray, missing: np.ndarray) -> str | None:
    present = pc.filter(_stripped(column), pa.array(~missing))
    if len(present) == 0:
        return None
    counts = pc.value_counts(present).to_pylist()
    # Ties go to the smallest value, so the same data always gets the same fill.
    best = min(counts, key=lambda item: (-item["counts"], item["values"]))
    return best["values"]


def impute(table: pa.Table, *, columns: Sequence[str], strategy: str | None = None,
           value: Any = None) -> tuple[pa.Table, dict[str, str]]:
    """Fill the missing cells of ``columns``; present cells keep their text.

    ``strategy`` mean/median need numeric columns; most_frequent takes the commonest (stripped) text;
    constant writes ``value``. Without a strategy, numeric columns get their mean and others their most
    frequent value. Returns the table and the text each column was filled with.
    """
    if strategy is not None and strategy not in IMPUTE_STRATEGIES:
        raise OperationError(f"strategy must be one of {', '.join(IMPUTE_STRATEGIES)} (got {strategy!r}).")
    if strategy == "constant" and (value is None or isinstance(value, list | dict)):
        raise OperationError("value: the constant strategy needs a value (a number, a string or true/false).")
    require_columns(table, columns)
    fills: dict[str, str] = {}
    for name in columns:
        column = table.column(name)
        missing = _missing(column)
        if not missing.any():
            continue
        how = strategy
        if how is None:
            how = "mean" if bool((_numeric_mask(column) | missing).all()) and not missing.all() else "most_frequent"
        if how == "constant":
            fill = _value_text(value)
        elif how == "most_frequent":
            fill = _most_frequent(column, missing)
        else:
            values = numbers(table, name)
            present = values[~np.isnan(values)]
            fill = None if present.size == 0 else number_text(
                float(present.mean()) if how == "mean" else float(np.median(present)))
        if fill is None:
            raise OperationError(f"column '{name}' has no values to take the {how} of: every cell is missing; "
                                 "use the constant strategy.")
        fills[name] = fill
        table = _replace(table, name, pc.if_else(pa.array(missing), fill, column))
    return table, fills


def _sorted_values(values: list[str]) -> list[str]:
    """Numbers in numeric order when every value is one, else text order."""
    try:
        return sorted(values, key=float)
    except ValueError:
        return sorted(values)


def one_hot(table: pa.Table, *, columns: Sequence[str], drop_original: bool = True) -> tuple[pa.Table, dict]:
    """A 1/0 column ``<column>_<value>`` per distinct value (a missing cell is 0 in all of them).

    The new columns take the original's place (or follow it when it is kept). Returns the table and the
    new column names of each encoded column.
    """
    require_columns(table, columns)
    if len(set(columns)) != len(columns):
        raise OperationError("columns: a column is listed twice.")
    encoded: dict[str, list[str]] = {}
    taken = set(table.column_names)
    new: dict[str, list[tuple[str, pa.Array]]] = {}
    for name in columns:
        column = table.column(name)
        missing = _missing(column)
        stripped = _stripped(column)
        values = pc.unique(pc.filter(stripped, pa.array(~missing))).to_pylist()
        if len(values) > MAX_ONE_HOT_VALUES:
            raise OperationError(f"column '{name}' has {len(values)} distinct values; one-hot encoding makes a "
                                 f"column per value, at most {MAX_ONE_HOT_VALUES}.")
        made = []
        for value in _sorted_values(values):
            new_name = f"{name}_{value}"
            suffix = 2
            while new_name in taken:
                new_name = f"{name}_{value}_{suffix}"
                suffix += 1
            taken.add(new_name)
            flags = pc.if_else(pc.and_(pc.equal(stripped, value), pa.array(~missing)), "1", "0")
            made.append((new_name, flags))
        new[name] = made
        encoded[name] = [n for n, _ in made]
    names, arrays = [], []
    for name, column in zip(table.column_names, table.columns, strict=True):
        if name not in new or not drop_original:
            names.append(name)
            arrays.append(column)
        for new_name, flags in new.get(name, []):
            names.append(new_name)
            arrays.append(flags)
    if not names:
        raise OperationError("no column would be left.")
    return pa.table(dict(zip(names, arrays, strict=True))), encoded


# --- filter, select, join -------------------------------------------------------------------------------


_COMPARE = {"==": pc.equal, "!=": pc.not_equal, ">": pc.greater, ">=": pc.greater_equal, "<": pc.less,
            "<=": pc.less_equal}


def _compare_numbers(values: np.ndarray, op: str, right: float) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        result = {"==": values == right, "!=": values != right, ">": values > right, ">=": values >= right,
                  "<": values < right, "<=": values <= right}[op]
    return result


def filter_rows(table: pa.Table, *, column: str, op: str, value: Any = None) -> pa.Table:
    """The rows whose ``column`` satisfies ``op value``, in file order.

    A number compares numerically (the column must be numeric), a string compares the stripped text,
    true/false matches "true"/"false" in any case. Missing cells match only is_null, and != (they are not
    equal to anything). ``in`` takes a list of numbers and/or strings.
    """
    if op not in FILTER_OPS:
        raise OperationError(f"op must be one of {', '.join(FILTER_OPS)} (got {op!r}).")
    require_columns(table, [column], argument="column")
    cells = table.column(column)
    missing = _missing(cells)
    if op == "is_null":
        keep = missing
    elif op == "not_null":
        keep = ~missing
    elif op == "in":
        if not isinstance(value, list):
            raise OperationError(f"value: 'in' takes a list of values (got {value!r}).")
        keep = np.zeros(table.num_rows, dtype=bool)
        texts = [v.strip() for v in value if isinstance(v, str)]
        flags = [v for v in value if isinstance(v, bool)]
        wanted = [float(v) for v in value if _is_number(v)]
        if len(texts) + len(flags) + len(wanted) != len(value):
            raise OperationError("value: 'in' takes numbers, strings and true/false only.")
        if texts:
            keep |= np.asarray(pc.is_in(_stripped(cells), value_set=pa.array(texts, pa.string()))
                               .to_numpy(zero_copy_only=False), dtype=bool)
        if flags:
            lowered = pc.utf8_lower(_stripped(cells))
            keep |= np.asarray(pc.is_in(lowered, value_set=pa.array([_value_text(f) for f in flags]))
                               .to_numpy(zero_copy_only=False), dtype=bool)
        if wanted:
            usable = _numeric_mask(cells) & ~missing
            keep |= np.isin(_to_float(cells, usable), np.asarray(wanted)) & usable
        keep &= ~missing
    elif _is_number(value):
        keep = _compare_numbers(numbers(table, column), op, float(value))
        keep = np.where(missing, op == "!=", keep)
    elif isinstance(value, bool):
        if op not in ("==", "!="):
            raise OperationError(f"value: true/false can only be compared with == or != (got {op}).")
        equal = np.asarray(pc.equal(pc.utf8_lower(_stripped(cells)), _value_text(value))
                           .to_numpy(zero_copy_only=False), dtype=bool)
        keep = np.where(missing, op == "!=", equal if op == "==" else ~equal)
    elif isinstance(value, str):
        result = np.asarray(_COMPARE[op](_stripped(cells), value.strip()).to_numpy(zero_copy_only=False), dtype=bool)
        keep = np.where(missing, op == "!=", result)
    else:
        raise OperationError(f"value: {op} compares with a number, a string or true/false (got {value!r}).")
    return table.filter(pa.array(np.asarray(keep, dtype=bool)))


def select_columns(table: pa.Table, *, columns: Sequence[str] | None = None,
                   drop: Sequence[str] | None = None) -> pa.Table:
    """Keep ``columns`` (in that order) or every column but ``drop``."""
    if columns:
        require_columns(table, columns)
        if len(set(columns)) != len(columns):
            raise OperationError("columns: a column is listed twice.")
        return table.select(list(columns))
    require_columns(table, drop or [], argument="drop")
    kept = [name for name in table.column_names if name not in set(drop or [])]
    if not kept:
        raise OperationError("drop: no column would be left.")
    return table.select(kept)


def _join_keys(table: pa.Table, on: Sequence[str]) -> pa.Table:
    """Key cells stripped, and missing ones null so that they match nothing (as in SQL)."""
    for name in on:
        column = table.column(name)
        table = _replace(table, name, pc.if_else(pa.array(_missing(column)), pa.scalar(None, pa.string()),
                                                 _stripped(column)))
    return table


def join(left: pa.Table, right: pa.Table, *, on: Sequence[str], how: str = "inner") -> pa.Table:
    """Rows of ``left`` and ``right`` whose ``on`` cells are equal (stripped text), SQL style.

    The output has the left columns then the right ones (keys once); a right column whose name the left
    also has gets the suffix ``_right``. Rows come in the left table's order (each left row's matches in
    the right table's order), then unmatched right rows (right and outer joins).
    """
    if how not in JOIN_HOWS:
        raise OperationError(f"how must be one of {', '.join(JOIN_HOWS)} (got {how!r}).")
    if not on or len(set(on)) != len(on):
        raise OperationError("on: name the key column(s) once each.")
    require_columns(left, on, argument="on")
    try:
        require_columns(right, on, argument="on")
    except OperationError as exc:
        raise OperationError(f"{exc} (in the right dataset)") from None
    taken = set(left.column_names)
    renames = {}
    for name in right.column_names:
        if name in on or name not in taken:
            continue
        new_name = f"{name}_right"
        suffix = 2
        while new_name in taken or new_name in right.column_names:
            new_name = f"{name}_right{suffix}"
            suffix += 1
        renames[name] = new_name
        taken.add(new_name)
    right = right.rename_columns([renames.get(name, name) for name in right.column_names])
    left_keyed = _join_keys(left, on).append_column(_LEFT_ROW, pa.array(np.arange(left.num_rows), pa.int64()))
    right_keyed = _join_keys(right, on).append_column(_RIGHT_ROW, pa.array(np.arange(right.num_rows), pa.int64()))
    joined = left_keyed.join(right_keyed, keys=list(on), join_type=_JOIN_TYPES[how], coalesce_keys=True)
    # Unmatched right rows (no left row number) go last; nulls are filled rather than placed, which every
    # supported pyarrow does the same way.
    keys = pa.table({"left": pc.fill_null(joined.column(_LEFT_ROW), left.num_rows),
                     "right": pc.fill_null(joined.column(_RIGHT_ROW), -1)})
    joined = joined.take(pc.sort_indices(keys, sort_keys=[("left", "ascending"), ("right", "ascending")]))
    names = [*left.column_names, *(name for name in right.column_names if name not in on)]
    return joined.select(names)


def value_list(value: Any) -> list[str]:
    """A column argument given as one name or a list of names, as a list."""
    if isinstance(value, str):
        return [value]
    return list(value or [])
