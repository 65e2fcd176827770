"""The column side of batch transform: input/output filters, predictions flattened into columns, and output CSV
written fast and exactly as csv would write it (the per-record and the columnar paths give the same bytes)."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any


class FilterError(ValueError):
    """A filter that does not parse, or that names a column the row does not have."""


_INDEX_FILTER = re.compile(r"^\$\[(.*)\]$", re.DOTALL)
_INT = re.compile(r"^-?\d+$")


@dataclass(frozen=True)
class ColumnFilter:
    """A parsed filter: ``items`` are ints (positions), ``(start, stop)`` slices or names."""

    text: str
    items: tuple[int | str | tuple[int | None, int | None], ...]

    def resolve(self, names: Sequence[str], *, field: str) -> list[int]:
        """The positions in ``names`` that the filter selects, in filter order; FilterError naming ``field``."""
        width = len(names)
        out: list[int] = []
        for item in self.items:
            if isinstance(item, tuple):
                out.extend(range(width)[slice(*item)])
            elif isinstance(item, int):
                position = item + width if item < 0 else item
                if not 0 <= position < width:
                    raise FilterError(f"{field} '{self.text}': position {item} is outside the {width} column(s) "
                                      f"({', '.join(names)}).")
                out.append(position)
            else:
                try:
                    out.append(list(names).index(item))
                except ValueError:
                    raise FilterError(f"{field} '{self.text}': no column '{item}'; columns are "
                                      f"{', '.join(names)}.") from None
        if not out:
            raise FilterError(f"{field} '{self.text}' selects no column of {', '.join(names)}.")
        return out


def parse_filter(text: str | None, *, field: str) -> ColumnFilter | None:
    """Parse a filter (syntax in the module docstring).

    Parameters
    ----------
    text : str or None
        The filter as the user wrote it.
    field : str
        ``input_filter`` or ``output_filter``, named in error messages.

    Returns
    -------
    ColumnFilter or None
        None when the filter keeps every column.

    Raises
    ------
    FilterError
        The text is not a filter.
    """
    text = (text or "").strip()
    if text in ("", "$", "$[*]"):
        return None
    match = _INDEX_FILTER.match(text)
    if not match:
        if text.startswith("$"):
            raise FilterError(f"{field} '{text}': write positions as $[0,2] or $[1:], or list column names.")
        names = [part.strip() for part in text.split(",")]
        if any(not name for name in names):
            raise FilterError(f"{field} '{text}': an empty column name; list names separated by commas.")
        return ColumnFilter(text=text, items=tuple(names))
    items: list[int | str | tuple[int | None, int | None]] = []
    for raw in match.group(1).split(","):
        part = raw.strip()
        if ":" in part:
            bounds = [b.strip() for b in part.split(":")]
            if len(bounds) != 2 or any(b and not _INT.match(b) for b in bounds):
                raise FilterError(f"{field} '{text}': '{part}' is not a slice such as 1:3, 2: or :4.")
            items.append((int(bounds[0]) if bounds[0] else None, int(bounds[1]) if bounds[1] else None))
        elif _INT.match(part):
            items.append(int(part))
        else:
            raise FilterError(f"{field} '{text}': '{part}' is not a column position (0, 1, -1...) or a slice.")
    return ColumnFilter(text=text, items=tuple(items))


def select(positions: list[int] | None, row: Sequence[Any]) -> list[Any]:
    """The cells of ``row`` at ``positions`` (every cell when None)."""
    return list(row) if positions is None else [row[i] for i in positions]


# --- splitting the input into parts ---------------------------------------------------------------



PREDICTED_PREFIX = "predicted_"


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return value
    return json.dumps(value, separators=(",", ":"))


def flatten_prediction(prediction: Any) -> dict[str, Any]:
    """One prediction (API.md per-record shape) as flat columns.

    ``{label, probabilities: {c: p}}`` -> ``label, p_<c>...``; ``{projection: [..]}`` -> ``projection_0...``;
    scalars stay as they are; anything nested deeper (neighbors, boxes) becomes a JSON cell.
    """
    if not isinstance(prediction, dict):
        return {"prediction": _cell(prediction)}
    out: dict[str, Any] = {}
    for key, value in prediction.items():
        if isinstance(value, dict) and all(not isinstance(v, dict | list) for v in value.values()):
            prefix = "p_" if key == "probabilities" else f"{key}_"
            for sub, inner in value.items():
                out[f"{prefix}{sub}"] = _cell(inner)
        elif isinstance(value, list) and value and all(isinstance(v, int | float) for v in value):
            prefix = "p_" if key == "probabilities" else f"{key}_"
            for i, inner in enumerate(value):
                out[f"{prefix}{i}"] = _cell(inner)
        else:
            out[key] = _cell(value)
    return out


def _cell_column(values: Any) -> list[Any] | None:
    """A 1-d array of one answer field as the cells :func:`_cell` makes of its values; None if not plain values."""
    import numpy as np

    values = np.asarray(values)
    if values.ndim != 1:
        return None
    if values.dtype.kind == "b":
        return np.where(values, "true", "false").tolist()
    if values.dtype.kind in "iufU":
        return values.tolist()  # Python numbers and strings, which _cell keeps as they are
    return None


def flatten_columns(answer: dict[str, Any]) -> dict[str, list[Any]] | None:
    """Answers by column (:meth:`Predictor.predict_columns`) as the flat columns :func:`flatten_prediction` makes.

    ``{label, probabilities: {c: array}}`` -> ``label, p_<c>...``; a 2-d ``projection`` -> ``projection_0...``.
    None when a field is not a column of plain values (the per-record path then decides what it becomes).
    """
    import numpy as np

    out: dict[str, list[Any]] = {}
    for key, value in answer.items():
        prefix = "p_" if key == "probabilities" else f"{key}_"
        if isinstance(value, dict):
            for sub, inner in value.items():
                cells = _cell_column(inner)
                if cells is None:
                    return None
                out[f"{prefix}{sub}"] = cells
            continue
        value = np.asarray(value)
        if value.ndim == 2:
            if not value.shape[1] or value.dtype.kind not in "iuf":
                return None  # an empty list is a JSON cell per record, not columns
            for i in range(value.shape[1]):
                out[f"{prefix}{i}"] = value[:, i].tolist()
            continue
        cells = _cell_column(value)
        if cells is None:
            return None
        out[key] = cells
    return out


@dataclass
class PartOutput:
    columns: list[str]
    rows: int


def write_output_rows(out: IO[str], *, input_columns: list[str], input_rows: list[list[str]],
                      predictions: list[Any], join: bool, output_filter: ColumnFilter | None) -> PartOutput:
    """Write one CSV row per record (no header) and return the columns written.

    Prediction columns whose names clash with joined input columns get the ``predicted_`` prefix.
    """
    flat = [flatten_prediction(p) for p in predictions]
    prediction_names: dict[str, None] = {}
    for record in flat:
        prediction_names.update(dict.fromkeys(record))
    taken = set(input_columns) if join else set()
    renamed = [f"{PREDICTED_PREFIX}{name}" if name in taken else name for name in prediction_names]
    columns = [*(input_columns if join else []), *renamed]
    positions = output_filter.resolve(columns, field="output_filter") if output_filter else None
    writer = csv.writer(out, lineterminator="\n")
    keys = list(prediction_names)
    for row, record in zip(input_rows, flat, strict=True):
        values = [record.get(key, "") for key in keys]
        full = [*row, *values] if join else values
        writer.writerow(select(positions, full))
    return PartOutput(columns=select(positions, columns), rows=len(flat))


def write_output_columns(out: IO[str], *, input_columns: list[str], input_cells: Sequence[Sequence[str]],
                         predicted: dict[str, list[Any]], join: bool, output_filter: ColumnFilter | None) -> PartOutput:
    """:func:`write_output_rows` for inputs and predictions given column by column: the same bytes out.

    ``input_cells`` holds one sequence per input column; ``predicted`` the flat prediction columns
    (:func:`flatten_columns`), every record having every one of them.
    """
    taken = set(input_columns) if join else set()
    renamed = [f"{PREDICTED_PREFIX}{name}" if name in taken else name for name in predicted]
    columns = [*(input_columns if join else []), *renamed]
    positions = output_filter.resolve(columns, field="output_filter") if output_filter else None
    cells = select(positions, [*(input_cells if join else []), *predicted.values()])
    rows = len(next(iter(predicted.values()))) if predicted else 0
    texts = [_csv_column(column) for column in cells] if cells else [None]
    if any(text is None for text in texts):
        # csv.writer turns each cell into text (floats by repr) and quotes exactly as for one row at a time.
        csv.writer(out, lineterminator="\n").writerows(zip(*cells, strict=True))
    elif texts[0]:
        if len(texts) == 1:  # csv.writer quotes a row's only cell when it is empty, so the line is not blank
            texts = [[text or '""' for text in texts[0]]]
        out.write("\n".join(map(",".join, zip(*texts, strict=True))))
        out.write("\n")
    return PartOutput(columns=select(positions, columns), rows=rows)


def _quoted_chars() -> frozenset[str]:
    """The characters that make csv.writer (``lineterminator="\\n"``) quote a cell, asked of this Python's csv."""
    quoted = set()
    for char in ',"\r\n\x00\t ;\\\'':
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerow([f"a{char}b", ""])
        if out.getvalue() != f"a{char}b,\n":
            quoted.add(char)
    return frozenset(quoted)


