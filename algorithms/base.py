"""The estimator contract shared by every built-in algorithm.

An algorithm is a subclass of :class:`Estimator` that declares, once, its hyperparameters
(:class:`Hyperparameter`) and the metrics it reports (:class:`Metric`). That declaration drives
REST validation, the UI forms, tuning ranges and Autotune, so nothing else may restate it.

The module is pure Python + numpy: algorithms know nothing of Django, Celery or storage.
Models are persisted as a JSON manifest plus an ``.npz`` file read with ``allow_pickle=False``,
because a model uploaded by one user must never be able to run code in another user's worker.
"""

from __future__ import annotations

import inspect
import json
import math
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

__all__ = [
    "ARRAYS_FILENAME",
    "FORMAT_VERSION",
    "MANIFEST_FILENAME",
    "Callback",
    "Estimator",
    "Hyperparameter",
    "HyperparameterError",
    "Metric",
    "NotFittedError",
    "read_manifest",
]

FORMAT_VERSION = 1
MANIFEST_FILENAME = "manifest.json"
ARRAYS_FILENAME = "arrays.npz"
_FORMAT_TAG = "studio-model"

Callback = Callable[[int, dict[str, float]], "bool | None"]
"""``callback(step, metrics)``; returning ``False`` asks the estimator to stop training."""

_HP_TYPES = ("float", "int", "categorical", "bool")
_SCALES = ("linear", "log")
_DIRECTIONS = ("maximize", "minimize")
_CHANNELS = ("train", "validation")
_TRUE_STRINGS = frozenset({"true", "t", "yes", "y", "on", "1"})
_FALSE_STRINGS = frozenset({"false", "f", "no", "n", "off", "0"})
# Kinds np.load can read back without pickle; "O" (objects) and "V" (void/structured) are excluded.
_SAFE_ARRAY_KINDS = frozenset("biufcUSmM")


def _show(value: Any) -> str:
    """Render a user-supplied value for an error message.

    Strings are quoted so that ``'abc'`` and an empty string stay visible; numbers are shown
    as the user wrote them (``5`` rather than ``5.0``).
    """
    return repr(value) if isinstance(value, str) else str(value)


class HyperparameterError(ValueError):
    """Invalid hyperparameters, with every problem collected per field.

    Parameters
    ----------
    errors : dict of str to list of str
        Field name -> human readable messages. Each message names the field and what is allowed,
        so the API can return it verbatim as a 400 body.
    """

    def __init__(self, errors: Mapping[str, list[str]]) -> None:
        self.errors: dict[str, list[str]] = {key: list(msgs) for key, msgs in errors.items()}
        super().__init__("; ".join(msg for msgs in self.errors.values() for msg in msgs))

    def __reduce__(self) -> tuple[type[HyperparameterError], tuple[dict[str, list[str]]]]:
        # Celery result backends pickle exceptions; the default reduce would pass the joined
        # message back as ``errors``.
        return (type(self), (self.errors,))


class NotFittedError(ValueError, AttributeError):
    """The estimator is used (predict, save...) before ``fit``; same bases as scikit-learn's."""


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


