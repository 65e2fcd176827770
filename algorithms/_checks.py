"""Input checks shared by the built-in algorithms.

Every message names the argument (``X``, ``X_val``, ``y``...) and says what to do about the
problem, because it reaches the user verbatim as a training-job failure reason.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "MAX_AUTO_CLASSES",
    "as_labels",
    "as_matrix",
    "as_vector",
    "check_channel",
    "check_finite",
    "check_saved_array",
    "check_saved_count",
    "infer_predictor_type",
    "raise_non_finite",
]

# With predictor_type="auto", integer targets with more distinct values than this are a
# regression target (ages, counts, prices) rather than that many classes.
MAX_AUTO_CLASSES = 20


# -- features ------------------------------------------------------------------------------------


def as_matrix(
    X: Any,
    name: str,
    n_features: int | None = None,
    *,
    finite: bool = True,
    allow_nan: bool = False,
) -> np.ndarray:
    """Return ``X`` as a 2-D float array, or raise a ``ValueError`` a user can act on.

    Parameters
    ----------
    X : array-like
        The data; ``None`` is reported as missing.
    name : str
        How the messages call the argument (``"X"``, ``"X_val"``...).
    n_features : int, optional
        Required number of columns (the fitted model's).
    finite : bool
        Reject NaN and infinity, naming the first column that holds one. ``False`` leaves the
        test to the caller (e.g. one that checks a large array chunk by chunk).
    allow_nan : bool
        NaN marks a missing value to impute: the array is always float64 (``None`` cells become
        NaN) and only infinity is rejected.

    Returns
    -------
    ndarray of shape (n_samples, n_features)
        float32 and float64 data as given (no copy); other numbers as float64.
    """
    if X is None:
        raise ValueError(f"{name} is required")
    nan_note = " (NaN allowed for missing values)" if allow_nan else ""
    message = f"{name} must contain only numbers{nan_note}; encode text or categorical columns first"
    if allow_nan:
        # Converted in one step so that None cells become NaN (missing) rather than an error.
        try:
            array = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{message} ({exc})") from None
    else:
        array = np.asarray(X)
        if array.dtype.kind == "c":
            raise ValueError(f"{name} must contain real numbers, got complex values")
        if array.dtype not in (np.float32, np.float64):
            try:
                array = array.astype(np.float64)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{message} ({exc})") from None
    if array.ndim != 2:
        hint = f"; for a single feature use {name}.reshape(-1, 1)" if array.ndim == 1 else ""
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got {array.ndim}-D{hint}")
    if array.shape[0] == 0:
        raise ValueError(f"{name} has no rows")
    if array.shape[1] == 0:
        raise ValueError(f"{name} has no feature columns")
    if n_features is not None and array.shape[1] != n_features:
        raise ValueError(f"{name} has {array.shape[1]} features, but the model expects {n_features}")
    if allow_nan:
        infinite = np.isinf(array)
        if infinite.any():
            column = int(np.argmax(infinite.any(axis=0)))
            raise ValueError(
                f"{name} contains infinite values in column {column}; only finite numbers or NaN (missing) are allowed"
            )
    elif finite:
        check_finite(array, name, row_offset=None)
    return array


def check_finite(array: np.ndarray, name: str, *, row_offset: int | None = 0) -> None:
    """Reject NaN / infinity; one cheap sum in the common all-finite case, as scikit-learn does.

    ``row_offset`` is passed on to :func:`raise_non_finite`.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        total = array.sum(dtype=np.float64)
    if not np.isfinite(total):
        # The sum also overflows for huge finite values; only a real NaN/inf is an error.
        raise_non_finite(array, name, row_offset=row_offset)


def raise_non_finite(array: np.ndarray, name: str, *, row_offset: int | None = 0) -> None:
    """Raise a ``ValueError`` naming the first column holding NaN or infinity, if any.

    Parameters
    ----------
    array : ndarray of shape (n_rows, n_features)
    name : str
    row_offset : int or None
        Index of the first row of ``array`` in the whole data (for data checked block by block);
        the message then also names the first bad row. ``None`` leaves the row out.
    """
    bad = ~np.isfinite(array)
    if not bad.any():
        return
    column = int(np.argmax(bad.any(axis=0)))
    where = f"column {column}"
    if row_offset is not None:
        where += f" (first at row {int(np.argmax(bad[:, column])) + row_offset})"
    if np.isnan(array[:, column]).any():
        raise ValueError(f"{name} contains NaN in {where}; impute or drop missing values first")
    raise ValueError(f"{name} contains infinite values in {where}; replace or drop them first")


# -- targets -------------------------------------------------------------------------------------


def as_vector(y: Any, name: str, n_samples: int) -> np.ndarray:
    """Return ``y`` as a 1-D array of ``n_samples`` values (a single column is flattened)."""
    array = np.asarray(y)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D (n_samples,), got shape {array.shape}")
    if array.shape[0] != n_samples:
        raise ValueError(f"{name} has {array.shape[0]} values but X{name[1:]} has {n_samples} rows")
    return array


def as_labels(y: Any, name: str, n_samples: int, *, learner: str) -> np.ndarray:
    """Return the targets of a supervised ``learner`` as numbers or fixed-width strings.

    Parameters
    ----------
    y : array-like of shape (n_samples,) or (n_samples, 1)
    name : str
        ``"y"`` or ``"y_val"``.
    n_samples : int
        Rows of the matching ``X``.
    learner : str
        Named in the message when ``y`` is missing ("... is required: k-NN is supervised").

    Returns
    -------
    ndarray of shape (n_samples,)
        Never object dtype (object labels cannot be saved without pickle): strings become
        unicode, other objects float64. Float targets are finite.
    """
    if y is None:
        raise ValueError(f"{name} is required: {learner} is supervised")
    array = as_vector(y, name, n_samples)
    if array.dtype.kind == "O":
        # Object arrays come from CSV readers and lists of mixed Python values.
        if all(isinstance(value, str) for value in array):
            array = array.astype(str)
        else:
            try:
                array = array.astype(np.float64)
            except (TypeError, ValueError):
                raise ValueError(
                    f"{name} mixes strings with other values (or holds None); use one label type"
                ) from None
    if array.dtype.kind not in "biufUS":
        raise ValueError(f"{name} has unsupported dtype {array.dtype}")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values; drop rows without a target")
    return array


def infer_predictor_type(y: np.ndarray) -> str:
    """``"classifier"`` or ``"regressor"``: what ``predictor_type="auto"`` means for these targets.

    Text and booleans are classes; non-integral numbers, or integers with more than
    ``MAX_AUTO_CLASSES`` distinct values, are a regression target.
    """
    if y.dtype.kind in "USb":
        return "classifier"
    distinct = np.unique(y)
    if y.dtype.kind == "f" and not np.all(distinct == np.round(distinct)):
        return "regressor"
    return "regressor" if distinct.size > MAX_AUTO_CLASSES else "classifier"


# -- evaluation and saved models -----------------------------------------------------------------


def check_channel(channel: str) -> None:
    """Reject a metric channel other than ``train`` or ``validation``."""
    if channel not in ("train", "validation"):
        raise ValueError(f"channel must be 'train' or 'validation', got {channel!r}")


def check_saved_count(attr: str, value: Any, minimum: int = 1) -> None:
    """Check that a loaded size (``n_features_in_``...) is an integer of at least ``minimum``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"saved model has an invalid {attr} {value!r}")


def check_saved_array(
    attr: str, value: Any, shape: tuple[int, ...], kinds: str = "f", *, owner: str = "model"
) -> np.ndarray:
    """Check the shape and dtype kind of a loaded array; return it as an ndarray.

    Parameters
    ----------
    attr : str
        Attribute name, for the message.
    value : array-like
    shape : tuple of int
        Expected shape.
    kinds : str
        Allowed ``dtype.kind`` letters.
    owner : str
        How the message calls the model ("saved model has ...").
    """
    array = np.asarray(value)
    if array.shape != shape or array.dtype.kind not in kinds:
        raise ValueError(f"saved {owner} has {attr} of shape {array.shape}, expected {shape}")
    return array
