"""The work of batch transform jobs: split the input into parts, predict each part, join the parts in order.

A job runs as three kinds of Celery task (see tasks.py), all on the ``inference`` queue:

1. ``plan`` reads the input dataset once, finds the byte range of every part (records that fit in
   ``max_payload_mb``, at most :data:`PART_MAX_RECORDS`), stores the plan next to the job's files and
   launches the first ``max_concurrent`` parts.
2. ``part`` reads its byte range, predicts with the model (loaded once per worker process), writes its
   output rows to storage, and, when it is counted as done, launches the next part not yet started:
   at most ``max_concurrent`` parts run at once, without a chord or a lock held across tasks.
3. ``finalize`` (launched by the part that completes the count) concatenates the parts in index order,
   so the output follows the input order whatever order the parts finished in, and stores the result
   as a new tabular dataset.

Filters (``input_filter``, ``output_filter``) select columns of a row:

- empty, ``$`` or ``$[*]``: every column;
- ``$[i]``, ``$[i,j,...]``, ``$[a:b]``, ``$[a:]``, ``$[:b]`` or a mix such as ``$[0,2:4,-1]``: 0-based
  column positions; slices leave out their end, negative positions count from the last column;
- ``name1,name2``: columns by name (use positions for names holding a comma).

Columns come out in the order the filter lists them. ``input_filter`` picks the input columns sent to
the model (and joined to the output); ``output_filter`` picks from the output row, which is the joined
input columns (``join_source: "input"``) followed by the prediction columns.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from studio.endpoints.transform_output import (  # noqa: F401 - part of this module's interface
    PREDICTED_PREFIX,
    ColumnFilter,
    FilterError,
    PartOutput,
    flatten_columns,
    flatten_prediction,
    parse_filter,
    select,
    write_output_columns,
    write_output_rows,
)

if TYPE_CHECKING:
    from studio.endpoints.models import TransformJob

logger = logging.getLogger(__name__)


# Progress is reported per part: a cap on records keeps parts small enough for a smooth progress bar.

PART_MAX_RECORDS = 50_000
# Worker processes keep this many loaded models (batch jobs of a few models alternate on one worker).
PREDICTOR_CACHE_SIZE = 4
CSV_FORMAT = "csv"
JSONL_FORMAT = "jsonl"
READ_CHUNK = 1024 * 1024


class TransformError(ValueError):
    """The input or the model's answer cannot be turned into output rows; the message says where."""


# --- filters --------------------------------------------------------------------------------------



@dataclass(frozen=True)
class Part:
    index: int
    offset: int  # bytes from the start of the file
    length: int  # bytes
    first: int  # 0-based index of the part's first record among all records
    count: int  # records in the part

    @property
    def record_range(self) -> str:
        """1-based, inclusive: how people count the records of a file."""
        return f"records {self.first + 1}-{self.first + self.count}"


