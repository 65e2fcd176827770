"""Batch transform: filters, splitting into parts, and whole jobs run in this process, parts in any order.

Outputs are compared with the model's own Predictor on the same rows (the reference), so a row out of
place, lost or doubled shows up as a mismatch.
"""

from __future__ import annotations

import csv
import io
import json
import random
import uuid

import numpy as np
import pytest
from django.core.files.storage import default_storage

from studio.core.storage import storage_open, storage_save_stream
from studio.datasets.models import Dataset
from studio.endpoints import transform_runner, transforms
from studio.endpoints.models import TransformJob, TransformStatus
from studio.endpoints.predictions import Predictor
from studio.endpoints.transform_runner import (
    FilterError,
    TransformError,
    flatten_prediction,
    parse_filter,
    plan_parts,
    predictor_cache_clear,
    write_output_columns,
)
from studio.registry.models import Model
from studio.registry.services import model_artifacts_store, model_create
from tests.conftest import csv_bytes
from tests.training.factories import dataset_from_csv

# --- filters and splitting (no database) -------------------------------------------------------------


def _cell(rng: random.Random, kind: str):
    if kind == "text":
        pieces = ["a", ",", '"', "\r", "\n", " ", "\x00", "\t", "é", ""]
        return "".join(rng.choice(pieces) for _ in range(rng.randint(0, 4)))
    if kind == "float":
        return rng.choice([rng.random(), 1e-05, 1e20, float("nan"), float("inf"), -0.0, 3.0])
    if kind == "int":
        return rng.randint(-5, 5)
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "none":
        return None
    if kind == "other":
        return rng.choice([1 + 2j, (1, 2), b"ab", "a"])
    return _cell(rng, rng.choice(["text", "float", "int", "bool", "none"]))


def test_it_writes_float_columns_as_repr_across_magnitudes():
    rng = np.random.default_rng(5)
    values = np.concatenate([
        rng.random(50_000), rng.random(20_000) * 1e-3, np.exp(rng.uniform(-60, 60, 60_000)),
        -np.exp(rng.uniform(-45, 45, 20_000)), rng.integers(-1000, 1000, 5_000).astype(float),
        [0.0, -0.0, 1e-4, np.nextafter(1e-4, 0), 1e16, np.nextafter(1e16, 0), 0.1, 1 / 3, 5e-324,
         1.7976931348623157e308, float("nan"), float("inf"), float("-inf")],
    ]).tolist()
    out = io.StringIO()
    write_output_columns(out, input_columns=[], input_cells=[], predicted={"p": values, "q": values[::-1]},
                         join=False, output_filter=None)
    assert out.getvalue() == "".join(f"{a!r},{b!r}\n" for a, b in zip(values, values[::-1], strict=True))


