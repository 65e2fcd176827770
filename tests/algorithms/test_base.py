"""The estimator contract: declarations, hyperparameter validation, registry and persistence."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

import algorithms
from algorithms import (
    Estimator,
    Hyperparameter,
    HyperparameterError,
    LinearLearner,
    Metric,
    NotFittedError,
    UnknownAlgorithm,
    get_algorithm,
    list_algorithms,
    load_model,
)
from algorithms.base import ARRAYS_FILENAME, MANIFEST_FILENAME, rng_from_state


class Toy(Estimator):
    """A minimal estimator: remembers the label set and a shift, to test the base class alone."""

    name: ClassVar[str] = "toy"
    title: ClassVar[str] = "Toy"
    task: ClassVar[str] = "testing"
    input: ClassVar[str] = "tabular"
    hyperparameters: ClassVar[tuple[Hyperparameter, ...]] = (
        Hyperparameter("shift", "float", 0.5, min=0.0, max=10.0),
        Hyperparameter("rounds", "int", 3, min=1, max=100),
        Hyperparameter("mode", "categorical", "fast", choices=("fast", "slow")),
        Hyperparameter("flag", "bool", False, tunable=False),
    )
    metrics: ClassVar[tuple[Metric, ...]] = (Metric("train:loss", "minimize"),)
    default_objective: ClassVar[str] = "train:loss"
    _fitted_arrays: ClassVar[tuple[str, ...]] = ("labels_", "offset_", "nothing_")
    _fitted_json: ClassVar[tuple[str, ...]] = ("n_seen_", "history_")

    def __init__(self, shift: float = 0.5, rounds: int = 3, mode: str = "fast", flag: bool = False) -> None:
        super().__init__(shift=shift, rounds=rounds, mode=mode, flag=flag)

    def fit(self, X: Any, y: Any = None, *, X_val: Any = None, y_val: Any = None, callback: Any = None) -> Toy:
        params = self._validated_params()
        self.labels_ = np.unique(np.asarray(y).astype(str))
        self.offset_ = np.asarray(X, dtype=float).mean(axis=0) + params["shift"]
        self.nothing_ = None
        self.n_seen_ = np.int64(len(X))
        self.history_ = (1.0, np.float32(0.5))
        self.stopped_early_ = False
        for step in range(1, params["rounds"] + 1):
            if not self._emit(callback, step, {"train:loss": 1.0 / step}):
                self.stopped_early_ = True
                break
        return self

    def predict(self, X: Any) -> np.ndarray:
        self._check_is_fitted()
        return np.asarray(X, dtype=float) - self.offset_


def fitted_toy() -> Toy:
    return Toy(shift=2.0).fit(np.arange(12.0).reshape(4, 3), ["b", "a", "b", "c"])


class Draws(Estimator):
    """A resumable toy: every round draws a number; resuming must continue the same sequence."""

    name: ClassVar[str] = "draws"
    hyperparameters: ClassVar[tuple[Hyperparameter, ...]] = (
        Hyperparameter("rounds", "int", 3, min=1, max=100),
        Hyperparameter("seed", "int", 0, min=0, max=100),
    )
    metrics: ClassVar[tuple[Metric, ...]] = (Metric("train:loss", "minimize"),)
    default_objective: ClassVar[str] = "train:loss"
    budget_hyperparameter: ClassVar[str | None] = "rounds"
    resumable: ClassVar[bool] = True
    _fitted_arrays: ClassVar[tuple[str, ...]] = ("total_", "history_")
    _fitted_json: ClassVar[tuple[str, ...]] = ("n_epochs_", "training_state_")
    _training_state: ClassVar[tuple[str, ...]] = ("history_", "training_state_")

    def __init__(self, rounds: int = 3, seed: int = 0) -> None:
        super().__init__(rounds=rounds, seed=seed)

    def fit(
        self, X: Any, y: Any = None, *, X_val: Any = None, y_val: Any = None, callback: Any = None, resume: bool = False
    ) -> Draws:
        params = self._validated_params()
        if resume:
            rng = rng_from_state(self._check_resumable(params)["rng"])
            history = self.history_.tolist()
        else:
            rng, history, self.n_epochs_ = np.random.default_rng(params["seed"]), [], 0
        for step in range(self.n_epochs_ + 1, params["rounds"] + 1):
            history.append(float(rng.random()))
            self.n_epochs_ = step
            self._emit(callback, step, {"train:loss": history[-1]})
        self.total_, self.history_ = np.float64(sum(history)), np.array(history)
        self.training_state_ = {"hyperparameters": params, "rng": rng.bit_generator.state}
        return self


def forget_training_state(path: Path, cls: type[Estimator]) -> None:
    """Make a saved model look like one saved before its training state existed."""
    manifest = json.loads((path / MANIFEST_FILENAME).read_text())
    for attr in cls._training_state:
        manifest["fitted"].pop(attr, None)
    manifest["arrays"] = [name for name in manifest["arrays"] if name not in cls._training_state]
    (path / MANIFEST_FILENAME).write_text(json.dumps(manifest))
    with np.load(path / ARRAYS_FILENAME, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files if key not in cls._training_state}
    np.savez(path / ARRAYS_FILENAME, **arrays)


# -- hyperparameter declarations ----------------------------------------------------------------


def test_it_describes_a_numeric_hyperparameter_with_exactly_the_api_keys() -> None:
    hp = Hyperparameter("learning_rate", "float", 0.1, min=1e-6, max=1.0, scale="log", help="Step.")
    assert hp.to_dict() == {
        "name": "learning_rate",
        "type": "float",
        "default": 0.1,
        "min": 1e-6,
        "max": 1.0,
        "scale": "log",
        "tunable": True,
        "help": "Step.",
    }


def test_it_omits_range_and_scale_from_categorical_and_bool_hyperparameters() -> None:
    categorical = Hyperparameter("optimizer", "categorical", "adam", choices=("adam", "sgd"))
    assert categorical.to_dict() == {
        "name": "optimizer",
        "type": "categorical",
        "default": "adam",
        "choices": ["adam", "sgd"],
        "tunable": True,
        "help": "",
    }
    flag = Hyperparameter("use_bias", "bool", True, tunable=False)
    assert flag.to_dict() == {"name": "use_bias", "type": "bool", "default": True, "tunable": False, "help": ""}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": "x", "type": "str", "default": "a"},
        {"name": "x", "type": "float", "default": 5.0, "min": 0.0, "max": 1.0},
        {"name": "x", "type": "float", "default": 0.5, "min": 0.0, "max": 1.0, "scale": "log"},
        {"name": "x", "type": "categorical", "default": "a"},
        {"name": "x", "type": "categorical", "default": "c", "choices": ("a", "b")},
        {"name": "x", "type": "categorical", "default": "a", "choices": ["a", "b"]},
        {"name": "x", "type": "int", "default": 1, "scale": "cubic"},
    ],
)
def test_it_rejects_an_inconsistent_declaration_at_import_time(kwargs: dict[str, Any]) -> None:
    with pytest.raises(TypeError):
        Hyperparameter(**kwargs)


def test_it_rejects_metrics_without_a_channel_or_direction() -> None:
    assert Metric("validation:auc", "maximize").to_dict() == {"name": "validation:auc", "direction": "maximize"}
    for name, direction in [("auc", "maximize"), ("test:auc", "maximize"), ("train:loss", "down")]:
        with pytest.raises(TypeError):
            Metric(name, direction)


def test_it_rejects_a_constructor_that_drifts_from_the_declaration() -> None:
    with pytest.raises(TypeError, match="must match its hyperparameter declaration"):

        class Drifted(Toy):
            name: ClassVar[str] = "drifted"

            def __init__(self, shift: float = 0.7, rounds: int = 3, mode: str = "fast", flag: bool = False):
                super().__init__(shift=shift, rounds=rounds, mode=mode, flag=flag)


# -- validation ---------------------------------------------------------------------------------


def test_it_coerces_form_strings_to_the_declared_types() -> None:
    values = Toy.validate_hyperparameters({"shift": "0.25", "rounds": "7", "mode": "slow", "flag": "on"})
    assert values == {"shift": 0.25, "rounds": 7, "mode": "slow", "flag": True}
    assert type(values["shift"]) is float and type(values["rounds"]) is int


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        *[("true", True), ("True", True), ("on", True), ("1", True), ("yes", True), (1, True), (True, True)],
        *[("false", False), ("off", False), ("0", False), ("no", False), (0, False), (False, False)],
    ],
)
def test_it_reads_booleans_the_way_html_forms_and_json_send_them(raw: Any, expected: bool) -> None:
    assert Toy.validate_hyperparameters({"flag": raw})["flag"] is expected


def test_it_accepts_integral_floats_and_exponents_for_integers() -> None:
    assert Toy.validate_hyperparameters({"rounds": 10.0})["rounds"] == 10
    assert Toy.validate_hyperparameters({"rounds": "1e1"})["rounds"] == 10
    assert Toy.validate_hyperparameters({"rounds": np.int64(4)})["rounds"] == 4
    assert Toy.validate_hyperparameters({"shift": 3})["shift"] == 3.0


def test_it_fills_defaults_for_missing_none_and_empty_values() -> None:
    expected = {"shift": 0.5, "rounds": 3, "mode": "fast", "flag": False}
    assert Toy.validate_hyperparameters({}) == expected
    assert Toy.validate_hyperparameters(None) == expected
    assert Toy.validate_hyperparameters({"shift": None, "rounds": "", "mode": "  "}) == expected
    assert list(Toy.validate_hyperparameters({"flag": "on", "shift": 1})) == ["shift", "rounds", "mode", "flag"]


def test_it_collects_every_error_with_messages_naming_field_and_range() -> None:
    with pytest.raises(HyperparameterError) as info:
        Toy.validate_hyperparameters({"shift": 50, "rounds": "abc", "mode": "turbo", "flag": "maybe", "foo": 1})
    errors = info.value.errors
    assert errors == {
        "foo": ["unknown hyperparameter 'foo'; known: shift, rounds, mode, flag"],
        "shift": ["shift must be between 0.0 and 10.0 (got 50)"],
        "rounds": ["rounds must be an integer (got 'abc')"],
        "mode": ["mode must be one of 'fast', 'slow' (got 'turbo')"],
        "flag": ["flag must be a boolean, true or false (got 'maybe')"],
    }
    message = str(info.value)
    assert all(msg in message for msgs in errors.values() for msg in msgs)
    assert isinstance(info.value, ValueError)


def test_it_names_the_range_of_the_linear_learner_learning_rate() -> None:
    with pytest.raises(HyperparameterError) as info:
        LinearLearner.validate_hyperparameters({"learning_rate": 5, "epochs": "abc"})
    assert info.value.errors["learning_rate"] == ["learning_rate must be between 1e-06 and 1.0 (got 5)"]
    assert info.value.errors["epochs"] == ["epochs must be an integer (got 'abc')"]


@pytest.mark.parametrize(
    ("field", "raw", "message"),
    [
        ("rounds", 2.5, "rounds must be an integer (got 2.5)"),
        ("rounds", True, "rounds must be an integer (got True)"),
        ("rounds", 0, "rounds must be between 1 and 100 (got 0)"),
        ("shift", "nan", "shift must be a finite number (got 'nan')"),
        ("shift", "1,5", "shift must be a number (got '1,5')"),
        ("shift", False, "shift must be a number (got False)"),
        ("shift", [1], "shift must be a number (got [1])"),
        ("flag", 2, "flag must be a boolean, true or false (got 2)"),
    ],
)
def test_it_rejects_values_of_the_wrong_kind(field: str, raw: Any, message: str) -> None:
    with pytest.raises(HyperparameterError) as info:
        Toy.validate_hyperparameters({field: raw})
    assert info.value.errors == {field: [message]}


def test_it_keeps_the_errors_when_the_exception_is_copied_for_a_task_result() -> None:
    error = HyperparameterError({"epochs": ["epochs must be an integer (got 'x')"]})
    clone = copy.deepcopy(error)
    assert clone.errors == error.errors
    assert str(clone) == str(error) == "epochs must be an integer (got 'x')"


# -- estimator basics ---------------------------------------------------------------------------


def test_it_describes_an_algorithm_for_the_api_as_plain_json() -> None:
    described = LinearLearner.describe()
    assert set(described) == {
        "name",
        "title",
        "task",
        "input",
        "target",
        "hyperparameters",
        "metrics",
        "default_objective",
    }
    assert described["name"] == "linear-learner"
    assert described["input"] == "tabular"
    assert json.loads(json.dumps(described)) == described
    names = [hp["name"] for hp in described["hyperparameters"]]
    assert names[:4] == ["predictor_type", "epochs", "mini_batch_size", "learning_rate"]
    metric_names = [metric["name"] for metric in described["metrics"]]
    assert described["default_objective"] in metric_names
    assert LinearLearner.metric_direction("validation:loss") == "minimize"
    assert LinearLearner.metric_direction("validation:auc") == "maximize"


def test_it_gets_and_sets_params_like_scikit_learn() -> None:
    toy = Toy(rounds=5)
    assert toy.get_params() == {"shift": 0.5, "rounds": 5, "mode": "fast", "flag": False}
    assert toy.set_params(mode="slow", shift=1.5) is toy
    assert toy.get_params()["mode"] == "slow" and toy.shift == 1.5
    assert repr(toy) == "Toy(shift=1.5, rounds=5, mode='slow')"
    with pytest.raises(ValueError, match="invalid hyperparameter 'speed'"):
        toy.set_params(speed=3)
    with pytest.raises(TypeError):
        Toy(speed=3)  # type: ignore[call-arg]


def test_it_validates_hyperparameters_when_fitting_not_when_constructing() -> None:
    toy = Toy(rounds=0)
    with pytest.raises(HyperparameterError, match="rounds must be between 1 and 100"):
        toy.fit([[1.0]], ["a"])


def test_it_stops_only_when_the_callback_answers_false() -> None:
    steps: list[int] = []
    toy = Toy(rounds=5).fit([[1.0]], ["a"], callback=lambda step, metrics: steps.append(step))
    assert steps == [1, 2, 3, 4, 5] and not toy.stopped_early_
    toy = Toy(rounds=5).fit([[1.0]], ["a"], callback=lambda step, metrics: step < 2)
    assert toy.stopped_early_


# -- registry -----------------------------------------------------------------------------------


def test_it_finds_algorithms_by_api_name() -> None:
    assert get_algorithm("linear-learner") is LinearLearner
    assert LinearLearner in list_algorithms()
    names = [cls.name for cls in list_algorithms()]
    assert len(names) == len(set(names))


def test_it_lists_the_known_names_for_an_unknown_algorithm() -> None:
    with pytest.raises(UnknownAlgorithm) as info:
        get_algorithm("xgboost")
    assert isinstance(info.value, KeyError)
    assert str(info.value) == "unknown algorithm 'xgboost'; known: " + ", ".join(cls.name for cls in list_algorithms())


@pytest.mark.parametrize("cls", list_algorithms(), ids=lambda cls: cls.name)
def test_it_keeps_every_registered_declaration_consistent(cls: type[Estimator]) -> None:
    described = cls.describe()
    assert json.loads(json.dumps(described)) == described
    assert cls.validate_hyperparameters({}) == {hp.name: hp.default for hp in cls.hyperparameters}
    assert cls().get_params() == cls.validate_hyperparameters({})
    assert cls.input in ("tabular", "text", "image")
    assert described["default_objective"] in {metric.name for metric in cls.metrics}


def test_it_exports_the_base_names() -> None:
    for name in algorithms.__all__:
        assert hasattr(algorithms, name)


# -- persistence --------------------------------------------------------------------------------


def test_it_round_trips_a_model_through_json_and_npz(tmp_path: Path) -> None:
    toy = fitted_toy()
    toy.save(tmp_path / "model")
    manifest = json.loads((tmp_path / "model" / MANIFEST_FILENAME).read_text())
    assert manifest["algorithm"] == "toy"
    assert manifest["format_version"] == 1
    assert manifest["hyperparameters"] == {"shift": 2.0, "rounds": 3, "mode": "fast", "flag": False}
    assert manifest["fitted"] == {"nothing_": None, "n_seen_": 4, "history_": [1.0, 0.5]}

    loaded = Toy.load(tmp_path / "model")
    assert isinstance(loaded, Toy)
    assert loaded.get_params() == toy.get_params()
    np.testing.assert_array_equal(loaded.labels_, ["a", "b", "c"])
    assert loaded.labels_.dtype.kind == "U"
    assert loaded.nothing_ is None
    X = np.ones((2, 3))
    np.testing.assert_array_equal(loaded.predict(X), toy.predict(X))


def test_it_stores_no_object_arrays_so_pickle_is_never_needed(tmp_path: Path) -> None:
    fitted_toy().save(tmp_path)
    with np.load(tmp_path / ARRAYS_FILENAME, allow_pickle=False) as npz:
        assert sorted(npz.files) == ["labels_", "offset_"]
        assert all(npz[key].dtype.kind != "O" for key in npz.files)


def test_it_refuses_to_save_an_object_array(tmp_path: Path) -> None:
    toy = fitted_toy()
    toy.labels_ = np.array(["a", None], dtype=object)
    with pytest.raises(TypeError, match="cannot be loaded without pickle"):
        toy.save(tmp_path)


def test_it_refuses_a_model_file_that_would_need_pickle(tmp_path: Path) -> None:
    fitted_toy().save(tmp_path)
    # What an attacker would upload: an npz whose array is a pickled object.
    np.savez(tmp_path / ARRAYS_FILENAME, labels_=np.array([{"x": 1}], dtype=object), offset_=np.zeros(3))
    with pytest.raises(ValueError, match="allow_pickle"):
        Toy.load(tmp_path)


def test_it_refuses_to_load_another_algorithms_model(tmp_path: Path) -> None:
    fitted_toy().save(tmp_path)
    with pytest.raises(ValueError, match="holds a 'toy' model, not 'linear-learner'"):
        LinearLearner.load(tmp_path)


def test_it_loads_any_registered_algorithm_from_its_manifest(tmp_path: Path) -> None:
    X = np.arange(20.0).reshape(10, 2)
    model = LinearLearner(epochs=2).fit(X, X[:, 0] * 2.0)
    model.save(tmp_path)
    loaded = load_model(tmp_path)
    assert isinstance(loaded, LinearLearner)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    fitted_toy().save(tmp_path)
    with pytest.raises(ValueError, match="unknown algorithm 'toy'"):
        load_model(tmp_path)


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ("not json", "not valid JSON"),
        ('{"format": "other"}', "not a Studio model manifest"),
        ('{"format": "studio-model", "format_version": 99, "algorithm": "toy"}', "unsupported format_version 99"),
    ],
)
def test_it_rejects_a_broken_manifest(tmp_path: Path, manifest: str, message: str) -> None:
    fitted_toy().save(tmp_path)
    (tmp_path / MANIFEST_FILENAME).write_text(manifest)
    with pytest.raises(ValueError, match=message):
        Toy.load(tmp_path)


def test_it_rejects_a_directory_without_a_model(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a saved Studio model"):
        load_model(tmp_path)


def test_it_rejects_a_model_with_missing_arrays(tmp_path: Path) -> None:
    fitted_toy().save(tmp_path)
    np.savez(tmp_path / ARRAYS_FILENAME, labels_=np.array(["a"]))
    with pytest.raises(ValueError, match="lacks array 'offset_'"):
        Toy.load(tmp_path)


def test_it_validates_hyperparameters_read_from_a_manifest(tmp_path: Path) -> None:
    fitted_toy().save(tmp_path)
    manifest = json.loads((tmp_path / MANIFEST_FILENAME).read_text())
    manifest["hyperparameters"]["rounds"] = -1
    (tmp_path / MANIFEST_FILENAME).write_text(json.dumps(manifest))
    with pytest.raises(HyperparameterError):
        Toy.load(tmp_path)


def test_it_refuses_to_save_or_predict_before_fit(tmp_path: Path) -> None:
    with pytest.raises(NotFittedError):
        Toy().save(tmp_path)
    with pytest.raises(NotFittedError, match="not fitted"):
        LinearLearner().predict([[1.0]])


def test_it_reports_an_unreadable_arrays_file_as_a_bad_model(tmp_path: Path) -> None:
    fitted_toy().save(tmp_path)
    (tmp_path / ARRAYS_FILENAME).write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match=r"cannot read arrays\.npz"):
        Toy.load(tmp_path)
    np.save(tmp_path / "plain.npy", np.zeros(3))
    (tmp_path / "plain.npy").replace(tmp_path / ARRAYS_FILENAME)
    with pytest.raises(ValueError, match="not an npz archive"):
        Toy.load(tmp_path)
    (tmp_path / ARRAYS_FILENAME).unlink()
    with pytest.raises(ValueError, match=r"cannot read arrays\.npz"):
        Toy.load(tmp_path)


# -- resuming training (the checkpoint is the saved model) --------------------------------------


def declare(**attrs: Any) -> type[Estimator]:
    return type("Declared", (Draws,), {"name": "declared", **attrs})


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        ({"budget_hyperparameter": "epochs"}, "must name a declared int hyperparameter"),
        (
            {
                "budget_hyperparameter": "rate",
                "hyperparameters": (Hyperparameter("rate", "float", 0.1), *Draws.hyperparameters),
            },
            "must name a declared int hyperparameter",
        ),
        ({"budget_hyperparameter": None}, "needs a budget_hyperparameter and fit"),
        ({"fit": Toy.fit}, "needs a budget_hyperparameter and fit"),
        ({"_training_state": ("velocity_",)}, "names unsaved attributes"),
    ],
)
def test_it_resumes_only_estimators_that_declare_a_budget_and_a_state(attrs: dict[str, Any], message: str) -> None:
    with pytest.raises(TypeError, match=message):
        declare(**attrs)
    assert Toy.budget_hyperparameter is None and not Toy.resumable


def test_it_resumes_with_epochs_as_the_budget_of_the_epoch_based_algorithms() -> None:
    names = ("linear-learner", "text-classification", "image-classification", "word2vec", "object-detection")
    budgets = {cls.name: cls.budget_hyperparameter for cls in list_algorithms() if cls.resumable}
    assert budgets == dict.fromkeys(names, "epochs")


def test_it_resumes_a_saved_toy_as_if_it_had_never_stopped(tmp_path: Path) -> None:
    straight = Draws(rounds=5).fit(None)
    Draws(rounds=2).fit(None).save(tmp_path)
    manifest = json.loads((tmp_path / MANIFEST_FILENAME).read_text())
    assert manifest["fitted"]["training_state_"]["rng"]["bit_generator"] == "PCG64"
    steps: list[int] = []
    resumed = Draws.load(tmp_path).set_params(rounds=5)
    resumed.fit(None, callback=lambda step, metrics: steps.append(step), resume=True)
    assert steps == [3, 4, 5]
    np.testing.assert_array_equal(resumed.history_, straight.history_)
    # A budget already reached trains nothing.
    assert resumed.set_params(rounds=4).fit(None, callback=lambda *args: steps.append(0), resume=True) is resumed
    assert steps == [3, 4, 5] and resumed.n_epochs_ == 5


def test_it_refuses_to_resume_without_a_matching_training_state(tmp_path: Path) -> None:
    with pytest.raises(NotFittedError, match="not fitted; nothing to resume") as info:
        Draws().fit(None, resume=True)
    assert isinstance(info.value, ValueError)
    with pytest.raises(ValueError, match="cannot resume: seed differ"):
        Draws().fit(None).set_params(seed=1, rounds=5).fit(None, resume=True)
    Draws().fit(None).save(tmp_path)
    forget_training_state(tmp_path, Draws)
    old = Draws.load(tmp_path)
    assert old.history_ is None and old.training_state_ is None
    assert old.total_ > 0  # still usable
    old.save(tmp_path / "again")
    with pytest.raises(ValueError, match="no saved training state"):
        Draws.load(tmp_path / "again").set_params(rounds=5).fit(None, resume=True)


def test_it_rebuilds_a_generator_from_its_json_state_and_refuses_anything_else() -> None:
    rng = np.random.default_rng(7)
    rng.random(3)
    state = json.loads(json.dumps(rng.bit_generator.state))
    np.testing.assert_array_equal(rng_from_state(state).random(5), rng.random(5))
    for junk in (None, [], {"bit_generator": "MT19937"}, {"bit_generator": "PCG64", "state": "x"}):
        with pytest.raises(ValueError, match="invalid random generator state"):
            rng_from_state(junk)
