"""Definition validation: every problem under the exact path of the value holding it, steps named by name."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from studio.pipelines.definition import (
    definition_validate,
    dependencies,
    edges,
    find_cycle,
    iter_refs,
    levels,
    parse_ref,
    topological_order,
)

pytestmark = pytest.mark.usefixtures("fake_kinds")


def errors_of(world, definition) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        definition_validate(project=world.project, definition=definition)
    return caught.value.message_dict


def emit(name: str, **arguments) -> dict:
    return {"name": name, "type": "emit", "arguments": arguments}


# --- refs and the graph -------------------------------------------------------------------------------


def test_it_parses_the_three_kinds_of_refs():
    assert parse_ref({"ref": "parameters.threshold"}).name == "threshold"
    output = parse_ref({"ref": "steps.train.model"})
    assert (output.source, output.name, output.output, output.metric) == ("steps", "train", "model", "")
    metric = parse_ref({"ref": "steps.train.metrics.validation:f1.macro"})
    assert (metric.output, metric.metric) == ("metrics", "validation:f1.macro")
    assert str(metric) == "steps.train.metrics.validation:f1.macro"
    for bad in ("steps.train", "params.x", "steps.train.a.b", "parameters.", "steps.1x.model", "", 5):
        with pytest.raises(ValueError):
            parse_ref({"ref": bad})
    with pytest.raises(ValueError, match="single key"):
        parse_ref({"ref": "parameters.x", "other": 1})


def test_it_finds_refs_nested_in_lists_and_objects():
    value = {"a": [1, {"ref": "parameters.x"}], "b": {"c": {"ref": "steps.s.model"}}, "d": "plain"}
    assert list(iter_refs(value)) == [(("a", "1"), {"ref": "parameters.x"}), (("b", "c"), {"ref": "steps.s.model"})]


def test_it_computes_dependencies_from_depends_on_refs_and_condition_branches():
    definition = {"steps": [
        emit("split"),
        emit("train", value={"ref": "steps.split.dataset"}),
        emit("other"),
        {"name": "check", "type": "check", "arguments": {"left": {"ref": "steps.train.metrics.acc"}, "right": 0.5,
                                                          "if_true": ["deploy"], "if_false": ["alarm"]}},
        emit("deploy", value=[{"ref": "steps.train.value"}]),
        {"name": "alarm", "type": "boom", "depends_on": ["other"], "arguments": {"message": "low"}},
    ]}
    assert dependencies(definition) == {
        "split": [], "train": ["split"], "other": [], "check": ["train"], "deploy": ["train", "check"],
        "alarm": ["other", "check"],
    }
    assert {(e["source"], e["target"], e["kind"]) for e in edges(definition)} == {
        ("split", "train", "data"), ("train", "check", "data"), ("train", "deploy", "data"),
        ("other", "alarm", "depends_on"), ("check", "deploy", "if_true"), ("check", "alarm", "if_false"),
    }
    order = topological_order(definition)
    assert order.index("split") < order.index("train") < order.index("check") < order.index("deploy")
    assert order.index("other") < order.index("alarm") and order.index("check") < order.index("alarm")
    assert levels(definition) == {"split": 0, "other": 0, "train": 1, "check": 2, "deploy": 3, "alarm": 3}


def test_it_names_the_steps_of_a_cycle():
    assert find_cycle({"a": ["c"], "b": ["a"], "c": ["b"], "d": []}) in (
        ["a", "b", "c", "a"], ["b", "c", "a", "b"], ["c", "a", "b", "c"])
    assert find_cycle({"a": [], "b": ["a"]}) is None


# --- what is accepted --------------------------------------------------------------------------------------


def test_it_normalizes_a_valid_definition_with_defaults(world):
    clean = definition_validate(project=world.project, definition={
        "parameters": {"threshold": 0.8, "data": "houses", "fast": True, "n": 3, "later": None},
        "steps": [
            emit("a", value={"ref": "parameters.threshold"}, dataset={"ref": "parameters.data"}),
            {**emit("b", value={"ref": "steps.a.metrics.validation:accuracy"}), "depends_on": ["a", "a"],
             "retry": {"max_attempts": 3}, "cache": False, "description": "second"},
        ],
    })
    assert clean["parameters"] == {"threshold": 0.8, "data": "houses", "fast": True, "n": 3, "later": None}
    first, second = clean["steps"]
    assert first["depends_on"] == [] and first["retry"] == {"max_attempts": 1, "backoff_seconds": 5.0,
                                                            "backoff_rate": 2.0}
    assert first["cache"] == {"enabled": True, "expire_after_seconds": 30 * 24 * 3600}
    assert second["depends_on"] == ["a"] and second["retry"]["max_attempts"] == 3
    assert second["cache"]["enabled"] is False and second["description"] == "second"


# --- what is refused, and where it is reported ---------------------------------------------------------------


def test_it_refuses_what_is_not_a_definition(world):
    assert list(errors_of(world, ["steps"])) == ["definition"]
    assert list(errors_of(world, {"steps": []})) == ["definition.steps"]
    assert list(errors_of(world, {"parameters": {}})) == ["definition.steps"]
    assert "at most 100" in errors_of(world, {"steps": [emit(f"s{i}") for i in range(101)]})["definition.steps"][0]
    errors = errors_of(world, {"steps": [emit("a")], "extra": 1})
    assert list(errors) == ["definition.extra"]


def test_it_checks_parameters(world):
    errors = errors_of(world, {"parameters": {"ok": 1, "bad name": 1, "listy": [1], "deep": {"a": 1}},
                               "steps": [emit("a")]})
    assert set(errors) == {"definition.parameters.bad name", "definition.parameters.listy",
                           "definition.parameters.deep"}
    assert list(errors_of(world, {"parameters": [1], "steps": [emit("a")]})) == ["definition.parameters"]


def test_it_checks_step_names_types_and_keys(world):
    errors = errors_of(world, {"steps": [
        emit("good"), emit("good"), emit("9lives"), "not a step",
        {"name": "typo", "type": "trainng"}, {**emit("extra"), "colour": "red"},
    ]})
    assert "unique" in errors["definition.steps.good.name"][0]
    assert "definition.steps.2.name" in errors  # no valid name: the index stands in
    assert "definition.steps.3" in errors
    assert "'trainng'" in errors["definition.steps.typo.type"][0] and "emit" in errors["definition.steps.typo.type"][0]
    assert "definition.steps.extra.colour" in errors


def test_it_checks_depends_on(world):
    errors = errors_of(world, {"steps": [
        {**emit("a"), "depends_on": ["a"]}, {**emit("b"), "depends_on": ["ghost", 3]}, {**emit("c"), "depends_on": "a"},
    ]})
    assert errors["definition.steps.a.depends_on"] == ["A step cannot depend on itself."]
    assert errors["definition.steps.b.depends_on"] == ["Unknown step 'ghost'.", "A dependency is a step name (got 3)."]
    assert errors["definition.steps.c.depends_on"] == ["depends_on must be a list of step names."]


def test_it_checks_arguments_required_unknown_and_literal_kinds(world):
    errors = errors_of(world, {"steps": [
        {"name": "explode", "type": "boom", "arguments": {}},
        {"name": "typo", "type": "boom", "arguments": {"message": "x", "mesage": "y"}},
        {"name": "kinds", "type": "emit", "arguments": {"metrics": [1], "dataset": 5, "label": "c"}},
        {"name": "args", "type": "emit", "arguments": "value=1"},
    ]})
    assert errors["definition.steps.explode.arguments.message"][0].startswith("Required")
    assert "Unknown argument" in errors["definition.steps.typo.arguments.mesage"][0]
    assert "an object" in errors["definition.steps.kinds.arguments.metrics"][0]
    assert "a dataset" in errors["definition.steps.kinds.arguments.dataset"][0]
    assert "one of a, b" in errors["definition.steps.kinds.arguments.label"][0]
    assert list(errors["definition.steps.args.arguments"]) == ["arguments must be an object {name: value}."]


def test_it_checks_refs(world):
    errors = errors_of(world, {"parameters": {"n": 1, "name": "houses", "flag": True}, "steps": [
        emit("a", value={"ref": "parameters.missing"}),
        emit("b", value={"ref": "steps.ghost.value"}),
        emit("c", value={"ref": "steps.a.nothing"}),
        emit("d", value={"ref": "nonsense"}),
        emit("e", value={"ref": "steps.e.value"}),
        emit("f", value={"nested": [{"ref": "steps.ghost.value"}]}),
        emit("g", metrics={"ref": "parameters.n"}, dataset={"ref": "steps.a.number"}),
        emit("h", dataset={"ref": "parameters.name"}, metrics={"ref": "steps.a.metrics"}),
        emit("i", dataset={"ref": "parameters.flag"}),
    ]})
    assert "Unknown parameter 'missing'" in errors["definition.steps.a.arguments.value"][0]
    assert errors["definition.steps.b.arguments.value"] == ["Unknown step 'ghost' in ref steps.ghost.value."]
    assert "no output 'nothing'" in errors["definition.steps.c.arguments.value"][0]
    assert "dataset" in errors["definition.steps.c.arguments.value"][0]  # lists the outputs it has
    assert "not a valid ref" in errors["definition.steps.d.arguments.value"][0]
    assert "own outputs" in errors["definition.steps.e.arguments.value"][0]
    assert "definition.steps.f.arguments.value.nested.0" in errors
    # A number parameter into an object argument, a number output into a dataset argument.
    assert "gives a number" in errors["definition.steps.g.arguments.metrics"][0]
    assert "gives a number, but dataset takes a dataset" in errors["definition.steps.g.arguments.dataset"][0]
    # A string parameter fits an object kind (an id or a name); a boolean does not.
    assert not any(key.startswith("definition.steps.h") for key in errors)
    assert "true or false" in errors["definition.steps.i.arguments.dataset"][0]


def test_it_checks_condition_branches(world):
    errors = errors_of(world, {"steps": [
        emit("a"),
        {"name": "check", "type": "check", "arguments": {"left": 1, "right": 2, "if_true": ["a", "ghost"],
                                                          "if_false": ["check"]}},
        {"name": "both", "type": "check", "arguments": {"left": 1, "right": 2, "if_true": ["a"], "if_false": ["a"]}},
        {"name": "reffed", "type": "check", "arguments": {"left": 1, "right": 2,
                                                           "if_true": {"ref": "parameters.x"}}},
    ]})
    assert errors["definition.steps.check.arguments.if_true"] == ["Unknown step 'ghost'."]
    assert errors["definition.steps.check.arguments.if_false"] == ["A step cannot choose itself."]
    assert "in both if_true and if_false" in errors["definition.steps.both.arguments.if_false"][0]
    assert "definition.steps.reffed.arguments.if_true" in errors


def test_it_reports_a_cycle_naming_its_steps(world):
    errors = errors_of(world, {"steps": [
        emit("a", value={"ref": "steps.c.value"}), emit("b", value={"ref": "steps.a.value"}),
        {**emit("c"), "depends_on": ["b"]}, emit("free"),
    ]})
    assert list(errors) == ["definition.steps"]
    message = errors["definition.steps"][0]
    assert "cycle" in message and all(name in message for name in ("a", "b", "c")) and "free" not in message
    # A condition choosing a step it reads from closes a cycle too.
    errors = errors_of(world, {"steps": [
        emit("train"),
        {"name": "check", "type": "check", "arguments": {"left": {"ref": "steps.train.number"}, "right": 1,
                                                          "if_true": ["train"]}},
    ]})
    assert "train → check → train" in errors["definition.steps"][0] or "check → train → check" in \
        errors["definition.steps"][0]


def test_it_checks_retry_and_cache_options(world):
    errors = errors_of(world, {"steps": [
        {**emit("a"), "retry": {"max_attempts": 0, "backoff_seconds": -1, "backoff_rate": "x", "jitter": 1}},
        {**emit("b"), "retry": {"max_attempts": 2.5}, "cache": {"enabled": "yes", "expire_after_seconds": 0}},
        {**emit("c"), "retry": 3, "cache": "on"},
        {**emit("d"), "retry": {"max_attempts": 11}, "cache": {"forever": True}},
    ]})
    assert set(errors) == {
        "definition.steps.a.retry.max_attempts", "definition.steps.a.retry.backoff_seconds",
        "definition.steps.a.retry.backoff_rate", "definition.steps.a.retry.jitter",
        "definition.steps.b.retry.max_attempts", "definition.steps.b.cache.enabled",
        "definition.steps.b.cache.expire_after_seconds", "definition.steps.c.retry", "definition.steps.c.cache",
        "definition.steps.d.retry.max_attempts", "definition.steps.d.cache.forever",
    }
    assert "between 1 and 10" in errors["definition.steps.d.retry.max_attempts"][0]


def test_it_collects_every_problem_at_once(world):
    errors = errors_of(world, {"parameters": {"bad-name": 1}, "steps": [
        {"name": "a", "type": "boom"}, {"name": "b", "type": "nope"}, {**emit("c"), "retry": {"max_attempts": 99}},
    ]})
    assert set(errors) == {"definition.parameters.bad-name", "definition.steps.a.arguments.message",
                           "definition.steps.b.type", "definition.steps.c.retry.max_attempts"}


def test_it_adds_the_step_types_own_checks_under_the_step(world, fake_kinds, monkeypatch):
    from studio.pipelines import steps

    emit_kind = steps.STEP_KINDS["emit"]
    monkeypatch.setattr(type(emit_kind), "validate", lambda self, arguments, *, project: (
        {"value": "too big"} if arguments.get("value") == 99 else {}))
    errors = errors_of(world, {"steps": [emit("a", value=99), emit("b", value=1)]})
    assert errors == {"definition.steps.a.arguments.value": ["too big"]}
