"""Condition and fail steps, and the registry of step types the builder and the API describe."""

from __future__ import annotations

import pytest

from studio.pipelines.models import StepType
from studio.pipelines.steps import STEP_KINDS, UnknownStepType, step_kind, step_palette
from studio.pipelines.steps.base import KINDS, Done, StepFailed
from tests.pipelines.test_steps_processing import step_context

pytestmark = pytest.mark.django_db


def condition(world, left, op, right, **extra) -> Done:
    arguments = {"left": left, "op": op, "right": right, "if_true": ["a"], "if_false": ["b"], **extra}
    return step_kind("condition").start(step_context(world, "condition", arguments, name="check"))


@pytest.mark.parametrize(("left", "op", "right", "result"), [
    (0.91, ">=", 0.9, True), (0.9, ">=", 0.9, True), (0.89, ">=", 0.9, False), (3, ">", 2.5, True),
    (2, "<", 2, False), (2, "<=", 2, True), (1, "==", 1.0, True), (1, "!=", 1.0, False),
    (0.8, ">=", "0.75", True),  # a number typed as text in a form still compares as a number
    ("gold", "==", "gold", True), ("a", "<", "b", True), (True, "==", True, True), (True, "!=", False, True),
])
def test_a_condition_compares_like_python(world, left, op, right, result):
    done = condition(world, left, op, right)
    assert done.outputs == {"result": result}
    assert ("runs a" if result else "runs b") in done.message


@pytest.mark.parametrize(("left", "op", "right"), [(0.9, ">=", "high"), ("high", "<", 0.9), (True, ">", 0.5),
                                                   (None, ">=", 1), (True, "<", False)])
def test_a_condition_fails_naming_both_values_it_cannot_compare(world, left, op, right):
    with pytest.raises(StepFailed, match=f"cannot compare {left!r} "):
        condition(world, left, op, right)


def test_a_condition_validates_literals_and_skips_refs(world):
    kind = step_kind("condition")
    ref = {"ref": "steps.train.metrics.validation:accuracy"}
    assert kind.validate({"left": ref, "op": ">=", "right": 0.9, "if_true": ["x"]}, project=world.project) == {}
    errors = kind.validate({"left": 1, "op": ">", "right": "high", "if_false": ["x"]}, project=world.project)
    assert list(errors) == ["arguments.right"] and "Cannot compare 1 > 'high'" in errors["arguments.right"]
    errors = kind.validate({"left": ref, "op": ">=", "right": [1]}, project=world.project)
    assert set(errors) == {"arguments.right", "arguments.if_true"}


def test_a_fail_step_fails_with_its_message(world):
    kind = step_kind("fail")
    with pytest.raises(StepFailed) as excinfo:
        kind.start(step_context(world, "fail", {"message": "accuracy 0.61 is below 0.9"}))
    assert excinfo.value.message == "accuracy 0.61 is below 0.9"
    assert kind.validate({"message": "  "}, project=world.project) == {"arguments.message": "Say why the execution "
                                                                                             "fails."}


def test_the_registry_has_every_step_type_of_the_model(world):
    assert set(STEP_KINDS) == set(StepType.values)
    assert step_kind("training") is STEP_KINDS["training"]
    with pytest.raises(UnknownStepType, match="unknown step type 'sql'; the types are processing, training"):
        step_kind("sql")
    with pytest.raises(KeyError):
        step_kind("sql")


def test_the_palette_describes_every_argument_with_a_kind_and_help(world):
    palette = step_palette()
    assert [entry["type"] for entry in palette] == list(STEP_KINDS)
    for entry in palette:
        assert entry["title"] and entry["description"]
        for argument in entry["arguments"]:
            assert argument["kind"] in KINDS and argument["help"], (entry["type"], argument["name"])
            assert isinstance(argument["choices"], list)
        for output in entry["outputs"]:
            assert output["kind"] in KINDS
    processing = next(e for e in palette if e["type"] == "processing")
    operation = processing["arguments"][0]
    assert operation == {"name": "operation", "kind": "string", "required": True, "help": operation["help"],
                         "choices": ["split", "normalize", "impute", "one_hot", "filter_rows", "select_columns",
                                     "join"]}
    training = next(e for e in palette if e["type"] == "training")
    assert {"name": "metrics", "kind": "object"} in training["outputs"]
    assert "linear-learner" in next(a for a in training["arguments"] if a["name"] == "algorithm")["choices"]
