"""Declaring an algorithm: its hyperparameters (:class:`Hyperparameter`) and metrics (:class:`Metric`).

An :class:`algorithms.base.Estimator` lists these once; that declaration drives REST validation,
the UI forms, tuning ranges and Autotune. Both classes are re-exported by :mod:`algorithms.base`,
where callers import them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Hyperparameter", "Metric"]

_HP_TYPES = ("float", "int", "categorical", "bool")
_SCALES = ("linear", "log")
_DIRECTIONS = ("maximize", "minimize")
_CHANNELS = ("train", "validation")
_TRUE_STRINGS = frozenset({"true", "t", "yes", "y", "on", "1"})
_FALSE_STRINGS = frozenset({"false", "f", "no", "n", "off", "0"})


def _show(value: Any) -> str:
    """Render a user-supplied value for an error message.

    Strings are quoted so that ``'abc'`` and an empty string stay visible; numbers are shown
    as the user wrote them (``5`` rather than ``5.0``).
    """
    return repr(value) if isinstance(value, str) else str(value)


@dataclass(frozen=True)
class Hyperparameter:
    """One declared hyperparameter.

    Parameters
    ----------
    name : str
        Keyword argument name of the estimator.
    type : {"float", "int", "categorical", "bool"}
        Declared type; form strings are coerced to it.
    default : Any
        Value used when the caller does not give one. Must itself be valid.
    min, max : float or int, optional
        Inclusive bounds for numeric types.
    choices : tuple, optional
        Allowed values of a categorical hyperparameter.
    scale : {"linear", "log"}
        How a tuner should sample the range.
    tunable : bool
        Whether tuning jobs and Autotune may vary it.
    help : str
        One line shown next to the form field.
    """

    name: str
    type: str
    default: Any
    min: float | int | None = None
    max: float | int | None = None
    choices: tuple[Any, ...] | None = None
    scale: str = "linear"
    tunable: bool = True
    help: str = ""

    def __post_init__(self) -> None:
        # Declarations are code, so a bad one is a programming error: fail at import time.
        if self.type not in _HP_TYPES:
            raise TypeError(f"hyperparameter {self.name!r}: type must be one of {_HP_TYPES}")
        if self.scale not in _SCALES:
            raise TypeError(f"hyperparameter {self.name!r}: scale must be one of {_SCALES}")
        if self.type == "categorical" and not self.choices:
            raise TypeError(f"hyperparameter {self.name!r}: categorical needs choices")
        if self.choices is not None and not isinstance(self.choices, tuple):
            raise TypeError(f"hyperparameter {self.name!r}: choices must be a tuple (frozen dataclass)")
        if self.scale == "log" and (self.min is None or self.min <= 0):
            raise TypeError(f"hyperparameter {self.name!r}: log scale needs min > 0")
        try:
            self.coerce(self.default)
        except ValueError as exc:
            raise TypeError(f"hyperparameter {self.name!r}: invalid default: {exc}") from exc

    @property
    def is_numeric(self) -> bool:
        """Whether the hyperparameter is ``float`` or ``int`` (has a range and a scale)."""
        return self.type in ("float", "int")

    def coerce(self, value: Any) -> Any:
        """Convert ``value`` to the declared type and check it.

        Parameters
        ----------
        value : Any
            A Python value or a string from an HTML form (``"0.1"``, ``"true"``, ``"on"``).

        Returns
        -------
        Any
            The value as ``float``, ``int``, ``bool`` or one of ``choices``.

        Raises
        ------
        ValueError
            With a message naming the field and what it accepts.
        """
        coerced = getattr(self, f"_coerce_{self.type}")(value)
        if self.is_numeric:
            self._check_range(value, coerced)
        return coerced

    def _coerce_float(self, value: Any) -> float:
        if isinstance(value, str):
            try:
                result = float(value.strip())
            except ValueError:
                raise ValueError(f"{self.name} must be a number (got {_show(value)})") from None
        elif isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
            # bool is an int subclass; True as a learning rate is almost surely a form mix-up.
            raise ValueError(f"{self.name} must be a number (got {_show(value)})")
        else:
            result = float(value)
        if not math.isfinite(result):
            raise ValueError(f"{self.name} must be a finite number (got {_show(value)})")
        return result

    def _coerce_int(self, value: Any) -> int:
        message = f"{self.name} must be an integer (got {_show(value)})"
        if isinstance(value, bool):
            raise ValueError(message)
        if isinstance(value, int | np.integer):
            return int(value)
        if isinstance(value, str):
            text = value.strip()
            try:
                return int(text)
            except ValueError:
                pass
            try:
                value = float(text)
            except ValueError:
                raise ValueError(message) from None
        # Accept 10.0 / "1e3": JSON clients and tuners often produce integral floats.
        if isinstance(value, float | np.floating) and math.isfinite(value) and float(value).is_integer():
            return int(value)
        raise ValueError(message)

    def _coerce_bool(self, value: Any) -> bool:
        if isinstance(value, bool | np.bool_):
            return bool(value)
        if isinstance(value, int | np.integer) and value in (0, 1):
            return bool(value)
        if isinstance(value, str):
            text = value.strip().lower()
            if text in _TRUE_STRINGS:
                return True
            if text in _FALSE_STRINGS:
                return False
        raise ValueError(f"{self.name} must be a boolean, true or false (got {_show(value)})")

    def _coerce_categorical(self, value: Any) -> Any:
        assert self.choices is not None
        for choice in self.choices:
            if value == choice and type(value) is type(choice):
                return choice
        if isinstance(value, str):
            # Form posts send every choice as text, whatever its declared type.
            for choice in self.choices:
                if value.strip() == str(choice):
                    return choice
        allowed = ", ".join(_show(choice) for choice in self.choices)
        raise ValueError(f"{self.name} must be one of {allowed} (got {_show(value)})")

    def _check_range(self, raw: Any, value: float | int) -> None:
        low, high = self.min, self.max
        if low is not None and high is not None:
            if not low <= value <= high:
                raise ValueError(f"{self.name} must be between {low} and {high} (got {_show(raw)})")
        elif low is not None and value < low:
            raise ValueError(f"{self.name} must be >= {low} (got {_show(raw)})")
        elif high is not None and value > high:
            raise ValueError(f"{self.name} must be <= {high} (got {_show(raw)})")

    def to_dict(self) -> dict[str, Any]:
        """Describe the hyperparameter for the REST API and the UI form.

        Returns
        -------
        dict
            ``{name, type, default, min?, max?, choices?, scale?, tunable, help}``; keys without a
            meaning for this type are omitted (``scale`` only for numeric types).
        """
        out: dict[str, Any] = {"name": self.name, "type": self.type, "default": self.default}
        if self.min is not None:
            out["min"] = self.min
        if self.max is not None:
            out["max"] = self.max
        if self.choices is not None:
            out["choices"] = list(self.choices)
        if self.is_numeric:
            out["scale"] = self.scale
        out["tunable"] = self.tunable
        out["help"] = self.help
        return out


@dataclass(frozen=True)
class Metric:
    """A metric an estimator reports through its callback.

    Parameters
    ----------
    name : str
        ``"<channel>:<metric>"`` with channel ``train`` or ``validation``, e.g. ``"validation:auc"``.
    direction : {"maximize", "minimize"}
        Which way is better; tuning objectives and early stopping rely on it.
    """

    name: str
    direction: str

    def __post_init__(self) -> None:
        channel, sep, metric = self.name.partition(":")
        if not sep or channel not in _CHANNELS or not metric:
            raise TypeError(f"metric name {self.name!r} must look like '<train|validation>:<metric>'")
        if self.direction not in _DIRECTIONS:
            raise TypeError(f"metric {self.name!r}: direction must be one of {_DIRECTIONS}")

    def to_dict(self) -> dict[str, str]:
        """Return ``{name, direction}`` for the REST API."""
        return {"name": self.name, "direction": self.direction}