@dataclass
class Plan:
    fmt: str
    delimiter: str
    columns: list[str]  # of the input, from the CSV header (or the text dataset's columns for JSONL)
    parts: list[Part]

    @property
    def records_total(self) -> int:
        return sum(part.count for part in self.parts)

    def to_json(self) -> dict[str, Any]:
        return {"fmt": self.fmt, "delimiter": self.delimiter, "columns": self.columns,
                "parts": [[p.offset, p.length, p.first, p.count] for p in self.parts]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        parts = [Part(index=i, offset=o, length=n, first=f, count=c) for i, (o, n, f, c) in enumerate(data["parts"])]
        return cls(fmt=data["fmt"], delimiter=data["delimiter"], columns=list(data["columns"]), parts=parts)


def _physical_records(fh: Iterable[bytes], *, fmt: str, start: int = 0) -> Iterator[tuple[int, bytes]]:
    """(byte offset, raw bytes) of each record of a binary file, blank lines included.

    A CSV record ends at a line end outside quotes: doubled quotes inside a field count twice, so the
    parity of the quote count tells whether a newline is inside a quoted field. JSON lines never
    hold a raw newline, so each line is a record.
    """
    offset = start
    pending = b""
    inside = False
    for line in fh:
        if not pending:
            start = offset
        offset += len(line)
        if fmt == CSV_FORMAT and line.count(b'"') % 2:
            inside = not inside
        pending += line
        if not inside:
            yield start, pending
            pending = b""
    if pending:
        yield start, pending


class _Packer:
    """Cuts records into parts: whole records, at most ``max_bytes`` and ``max_records`` a part.

    Records come one at a time (:meth:`add`, any record, blank ones included) or as runs of
    contiguous non-blank records (:meth:`add_run`, arrays), which are cut with a few numpy searches
    per part instead of a Python step per record; both cut exactly where the other would.
    """

    def __init__(self, *, max_bytes: int, max_records: int, whole: bool) -> None:
        self.max_bytes, self.max_records, self.whole = max_bytes, max_records, whole
        self.parts: list[Part] = []
        self.start, self.bytes, self.count, self.first = -1, 0, 0, 0

    def close(self) -> None:
        if self.count:
            self.parts.append(Part(index=len(self.parts), offset=self.start, length=self.bytes, first=self.first,
                                   count=self.count))
            self.first += self.count
        self.start, self.bytes, self.count = -1, 0, 0

    def _too_big(self, number: int, size: int) -> TransformError:
        return TransformError(f"record {number} is {size:,} bytes, more than max_payload_mb "
                              f"({self.max_bytes // (1024 * 1024)} MB) allows.")

    def _check_whole(self) -> None:
        if self.whole and self.bytes > self.max_bytes:
            raise TransformError(f"split_type 'none' sends the whole input as one request, and it is over "
                                 f"max_payload_mb ({self.max_bytes // (1024 * 1024)} MB): use split_type 'line'.")

    def add(self, offset: int, raw: bytes) -> None:
        if not raw.strip():
            if self.count:
                self.bytes += len(raw)  # a blank line inside a part is skipped when it is read
            return
        if len(raw) > self.max_bytes:
            raise self._too_big(self.first + self.count + 1, len(raw))
        if self.count and not self.whole and (self.bytes + len(raw) > self.max_bytes
                                              or self.count >= self.max_records):
            self.close()
        if self.start < 0:
            self.start = offset
        self.bytes += len(raw)
        self.count += 1
        self._check_whole()

    def add_run(self, offsets: np.ndarray, lengths: np.ndarray) -> None:
        """Contiguous non-blank records: ``offsets[i + 1] == offsets[i] + lengths[i]``."""
        big = np.flatnonzero(lengths > self.max_bytes)
        if big.size:
            i = int(big[0])
            self.add_run(offsets[:i], lengths[:i])
            raise self._too_big(self.first + self.count + 1, int(lengths[i]))
        ends = np.cumsum(lengths)  # bytes from offsets[0] to the end of record i
        n, j = len(lengths), 0
        while j < n:
            if self.start < 0:
                self.start = int(offsets[j])
            done = int(ends[j - 1]) if j else 0
            if self.whole:
                take = n - j
            else:
                fit = int(np.searchsorted(ends, done + self.max_bytes - self.bytes, side="right")) - j
                take = min(fit, self.max_records - self.count, n - j)
                if take <= 0 and not self.count:
                    take = 1  # an empty part takes any record (each is at most max_bytes)
            if take > 0:
                self.bytes += int(ends[j + take - 1]) - done
                self.count += take
                j += take
                self._check_whole()
            if j < n:  # the next record does not fit this part
                self.close()


SPAN_BLOCK = 8 * 1024 * 1024
# The bytes bytes.strip() removes: a line starting with none of them is not blank.
_WHITESPACE = np.frombuffer(b" \t\n\r\x0b\x0c", dtype=np.uint8)


def _lines_from(head: bytes, carry: bytes, fh: IO[bytes]) -> Iterator[bytes]:
    """The lines of ``head`` (whole lines), then of ``carry`` + the rest of ``fh``.

    By readline: iterating a Django File goes through chunks(), which starts again from byte 0.
    """
    yield from io.BytesIO(head)
    if first := carry + fh.readline():
        yield first
    yield from iter(fh.readline, b"")


def _pack_records(fh: IO[bytes], packer: _Packer, *, fmt: str, offset: int) -> None:
    """Feed every record of ``fh`` (positioned at byte ``offset``) to ``packer``.

    Blocks without a quote (CSV) and without a blank line go to :meth:`_Packer.add_run` with their
    newline positions found by numpy; the first block holding a quote hands the rest of the file to the
    exact per-line reader (a quoted field may hold newlines), and a block with a blank line is fed line
    by line.
    """
    carry = b""
    while block := fh.read(SPAN_BLOCK):
        data = carry + block
        cut = data.rfind(b"\n") + 1
        if fmt == CSV_FORMAT and data.find(b'"', 0, cut) >= 0:
            lines = _lines_from(data[:cut], data[cut:], fh)
            for start, raw in _physical_records(lines, fmt=fmt, start=offset):
                packer.add(start, raw)
            return
        carry = data[cut:]
        if not cut:
            continue
        ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8, count=cut) == 10) + 1
        starts = np.concatenate(([0], ends[:-1]))
        maybe_blank = np.flatnonzero(np.isin(np.frombuffer(data, dtype=np.uint8, count=cut)[starts], _WHITESPACE))
        if any(not data[starts[i]:ends[i]].strip() for i in maybe_blank.tolist()):
            for line in io.BytesIO(data[:cut]):
                packer.add(offset, line)
                offset += len(line)
            continue
        packer.add_run(starts + offset, ends - starts)
        offset += cut
    if carry:
        packer.add(offset, carry)


