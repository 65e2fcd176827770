"""The processing step type, run directly on stored datasets (the engine is not involved)."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from django.utils import timezone

from studio.accounts.models import AuditEvent
from studio.core.storage import storage_open
from studio.datasets.models import Dataset
from studio.pipelines.definition import definition_validate
from studio.pipelines.models import ExecutionStatus, Pipeline, PipelineExecution, PipelineStep, StepStatus
from studio.pipelines.steps import step_kind
from studio.pipelines.steps.base import Done, StepContext, StepFailed
from tests.conftest import classification_csv, csv_bytes, regression_csv
from tests.training.factories import dataset_from_csv, uploaded_dataset

pytestmark = pytest.mark.django_db


def step_context(world, type: str, arguments: dict, *, name: str = "step", user=None, pipeline: str = "flow",
                 number: int = 1) -> StepContext:
    """A running step of a running execution, its arguments already resolved, as the engine hands it over."""
    user = user or world.member
    flow = Pipeline.objects.filter(project=world.project, name=pipeline).first() or Pipeline.objects.create(
        project=world.project, name=pipeline, created_by=user,
        definition={"parameters": {}, "steps": [{"name": name, "type": type, "arguments": arguments}]})
    execution = PipelineExecution.objects.filter(pipeline=flow, number=number).first() or \
        PipelineExecution.objects.create(pipeline=flow, project=world.project, number=number,
                                         definition=flow.definition, status=ExecutionStatus.RUNNING,
                                         created_by=user, started_at=timezone.now())
    step = PipelineStep.objects.create(execution=execution, name=name, type=type, status=StepStatus.RUNNING,
                                       arguments=arguments, attempts=1, started_at=timezone.now())
    return StepContext(step=step, execution=execution, project=world.project, user=user, arguments=arguments)


def again(ctx: StepContext) -> StepContext:
    """The same step started again (a new attempt on another worker): its row re-read from the database."""
    ctx.step.refresh_from_db()
    return StepContext(step=ctx.step, execution=ctx.execution, project=ctx.project, user=ctx.user,
                       arguments=dict(ctx.arguments))


def stored_rows(dataset: Dataset) -> tuple[list[str], list[list[str]]]:
    with storage_open(dataset.file) as fh:
        rows = list(csv.reader(io.TextIOWrapper(fh, encoding="utf-8", newline="")))
    return rows[0], rows[1:]


def run(world, arguments: dict, **kwargs) -> tuple[Done, StepContext]:
    ctx = step_context(world, "processing", arguments, **kwargs)
    return step_kind("processing").start(ctx), ctx


@pytest.fixture
def churn(world) -> Dataset:
    return uploaded_dataset(world, classification_csv(n=100), name="churn", target="churned")


# --- split ---------------------------------------------------------------------------------------------


def test_a_split_makes_ready_profiled_datasets_that_keep_the_target(world, churn):
    done, ctx = run(world, {"operation": "split", "dataset": str(churn.id), "seed": 4,
                            "fractions": {"train": 0.6, "validation": 0.2, "test": 0.2}}, name="split")
    made = {part: Dataset.objects.get(id=done.outputs[part]) for part in ("train", "validation", "test")}
    assert done.outputs["dataset"] == done.outputs["train"]
    assert {p: d.name for p, d in made.items()} == {"train": "churn-split-1-train", "validation":
                                                    "churn-split-1-validation", "test": "churn-split-1-test"}
    assert [d.rows for d in made.values()] == [60, 20, 20]
    _, source_rows = stored_rows(churn)
    union = []
    for dataset in made.values():
        assert dataset.status == "ready" and dataset.kind == "tabular" and dataset.target == "churned"
        assert dataset.created_by == world.member and dataset.project == world.project and len(dataset.sha256) == 64
        assert [c["name"] for c in dataset.columns] == ["f1", "f2", "churned"]
        assert dataset.profile["pipeline"]["step"] == ctx.step.id and dataset.profile["columns"]
        header, rows = stored_rows(dataset)
        assert header == ["f1", "f2", "churned"]
        union += rows
    assert sorted(union) == sorted(source_rows)
    assert AuditEvent.objects.filter(verb="created dataset", actor=world.member).count() == 3
    assert "Wrote 'churn-split-1-train' (60 rows)" in done.message


def test_a_split_started_again_reuses_what_it_stored_and_a_new_run_makes_new_datasets(world, churn):
    arguments = {"operation": "split", "dataset": str(churn.id), "fractions": {"train": 0.5, "test": 0.5}}
    done, ctx = run(world, arguments)
    before = Dataset.objects.count()
    second = step_kind("processing").start(again(ctx))
    assert second.outputs == done.outputs and Dataset.objects.count() == before
    assert second.message.startswith("Reused")
    assert set(done.outputs) == {"dataset", "train", "test"}

    third, _ = run(world, arguments, number=2)
    assert Dataset.objects.get(id=third.outputs["test"]).name == "churn-split-2-test"


def test_a_stratified_split_keeps_the_label_ratio(world, churn):
    done, _ = run(world, {"operation": "split", "dataset": "churn", "stratify": "churned", "seed": 1,
                          "fractions": {"train": 0.8, "test": 0.2}})
    _, rows = stored_rows(churn)
    share = sum(r[2] == "yes" for r in rows) / len(rows)
    for part in ("train", "test"):
        _, part_rows = stored_rows(Dataset.objects.get(id=done.outputs[part]))
        assert abs(sum(r[2] == "yes" for r in part_rows) - share * len(part_rows)) <= 1


# --- the other operations ------------------------------------------------------------------------------


def test_normalize_scales_every_numeric_column_but_the_target_by_default(world):
    dataset = uploaded_dataset(world, regression_csv(n=80), name="houses", target="price")
    done, _ = run(world, {"operation": "normalize", "dataset": str(dataset.id)})
    out = Dataset.objects.get(id=done.outputs["dataset"])
    header, rows = stored_rows(out)
    _, source = stored_rows(dataset)
    for j, name in enumerate(header):
        values = np.array([float(r[j]) for r in rows])
        if name == "price":
            assert [r[j] for r in rows] == [r[j] for r in source]
        else:
            reference = np.array([float(r[j]) for r in source])
            assert values.tolist() == ((reference - reference.mean()) / reference.std()).tolist()
    assert out.target == "price" and out.name == "houses-normalize-1"
    assert set(out.profile["pipeline"]["statistics"]) == {"x1", "x2", "x3"}


def test_impute_one_hot_filter_and_select_chain_on_stored_datasets(world):
    content = csv_bytes([[1, "", "Paris", "yes"], [2, 5, "Lyon", "no"], [3, 7, "", "yes"], [4, 9, "Paris", "no"]],
                        ["id", "age", "city", "churned"])
    dataset = uploaded_dataset(world, content, name="people", target="churned")
    kind = step_kind("processing")
    filled = kind.start(step_context(world, "processing", {"operation": "impute", "dataset": str(dataset.id)},
                                     name="impute"))
    first = Dataset.objects.get(id=filled.outputs["dataset"])
    assert stored_rows(first)[1] == [["1", "7", "Paris", "yes"], ["2", "5", "Lyon", "no"],
                                     ["3", "7", "Paris", "yes"], ["4", "9", "Paris", "no"]]
    encoded = kind.start(step_context(world, "processing", {"operation": "one_hot", "dataset": str(first.id),
                                                            "columns": ["city"]}, name="encode"))
    second = Dataset.objects.get(id=encoded.outputs["dataset"])
    assert stored_rows(second)[0] == ["id", "age", "city_Lyon", "city_Paris", "churned"]
    kept = kind.start(step_context(world, "processing", {"operation": "filter_rows", "dataset": str(second.id),
                                                         "column": "age", "op": ">=", "value": 7}, name="filter"))
    third = Dataset.objects.get(id=kept.outputs["dataset"])
    assert [r[0] for r in stored_rows(third)[1]] == ["1", "3", "4"] and third.rows == 3
    picked = kind.start(step_context(world, "processing", {"operation": "select_columns", "dataset": str(third.id),
                                                           "drop": ["churned"]}, name="select"))
    fourth = Dataset.objects.get(id=picked.outputs["dataset"])
    assert fourth.column_names == ["id", "age", "city_Lyon", "city_Paris"]
    assert fourth.target == ""  # the target column is gone, so is the target


def test_join_adds_the_right_datasets_columns(world):
    left = uploaded_dataset(world, csv_bytes([[1, "a"], [2, "b"], [3, "c"]], ["id", "v"]), name="left")
    right = uploaded_dataset(world, csv_bytes([[3, 30], [1, 10]], ["id", "score"]), name="right")
    done, _ = run(world, {"operation": "join", "dataset": str(left.id), "right": str(right.id), "on": "id",
                          "how": "left"})
    out = Dataset.objects.get(id=done.outputs["dataset"])
    assert stored_rows(out) == (["id", "v", "score"], [["1", "a", "10"], ["2", "b", ""], ["3", "c", "30"]])
    assert out.profile["pipeline"]["right"] == str(right.id)


# --- failures -----------------------------------------------------------------------------------------


def test_a_bad_column_fails_naming_it_and_the_datasets_columns(world, churn):
    with pytest.raises(StepFailed, match=r"one_hot of dataset 'churn': columns: no column 'city'; the columns "
                                         r"are f1, f2, churned\."):
        run(world, {"operation": "one_hot", "dataset": str(churn.id), "columns": ["city"]})
    with pytest.raises(StepFailed, match="filter_rows of dataset 'churn' left no rows"):
        run(world, {"operation": "filter_rows", "dataset": str(churn.id), "column": "f1", "op": ">", "value": 100},
            name="other")
    assert not Dataset.objects.exclude(id=churn.id).exists()


def test_a_text_dataset_or_a_missing_one_fails(world):
    text = dataset_from_csv(world.project, name="reviews", content=b"text,label\ngood,pos\n")
    Dataset.objects.filter(id=text.id).update(kind="text")
    with pytest.raises(StepFailed, match="dataset 'reviews' is text; processing works on tabular datasets"):
        run(world, {"operation": "split", "dataset": str(text.id)})
    with pytest.raises(StepFailed, match="no dataset 'nope' in this project"):
        run(world, {"operation": "split", "dataset": "nope"}, name="two")


def test_arguments_are_checked_again_when_the_step_runs(world, churn):
    with pytest.raises(StepFailed, match="fractions: The fractions must add up to 1"):
        run(world, {"operation": "split", "dataset": str(churn.id), "fractions": {"train": 0.5, "test": 0.6}})


# --- checking definitions ------------------------------------------------------------------------------


@pytest.mark.parametrize(("arguments", "errors"), [
    ({"operation": "split", "fractions": {"train": 0.9, "test": 0.2}}, {"arguments.fractions": "add up to 1"}),
    ({"operation": "split", "fractions": {"train": 1.0}}, {"arguments.fractions": "at least two parts"}),
    ({"operation": "split", "fractions": {"train": 0.5, "dev": 0.5}}, {"arguments.fractions": "Unknown part 'dev'"}),
    ({"operation": "split", "seed": 1.5}, {"arguments.seed": "whole number"}),
    ({"operation": "split", "method": "minmax"}, {"arguments.method": "split operation takes no 'method'"}),
    ({"operation": "one_hot"}, {"arguments.columns": "Name the columns"}),
    ({"operation": "impute", "strategy": "constant"}, {"arguments.value": "needs a value"}),
    ({"operation": "filter_rows", "column": "x", "op": "in", "value": 3}, {"arguments.value": "non-empty list"}),
    ({"operation": "filter_rows", "column": "x", "op": ">"}, {"arguments.value": "Give the value"}),
    ({"operation": "select_columns", "columns": ["a"], "drop": ["b"]}, {"arguments.drop": "not both"}),
    ({"operation": "join", "right": "other"}, {"arguments.on": "key column"}),
])
def test_validate_names_the_argument_at_fault(world, arguments, errors):
    found = step_kind("processing").validate({"dataset": "x", **arguments}, project=world.project)
    assert set(found) == set(errors)
    for key, words in errors.items():
        assert words in found[key]


def test_validate_skips_refs_and_split_outputs_follow_the_fractions(world):
    kind = step_kind("processing")
    ref = {"ref": "parameters.fractions"}
    assert kind.validate({"operation": "split", "dataset": "x", "fractions": ref}, project=world.project) == {}
    assert kind.validate({"operation": {"ref": "parameters.op"}, "dataset": "x"}, project=world.project) == {}
    assert set(kind.output_kinds({"operation": "split", "fractions": {"train": 0.8, "test": 0.2}})) == {
        "dataset", "train", "test"}
    assert set(kind.output_kinds({"operation": "split"})) == {"dataset", "train", "validation", "test"}
    assert kind.output_kinds({"operation": "normalize"}) == {"dataset": "dataset"}


def test_the_definition_validator_refuses_a_ref_to_a_part_the_split_does_not_make(world):
    steps = [
        {"name": "split", "type": "processing", "arguments": {"operation": "split", "dataset": "churn",
                                                              "fractions": {"train": 0.8, "validation": 0.2}}},
        {"name": "train", "type": "training", "arguments": {
            "algorithm": "linear-learner", "dataset": {"ref": "steps.split.train"}, "target": "churned",
            "validation_dataset": {"ref": "steps.split.test"}}},
    ]
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as excinfo:
        definition_validate(project=world.project, definition={"steps": steps})
    message = excinfo.value.message_dict["definition.steps.train.arguments.validation_dataset"][0]
    assert "has no output 'test'" in message
    steps[1]["arguments"]["validation_dataset"] = {"ref": "steps.split.validation"}
    assert definition_validate(project=world.project, definition={"steps": steps})["steps"][1]["name"] == "train"
