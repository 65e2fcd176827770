"""Text datasets: CSV or JSONL files with a ``text`` column and an optional ``label`` column.

Accepted formats (API.md "Datasets"):

- CSV with a header row naming a ``text`` column and, optionally, a ``label`` column; other columns
  are kept in the file but ignored. Read with the tabular CSV reader, so encodings, delimiters and
  ragged rows get the same messages as tabular uploads.
- JSONL: one JSON object per line, ``{"text": "...", "label": "..."}``; a label may be a string,
  number or boolean and is read as its string form. Blank lines are skipped.

Every row must have a non-empty text; a missing label is allowed (the loader drops those rows when
training on labels). Files are read in one streaming pass: the profile keeps bounded counters only.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from studio.datasets.profiling import (
    MAX_RECORD_CHARS,
    CsvError,
    _first_line,
    is_missing,
    open_csv,
    ragged_message,
    sniff_delimiter,
)

TEXT_COLUMN = "text"
LABEL_COLUMN = "label"
LABEL_CAP = 1_000  # distinct labels counted; a text "label" with more is almost surely the wrong column
SAMPLE_ROWS = 20
SAMPLE_CHARS = 500
HISTOGRAM_BINS = 30


class TextError(ValueError):
    """The file is not a usable text dataset; the message says what is wrong and where."""


def text_format(filename: str) -> str:
    """``jsonl`` for .jsonl/.json/.ndjson files, else ``csv``."""
    return "jsonl" if Path(filename).suffix.lower() in (".jsonl", ".json", ".ndjson") else "csv"


def _label_str(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value).strip()
    raise TextError("a label must be a string, number or boolean")


@contextmanager
def open_text(source: Path | IO[bytes], *, fmt: str,
              delimiter: str = ",") -> Iterator[tuple[bool, Iterator[tuple[int, str, str | None]]]]:
    """Yield (has label column, iterator of (row number, text, label or None)).

    Row numbers are 1-based data rows for CSV and 1-based line numbers for JSONL, as people see them
    in an editor. Problems raise :class:`TextError` naming the row.
    """
    if fmt == "jsonl":
        binary = open(source, "rb") if isinstance(source, str | Path) else source  # noqa: SIM115 - closed below
        with binary, io.TextIOWrapper(binary, encoding="utf-8-sig", errors="strict") as fh:
            yield from _open_jsonl(fh)
        return
    try:
        with open_csv(source, delimiter=delimiter) as (names, records):
            if TEXT_COLUMN not in names:
                shown = ", ".join(names[:20]) + (f", … ({len(names)} in all)" if len(names) > 20 else "")
                raise TextError(f"the file has no '{TEXT_COLUMN}' column (columns: {shown}); a text dataset needs a "
                                f"'{TEXT_COLUMN}' column and, optionally, a '{LABEL_COLUMN}' column.")
            yield LABEL_COLUMN in names, _csv_rows(names, records)
    except CsvError as exc:
        raise TextError(str(exc)) from None


def _csv_rows(names: list[str], records) -> Iterator[tuple[int, str, str | None]]:
    ti = names.index(TEXT_COLUMN)
    li = names.index(LABEL_COLUMN) if LABEL_COLUMN in names else -1
    for row, line, fields in records:
        if len(fields) != len(names):
            raise TextError(ragged_message(row=row, line=line, fields=len(fields), columns=len(names)))
        label = None
        if li >= 0:
            label = None if is_missing(fields[li]) else fields[li].strip()
        yield row, fields[ti], label


def _open_jsonl(fh) -> Iterator[tuple[bool, Iterator[tuple[int, str, str | None]]]]:
    lines = _jsonl_records(fh)
    try:
        first = next(lines)
    except StopIteration:
        raise TextError("the file is empty: upload JSONL with one {\"text\": ..., \"label\": ...} object "
                        "per line.") from None
    line, record = first
    if TEXT_COLUMN not in record:
        keys = ", ".join(list(record)[:20]) or "none"
        raise TextError(f"line {line} has no '{TEXT_COLUMN}' field (fields: {keys}); every line needs a "
                        f"'{TEXT_COLUMN}' field and, optionally, a '{LABEL_COLUMN}' field.")
    has_label = LABEL_COLUMN in record

    def rows() -> Iterator[tuple[int, str, str | None]]:
        yield _jsonl_row(*first)
        for n, rec in lines:
            yield _jsonl_row(n, rec)

    yield has_label, rows()


def _jsonl_records(fh) -> Iterator[tuple[int, dict]]:
    n = 0
    while True:
        try:
            # Bounded: one hostile line must not be read (and parsed) whole, whatever the upload limit.
            raw = fh.readline(MAX_RECORD_CHARS + 1)
        except UnicodeDecodeError:
            raise TextError(f"the file is not UTF-8 text (undecodable bytes after line {n}); save it as "
                            "UTF-8 and upload it again.") from None
        if not raw:
            return
        n += 1
        if len(raw) > MAX_RECORD_CHARS:
            raise TextError(f"line {n} is longer than {MAX_RECORD_CHARS // (1024 * 1024)} million characters; lines "
                            "that long are not supported.")
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise TextError(f"line {n} is not valid JSON: {exc.msg} (column {exc.colno}).") from None
        if not isinstance(record, dict):
            raise TextError(f"line {n} is not a JSON object: each line must be {{\"text\": ..., \"label\": ...}}.")
        yield n, record


def _jsonl_row(n: int, record: dict) -> tuple[int, str, str | None]:
    if TEXT_COLUMN not in record:
        raise TextError(f"line {n} has no '{TEXT_COLUMN}' field.")
    text = record[TEXT_COLUMN]
    if not isinstance(text, str):
        raise TextError(f"line {n}: '{TEXT_COLUMN}' must be a string (got {type(text).__name__}).")
    try:
        label = _label_str(record.get(LABEL_COLUMN))
    except TextError as exc:
        raise TextError(f"line {n}: {exc}.") from None
    return n, text, (label or None)


@dataclass
class TextProfile:
    fmt: str
    delimiter: str
    rows: int
    has_label: bool
    missing_labels: int
    label_counts: dict[str, int]
    labels_capped: bool
    length: dict
    sample: list[list[str]]

    def as_profile(self) -> dict:
        return {"format": self.fmt, "delimiter": self.delimiter, "rows": self.rows, "has_label": self.has_label,
                "missing_labels": self.missing_labels, "label_counts": self.label_counts,
                "labels_capped": self.labels_capped, "length": self.length, "sample": self.sample}

    def as_columns(self) -> list[dict]:
        columns = [{"name": TEXT_COLUMN, "dtype": "string", "missing": 0}]
        if self.has_label:
            columns.append({"name": LABEL_COLUMN, "dtype": "string", "missing": self.missing_labels})
        return columns


def _length_histogram(lengths: Counter) -> dict:
    values = np.fromiter(lengths.keys(), dtype=np.float64, count=len(lengths))
    weights = np.fromiter(lengths.values(), dtype=np.float64, count=len(lengths))
    lo, hi = float(values.min()), float(values.max())
    if hi - lo < HISTOGRAM_BINS:
        # Few distinct lengths: one bar per word count reads better than fractional bins.
        counts, edges = np.histogram(values, bins=np.arange(lo - 0.5, hi + 1.5), weights=weights)
    else:
        counts, edges = np.histogram(values, bins=HISTOGRAM_BINS, range=(lo, hi), weights=weights)
    total = weights.sum()
    return {"unit": "words", "min": int(lo), "max": int(hi), "mean": float((values * weights).sum() / total),
            "edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}


def profile_text(path: Path, *, filename: str = "") -> TextProfile:
    """Validate and profile a text dataset in one pass; raise :class:`TextError` naming the first problem."""
    fmt = text_format(filename)
    delimiter = ","
    if fmt == "csv":
        try:
            delimiter = sniff_delimiter(_first_line(path), filename=filename)
        except CsvError as exc:
            raise TextError(str(exc)) from None
    elif not path.stat().st_size:
        raise TextError("the file is empty: upload JSONL with one {\"text\": ..., \"label\": ...} object per line.")
    labels: Counter = Counter()
    capped = False
    lengths: Counter = Counter()
    sample: list[list[str]] = []
    rows = missing = 0
    with open_text(path, fmt=fmt, delimiter=delimiter) as (has_label, records):
        for row, text, label in records:
            if not text.strip():
                raise TextError(f"{'line' if fmt == 'jsonl' else 'row'} {row} has an empty '{TEXT_COLUMN}'; "
                                "every row needs some text.")
            rows += 1
            lengths[len(text.split())] += 1
            if label is None:
                missing += 1
            elif label in labels or len(labels) < LABEL_CAP:
                labels[label] += 1
            else:
                capped = True
            if len(sample) < SAMPLE_ROWS:
                sample.append([text[:SAMPLE_CHARS], label or ""])
    if not rows:
        raise TextError("the file has no rows: add at least one row of text.")
    return TextProfile(fmt=fmt, delimiter=delimiter, rows=rows, has_label=has_label, missing_labels=missing,
                       label_counts=dict(labels.most_common()), labels_capped=capped,
                       length=_length_histogram(lengths), sample=sample)


def read_text_preview(source: Path | IO[bytes], *, fmt: str, delimiter: str, rows: int) -> dict:
    """``{"columns": ["text", "label"], "rows": [[text, label], ...]}`` for the first ``rows`` rows."""
    out: list[list[str]] = []
    with open_text(source, fmt=fmt, delimiter=delimiter) as (_, records):
        if rows > 0:
            for _, text, label in records:
                out.append([text, label or ""])
                if len(out) >= rows:
                    break
    return {"columns": [TEXT_COLUMN, LABEL_COLUMN], "rows": out}