def plan_parts(fh: IO[bytes], *, fmt: str, delimiter: str, columns: list[str] | None, max_bytes: int,
               max_records: int = PART_MAX_RECORDS, whole: bool = False) -> Plan:
    """Split a stored input (binary, read once) into parts of whole records.

    Parameters
    ----------
    fh : binary file
        The input, read from its start.
    fmt : str
        ``csv`` (a header row gives the columns) or ``jsonl`` (``columns`` gives them).
    delimiter : str
        The CSV separator.
    columns : list of str or None
        Columns of a JSONL input.
    max_bytes : int
        Largest part, in bytes (max_payload_mb).
    max_records : int
        Most records in a part.
    whole : bool
        split_type "none": the entire input is one part, which must fit ``max_bytes``.

    Returns
    -------
    Plan

    Raises
    ------
    TransformError
        An empty input, a record over ``max_bytes``, or a whole input over it.
    """
    offset = 0
    if fmt == CSV_FORMAT:
        # The header alone, read line by line (it may hold quoted newlines); the records follow it.
        header = next((raw for _, raw in _physical_records(iter(fh.readline, b""), fmt=fmt)), b"")
        if not header:
            raise TransformError("the input is empty: it has no header row.")
        offset = len(header)
        parsed = next(csv.reader(io.StringIO(header.decode("utf-8-sig")), delimiter=delimiter), [])
        columns = [name.strip() for name in parsed]
    packer = _Packer(max_bytes=max_bytes, max_records=max_records, whole=whole)
    _pack_records(fh, packer, fmt=fmt, offset=offset)
    packer.close()
    return Plan(fmt=fmt, delimiter=delimiter, columns=list(columns or []), parts=packer.parts)


def read_part_rows(data: bytes, *, plan: Plan, part: Part) -> list[list[str]]:
    """The records of a part (its bytes) as lists of cells in the input's column order; TransformError if unreadable."""
    text = data.decode("utf-8-sig")
    width = len(plan.columns)
    rows: list[list[str]] = []
    if plan.fmt == CSV_FORMAT:
        try:
            parsed = list(csv.reader(io.StringIO(text, newline=""), delimiter=plan.delimiter))
        except csv.Error:
            parsed = None  # the loop below meets the same error, after any width error of an earlier record
        # Every record as wide as the header (no blank line, which reads as [] or ['  ']) needs no check per row.
        if parsed is not None and width > 1 and len(parsed) == part.count and all(
                len(fields) == width for fields in parsed):
            return parsed
        for fields in csv.reader(io.StringIO(text, newline=""), delimiter=plan.delimiter):
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue
            if len(fields) != width:
                raise TransformError(f"record {part.first + len(rows) + 1} has {len(fields)} fields; the header "
                                     f"has {width}.")
            rows.append(fields)
    else:
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TransformError(f"record {part.first + len(rows) + 1} is not valid JSON: {exc.msg}.") from None
            if not isinstance(obj, dict):
                raise TransformError(f"record {part.first + len(rows) + 1} is not a JSON object.")
            rows.append(["" if obj.get(name) is None else str(obj.get(name)) for name in plan.columns])
    if len(rows) != part.count:
        raise TransformError(f"{part.record_range}: read {len(rows)} records where the plan counted {part.count}; "
                             "was the input changed while the job ran?")
    return rows