def test_it_writes_columns_byte_for_byte_as_csv_writer_writes_the_rows():
    rng = random.Random(7)
    kinds = ["text", "float", "int", "bool", "none", "mixed", "other"]
    for trial in range(1500):
        count = rng.randint(0, 6)
        chosen = [rng.choice(kinds if trial % 3 == 0 else kinds[:-1]) for _ in range(rng.randint(1, 4))]
        inputs = [[_cell(rng, "text") for _ in range(count)] for _ in range(rng.randint(0, 2))]
        predicted = {f"k{j}": [_cell(rng, kind) for _ in range(count)] for j, kind in enumerate(chosen)}
        if trial % 10 == 0:
            predicted = dict(list(predicted.items())[:trial % 20 // 10])  # one prediction column, or none
        join = rng.random() < 0.5
        fast = io.StringIO()
        write_output_columns(fast, input_columns=[f"c{i}" for i in range(len(inputs))], input_cells=inputs,
                             predicted=predicted, join=join, output_filter=None)
        reference = io.StringIO()
        cells = [*(inputs if join else []), *predicted.values()]
        csv.writer(reference, lineterminator="\n").writerows(zip(*cells, strict=True))
        assert fast.getvalue() == reference.getvalue(), (inputs, predicted, join)


NAMES = ["id", "f1", "f2", "f3", "y"]


@pytest.mark.parametrize(("text", "expected"), [
    ("", None), ("$", None), ("$[*]", None),
    ("$[1:4]", [1, 2, 3]), ("$[1:]", [1, 2, 3, 4]), ("$[:2]", [0, 1]), ("$[0,2]", [0, 2]), ("$[-1]", [4]),
    ("$[0, 2:4, -1]", [0, 2, 3, 4]), ("$[3,0]", [3, 0]), ("f3, id", [3, 0]),
])
def test_it_selects_columns_by_position_slice_or_name(text, expected):
    parsed = parse_filter(text, field="input_filter")
    assert (None if parsed is None else parsed.resolve(NAMES, field="input_filter")) == expected


@pytest.mark.parametrize("text", ["$[a]", "$[1:2:3]", "$.x", "a,,b", "$[1.5]"])
def test_it_refuses_a_filter_that_does_not_parse(text):
    with pytest.raises(FilterError, match="input_filter"):
        parse_filter(text, field="input_filter")


@pytest.mark.parametrize(("text", "message"), [("$[7]", "position 7 is outside"), ("nope", "no column 'nope'"),
                                               ("$[9:]", "selects no column")])
def test_it_names_the_column_a_filter_cannot_find(text, message):
    with pytest.raises(FilterError, match=message):
        parse_filter(text, field="output_filter").resolve(NAMES, field="output_filter")


def test_it_splits_on_records_not_on_newlines_inside_quotes():
    content = b'a,b\n1,"two\nlines"\n\n3,"say ""hi"""\n4,x\n'
    plan = plan_parts(io.BytesIO(content), fmt="csv", delimiter=",", columns=None, max_bytes=1024, max_records=2)
    assert plan.columns == ["a", "b"]
    assert [(p.first, p.count) for p in plan.parts] == [(0, 2), (2, 1)]
    rows = [transform_runner.read_part_rows(content[p.offset:p.offset + p.length], plan=plan, part=p)
            for p in plan.parts]
    assert rows == [[["1", "two\nlines"], ["3", 'say "hi"']], [["4", "x"]]]


def test_it_fills_parts_up_to_the_byte_limit_and_refuses_a_record_too_large():
    rows = [[i, "x" * 10] for i in range(100)]
    content = csv_bytes(rows, ["i", "s"])
    plan = plan_parts(io.BytesIO(content), fmt="csv", delimiter=",", columns=None, max_bytes=100)
    assert all(p.length <= 100 for p in plan.parts) and plan.records_total == 100
    assert [p.first for p in plan.parts] == np.cumsum([0] + [p.count for p in plan.parts[:-1]]).tolist()
    with pytest.raises(TransformError, match="record 1 is"):
        plan_parts(io.BytesIO(b"i,s\n" + b"1," + b"y" * 200 + b"\n"), fmt="csv", delimiter=",", columns=None,
                   max_bytes=100)
    with pytest.raises(TransformError, match="split_type 'none'"):
        plan_parts(io.BytesIO(content), fmt="csv", delimiter=",", columns=None, max_bytes=100, whole=True)
    whole = plan_parts(io.BytesIO(content), fmt="csv", delimiter=",", columns=None, max_bytes=10_000, whole=True)
    assert [(p.first, p.count) for p in whole.parts] == [(0, 100)]


def _plan_record_by_record(content: bytes, *, fmt: str, max_bytes: int, max_records: int, whole: bool):
    """The reference plan: every record through the per-record packer, as the whole file was once read."""
    records = transform_runner._physical_records(io.BytesIO(content), fmt=fmt)
    offset = len(next(records)[1]) if fmt == "csv" else 0
    packer = transform_runner._Packer(max_bytes=max_bytes, max_records=max_records, whole=whole)
    for start, raw in transform_runner._physical_records(io.BytesIO(content[offset:]), fmt=fmt, start=offset):
        packer.add(start, raw)
    packer.close()
    return packer.parts


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_it_plans_by_blocks_exactly_as_record_by_record(monkeypatch, fmt):
    monkeypatch.setattr(transform_runner, "SPAN_BLOCK", 64)  # many blocks, records across block ends
    rng = random.Random(7)
    for _ in range(400):
        lines = ["a,b\n"] if fmt == "csv" else []
        for _ in range(rng.randint(0, 30)):
            kind = rng.random()
            if kind < 0.1:
                lines.append(rng.choice(["\n", "  \n", "\t\r\n"]))
            elif kind < 0.15:
                lines.append('"x\ny",z\n')
            else:
                lines.append(f"{rng.randint(0, 10 ** rng.randint(0, 12))},{'q' * rng.randint(0, 20)}\n")
        if lines and rng.random() < 0.3:
            lines[-1] = lines[-1].rstrip("\n")
        content = "".join(lines).encode()
        options = {"max_bytes": rng.randint(20, 120), "max_records": rng.randint(1, 6), "whole": rng.random() < 0.2}
        try:
            expected = _plan_record_by_record(content, fmt=fmt, **options)
        except (TransformError, StopIteration) as exc:
            expected = exc
        try:
            got = plan_parts(io.BytesIO(content), fmt=fmt, delimiter=",", columns=["a", "b"], **options).parts
        except TransformError as exc:
            got = exc
        if isinstance(expected, StopIteration):
            assert isinstance(got, TransformError) and "empty" in str(got)
        elif isinstance(expected, TransformError):
            assert str(got) == str(expected), content
        else:
            assert got == expected, content


@pytest.mark.parametrize("body", [
    b"1,x,2.5\n3,y,-1e-3\n", b"1,,2\n,,\n", b"1,x,2\n3,y,4",  # plain, empty cells, no final newline
])
def test_it_reads_a_plain_part_with_arrow_as_the_csv_reader_does(body):
    plan = transform_runner.Plan(fmt="csv", delimiter=",", columns=["a", "b", "a"], parts=[])
    part = transform_runner.Part(index=0, offset=0, length=len(body), first=0, count=body.strip().count(b"\n") + 1)
    arrow = transform_runner.read_part_arrow(body, plan=plan, part=part)
    assert arrow is not None
    assert transform_runner.plain_columns(arrow) == [list(c) for c in transform_runner.read_part_columns(
        body, plan=plan, part=part)]


@pytest.mark.parametrize("body", [
    b'1,"x",2\n', b"1,x,2\r\n", b"1,x,2\n\n3,y,4\n", b"1,x\n", b"1,x,2,3\n", b"1,\xff,2\n",
])
def test_it_leaves_parts_arrow_cannot_read_exactly_to_the_csv_reader(body):
    plan = transform_runner.Plan(fmt="csv", delimiter=",", columns=["a", "b", "c"], parts=[])
    part = transform_runner.Part(index=0, offset=0, length=len(body), first=0, count=1)
    assert transform_runner.read_part_arrow(body, plan=plan, part=part) is None


def test_it_flattens_each_prediction_shape_into_columns():
    assert flatten_prediction({"label": "yes", "probabilities": {"no": 0.2, "yes": 0.8}}) == {
        "label": "yes", "p_no": 0.2, "p_yes": 0.8}
    assert flatten_prediction({"projection": [1.0, 2.0]}) == {"projection_0": 1.0, "projection_1": 2.0}
    assert flatten_prediction({"score": 0.5, "anomaly": True}) == {"score": 0.5, "anomaly": "true"}
    knn = flatten_prediction({"score": 1.0, "neighbors": [{"index": 3, "distance": 0.1, "score": 2.0}]})
    assert json.loads(knn["neighbors"]) == [{"index": 3, "distance": 0.1, "score": 2.0}]


# --- whole jobs ----------------------------------------------------------------------------------------


def registry_model(world, models, name: str) -> Model:
    """A registry model whose artifacts are really stored, from the session's saved models."""
    fitted = models(name)
    model_id = uuid.uuid4()
    artifacts = model_artifacts_store(project=world.project, model_id=model_id, directory=fitted.directory)
    predictor = Predictor.from_directory(fitted.directory)
    return model_create(project=world.project, model_id=model_id, name=name, algorithm=predictor.algorithm,
                        artifacts=artifacts, feature_names=predictor.input_names, created_by=world.member)


def numeric_rows(n: int, seed: int = 0) -> list[list]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).round(4)
    return [[f"r{i}", *x[i].tolist(), round(float(x[i].sum()), 4)] for i in range(n)]


class Steps:
    """Collects what the services hand to the queue and runs it here, in FIFO or shuffled order."""

    def __init__(self, monkeypatch):
        self.queue: list[tuple[str, str, int | None]] = []
        self.ran: list[tuple[str, int | None]] = []
        monkeypatch.setattr(transforms, "transform_task_send",
                            lambda step, job_id, index=None: self.queue.append((step, str(job_id), index)))

    def run(self, *, shuffle: bool = False, seed: int = 0) -> None:
        rng = random.Random(seed)
        while self.queue:
            self.run_one(*self.queue.pop(rng.randrange(len(self.queue)) if shuffle else 0))

    def run_one(self, step: str, job_id: str, index: int | None) -> None:
        self.ran.append((step, index))
        if step == "plan":
            transform_runner.run_plan(job_id=job_id)
        elif step == "part":
            transform_runner.run_part(job_id=job_id, index=index)
        else:
            transform_runner.run_finalize(job_id=job_id)


@pytest.fixture
def steps(monkeypatch):
    predictor_cache_clear()
    return Steps(monkeypatch)


def create(world, model, dataset, **kwargs) -> TransformJob:
    return transforms.transform_job_create(user=world.member, project=world.project, model=model.id,
                                           input_dataset=dataset.id, **kwargs)


def output_rows(job: TransformJob) -> tuple[list[str], list[list[str]]]:
    job.refresh_from_db()
    assert job.status == TransformStatus.COMPLETED, job.failure_reason
    with storage_open(job.output_dataset.file) as fh:
        rows = list(csv.reader(io.TextIOWrapper(fh, encoding="utf-8", newline="")))
    return rows[0], rows[1:]


@pytest.mark.django_db(transaction=True)
def test_it_predicts_every_record_in_input_order_whatever_order_parts_finish(world, models, steps, monkeypatch):
    monkeypatch.setattr(transform_runner, "PART_MAX_RECORDS", 7)
    rows = numeric_rows(60)
    dataset = dataset_from_csv(world.project, name="numbers", content=csv_bytes(rows, ["id", "f1", "f2", "f3", "y"]))
    model = registry_model(world, models, "regressor")
    job = create(world, model, dataset, name="nightly", max_concurrent=32)
    steps.run(shuffle=True, seed=3)
    parts = [index for step, index in steps.ran if step == "part"]
    assert sorted(parts) == list(range(9)) and parts != sorted(parts)  # all 9 parts, out of order

    header, out = output_rows(job)
    reference = Predictor.from_directory(models("regressor").directory).predict_records(
        [dict(zip(["f1", "f2", "f3"], r[1:4], strict=True)) for r in rows])
    assert header == ["score"]
    np.testing.assert_allclose([float(r[0]) for r in out], [p["score"] for p in reference], rtol=1e-9)
    job.refresh_from_db()
    assert (job.records_total, job.records_done, job.parts_total, job.parts_done) == (60, 60, 9, 9)
    assert transforms.transform_job_progress(job) == 1.0
    output = job.output_dataset
    assert output.name == "nightly-output" and output.rows == 60 and output.status == "ready"
    assert output.column_names == ["score"] and output.profile["columns"][0]["dtype"] in ("float", "int")
    assert not default_storage.exists(transform_runner.part_name(job, 0))  # parts are removed once joined


@pytest.mark.django_db(transaction=True)
def test_it_never_runs_more_parts_than_max_concurrent(world, models, steps, monkeypatch):
    monkeypatch.setattr(transform_runner, "PART_MAX_RECORDS", 5)
    dataset = dataset_from_csv(world.project, name="numbers",
                               content=csv_bytes(numeric_rows(30), ["id", "f1", "f2", "f3", "y"]))
    job = create(world, registry_model(world, models, "regressor"), dataset, max_concurrent=2)
    most = 0
    while steps.queue:
        most = max(most, sum(1 for step, _, _ in steps.queue if step == "part"))
        steps.run_one(*steps.queue.pop(0))
    assert most == 2
    assert len(output_rows(job)[1]) == 30


@pytest.mark.django_db(transaction=True)
def test_it_joins_the_input_and_applies_both_filters(world, models, steps):
    rows = numeric_rows(12)
    dataset = dataset_from_csv(world.project, name="numbers", content=csv_bytes(rows, ["id", "f1", "f2", "f3", "y"]))
    model = registry_model(world, models, "regressor")
    joined = create(world, model, dataset, name="joined", join_source="input", input_filter="$[1:4]")
    picked = create(world, model, dataset, name="picked", join_source="input", input_filter="f1,f2,f3",
                    output_filter="$[0,-1]")
    steps.run()
    header, out = output_rows(joined)
    assert header == ["f1", "f2", "f3", "score"]
    assert [r[:3] for r in out] == [[str(v) for v in r[1:4]] for r in rows]
    header2, out2 = output_rows(picked)
    assert header2 == ["f1", "score"] and [[r[0], r[3]] for r in out] == out2


@pytest.mark.django_db(transaction=True)
def test_single_record_and_multi_record_give_the_same_rows(world, models, steps):
    rows = [[a, b, c, "Paris" if a > 0 else "Lyon"] for a, b, c, *_ in [r[1:] for r in numeric_rows(20)]]
    dataset = dataset_from_csv(world.project, name="mixed", content=csv_bytes(rows, ["x1", "x2", "unused", "city"]))
    model = registry_model(world, models, "logistic")
    single = create(world, model, dataset, name="single", batch_strategy="single_record", join_source="input")
    multi = create(world, model, dataset, name="multi", batch_strategy="multi_record", split_type="none",
                   join_source="input")
    steps.run()
    header, out = output_rows(single)
    assert header == ["x1", "x2", "unused", "city", "label", "p_no", "p_yes"]
    assert output_rows(multi) == (header, out)
    reference = Predictor.from_directory(models("logistic").directory).predict_records(
        [{"x1": r[0], "x2": r[1], "city": r[3]} for r in rows])
    assert [r[4] for r in out] == [p["label"] for p in reference]


@pytest.mark.django_db(transaction=True)
def test_it_runs_a_text_model_on_a_jsonl_text_dataset(world, models, steps):
    texts = ["apple pear plum", "engine brake gear", "banana cherry", "wheel tyre"]
    content = ("\n".join(json.dumps({"text": t, "label": "?"}) for t in texts) + "\n").encode()
    stored, size, _ = storage_save_stream(name=f"projects/{world.project.id}/datasets/t.jsonl",
                                            stream=io.BytesIO(content))
    dataset = Dataset.objects.create(project=world.project, name="texts", kind="text", status="ready", file=stored,
                                     size_bytes=size, rows=4, profile={"format": "jsonl"},
                                     columns=[{"name": "text", "dtype": "string"},
                                              {"name": "label", "dtype": "string"}])
    job = create(world, registry_model(world, models, "text-classification"), dataset, join_source="input",
                 output_filter="text,label")
    steps.run()
    # The input has a label column, so the prediction's label comes out as predicted_label.
    assert output_rows(job)[0] == ["text", "label"]
    job2 = create(world, job.model, dataset, name="preds", join_source="input", output_filter="text,predicted_label")
    steps.run()
    assert [r[0] for r in output_rows(job2)[1]] == texts
    expected = models("text-classification").estimator.predict(texts).tolist()
    assert [r[1] for r in output_rows(job2)[1]] == expected


@pytest.mark.django_db(transaction=True)
def test_a_bad_record_fails_the_job_naming_its_part_and_records(world, models, steps, monkeypatch):
    monkeypatch.setattr(transform_runner, "PART_MAX_RECORDS", 4)
    rows = numeric_rows(10)
    rows[6][2] = "lots"
    dataset = dataset_from_csv(world.project, name="numbers", content=csv_bytes(rows, ["id", "f1", "f2", "f3", "y"]))
    job = create(world, registry_model(world, models, "regressor"), dataset, max_concurrent=1)
    steps.run()
    job.refresh_from_db()
    assert job.status == TransformStatus.FAILED and job.output_dataset is None
    assert job.failure_reason.startswith("Part 2 (records 5-8):") and "'f2' must be a number" in job.failure_reason
    assert ("part", 2) not in steps.ran  # nothing more starts once a part failed


@pytest.mark.django_db(transaction=True)
def test_an_output_filter_naming_no_column_fails_with_the_columns(world, models, steps):
    dataset = dataset_from_csv(world.project, name="numbers",
                               content=csv_bytes(numeric_rows(5), ["id", "f1", "f2", "f3", "y"]))
    job = create(world, registry_model(world, models, "regressor"), dataset, output_filter="label")
    steps.run()
    job.refresh_from_db()
    assert job.status == TransformStatus.FAILED
    assert "output_filter 'label': no column 'label'; columns are score" in job.failure_reason


@pytest.mark.django_db(transaction=True)
def test_a_stopped_job_starts_no_further_part_and_makes_no_dataset(world, models, steps, monkeypatch):
    monkeypatch.setattr(transform_runner, "PART_MAX_RECORDS", 5)
    dataset = dataset_from_csv(world.project, name="numbers",
                               content=csv_bytes(numeric_rows(30), ["id", "f1", "f2", "f3", "y"]))
    job = create(world, registry_model(world, models, "regressor"), dataset, max_concurrent=1)
    transform_runner.run_plan(job_id=steps.queue.pop(0)[1])
    _, job_id, index = steps.queue.pop(0)
    transform_runner.run_part(job_id=job_id, index=index)
    transforms.transform_job_stop(user=world.member, job=job)
    steps.run()
    job.refresh_from_db()
    assert job.status == TransformStatus.STOPPED and job.parts_done == 1 and job.output_dataset is None
    assert steps.ran == [("part", 1)] and transform_runner.run_part(job_id=job.id, index=1) == "not running"
    assert not Dataset.objects.filter(name__endswith="-output").exists()


@pytest.mark.django_db(transaction=True)
def test_a_part_run_twice_is_counted_once(world, models, steps, monkeypatch):
    monkeypatch.setattr(transform_runner, "PART_MAX_RECORDS", 5)
    dataset = dataset_from_csv(world.project, name="numbers",
                               content=csv_bytes(numeric_rows(15), ["id", "f1", "f2", "f3", "y"]))
    job = create(world, registry_model(world, models, "regressor"), dataset, max_concurrent=1)
    transform_runner.run_plan(job_id=steps.queue.pop(0)[1])
    _, job_id, index = steps.queue.pop(0)
    transform_runner.run_part(job_id=job_id, index=index)
    transform_runner.run_part(job_id=job_id, index=index)  # a redelivered message
    job.refresh_from_db()
    assert (job.parts_done, job.records_done) == (1, 5) and [s[2] for s in steps.queue] == [1]
    steps.run()
    assert len(output_rows(job)[1]) == 15


@pytest.mark.django_db(transaction=True)
def test_the_tasks_run_a_job_on_a_worker_in_this_process(world, models, monkeypatch):
    from studio.endpoints import tasks

    predictor_cache_clear()
    task_of = {"plan": tasks.transform_job_plan_task, "part": tasks.transform_part_run_task,
               "finalize": tasks.transform_job_finalize_task}
    monkeypatch.setattr(transforms, "transform_task_send", lambda step, job_id, index=None: task_of[step].apply(
        args=[str(job_id)] if index is None else [str(job_id), index]))
    dataset = dataset_from_csv(world.project, name="numbers",
                               content=csv_bytes(numeric_rows(8), ["id", "f1", "f2", "f3", "y"]))
    job = create(world, registry_model(world, models, "regressor"), dataset)
    assert len(output_rows(job)[1]) == 8


def test_it_loads_each_model_once_per_process():
    loads = []

    class Fake:
        def __init__(self, i):
            self.id = i

    predictor_cache_clear()
    for i in [1, 2, 1, 1, 2]:
        transform_runner.predictor_for(Fake(i), loader=lambda m: loads.append(m.id) or object())
    assert loads == [1, 2]
    for i in range(3, 3 + transform_runner.PREDICTOR_CACHE_SIZE):
        transform_runner.predictor_for(Fake(i), loader=lambda m: loads.append(m.id) or object())
    transform_runner.predictor_for(Fake(1), loader=lambda m: loads.append(m.id) or object())
    assert loads[-1] == 1  # the least recently used model was evicted
    predictor_cache_clear()


@pytest.mark.django_db(transaction=True)
def test_a_long_output_is_profiled_on_its_first_rows(world, models, steps, monkeypatch):
    monkeypatch.setattr(transforms, "PROFILE_MAX_ROWS", 5)
    dataset = dataset_from_csv(world.project, name="numbers",
                               content=csv_bytes(numeric_rows(12), ["id", "f1", "f2", "f3", "y"]))
    job = create(world, registry_model(world, models, "regressor"), dataset, join_source="input")
    steps.run()
    assert len(output_rows(job)[1]) == 12
    output = job.output_dataset
    assert output.rows == 12 and output.profile["rows"] == 12 and output.profile["profiled_rows"] == 5
    assert output.column_names == ["id", "f1", "f2", "f3", "y", "score"]


def mixed_rows(n: int, seed: int = 0) -> list[list[str]]:
    """Numbers, cities and missing cells written every way a CSV holds them; a few ids need quoting."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).round(4)
    cities = ["Paris", "Lyon", "Nice", "Oslo", "", "NA", " Paris "]  # Oslo was never seen in training
    gaps = ["", "NA", "nan", "null", "None", " "]
    rows = []
    for i in range(n):
        cells = [f"{v:g}" for v in x[i]]
        if i % 7 == 3:
            cells[i % 5] = gaps[i % len(gaps)]
        if i % 11 == 5:
            cells[(i + 1) % 5] = ["true", "False", " 1.5 ", "1e-3", "+2"][i % 5]
        ident = f'row "{i}",\nquoted' if 20 <= i < 24 else f"r{i}"  # the parts with quotes are read by csv
        rows.append([ident, cells[0], cells[1], cities[int(rng.integers(0, len(cities)))], *cells[2:]])
    return rows


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("model_name", "output_filter"), [
    ("logistic", ""), ("regressor", ""), ("kmeans", "$[0,-2:]"), ("pca", "id,projection_1,f1"),
])
def test_it_writes_the_same_output_by_columns_as_record_by_record(world, models, steps, monkeypatch, model_name,
                                                                  output_filter):
    monkeypatch.setattr(transform_runner, "PART_MAX_RECORDS", 16)
    header = ["id", "x1", "x2", "city", "f1", "f2", "f3"]
    content = io.StringIO()
    csv.writer(content, lineterminator="\n").writerows([header, *mixed_rows(90)])
    dataset = dataset_from_csv(world.project, name="mixed", content=content.getvalue().encode())
    model = registry_model(world, models, model_name)
    by_columns = []
    real = Predictor.predict_columns
    monkeypatch.setattr(Predictor, "predict_columns", lambda self, columns: by_columns.append(1) or real(self, columns))
    fast = create(world, model, dataset, name="columns", join_source="input", output_filter=output_filter)
    steps.run()
    assert len(by_columns) == 6  # every part (16 records each, 90 in all) went by columns
    monkeypatch.setattr(Predictor, "answers_by_columns", property(lambda self: False))
    predictor_cache_clear()
    slow = create(world, model, dataset, name="records", join_source="input", output_filter=output_filter)
    steps.run()
    assert len(by_columns) == 6
    outputs = []
    for job in (fast, slow):
        output_rows(job)  # completed
        with storage_open(job.output_dataset.file) as fh:
            outputs.append(fh.read())
    assert outputs[0] == outputs[1]
    assert outputs[0].count(b'"row ""20"",\nquoted"') == 1  # the joined id, quoted back as it came


@pytest.mark.django_db(transaction=True)
def test_a_bad_cell_fails_by_columns_with_the_per_record_message(world, models, steps, monkeypatch):
    rows = numeric_rows(10)
    rows[6][2] = "lots"
    rows[8][3] = "1_000"  # float() reads it, the dataset rules do not
    dataset = dataset_from_csv(world.project, name="numbers", content=csv_bytes(rows, ["id", "f1", "f2", "f3", "y"]))
    model = registry_model(world, models, "regressor")
    reasons = []
    for answers_by_columns in (True, False):
        monkeypatch.setattr(Predictor, "answers_by_columns", property(lambda self, a=answers_by_columns: a))
        predictor_cache_clear()
        job = create(world, model, dataset, name=f"bad-{answers_by_columns}")
        steps.run()
        job.refresh_from_db()
        reasons.append(job.failure_reason)
    assert reasons[0] == reasons[1]
    assert "record 7: column 'f2' must be a number (got 'lots')" in reasons[0]
    assert "record 9: column 'f3' must be a number (got '1_000')" in reasons[0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_it_parses_numeric_columns_as_the_per_record_path_does(seed):
    """Every way a numeric cell is written, column by column (Arrow's cast) against record by record (float())."""
    import pyarrow as pa

    from studio.datasets.preprocessing import InputError, TabularPreprocessor
    from studio.datasets.tabular import TabularData

    names = ["f1", "f2"]
    X = np.random.default_rng(0).normal(size=(40, 2))
    pre = TabularPreprocessor()
    pre.fit(TabularData(feature_names=names, numeric=X, numeric_names=names, text={}, y=(X[:, 0] > 0).astype(str),
                        rows=np.arange(1, 41), n_dropped=0, target="label"))
    forms = ["1.5", "-0", "+2", ".5", "3.", "1e-3", "1E5", "0.1e-330", "1e309", " 1.5 ", "\t7", "1_000",
             "\u0663.\u0665", "", " ", "NA", "n/a", "nan", " NaN ", "-nan", "Null", "None", "TRUE", " false ", "inf",
             "Infinity", "\xa0na", "na\x1c", "lots", "0x10", "1,5", "12345678901234567890.123456789"]
    rng = random.Random(seed)
    for _ in range(200):
        n = rng.randint(1, 5)
        columns = {name: [rng.choice(forms) if rng.random() < 0.5 else f"{rng.gauss(0, 1):.6g}" for _ in range(n)]
                   for name in names}
        records = [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]
        arrow = {name: pa.array(cells, type=pa.string()) for name, cells in columns.items()}  # as parts read by Arrow
        outcomes = []
        for run, given in ((pre.transform_columns, columns), (pre.transform_columns, arrow),
                           (pre.transform_records, records)):
            try:
                outcomes.append(run(given).tobytes())
            except InputError as exc:
                outcomes.append(str(exc))
        assert outcomes[0] == outcomes[1] == outcomes[2], columns
