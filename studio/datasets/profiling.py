"""Reading and profiling tabular CSV files in one streaming pass.

Files can be up to the upload limit (1 GB by default), so nothing here holds the whole file: the
profile keeps O(columns) running statistics, a bounded value-count table per column and a bounded
reservoir sample per numeric column from which the histograms are drawn.

The loader (loading.py) and the preview read files through :func:`csv_records` too, so the three agree
on what a row, a missing value and a number are.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TextIO

import numpy as np

# Cells that mean "no value". Compared after strip() and lower().
MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none"})
BOOL_TOKENS = {"true": 1.0, "false": 0.0}
INT_RE = re.compile(r"[+-]?\d+\Z")

RESERVOIR_SIZE = 10_000  # values kept per numeric column for its histogram
CHUNK_ROWS = 4_096  # rows buffered and then profiled column by column
CHUNK_CELLS = 500_000  # ...fewer when rows are wide: the buffer holds a bounded number of cells, not rows
# The longest record (row) read, in characters: the csv module builds a whole record before returning it, so a
# hostile row of millions of fields would otherwise sit in memory at once, whatever the upload limit.
MAX_RECORD_CHARS = 4 * 1024 * 1024
HISTOGRAM_BINS = 30
DISTINCT_CAP = 1_000  # distinct values counted per column; beyond it the count is a lower bound
TOP_VALUES = 20
VALUE_MAX_CHARS = 200  # long cells are counted under their first 200 characters
MAX_COLUMNS = 10_000
# What the profile keeps over all columns together: a wide file gets smaller per-column value tables and samples,
# so 10,000 columns cost about what 200 do (instead of gigabytes of distinct strings and reservoirs).
PROFILE_DISTINCT_BUDGET = 200_000
PROFILE_SAMPLE_BUDGET = 4_000_000
DELIMITERS = (",", ";", "\t", "|")

# Magic numbers of files people upload by mistake, so the error can say what the file is.
_BINARY_SIGNATURES = (
    (b"PK\x03\x04", "a ZIP archive (or an Excel .xlsx workbook)"),
    (b"PAR1", "a Parquet file"),
    (b"\x1f\x8b", "a gzip-compressed file"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"\x93NUMPY", "a NumPy array file"),
    (b"\xd0\xcf\x11\xe0", "an old-style Excel .xls workbook"),
    (b"SQLite format 3", "an SQLite database"),
)


class CsvError(ValueError):
    """The file is not a usable CSV; the message says what is wrong and where."""


def is_missing(value: str) -> bool:
    value = value.strip()
    return not value or (len(value) <= 4 and value.lower() in MISSING_TOKENS)


def parse_number(value: str) -> float | None:
    """The cell as a finite float, or None when it is not a number.

    What float() reads, except "inf" and digit separators ("1_000"), which no CSV writer means as
    numbers. Profiling and loading share this rule, so a column profiled as numeric always loads.
    """
    try:
        number = float(value)
    except ValueError:
        return None
    if not math.isfinite(number) or "_" in value:
        return None
    return number


def _sniff_binary(head: bytes) -> None:
    for signature, what in _BINARY_SIGNATURES:
        if head.startswith(signature):
            raise CsvError(f"this is not a CSV file: it looks like {what}. Upload a CSV with a header row.")
    if b"\x00" in head:
        raise CsvError("this is not a CSV file: it contains binary data. Upload a CSV with a header row.")
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped[:1] in (b"{", b"["):
        raise CsvError("this is not a CSV file: it looks like JSON. Upload a CSV with a header row.")


def sniff_delimiter(first_line: str, *, filename: str = "") -> str:
    """Pick the separator from the header line: a comma when it has one, else the most frequent candidate."""
    if filename.lower().endswith(".tsv") and "\t" in first_line:
        return "\t"
    counts = {d: first_line.count(d) for d in DELIMITERS}
    if counts[","]:
        return ","
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def _first_line(path: Path) -> str:
    with open(path, "rb") as fh:
        head = fh.read(64 * 1024)
    if not head.strip():
        raise CsvError("the file is empty: upload a CSV with a header row and at least one data row.")
    _sniff_binary(head)
    line = head.split(b"\n", 1)[0]
    return line.decode("utf-8", errors="replace")


@contextmanager
def open_csv(source: Path | IO[bytes], *,
             delimiter: str) -> Iterator[tuple[list[str], Iterator[tuple[int, int, list[str]]]]]:
    """Open a CSV file (a path, or a binary stream such as a stored object); yield
    (header names, iterator of (row number, line number, fields)).

    Row numbers count data rows from 1 (blank lines are skipped and not counted); line numbers are
    the physical line in the file where the record ends, for people looking at it in an editor.
    Decoding and CSV syntax problems surface as :class:`CsvError` while iterating.
    """
    binary = open(source, "rb") if isinstance(source, str | Path) else source  # noqa: SIM115 - closed below
    # utf-8-sig drops the byte-order mark Excel writes; newline="" is what the csv module requires.
    with binary, io.TextIOWrapper(binary, encoding="utf-8-sig", newline="", errors="strict") as fh:
        records = _records(fh, delimiter=delimiter)
        try:
            _, _, header = next(records)
        except StopIteration:
            raise CsvError("the file is empty: upload a CSV with a header row and at least one data row.") from None
        yield [name.strip() for name in header], records


class _BoundedLines:
    """The lines of a text file for csv.reader, refusing a record longer than MAX_RECORD_CHARS as it is read.

    ``used`` counts the characters of the record being read (the caller resets it before each record); a line is
    only ever cut where the limit is passed, and then the record is refused, so the csv module never sees a part.
    """

    def __init__(self, fh: TextIO) -> None:
        self.fh = fh
        self.used = 0
        self.line = 0

    def __iter__(self) -> _BoundedLines:
        return self

    def __next__(self) -> str:
        line = self.fh.readline(MAX_RECORD_CHARS + 1 - self.used)
        if not line:
            raise StopIteration
        self.used += len(line)
        self.line += 1
        if self.used > MAX_RECORD_CHARS:
            raise CsvError(f"the row ending after line {self.line} is longer than {MAX_RECORD_CHARS // (1024 * 1024)} "
                           "million characters; rows that long are not supported.")
        return line


def _records(fh: TextIO, *, delimiter: str) -> Iterator[tuple[int, int, list[str]]]:
    lines = _BoundedLines(fh)
    reader = csv.reader(lines, delimiter=delimiter)
    row = -1  # the header is record 0
    while True:
        lines.used = 0
        try:
            fields = next(reader)
        except StopIteration:
            return
        except UnicodeDecodeError:
            raise CsvError(
                f"the file is not UTF-8 text (undecodable bytes after line {reader.line_num}); "
                "save it as 'CSV UTF-8' and upload it again."
            ) from None
        except csv.Error as exc:
            raise CsvError(f"this is not a valid CSV file: {exc} (line {reader.line_num}).") from None
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue
        row += 1
        yield row, reader.line_num, fields


def check_header(names: list[str]) -> None:
    if len(names) > MAX_COLUMNS:
        raise CsvError(f"the header has {len(names)} columns; at most {MAX_COLUMNS} are supported.")
    for i, name in enumerate(names, start=1):
        if not name:
            raise CsvError(f"column {i} has a blank name: every column needs a name in the header row.")
    seen: dict[str, int] = {}
    for i, name in enumerate(names, start=1):
        if name in seen:
            raise CsvError(
                f"column name '{name}' is used twice (columns {seen[name]} and {i}); column names must be unique."
            )
        seen[name] = i
    if all(parse_number(name) is not None for name in names):
        raise CsvError(
            "the file has no header row: its first row is all numbers. Add a first row naming each column."
        )


def ragged_message(*, row: int, line: int, fields: int, columns: int) -> str:
    return f"row {row} has {fields} fields, header has {columns} (line {line} of the file)."


@dataclass(slots=True)
class _Column:
    """Running statistics of one column, fed a chunk of cells at a time (numpy does the arithmetic)."""

    name: str
    missing: int = 0
    count: int = 0  # non-missing cells
    could_int: bool = True
    could_float: bool = True
    could_bool: bool = True
    # Mean and sum of squared deviations, merged chunk by chunk (Chan et al.): exact and stable.
    mean: float = 0.0
    m2: float = 0.0
    min: float = math.inf
    max: float = -math.inf
    # A uniform sample without replacement: the values with the RESERVOIR_SIZE smallest random keys.
    sample: np.ndarray | None = None
    sample_keys: np.ndarray | None = None
    values: dict[str, int] = field(default_factory=dict)
    capped: bool = False
    distinct_cap: int = 0  # set by profile_csv from DISTINCT_CAP and the width of the file
    reservoir: int = 0  # likewise from RESERVOIR_SIZE

    def add_chunk(self, cells: tuple[str, ...], rng: np.random.Generator) -> None:
        present = [v for v in map(str.strip, cells) if v and (len(v) > 4 or v.lower() not in MISSING_TOKENS)]
        self.missing += len(cells) - len(present)
        if not present:
            return
        n_before = self.count
        self.count += len(present)
        # A numeric column past the cap has nothing useful left to count (its distinct count is "1000+").
        if not (self.capped and self.could_float):
            self._count_values(present)
        if self.could_bool:
            self.could_bool = all(v.lower() in BOOL_TOKENS for v in present)
        if self.could_float:
            self._add_numbers(present, n_before, rng)

    def _count_values(self, present: list[str]) -> None:
        values = self.values
        for key, n in Counter(present).items():
            if len(key) > VALUE_MAX_CHARS:
                key = key[:VALUE_MAX_CHARS]
            if key in values:
                values[key] += n
            elif len(values) < self.distinct_cap:
                values[key] = n
            else:
                self.capped = True

    def _add_numbers(self, present: list[str], n_before: int, rng: np.random.Generator) -> None:
        try:
            numbers = np.fromiter(map(float, present), dtype=np.float64, count=len(present))
        except ValueError:
            numbers = None
        if numbers is None or not np.isfinite(numbers).all() or "_" in "".join(present):
            # No longer numeric: drop what only numeric columns need.
            self.could_float = self.could_int = False
            self.sample = self.sample_keys = None
            return
        if self.could_int:
            self.could_int = all(map(INT_RE.match, present))
        n_chunk = numbers.size
        chunk_mean = float(numbers.mean())
        chunk_m2 = float(((numbers - chunk_mean) ** 2).sum())
        total = n_before + n_chunk
        delta = chunk_mean - self.mean
        self.mean += delta * n_chunk / total
        self.m2 += chunk_m2 + delta * delta * n_before * n_chunk / total
        self.min = min(self.min, float(numbers.min()))
        self.max = max(self.max, float(numbers.max()))
        keys = rng.random(n_chunk)
        if self.sample is not None:
            numbers = np.concatenate([self.sample, numbers])
            keys = np.concatenate([self.sample_keys, keys])
        if numbers.size > self.reservoir:
            keep = np.argpartition(keys, self.reservoir)[:self.reservoir]
            numbers, keys = numbers[keep], keys[keep]
        self.sample, self.sample_keys = numbers, keys

    @property
    def dtype(self) -> str:
        if self.count == 0:
            return "empty"
        if self.could_int:
            return "int"
        if self.could_float:
            return "float"
        if self.could_bool:
            return "bool"
        return "string"

    def summary(self) -> dict:
        dtype = self.dtype
        top = sorted(self.values.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_VALUES]
        out: dict = {
            "name": self.name, "dtype": dtype, "missing": self.missing, "count": self.count,
            "distinct": len(self.values), "distinct_capped": self.capped,
            "top_values": [[value, n] for value, n in top],
        }
        if dtype in ("int", "float"):
            out.update(min=_num(self.min, dtype), max=_num(self.max, dtype), mean=self.mean,
                       std=math.sqrt(self.m2 / self.count), histogram=_histogram(self, dtype))
        return out


def _num(value: float, dtype: str) -> float | int:
    return int(value) if dtype == "int" else value


def _histogram(col: _Column, dtype: str) -> dict:
    sample = col.sample if col.sample is not None else np.empty(0)
    bins, low, high = HISTOGRAM_BINS, col.min, col.max
    span = high - low
    if span == 0:  # one value: a single bar around it (numpy would widen the range the same way)
        bins, low, high = 1, low - 0.5, high + 0.5
    elif dtype == "int" and span < HISTOGRAM_BINS:
        # One bar per integer: span+1 bins over [min, max] put each integer alone in its own bin.
        bins = int(span) + 1
    counts, edges = np.histogram(sample, bins=bins, range=(low, high))
    return {
        "edges": [float(e) for e in edges], "counts": [int(c) for c in counts],
        "sample_size": int(sample.size), "sampled": col.count > sample.size,
    }


def _feed(columns: list[_Column], chunk: list[list[str]], rng: np.random.Generator) -> None:
    if chunk:
        for column, cells in zip(columns, zip(*chunk, strict=True), strict=True):
            column.add_chunk(cells, rng)


@dataclass
class CsvProfile:
    delimiter: str
    rows: int
    columns: list[dict]  # the full per-column profile, in file order

    @property
    def column_names(self) -> list[str]:
        return [c["name"] for c in self.columns]

    def as_profile(self) -> dict:
        return {"format": "csv", "delimiter": self.delimiter, "rows": self.rows, "columns": self.columns}

    def as_columns(self) -> list[dict]:
        return [{"name": c["name"], "dtype": c["dtype"], "missing": c["missing"]} for c in self.columns]


def profile_csv(path: Path, *, filename: str = "") -> CsvProfile:
    """Validate and profile a CSV file in one pass; raise :class:`CsvError` naming the first problem."""
    delimiter = sniff_delimiter(_first_line(path), filename=filename)
    rng = np.random.default_rng(0)  # seeded: the same file always gets the same histograms
    with open_csv(path, delimiter=delimiter) as (names, records):
        check_header(names)
        width = len(names)
        distinct_cap = min(DISTINCT_CAP, max(TOP_VALUES, PROFILE_DISTINCT_BUDGET // max(width, 1)))
        reservoir = min(RESERVOIR_SIZE, max(HISTOGRAM_BINS * 10, PROFILE_SAMPLE_BUDGET // max(width, 1)))
        columns = [_Column(name, distinct_cap=distinct_cap, reservoir=reservoir) for name in names]
        rows = 0
        chunk_rows = max(1, min(CHUNK_ROWS, CHUNK_CELLS // max(width, 1)))
        chunk: list[list[str]] = []
        for row, line, fields in records:
            if len(fields) != width:
                raise CsvError(ragged_message(row=row, line=line, fields=len(fields), columns=width))
            chunk.append(fields)
            rows = row
            if len(chunk) == chunk_rows:
                _feed(columns, chunk, rng)
                chunk = []
        _feed(columns, chunk, rng)
    return CsvProfile(delimiter=delimiter, rows=rows, columns=[c.summary() for c in columns])


def read_preview(source: Path | IO[bytes], *, delimiter: str, rows: int) -> dict:
    """The header and the first ``rows`` data rows, as the strings in the file; reads no further."""
    out: list[list[str]] = []
    with open_csv(source, delimiter=delimiter) as (names, records):
        if rows > 0:
            for _, _, fields in records:
                out.append(fields)
                if len(out) >= rows:
                    break
    return {"columns": names, "rows": out}