def read_part_columns(data: bytes, *, plan: Plan, part: Part) -> list[Sequence[str]]:
    """The records of a part as one sequence of cells per input column: ``read_part_rows`` transposed.

    A CSV part with no quote, carriage return, NUL or blank line reads as csv.reader would by splitting
    on newlines and the delimiter; any other part goes through :func:`read_part_rows`.
    """
    width = len(plan.columns)
    if plan.fmt == CSV_FORMAT and width:
        text = data.decode("utf-8-sig")
        body = text[:-1] if text.endswith("\n") else text
        if not any(mark in body for mark in ('"', "\r", "\x00", "\n\n")) and body.count("\n") + 1 == part.count:
            lines = body.split("\n")
            if width > 1:
                fine = set(map(str.count, lines, repeat(plan.delimiter, len(lines)))) == {width - 1}
            else:
                fine = all(line.strip() for line in lines)  # a blank record is skipped, not read as a cell
            if fine:
                cells = body.replace("\n", plan.delimiter).split(plan.delimiter)
                return [cells[j::width] for j in range(width)]
    return list(zip(*read_part_rows(data, plan=plan, part=part), strict=True))


def read_part_arrow(data: bytes, *, plan: Plan, part: Part) -> list[Any] | None:
    """The records of a CSV part as one Arrow string array per input column, split by Arrow's C reader.

    Only for a part with no quote, carriage return or NUL, where splitting on newlines and the delimiter
    is what csv.reader does; a blank line or a record of the wrong width makes Arrow disagree with the
    plan (a row count or width error), and then None leaves the part to :func:`read_part_columns`, which
    reads it or words the error.
    """
    width = len(plan.columns)
    if plan.fmt != CSV_FORMAT or not width or len(plan.delimiter) != 1 or data.startswith(b"\xef\xbb\xbf") or any(
            mark in data for mark in (b'"', b"\r", b"\x00")):
        return None
    import pyarrow as pa
    import pyarrow.csv as pacsv

    names = [f"c{i}" for i in range(width)]  # header names may repeat or be blank; positions are what count
    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(column_names=names, use_threads=False, block_size=max(len(data), 1 << 20)),
            parse_options=pacsv.ParseOptions(delimiter=plan.delimiter, quote_char=False, double_quote=False,
                                             escape_char=False, newlines_in_values=False, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()),
                                                 strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    if table.num_rows != part.count:
        return None
    return [table.column(i).combine_chunks() for i in range(width)]


def plain_columns(columns: list[Any]) -> list[Sequence[str]]:
    """Columns of cells as Python sequences (an Arrow array as its list of strings)."""
    return [column.to_pylist() if hasattr(column, "to_pylist") else column for column in columns]


# --- predictions as output columns ----------------------------------------------------------------


_cache_lock = threading.Lock()
_predictors: OrderedDict[str, Any] = OrderedDict()


def predictor_for(model: Any, *, loader: Callable[[Any], Any] | None = None) -> Any:
    """The Predictor of a registry model, from this process's LRU cache (keyed by model id)."""
    key = str(model.id)
    with _cache_lock:
        if key in _predictors:
            _predictors.move_to_end(key)
            return _predictors[key]
    predictor = (loader or _load_predictor)(model)
    with _cache_lock:
        _predictors[key] = predictor
        _predictors.move_to_end(key)
        while len(_predictors) > PREDICTOR_CACHE_SIZE:
            _predictors.popitem(last=False)
    return predictor


