"""Text datasets: CSV/JSONL upload, profile, rejections, loader."""

from __future__ import annotations

import json

import numpy as np
import pytest
from django.core.exceptions import ValidationError

from studio.datasets.loading import DatasetError, load_text
from studio.datasets.models import Dataset
from tests.datasets.conftest import stored_files, upload

pytestmark = pytest.mark.django_db


def _jsonl(records: list[dict]) -> bytes:
    return "\n".join(json.dumps(r) for r in records).encode() + b"\n"


RECORDS = [{"text": "good film", "label": "pos"}, {"text": "bad bad film really", "label": "neg"},
           {"text": "loved it", "label": "pos"}, {"text": "meh", "label": 1}]


def test_it_uploads_jsonl_as_text_and_profiles_it(world):
    dataset = upload(world, _jsonl(RECORDS), "reviews.jsonl")
    assert dataset.kind == "text" and dataset.status == "ready" and dataset.rows == 4
    assert [c["name"] for c in dataset.columns] == ["text", "label"]
    profile = dataset.profile
    assert profile["format"] == "jsonl" and profile["label_counts"] == {"pos": 2, "neg": 1, "1": 1}
    assert profile["length"]["min"] == 1 and profile["length"]["max"] == 4 and sum(profile["length"]["counts"]) == 4
    assert profile["sample"][1] == ["bad bad film really", "neg"]
    # Word counts 2, 4, 2, 1: one bar per count.
    assert profile["length"]["edges"] == [0.5, 1.5, 2.5, 3.5, 4.5] and profile["length"]["counts"] == [1, 2, 0, 1]


def test_it_uploads_a_text_csv_when_kind_text_is_given(world):
    content = b"id,text,label\n1,\"hello, world\",a\n2,second one,\n3,third,b\n"
    dataset = upload(world, content, "texts.csv", kind="text", target="label")
    assert dataset.kind == "text" and dataset.rows == 3 and dataset.target == "label"
    assert dataset.profile["missing_labels"] == 1 and dataset.profile["label_counts"] == {"a": 1, "b": 1}
    # Without kind=text the same CSV stays tabular: tabular behaviour is unchanged.
    assert upload(world, content, "texts.csv", name="tab").kind == "tabular"


def test_it_accepts_texts_without_labels(world):
    dataset = upload(world, _jsonl([{"text": "a b c"}, {"text": "d"}]), "corpus.jsonl")
    assert dataset.profile["has_label"] is False and [c["name"] for c in dataset.columns] == ["text"]
    data = load_text(dataset=dataset, target="")
    assert data.texts == ["a b c", "d"] and data.y is None
    with pytest.raises(DatasetError, match="has no 'label' column"):
        load_text(dataset=dataset)


BAD_TEXT = [
    ("t.csv", b"body,label\nhi,a\n", {"kind": "text"}, "the file has no 'text' column (columns: body, label)"),
    ("t.jsonl", b'{"body": "x"}\n', {}, "line 1 has no 'text' field (fields: body)"),
    ("t.jsonl", b'{"text": "x"}\n{"text": "y"\n', {}, "line 2 is not valid JSON"),
    ("t.jsonl", b'{"text": "x"}\n[1, 2]\n', {}, "line 2 is not a JSON object"),
    ("t.jsonl", b'{"text": 5}\n', {}, "line 1: 'text' must be a string"),
    ("t.jsonl", b'{"text": "a", "label": [1]}\n', {}, "line 1: a label must be a string"),
    ("t.jsonl", b"", {}, "the file is empty"),
    ("t.csv", b"text,label\n  ,a\n", {"kind": "text"}, "row 1 has an empty 'text'"),
    ("t.csv", b"text,label\nhi\n", {"kind": "text"}, "row 1 has 1 fields, header has 2"),
    ("t.csv", b"text\n", {"kind": "text"}, "the file has no rows"),
    ("t.csv", b"text\nhi\n", {"kind": "text", "target": "label"}, "target 'label' is not a column; columns: text"),
    ("t.zip", b"text\nhi\n", {"kind": "text"}, "a text dataset is a .csv or .jsonl file"),
    ("t.csv", b"text,label\nhi,a\n", {"kind": "text", "target": "text"}, "target can only be 'label'"),
]


@pytest.mark.parametrize(("filename", "content", "options", "message"), BAD_TEXT, ids=[c[3][:30] for c in BAD_TEXT])
def test_it_rejects_bad_text_files_and_stores_nothing(world, filename, content, options, message):
    with pytest.raises(ValidationError) as exc:
        upload(world, content, filename, **options)
    assert message in " ".join(exc.value.messages)
    assert not Dataset.objects.exists() and stored_files(world.project) == []


def test_it_loads_texts_and_labels_dropping_unlabelled_rows(world):
    content = b"text,label\nfirst text,x\nno label,\nthird,y\n"
    dataset = upload(world, content, "t.csv", kind="text")
    data = load_text(dataset=dataset, target="label")
    assert data.texts == ["first text", "third"] and data.y.tolist() == ["x", "y"] and data.n_dropped == 1
    assert data.y.dtype.kind == "U"
    with pytest.raises(DatasetError, match="target 'topic' is not a column of text dataset"):
        load_text(dataset=dataset, target="topic")


def test_it_refuses_to_load_other_kinds_as_text(world):
    dataset = upload(world, b"a,b\n1,2\n", "tab.csv")
    with pytest.raises(DatasetError, match="is tabular, not text"):
        load_text(dataset=dataset)


def test_it_loads_a_large_jsonl_streamed(world):
    rng = np.random.default_rng(0)
    records = [{"text": " ".join(["w"] * int(n)), "label": str(n % 3)} for n in rng.integers(1, 50, size=2000)]
    dataset = upload(world, _jsonl(records), "big.jsonl")
    assert dataset.rows == 2000 and sum(dataset.profile["length"]["counts"]) == 2000
    assert len(load_text(dataset=dataset).texts) == 2000
