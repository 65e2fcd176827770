"""Rows of a table as the models see them, with no Django: shared by dataset loading (workers) and
endpoint instances, which start without Django so a cold start stays short."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from studio.datasets.profiling import BOOL_TOKENS, MISSING_TOKENS, is_missing


class DatasetError(ValueError):
    """The dataset cannot be used as asked; the message names the column, rows or setting at fault."""


@dataclass
class TabularData:
    """The feature columns and target of some rows of a dataset.

    Numeric columns live together in ``numeric`` (float64, NaN where a cell is missing); text columns
    (``categorical``) are object arrays of stripped strings with ``""`` for a missing cell.
    """

    feature_names: list[str]  # every feature column, in the dataset's order
    numeric: np.ndarray  # (n, number of numeric columns) float64
    numeric_names: list[str]
    text: dict[str, np.ndarray]  # categorical column -> (n,) object array of str
    y: np.ndarray | None  # (n,) float64 when every target value is a number, else str labels; None without target
    rows: np.ndarray  # (n,) 1-based data-row number in the file of each row, for messages
    n_dropped: int  # rows left out because their target was missing
    target: str = ""
    numeric_index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.numeric_index = {name: j for j, name in enumerate(self.numeric_names)}

    @property
    def n_rows(self) -> int:
        return int(self.rows.shape[0])

    @property
    def categorical(self) -> list[str]:
        return [name for name in self.feature_names if name in self.text]

    @property
    def is_numeric_target(self) -> bool:
        return self.y is not None and self.y.dtype.kind == "f"

    @property
    def X(self) -> np.ndarray:
        """The feature matrix of an all-numeric table (NaN for missing); text columns need a preprocessor."""
        if self.text:
            raise DatasetError("text columns " + ", ".join(f"'{c}'" for c in self.categorical)
                               + " must be encoded first: use studio.datasets.preprocessing.TabularPreprocessor")
        order = [self.numeric_index[name] for name in self.feature_names]
        return self.numeric if order == list(range(len(order))) else self.numeric[:, order]

    def column(self, name: str) -> np.ndarray:
        return self.text[name] if name in self.text else self.numeric[:, self.numeric_index[name]]

    def take(self, index: np.ndarray) -> TabularData:
        """The rows at ``index`` (integer positions or a boolean mask), in that order."""
        return TabularData(
            feature_names=list(self.feature_names), numeric=self.numeric[index], numeric_names=list(self.numeric_names),
            text={name: values[index] for name, values in self.text.items()},
            y=None if self.y is None else self.y[index], rows=self.rows[index], n_dropped=self.n_dropped,
            target=self.target,
        )


def rows_phrase(rows: list[int], count: int) -> str:
    """"row 3", "rows 3, 17" or "rows 1, 2, 3, 4, 5 and 4 more"."""
    listed = ", ".join(str(r) for r in rows)
    noun = "row" if count == 1 else "rows"
    more = f" and {count - len(rows)} more" if count > len(rows) else ""
    return f"{noun} {listed}{more}"


def feature_value(raw: str) -> float | None:
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
