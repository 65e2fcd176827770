"""The estimator contract shared by every built-in algorithm.

An algorithm is a subclass of :class:`Estimator` that declares, once, its hyperparameters
(:class:`Hyperparameter`) and the metrics it reports (:class:`Metric`). That declaration drives
REST validation, the UI forms, tuning ranges and Autotune, so nothing else may restate it. Both
classes live in :mod:`algorithms._declaration` and are imported from here.

The module is pure Python + numpy: algorithms know nothing of Django, Celery or storage.
Models are persisted as a JSON manifest plus an ``.npz`` file read with ``allow_pickle=False``,
because a model uploaded by one user must never be able to run code in another user's worker.
"""

from __future__ import annotations

import inspect
import json
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from algorithms._declaration import Hyperparameter, Metric

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
    "rng_from_state",
]

FORMAT_VERSION = 1
MANIFEST_FILENAME = "manifest.json"
ARRAYS_FILENAME = "arrays.npz"
_FORMAT_TAG = "studio-model"

Callback = Callable[[int, dict[str, float]], "bool | None"]
"""``callback(step, metrics)``; returning ``False`` asks the estimator to stop training."""

# Kinds np.load can read back without pickle; "O" (objects) and "V" (void/structured) are excluded.
_SAFE_ARRAY_KINDS = frozenset("biufcUSmM")


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


def rng_from_state(state: Any) -> np.random.Generator:
    """Rebuild a generator from ``rng.bit_generator.state`` (plain ints, saved in a training state).

    The state may come from another user's file: it is checked, and anything but a PCG64 state
    raises ``ValueError``.
    """
    generator = np.random.default_rng(0)
    try:
        if not isinstance(state, dict) or state.get("bit_generator") != "PCG64":
            raise ValueError
        generator.bit_generator.state = state
    except (TypeError, ValueError, KeyError, OverflowError):
        raise ValueError("saved training state has an invalid random generator state") from None
    return generator


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
    in ``manifest.json``). ``save``/``load`` then work without further code. A ``resumable``
    estimator also lists there, and in ``_training_state``, what resuming needs beyond the model
    (optimizer state, a JSON ``training_state_``), so the saved model is the checkpoint.

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
    budget_hyperparameter : str or None
        Name of the int hyperparameter that measures training effort (``"epochs"``), which
        Hyperband varies; None when there is none.
    resumable : bool
        Whether ``fit(..., resume=True)`` continues training from the saved training state
        (the checkpoint is simply the saved model). A resumable estimator has a
        ``budget_hyperparameter``; callers check this flag before passing ``resume``.

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

    budget_hyperparameter: ClassVar[str | None] = None
    resumable: ClassVar[bool] = False

    _fitted_arrays: ClassVar[tuple[str, ...]] = ()
    _fitted_json: ClassVar[tuple[str, ...]] = ()
    # Fitted attributes (listed above too) that only resuming needs, e.g. optimizer moments:
    # models saved before they existed lack them, so load() sets them to None and the model
    # still predicts; _check_is_fitted ignores them.
    _training_state: ClassVar[tuple[str, ...]] = ()

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
        budget = next((hp for hp in cls.hyperparameters if hp.name == cls.budget_hyperparameter), None)
        if cls.budget_hyperparameter is not None and (budget is None or budget.type != "int"):
            raise TypeError(f"{cls.__name__}: budget_hyperparameter must name a declared int hyperparameter")
        if cls.resumable and (budget is None or "resume" not in inspect.signature(cls.fit).parameters):
            raise TypeError(f"{cls.__name__}: a resumable estimator needs a budget_hyperparameter and fit(resume=...)")
        unlisted = set(cls._training_state) - set(cls._fitted_arrays) - set(cls._fitted_json)
        if unlisted:
            raise TypeError(f"{cls.__name__}: _training_state names unsaved attributes {sorted(unlisted)}")
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
        resume: bool = False,
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
        resume : bool
            Only for ``resumable`` estimators (the caller checks that flag; others need not
            accept the keyword). When True and the estimator is fitted (by fit or load),
            continue training from its saved training state up to ``epochs`` total epochs (call
            ``set_params(epochs=...)`` first) instead of starting over; the callback's steps
            continue from the last epoch + 1. Data must have the same
            features/classes/vocabulary (raise ValueError naming the mismatch otherwise).

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
        attrs = [attr for attr in self._fitted_arrays + self._fitted_json if attr not in self._training_state]
        if not attrs or not all(hasattr(self, attr) for attr in attrs):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit() first")

    def _check_resumable(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Return the ``training_state_`` dict ``fit(resume=True)`` continues from, after checks.

        A resumable estimator keeps a JSON ``training_state_`` (listed in ``_training_state``)
        holding at least the validated ``"hyperparameters"`` it was trained with. Raises
        :class:`NotFittedError` (a ``ValueError``) when not fitted, and ``ValueError`` when the
        state is missing (a model saved before it existed) or a hyperparameter other than the
        budget one changed.
        """
        kind = type(self).__name__
        try:
            self._check_is_fitted()
        except NotFittedError:
            raise NotFittedError(f"this {kind} is not fitted; nothing to resume") from None
        state = getattr(self, "training_state_", None)
        if any(getattr(self, attr, None) is None for attr in self._training_state) or not (
            isinstance(state, dict) and isinstance(state.get("hyperparameters"), dict)
        ):
            raise ValueError(
                f"this {kind} has no saved training state (saved before training could resume?); "
                "it can predict, but to train more fit it again without resume"
            )
        trained_with = state["hyperparameters"]
        budget = self.budget_hyperparameter
        changed = [name for name, value in params.items() if name != budget and trained_with.get(name) != value]
        if changed:
            raise ValueError(
                f"cannot resume: {', '.join(changed)} differ(s) from the value(s) the model was trained with; "
                f"only {self.budget_hyperparameter} may change"
            )
        return state

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
        missing = [attr for attr in cls._fitted_json if attr not in fitted and attr not in cls._training_state]
        if missing:
            raise ValueError(f"{directory}: manifest lacks fitted values {', '.join(missing)}")
        for attr in cls._fitted_json:
            setattr(estimator, attr, fitted.get(attr))
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
                elif (attr in fitted and fitted[attr] is None) or attr in cls._training_state:
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