def predictor_cache_clear() -> None:
    """Forget every loaded model of this process (tests; a worker never needs it)."""
    with _cache_lock:
        _predictors.clear()


def _load_predictor(model: Any) -> Any:
    from studio.endpoints.predictions import Predictor
    from studio.registry.services import model_local_dir

    with model_local_dir(model=model) as directory:
        return Predictor.from_directory(directory, feature_names=list(model.feature_names or []))


def model_records(rows: list[list[str]], *, names: list[str], text_input: bool) -> list[Any]:
    """Input rows as the records a Predictor takes: ``{column: cell}``, or the ``text`` cell for text models."""
    if text_input:
        position = names.index("text") if "text" in names else 0
        return [row[position] for row in rows]
    return [dict(zip(names, row, strict=True)) for row in rows]


def predict_rows(predictor: Any, records: list[Any], *, single_record: bool,
                 should_stop: Callable[[], bool] | None = None) -> list[Any]:
    """Predictions for every record, one request-equivalent per record (single) or all at once (multi)."""
    if not single_record:
        return list(predictor.predict_records(records))
    out: list[Any] = []
    for i, record in enumerate(records):
        if should_stop is not None and i % 1000 == 0 and should_stop():
            raise InterruptedError
        out.extend(predictor.predict_records([record]))
    return out


def predict_part_columns(predictor: Any, every: list[Sequence[str]], *, names: list[str],
                         positions: list[int] | None) -> tuple[list[Sequence[str]], dict[str, list[Any]]] | None:
    """A part's input and prediction columns, predicted in one estimator call (multi_record, tabular models).

    Parameters
    ----------
    predictor : Predictor
        The model.
    every : list of sequences of str
        The part's cells, one sequence per input column (:func:`read_part_columns`).
    names : list of str
        The columns the input filter selects (all when ``positions`` is None).
    positions : list of int or None
        Their positions among the input columns.

    Returns
    -------
    tuple or None
        (the selected input columns, the flat prediction columns), equal to what
        ``model_records`` + ``predict_rows`` + ``flatten_prediction`` give record by record; None when the
        model's answers are not plain columns (then predict record by record).

    Raises
    ------
    PayloadError
        The error predicting the same records one by one raises.
    TransformError
        The model answered a column of the wrong length.
    """
    input_cells = select(positions, every)
    count = len(every[0]) if every else 0
    # dict() of the names: a repeated column keeps the last one, as dict(zip(names, row)) does for a record
    answer = predictor.predict_columns(dict(zip(names, input_cells, strict=True)))
    predicted = None if answer is None else flatten_columns(answer)
    if predicted is None:
        return None
    for name, cells in predicted.items():
        if len(cells) != count:
            raise TransformError(f"the model answered {len(cells)} values of '{name}' for {count} records.")
    return input_cells, predicted


# --- Django glue: the three steps of a job ------------------------------------------------------------


def job_prefix(job: TransformJob) -> str:
    """Where a job keeps its plan and parts in storage."""
    return f"projects/{job.project_id}/transforms/{job.id}/"


def plan_name(job: TransformJob) -> str:
    """The stored plan (JSON) of a job."""
    return job_prefix(job) + "plan.json"


def part_name(job: TransformJob, index: int) -> str:
    """The stored output rows (CSV, no header) of part ``index``."""
    return f"{job_prefix(job)}parts/{index:05d}.csv"


def part_marker_name(job: TransformJob, index: int) -> str:
    """The marker of a counted part: JSON ``{columns, rows}``, written once under the job's row lock."""
    return f"{job_prefix(job)}parts/{index:05d}.done.json"


def input_format(dataset: Any) -> tuple[str, str, list[str] | None]:
    """(format, delimiter, columns for JSONL) of a dataset's stored file."""
    profile = dataset.profile or {}
    fmt = JSONL_FORMAT if profile.get("format") == JSONL_FORMAT else CSV_FORMAT
    columns = None if fmt == CSV_FORMAT else (dataset.column_names or ["text"])
    return fmt, profile.get("delimiter") or ",", columns