_QUOTED_CHARS = _quoted_chars()
_QUOTED_SEARCH = re.compile(f"[{re.escape(''.join(sorted(_QUOTED_CHARS)))}]").search
_PLAIN_TYPES = {str: None, float: float.__repr__, int: int.__repr__, bool: str}


def _float_texts(cells: Sequence[float]) -> list[str]:
    """``repr`` of each float, about four times faster: orjson writes the same shortest round-trip digits, and
    the same text wherever repr writes no exponent (zero and 1e-4 <= |x| < 1e16); the rest go through repr."""
    import numpy as np
    import orjson

    texts = orjson.dumps(list(cells)).decode()[1:-1].split(",") if len(cells) else []
    values = np.asarray(cells, dtype=np.float64)
    magnitude = np.abs(values)
    positional = ((magnitude >= 1e-4) & (magnitude < 1e16)) | (values == 0)
    for i in np.flatnonzero(~positional).tolist():
        texts[i] = repr(cells[i])
    return texts


def _csv_column(cells: Sequence[Any]) -> list[str] | None:
    """A column's cells as csv.writer writes them in a row of two or more cells (None when a cell is of a type
    whose text this does not mirror, so csv.writer writes the part)."""
    kinds = set(map(type, cells))
    if kinds == {str}:
        texts = cells if isinstance(cells, list) else list(cells)
    elif kinds == {float}:
        return _float_texts(cells)  # numbers and booleans never need quoting
    elif len(kinds) == 1 and (kind := next(iter(kinds))) in _PLAIN_TYPES:
        return list(map(_PLAIN_TYPES[kind], cells))
    elif kinds <= {*_PLAIN_TYPES, type(None)}:
        texts = ["" if cell is None else cell if type(cell) is str else _PLAIN_TYPES[type(cell)](cell)
                 for cell in cells]
    else:
        return None
    # One scan of the whole column decides; only a column holding a delimiter, quote or newline pays per cell.
    whole = "".join(texts)
    if not any(char in whole for char in _QUOTED_CHARS):
        return texts
    quoted = _QUOTED_SEARCH
    return [f'"{text.replace(chr(34), chr(34) * 2)}"' if quoted(text) else text for text in texts]


# --- the model, loaded once per worker process ------------------------------------------------------

