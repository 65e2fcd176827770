"""Turn a stored tabular dataset into columns ready for preprocessing and training.

This is the one door between stored data and the algorithms (load_text and load_images, at the end,
do the same for text and image datasets): the training worker calls
:func:`load_tabular` and gets the feature columns (numbers as float64 with NaN for missing cells,
text columns as strings with "" for missing cells) and the target, or a :class:`DatasetError` whose
message can be shown to the user as the job's failure reason. Turning text into numbers and filling
in missing values is the job of :mod:`studio.datasets.preprocessing`, fitted on the training rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from studio.core.storage import storage_local_copy
from studio.datasets.images import load_npz
from studio.datasets.models import DatasetKind
from studio.datasets.profiling import (
    CsvError,
    is_missing,
    open_csv,
    parse_number,
    ragged_message,
)
from studio.datasets.tabular import DatasetError, TabularData, feature_value, rows_phrase
from studio.datasets.text import LABEL_COLUMN, TextError, open_text

if TYPE_CHECKING:
    from studio.datasets.models import Dataset

MAX_LISTED_ROWS = 5
# Cells that are meant as numbers but are not valid ones in a CSV: decimal commas ("1,5") and
# thousands separators ("1,200.50"). A text column made mostly of these is a broken numeric column.
_NUMBER_LIKE_RE = re.compile(r"[+-]?\d{1,3}(?:[ ,.']\d{3})+(?:[.,]\d+)?\Z|[+-]?\d+,\d+\Z")


@dataclass
class _BadColumn:
    rows: list[int]
    count: int = 0
    example: str = ""

    def add(self, row: int, value: str) -> None:
        if not self.count:
            self.example = value.strip()[:40]
        self.count += 1
        if len(self.rows) < MAX_LISTED_ROWS:
            self.rows.append(row)


def _columns_phrase(names: list[str]) -> str:
    shown = ", ".join(names[:20])
    return shown + (f", … ({len(names)} in all)" if len(names) > 20 else "")


def _resolve_columns(names: list[str], target: str, feature_columns: list[str] | None,
                     exclude: Iterable[str]) -> list[str]:
    if target and target not in names:
        raise DatasetError(f"target '{target}' is not a column; columns: {_columns_phrase(names)}")
    if feature_columns is None:
        left_out = {target, *exclude}
        features = [n for n in names if n not in left_out]
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


def _labels_to_array(labels: list[str]) -> np.ndarray:
    numbers = [parse_number(v) for v in labels]
    if all(n is not None for n in numbers):
        return np.asarray(numbers, dtype=np.float64)
    return np.asarray(labels, dtype=str)


def profiled_text_columns(dataset: Dataset) -> set[str]:
    """Columns the upload profile found to hold text: the candidates for one-hot encoding."""
    return {c["name"] for c in dataset.columns or [] if isinstance(c, dict) and c.get("dtype") == "string"}


def load_tabular(*, dataset: Dataset, target: str, feature_columns: list[str] | None = None,
                 categorical: Iterable[str] | None = None, exclude: Iterable[str] = ()) -> TabularData:
    """Read the stored CSV of ``dataset`` into ``TabularData``.

    ``target`` may be empty for unsupervised algorithms (then ``y`` is None and no row is dropped).
    Rows whose target is missing are dropped and counted in ``n_dropped``. ``exclude`` names columns
    that are neither target nor feature (an unsupervised job leaves out the dataset's label column).

    A feature column is text (``categorical``) when the upload profile says so (or, for a validation
    dataset, when ``categorical`` names it, so both channels read a column the same way) and its
    cells are not mostly numbers. Every other feature cell must be a number (or true/false, read as
    1/0) or missing; a text cell there, or a few text cells in a column of numbers, raises
    :class:`DatasetError` naming the column and the 1-based data rows.
    """
    if dataset.kind != DatasetKind.TABULAR:
        raise DatasetError(f"dataset '{dataset.name}' is {dataset.kind}, not tabular")
    if not dataset.file:
        raise DatasetError(f"dataset '{dataset.name}' has no stored file")
    target = (target or "").strip()
    delimiter = (dataset.profile or {}).get("delimiter", ",")
    forced = categorical is not None
    text_columns = set(categorical) if forced else profiled_text_columns(dataset)
    try:
        with storage_local_copy(dataset.file, suffix=".csv") as path, \
                open_csv(path, delimiter=delimiter) as (names, records):
            features = _resolve_columns(names, target, feature_columns, exclude)
            return _read(dataset, names, records, target, features, text_columns, forced)
    except CsvError as exc:
        raise DatasetError(f"dataset '{dataset.name}' could not be read: {exc}") from None
    except FileNotFoundError:
        raise DatasetError(f"the stored file of dataset '{dataset.name}' is missing") from None


def _read(dataset: Dataset, names: list[str], records, target: str, features: list[str],
          text_columns: set[str], forced: bool) -> TabularData:
    numeric_names = [c for c in features if c not in text_columns]
    text_names = [c for c in features if c in text_columns]
    numeric_index = [names.index(c) for c in numeric_names]
    text_index = [names.index(c) for c in text_names]
    target_index = names.index(target) if target else -1
    width = len(names)

    # The row count is known from upload, so X is allocated once instead of built from Python lists.
    capacity = max(int(dataset.rows or 0), 16)
    X = np.empty((capacity, len(numeric_names)), dtype=np.float64)
    texts: list[list[str]] = [[] for _ in text_names]
    # Text columns count how many of their cells look like numbers: mostly numbers means a numeric
    # column with typos, which is an error to fix rather than a category to learn.
    numberlike = [0] * len(text_names)
    wordlike = [0] * len(text_names)
    labels: list[str] = []
    row_numbers: list[int] = []
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
        for j, i in enumerate(numeric_index):
            value = feature_value(fields[i])
            if value is None:
                bad.setdefault(numeric_names[j], _BadColumn(rows=[])).add(row, fields[i])
                value = np.nan
            X[n, j] = value
        for j, i in enumerate(text_index):
            raw = fields[i].strip()
            if is_missing(raw):
                texts[j].append("")
                continue
            texts[j].append(raw)
            if not forced:
                if feature_value(raw) is not None or _NUMBER_LIKE_RE.match(raw):
                    numberlike[j] += 1
                else:
                    wordlike[j] += 1
        row_numbers.append(row)
        n += 1

    hints: dict[str, str] = {}
    for j, name in enumerate(text_names):
        present = numberlike[j] + wordlike[j]
        if not forced and present and numberlike[j] * 2 > present:
            # Report the cells that are not numbers, like any other numeric column with text in it.
            entry = bad[name] = _numeric_strays(texts[j], row_numbers)
            hints[name] = (" while its other values are numbers: correct those cells or leave them empty (empty "
                           "cells count as missing)" if entry.count < present else
                           ": numbers need '.' for decimals and no thousands separators")
    if bad:
        raise DatasetError("; ".join(
            f"column '{name}' has non-numeric values in {rows_phrase(entry.rows, entry.count)} "
            f"(e.g. '{entry.example}')" + hints.get(name, "")
            for name, entry in bad.items()
        ))
    if seen == 0:
        raise DatasetError(f"dataset '{dataset.name}' has no rows")
    if n == 0:
        raise DatasetError(f"every row of dataset '{dataset.name}' is missing the target '{target}'")
    y = _labels_to_array(labels) if target else None
    X = X if n == X.shape[0] else X[:n].copy()  # a copy frees the unused tail
    text = {}
    for name, values in zip(text_names, texts, strict=True):
        array = np.empty(n, dtype=object)
        array[:] = values
        text[name] = array
    return TabularData(feature_names=features, numeric=X, numeric_names=numeric_names, text=text, y=y,
                       rows=np.asarray(row_numbers, dtype=np.int64), n_dropped=dropped, target=target)


def _numeric_strays(values: list[str], rows: list[int]) -> _BadColumn:
    entry = _BadColumn(rows=[])
    for value, row in zip(values, rows, strict=True):
        if value and feature_value(value) is None:
            entry.add(row, value)
    return entry


@dataclass
class TextData:
    """The texts of a text dataset and, when loaded with a target, their labels (str)."""

    texts: list[str]
    y: np.ndarray | None  # (n,) str labels; None when loaded without a target
    n_dropped: int = 0  # rows left out because their label was missing


def load_text(*, dataset: Dataset, target: str = "label") -> TextData:
    """Read the stored CSV/JSONL of a text dataset.

    With ``target`` ("label", the only label column a text dataset has) rows without a label are
    dropped and counted; with ``target=""`` every text is returned and ``y`` is None.
    """
    if dataset.kind != DatasetKind.TEXT:
        raise DatasetError(f"dataset '{dataset.name}' is {dataset.kind}, not text")
    if not dataset.file:
        raise DatasetError(f"dataset '{dataset.name}' has no stored file")
    target = (target or "").strip()
    if target and target != LABEL_COLUMN:
        raise DatasetError(f"target '{target}' is not a column of text dataset '{dataset.name}'; its label column "
                           f"is '{LABEL_COLUMN}'")
    profile = dataset.profile or {}
    texts: list[str] = []
    labels: list[str] = []
    dropped = 0
    try:
        with storage_local_copy(dataset.file) as path, \
                open_text(path, fmt=profile.get("format", "csv"), delimiter=profile.get("delimiter", ",")) \
                as (has_label, records):
            if target and not has_label:
                raise DatasetError(f"text dataset '{dataset.name}' has no '{LABEL_COLUMN}' column: upload texts "
                                   "with labels to train a classifier")
            for _, text, label in records:
                if target:
                    if label is None:
                        dropped += 1
                        continue
                    labels.append(label)
                texts.append(text)
    except TextError as exc:
        raise DatasetError(f"dataset '{dataset.name}' could not be read: {exc}") from None
    except FileNotFoundError:
        raise DatasetError(f"the stored file of dataset '{dataset.name}' is missing") from None
    if not texts:
        raise DatasetError(f"every row of dataset '{dataset.name}' is missing its '{LABEL_COLUMN}'" if dropped
                           else f"dataset '{dataset.name}' has no rows")
    return TextData(texts=texts, y=np.asarray(labels, dtype=str) if target else None, n_dropped=dropped)


@dataclass
class ImageData:
    """Decoded images of an image dataset, resized at upload to ``image_size`` squares (RGB)."""

    X: np.ndarray  # (n, H, W, 3) uint8
    y: np.ndarray | None  # (n,) str class labels (classification); None for detection
    boxes: list[np.ndarray] | None  # detection: per image an (k, 4) float32 x1, y1, x2, y2 in resized pixels
    box_labels: list[np.ndarray] | None  # detection: per image a (k,) str array of box labels
    files: list[str]
    task: str  # "classification" | "detection"

    @property
    def classes(self) -> list[str]:
        labels = self.y if self.y is not None else np.concatenate(self.box_labels or [np.array([], dtype=str)])
        return sorted(set(labels.tolist()))


def load_images(*, dataset: Dataset) -> ImageData:
    """Read the arrays stored for an image dataset at upload (no pickle)."""
    if dataset.kind != DatasetKind.IMAGE:
        raise DatasetError(f"dataset '{dataset.name}' is {dataset.kind}, not image")
    profile = dataset.profile or {}
    name = profile.get("arrays")
    if not name:
        raise DatasetError(f"image dataset '{dataset.name}' has no decoded arrays; upload it again")
    try:
        with storage_local_copy(name, suffix=".npz") as path:
            arrays = load_npz(path, ("X", "files", "labels", "box_offsets", "box_coords", "box_labels"))
    except FileNotFoundError:
        raise DatasetError(f"the stored arrays of dataset '{dataset.name}' are missing") from None
    except (OSError, ValueError, KeyError) as exc:
        raise DatasetError(f"the stored arrays of dataset '{dataset.name}' could not be read: {exc}") from None
    task = profile.get("task", "classification")
    files = [str(f) for f in arrays["files"]]
    if task == "detection":
        offsets = arrays["box_offsets"]
        boxes = [arrays["box_coords"][offsets[i]:offsets[i + 1]] for i in range(len(files))]
        box_labels = [arrays["box_labels"][offsets[i]:offsets[i + 1]] for i in range(len(files))]
        return ImageData(X=arrays["X"], y=None, boxes=boxes, box_labels=box_labels, files=files, task=task)
    return ImageData(X=arrays["X"], y=arrays["labels"], boxes=None, box_labels=None, files=files, task=task)