def _jsonable(value: Any) -> Any:
    """Convert numpy scalars and tuples inside fitted attributes to plain JSON types."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        raise TypeError("numpy arrays belong in _fitted_arrays, not _fitted_json")
    return value


def read_manifest(path: str | Path) -> dict[str, Any]:
    """Read and sanity-check the manifest of a saved model directory.

    Parameters
    ----------
    path : str or Path
        Directory written by :meth:`Estimator.save`.

    Returns
    -------
    dict
        The parsed manifest; ``manifest["algorithm"]`` names the estimator class.

    Raises
    ------
    ValueError
        If the directory does not hold a Studio model of a supported format version.
    """
    manifest_path = Path(path) / MANIFEST_FILENAME
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{manifest_path} not found: not a saved Studio model") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{manifest_path} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT_TAG:
        raise ValueError(f"{manifest_path} is not a Studio model manifest")
    version = manifest.get("format_version")
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise ValueError(
            f"{manifest_path}: unsupported format_version {version!r} (this code reads versions 1 to {FORMAT_VERSION})"
        )
    if not isinstance(manifest.get("algorithm"), str):
        raise ValueError(f"{manifest_path}: missing algorithm name")
    return manifest


class Estimator:
    """Base class of every built-in algorithm, in the scikit-learn style.

    Subclasses set the class attributes below, accept their hyperparameters as explicit keyword
    arguments with the declared defaults, and list their fitted attributes in ``_fitted_arrays``
    (numpy arrays, saved to ``arrays.npz``) and ``_fitted_json`` (scalars, strings, lists, saved
    in ``manifest.json``). ``save``/``load`` then work without further code.

    Attributes
    ----------
    name : str
        Stable identifier used in the API and in saved manifests, e.g. ``"linear-learner"``.
    title : str
        Human readable name.
    task : str
        What the algorithm does, e.g. ``"regression / classification"``.
    input : {"tabular", "text", "image"}
        Kind of dataset it trains on.
    hyperparameters : tuple of Hyperparameter
        The single declaration of its hyperparameters.
    metrics : tuple of Metric
        Every metric name the callback or ``evaluate`` may report.
    default_objective : str
        Metric a tuning job optimizes when the user does not choose one.
    target : {"required", "optional", "none"}
        Whether ``fit`` needs labels ``y``: supervised learners require them, clustering and
        projections take none, anomaly detectors use them only to report AUC.

    Fitted attributes every estimator sets
    --------------------------------------
    task_ : {"regression", "binary_classification", "multiclass_classification", "clustering",
             "dimensionality_reduction", "anomaly_detection"}
        What the fitted model does. The studio chooses result plots and prediction shapes by it.
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    task: ClassVar[str] = ""
    input: ClassVar[str] = "tabular"
    hyperparameters: ClassVar[tuple[Hyperparameter, ...]] = ()
    metrics: ClassVar[tuple[Metric, ...]] = ()
    default_objective: ClassVar[str] = ""
    target: ClassVar[str] = "required"

    _fitted_arrays: ClassVar[tuple[str, ...]] = ()
    _fitted_json: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name:
            cls._check_declaration()

    @classmethod
    def _check_declaration(cls) -> None:
        # Catch drift between the declaration and the constructor at import time rather than
        # as a confusing failure in a worker.
        names = [hp.name for hp in cls.hyperparameters]
        if len(set(names)) != len(names):
            raise TypeError(f"{cls.__name__}: duplicate hyperparameter names")
        if cls.input not in ("tabular", "text", "image"):
            raise TypeError(f"{cls.__name__}: input must be tabular, text or image")
        if cls.target not in ("required", "optional", "none"):
            raise TypeError(f"{cls.__name__}: target must be required, optional or none")
        metric_names = {metric.name for metric in cls.metrics}
        if cls.default_objective not in metric_names:
            raise TypeError(f"{cls.__name__}: default_objective must be one of its declared metrics")
        if cls.__init__ is not Estimator.__init__:
            params = {
                p.name: p.default
                for p in inspect.signature(cls.__init__).parameters.values()
                if p.name != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD
            }
            declared = {hp.name: hp.default for hp in cls.hyperparameters}
            if params != declared:
                raise TypeError(
                    f"{cls.__name__}.__init__ keyword arguments and defaults must match its "
                    f"hyperparameter declaration: {params} != {declared}"
                )

    def __init__(self, **hyperparameters: Any) -> None:
        known = {hp.name: hp.default for hp in self.hyperparameters}
        unknown = sorted(set(hyperparameters) - set(known))
        if unknown:
            raise TypeError(
                f"{type(self).__name__} got unexpected hyperparameter(s) {', '.join(unknown)}; "
                f"known: {', '.join(known)}"
            )
        # Stored as given, not validated, as in scikit-learn: set_params and clones must round-trip
        # exactly, and fit() validates everything at once.
        for key, default in known.items():
            setattr(self, key, hyperparameters.get(key, default))

    def __repr__(self) -> str:
        changed = ", ".join(
            f"{hp.name}={getattr(self, hp.name, hp.default)!r}"
            for hp in self.hyperparameters
            if getattr(self, hp.name, hp.default) != hp.default
        )
        return f"{type(self).__name__}({changed})"

    # -- declaration helpers -------------------------------------------------------------------

    @classmethod
    def validate_hyperparameters(cls, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Coerce, complete and check hyperparameters, e.g. from an API body or an HTML form.

        Parameters
        ----------
        values : mapping, optional
            Name -> value. Strings are coerced to the declared type (``"0.1"``, ``"true"``, ``"on"``);
            ``None`` or an empty string means "use the default" (an empty form field).

        Returns
        -------
        dict
            Every declared hyperparameter, in declaration order, with a value of its declared type.

        Raises
        ------
        HyperparameterError
            Listing every problem at once: unknown names, wrong types, out-of-range values,
            values not among the choices.
        """
        values = dict(values or {})
        errors: dict[str, list[str]] = {}
        declared = {hp.name: hp for hp in cls.hyperparameters}
        for key in values:
            if key not in declared:
                errors.setdefault(str(key), []).append(
                    f"unknown hyperparameter {str(key)!r}; known: {', '.join(declared)}"
                )
        result: dict[str, Any] = {}
        for name, hp in declared.items():
            raw = values.get(name)
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                result[name] = hp.default
                continue
            try:
                result[name] = hp.coerce(raw)
            except ValueError as exc:
                errors.setdefault(name, []).append(str(exc))
        if not errors:
            errors = cls._check_combination(result)
        if errors:
            raise HyperparameterError(errors)
        return result

    @classmethod
    def _check_combination(cls, values: dict[str, Any]) -> dict[str, list[str]]:
        """Check rules that involve several hyperparameters; override when there are any.

        Parameters
        ----------
        values : dict
            Hyperparameters that are each valid on their own.

        Returns
        -------
        dict of str to list of str
            Field name -> messages; empty when the combination is valid.
        """
        return {}

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """Describe the algorithm for ``GET /algorithms`` and the training form.

        Returns
        -------
        dict
            ``{name, title, task, input, hyperparameters, metrics, default_objective}``.
        """
        return {
            "name": cls.name,
            "title": cls.title,
            "task": cls.task,
            "target": cls.target,
            "input": cls.input,
            "hyperparameters": [hp.to_dict() for hp in cls.hyperparameters],
            "metrics": [metric.to_dict() for metric in cls.metrics],
            "default_objective": cls.default_objective,
        }

    @classmethod
    def metric_direction(cls, name: str) -> str:
        """Return ``"maximize"`` or ``"minimize"`` for a declared metric name.

        Raises
        ------
        KeyError
            If the metric is not declared by this algorithm.
        """
        for metric in cls.metrics:
            if metric.name == name:
                return metric.direction
        raise KeyError(f"{cls.name} does not report metric {name!r}")

    # -- scikit-learn style parameters ---------------------------------------------------------

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Return the hyperparameters as given to the constructor or ``set_params``.

        Parameters
        ----------
        deep : bool
            Accepted for scikit-learn compatibility; estimators here have no nested estimators.
        """
        return {hp.name: getattr(self, hp.name) for hp in self.hyperparameters}

    def set_params(self, **params: Any) -> Self:
        """Set hyperparameters; unknown names raise ``ValueError`` as in scikit-learn.

        Returns
        -------
        Estimator
            ``self``, so calls can be chained.
        """
        known = {hp.name for hp in self.hyperparameters}
        for key, value in params.items():
            if key not in known:
                raise ValueError(
                    f"invalid hyperparameter {key!r} for {type(self).__name__}; known: {', '.join(sorted(known))}"
                )
            setattr(self, key, value)
        return self

    def _validated_params(self) -> dict[str, Any]:
        """Validate the current hyperparameters; ``fit`` calls it first."""
        return self.validate_hyperparameters(self.get_params())

    # -- the training protocol -----------------------------------------------------------------

    def fit(
        self,
        X: Any,
        y: Any = None,
        *,
        X_val: Any = None,
        y_val: Any = None,
        callback: Callback | None = None,
    ) -> Self:
        """Train the estimator.

        Parameters
        ----------
        X : array-like
            Training inputs.
        y : array-like, optional
            Training targets for supervised algorithms.
        X_val, y_val : array-like, optional
            Validation channel; when given, ``validation:*`` metrics are reported.
        callback : callable, optional
            ``callback(step, metrics)`` called as training progresses, with metric names
            ``"<channel>:<metric>"``. Returning ``False`` stops training; the estimator stays
            usable and records ``stopped_early_ = True``.

        Returns
        -------
        Estimator
            ``self``.
        """
        raise NotImplementedError

    def evaluate(self, X: Any, y: Any = None, *, channel: str = "validation") -> dict[str, float]:
        """Compute the final metrics of a fitted estimator on one channel.

        Parameters
        ----------
        X, y : array-like
            Data of the channel.
        channel : {"train", "validation"}
            Prefix of the returned metric names.

        Returns
        -------
        dict of str to float
            ``{"<channel>:<metric>": value}``.
        """
        raise NotImplementedError

    @staticmethod
    def _emit(callback: Callback | None, step: int, metrics: dict[str, float]) -> bool:
        """Send metrics to the callback; return ``False`` when it asks to stop.

        Only an explicit falsy answer stops training, so callbacks that return nothing
        (``None``) never stop it by accident.
        """
        if callback is None:
            return True
        answer = callback(step, metrics)
        return True if answer is None else bool(answer)

    # -- persistence ---------------------------------------------------------------------------

    def _check_is_fitted(self) -> None:
        """Raise :class:`NotFittedError` unless ``fit`` (or ``load``) has run."""
        attrs = self._fitted_arrays + self._fitted_json
        if not attrs or not all(hasattr(self, attr) for attr in attrs):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit() first")

    def save(self, path: str | Path) -> Path:
        """Write the fitted estimator to a directory.

        The directory receives ``manifest.json`` (algorithm name, format version, hyperparameters,
        fitted JSON attributes) and ``arrays.npz`` (fitted arrays, no object dtype), so that
        :meth:`load` never needs pickle.

        Parameters
        ----------
        path : str or Path
            Target directory; created if missing, existing model files are overwritten.

        Returns
        -------
        Path
            The directory.
        """
        self._check_is_fitted()
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {}
        fitted: dict[str, Any] = {}
        for attr in self._fitted_arrays:
            value = getattr(self, attr)
            if value is None:
                fitted[attr] = None
                continue
            array = np.asarray(value)
            if array.dtype.kind not in _SAFE_ARRAY_KINDS:
                raise TypeError(
                    f"{attr} has dtype {array.dtype}, which cannot be loaded without pickle; "
                    "store strings as a fixed-width unicode array"
                )
            arrays[attr] = array
        for attr in self._fitted_json:
            fitted[attr] = _jsonable(getattr(self, attr))
        manifest = {
            "format": _FORMAT_TAG,
            "format_version": FORMAT_VERSION,
            "algorithm": self.name,
            "hyperparameters": _jsonable(self._validated_params()),
            "fitted": fitted,
            "arrays": sorted(arrays),
        }
        # Write arrays first: a manifest only exists next to complete arrays.
        with (directory / ARRAYS_FILENAME).open("wb") as fh:
            np.savez(fh, **arrays)
        (directory / MANIFEST_FILENAME).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        return directory

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Rebuild a fitted estimator saved by :meth:`save`.

        Parameters
        ----------
        path : str or Path
            Directory holding ``manifest.json`` and ``arrays.npz``.

        Returns
        -------
        Estimator
            A fitted instance of this class.

        Raises
        ------
        ValueError
            If the directory holds another algorithm, an unsupported format, or incomplete data.
        """
        if not cls.name:
            raise TypeError("call load() on a concrete algorithm class, or use algorithms.load_model()")
        directory = Path(path)
        manifest = read_manifest(directory)
        if manifest["algorithm"] != cls.name:
            raise ValueError(
                f"{directory} holds a {manifest['algorithm']!r} model, not {cls.name!r}; "
                "use algorithms.load_model() to load any algorithm"
            )
        estimator = cls(**cls.validate_hyperparameters(manifest.get("hyperparameters") or {}))
        fitted = manifest.get("fitted") or {}
        missing = [attr for attr in cls._fitted_json if attr not in fitted]
        if missing:
            raise ValueError(f"{directory}: manifest lacks fitted values {', '.join(missing)}")
        for attr in cls._fitted_json:
            setattr(estimator, attr, fitted[attr])
        arrays_path = directory / ARRAYS_FILENAME
        try:
            npz = np.load(arrays_path, allow_pickle=False)
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            # numpy reports a file that is not an npz as "pickled data": refused either way.
            raise ValueError(f"{directory}: cannot read {ARRAYS_FILENAME}: {exc}") from None
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise ValueError(f"{directory}: cannot read {ARRAYS_FILENAME}: not an npz archive")
        with npz:
            for attr in cls._fitted_arrays:
                if attr in npz.files:
                    try:
                        array = npz[attr]
                    except ValueError as exc:
                        raise ValueError(f"{directory}: refusing array {attr!r}: {exc}") from None
                    # 0-d arrays were scalars when saved (e.g. a regressor's intercept_).
                    setattr(estimator, attr, array[()] if array.ndim == 0 else array)
                elif attr in fitted and fitted[attr] is None:
                    setattr(estimator, attr, None)
                else:
                    raise ValueError(f"{directory}: {ARRAYS_FILENAME} lacks array {attr!r}")
        estimator._after_load()
        return estimator

    def _after_load(self) -> None:
        """Check and rebuild state after :meth:`load`; raise ``ValueError`` if it is inconsistent.

        The files may come from another user, so an estimator should verify what its prediction
        code relies on (shapes, allowed values) rather than fail later in an endpoint.
        """