def run_plan(*, job_id: Any) -> str:
    """Claim a pending job, split its input, store the plan and launch the first parts."""
    from studio.core.storage import storage_open
    from studio.endpoints import transforms

    job = transforms.transform_job_claim(job_id=job_id)
    if job is None:
        return "not pending"
    try:
        dataset = job.input_dataset
        if dataset is None:
            raise TransformError("the input dataset was deleted.")
        fmt, delimiter, columns = input_format(dataset)
        with storage_open(dataset.file) as fh:
            plan = plan_parts(fh, fmt=fmt, delimiter=delimiter, columns=columns,
                              max_bytes=job.max_payload_mb * 1024 * 1024, max_records=PART_MAX_RECORDS,
                              whole=job.split_type == "none")
        if not plan.parts:
            raise TransformError("the input dataset has no records.")
        input_filter = parse_filter(job.input_filter, field="input_filter")
        if input_filter is not None:
            input_filter.resolve(plan.columns, field="input_filter")
        _save_json(plan_name(job), plan.to_json())
    except (TransformError, FilterError, OSError, UnicodeDecodeError) as exc:
        transforms.transform_job_fail(job_id=job.id, reason=f"Could not read the input: {exc}")
        return "failed"
    except Exception as exc:
        logger.exception("transform job %s: splitting the input failed", job_id)
        transforms.transform_job_fail(job_id=job.id, reason=f"Splitting the input failed: {type(exc).__name__}: {exc}")
        return "failed"
    transforms.transform_job_planned(job=job, records_total=plan.records_total, parts_total=len(plan.parts))
    return "planned"


def run_part(*, job_id: Any, index: int) -> str:
    """Predict one part and store its rows; count it done (once) and launch what comes next."""
    from studio.core.storage import storage_open
    from studio.endpoints import transforms

    job = transforms.transform_job_running(job_id=job_id)
    if job is None:
        return "not running"
    plan = Plan.from_json(_load_json(plan_name(job)))
    part = plan.parts[index]
    try:
        if job.input_dataset is None or job.model is None:
            raise TransformError(f"the {'input dataset' if job.input_dataset is None else 'model'} was deleted "
                                 "while the job ran.")
        with storage_open(job.input_dataset.file) as fh:
            fh.seek(part.offset)
            data = fh.read(part.length)
        input_filter = parse_filter(job.input_filter, field="input_filter")
        positions = input_filter.resolve(plan.columns, field="input_filter") if input_filter else None
        names = select(positions, plan.columns)
        predictor = predictor_for(job.model)
        text_input = _text_model(job.model)
        by_columns = None
        if (job.batch_strategy != "single_record" and not text_input
                and getattr(predictor, "answers_by_columns", False)):
            every = read_part_arrow(data, plan=plan, part=part) or read_part_columns(data, plan=plan, part=part)
            by_columns = predict_part_columns(predictor, every, names=names, positions=positions)
            if by_columns is None:
                rows = [list(row) for row in zip(*plain_columns(every), strict=True)]
            elif job.join_source == "input":
                by_columns = (plain_columns(by_columns[0]), by_columns[1])
        else:
            rows = read_part_rows(data, plan=plan, part=part)
        if by_columns is None:
            selected = [select(positions, row) for row in rows] if positions is not None else rows
            records = model_records(selected, names=names, text_input=text_input)
            predictions = predict_rows(predictor, records, single_record=job.batch_strategy == "single_record",
                                       should_stop=lambda: not transforms.transform_job_is_running(job_id=job.id))
            if len(predictions) != len(records):
                raise TransformError(f"the model answered {len(predictions)} predictions for {len(records)} records.")
        join = job.join_source == "input"
        output_filter = parse_filter(job.output_filter, field="output_filter")
        with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024, mode="w+b") as spool:
            text = io.TextIOWrapper(spool, encoding="utf-8", newline="")
            if by_columns is not None:
                buffer = io.StringIO()  # one encode for the part: the writer writes a row at a time
                output = write_output_columns(buffer, input_columns=names, input_cells=by_columns[0],
                                              predicted=by_columns[1], join=join, output_filter=output_filter)
                text.write(buffer.getvalue())
            else:
                output = write_output_rows(text, input_columns=names, input_rows=selected, predictions=predictions,
                                           join=join, output_filter=output_filter)
            text.flush()
            _save_stream(part_name(job, index), spool)
            text.detach()
    except InterruptedError:
        return "stopped"
    except Exception as exc:  # every failure of a part fails the job with the part's record range
        if not isinstance(exc, TransformError | FilterError | ValueError | OSError):
            logger.exception("transform job %s part %s failed", job_id, index)
        transforms.transform_job_fail(job_id=job.id, reason=f"Part {index + 1} ({part.record_range}): {exc}")
        return "failed"
    transforms.transform_part_done(job_id=job.id, index=index, records=part.count,
                                   marker={"columns": output.columns, "rows": output.rows})
    return "done"


def run_finalize(*, job_id: Any) -> str:
    """Concatenate the parts in order into a new dataset and complete the job."""
    from studio.core.storage import storage_open
    from studio.endpoints import transforms

    job = transforms.transform_job_running(job_id=job_id)
    if job is None:
        return "not running"
    if job.parts_total is None or job.parts_done < job.parts_total:
        return "parts missing"
    try:
        markers = [_load_json(part_marker_name(job, i)) for i in range(job.parts_total)]
        columns: list[str] = []
        for marker in markers:
            columns.extend(c for c in marker["columns"] if c not in columns)
        with tempfile.NamedTemporaryFile(suffix=".csv") as tmp:
            header = io.StringIO()
            csv.writer(header, lineterminator="\n").writerow(columns)
            tmp.write(header.getvalue().encode())
            rows = 0
            for i, marker in enumerate(markers):
                with storage_open(part_name(job, i)) as src:
                    if marker["columns"] == columns:
                        _copy(src, tmp)
                    else:
                        _remap(src, tmp, have=marker["columns"], want=columns)
                rows += int(marker["rows"])
            tmp.flush()
            dataset = transforms.transform_output_dataset_create(job=job, path=tmp.name, rows=rows)
    except Exception as exc:
        logger.exception("transform job %s: joining the parts failed", job_id)
        transforms.transform_job_fail(job_id=job.id, reason=f"Joining the output parts failed: {exc}")
        return "failed"
    transforms.transform_job_complete(job=job, output_dataset=dataset)
    return "completed"


def _copy(src: IO[bytes], dst: IO[bytes]) -> None:
    while block := src.read(READ_CHUNK):
        dst.write(block)


def _remap(src: IO[bytes], dst: IO[bytes], *, have: list[str], want: list[str]) -> None:
    """Rows of a part whose predictions lacked some columns, padded into the union of all parts' columns."""
    position = {name: i for i, name in enumerate(have)}
    reader = csv.reader(io.TextIOWrapper(src, encoding="utf-8", newline=""))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in reader:
        writer.writerow([row[position[name]] if name in position else "" for name in want])
        if out.tell() > READ_CHUNK:
            dst.write(out.getvalue().encode())
            out.seek(0)
            out.truncate()
    dst.write(out.getvalue().encode())


def _text_model(model: Any) -> bool:
    from algorithms import UnknownAlgorithm, get_algorithm

    try:
        return get_algorithm(model.algorithm).input == "text"
    except UnknownAlgorithm:
        return False


def _save_stream(name: str, fh: IO[bytes]) -> None:
    from django.core.files import File
    from django.core.files.storage import default_storage

    from studio.core.storage import storage_delete

    storage_delete(name)  # a retried part rewrites the same name instead of getting a suffixed copy
    fh.seek(0)
    default_storage.save(name, File(fh, name=name.rsplit("/", 1)[-1]))


def _save_json(name: str, data: dict[str, Any]) -> None:
    _save_stream(name, io.BytesIO(json.dumps(data).encode()))


def _load_json(name: str) -> dict[str, Any]:
    from studio.core.storage import storage_open

    with storage_open(name) as fh:
        return json.loads(fh.read().decode("utf-8"))
