from __future__ import annotations

import hashlib
import io
from collections import Counter

import numpy as np
import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.storage import default_storage
from django.test import override_settings

from studio.core.errors import Conflict
from studio.datasets import profiling, services
from studio.datasets.models import Dataset
from studio.training.models import TrainingJob
from tests.conftest import api_client, csv_bytes, regression_csv
from tests.datasets.conftest import stored_files, upload

pytestmark = pytest.mark.django_db


def _mixed_csv(n: int = 400, seed: int = 1) -> tuple[bytes, dict]:
    rng = np.random.default_rng(seed)
    ints = rng.integers(-50, 200, size=n)
    floats = rng.normal(10, 3, size=n).round(4)
    float_missing = rng.random(n) < 0.1
    labels = rng.choice(["red", "green", "blue"], size=n, p=[0.5, 0.3, 0.2])
    flags = rng.choice(["true", "false", "TRUE"], size=n)
    rows = []
    for i in range(n):
        rows.append([ints[i], "" if float_missing[i] else floats[i], labels[i], flags[i], ""])
    data = {"ints": ints, "floats": floats[~float_missing], "float_missing": int(float_missing.sum()),
            "labels": labels, "n": n}
    return csv_bytes(rows, ["count", "weight", "colour", "flag", "nothing"]), data


@pytest.mark.parametrize("chunk_rows", [profiling.CHUNK_ROWS, 7], ids=["one-chunk", "many-chunks"])
def test_it_profiles_every_column_like_numpy(world, monkeypatch, chunk_rows):
    monkeypatch.setattr(profiling, "CHUNK_ROWS", chunk_rows)  # statistics merged across chunks stay exact
    content, data = _mixed_csv()
    dataset = upload(world, content, "mixed.csv")
    assert dataset.rows == data["n"] and dataset.status == "ready"
    assert [(c["name"], c["dtype"]) for c in dataset.columns] == [
        ("count", "int"), ("weight", "float"), ("colour", "string"), ("flag", "bool"), ("nothing", "empty")]
    cols = {c["name"]: c for c in dataset.profile["columns"]}

    ints = data["ints"].astype(float)
    assert cols["count"]["missing"] == 0
    assert cols["count"]["min"] == ints.min() and cols["count"]["max"] == ints.max()
    assert cols["count"]["mean"] == pytest.approx(ints.mean()) and cols["count"]["std"] == pytest.approx(ints.std())
    counts, edges = np.histogram(ints, bins=30, range=(ints.min(), ints.max()))
    assert cols["count"]["histogram"]["counts"] == counts.tolist()
    assert cols["count"]["histogram"]["edges"] == pytest.approx(edges.tolist())
    assert cols["count"]["histogram"]["sampled"] is False
    assert cols["count"]["distinct"] == len(set(data["ints"].tolist()))

    floats = data["floats"]
    assert cols["weight"]["missing"] == data["float_missing"]
    assert cols["weight"]["mean"] == pytest.approx(floats.mean())
    assert cols["weight"]["std"] == pytest.approx(floats.std())
    assert (cols["weight"]["min"], cols["weight"]["max"]) == (floats.min(), floats.max())
    assert sum(cols["weight"]["histogram"]["counts"]) == floats.size

    expected = Counter(data["labels"].tolist()).most_common()
    assert [tuple(v) for v in cols["colour"]["top_values"]] == expected
    assert cols["colour"]["distinct"] == 3 and "histogram" not in cols["colour"]
    assert cols["nothing"]["missing"] == data["n"]


def test_it_gives_small_integer_ranges_one_bar_per_value(world):
    dataset = upload(world, csv_bytes([[v] for v in [0, 1, 1, 2, 2, 2]], ["k"]))
    hist = dataset.profile["columns"][0]["histogram"]
    assert hist["counts"] == [1, 2, 3]


def test_it_samples_large_columns_but_keeps_exact_statistics(world, monkeypatch):
    monkeypatch.setattr(profiling, "RESERVOIR_SIZE", 100)
    monkeypatch.setattr(profiling, "CHUNK_ROWS", 64)
    values = np.arange(1000, dtype=float)
    dataset = upload(world, csv_bytes([[v] for v in values], ["x"]))
    col = dataset.profile["columns"][0]
    assert col["histogram"]["sampled"] is True and col["histogram"]["sample_size"] == 100
    assert sum(col["histogram"]["counts"]) == 100
    assert (col["min"], col["max"], col["mean"]) == (0.0, 999.0, pytest.approx(499.5))


def test_it_stores_the_file_under_the_project_with_its_hash(world):
    content = regression_csv(50)
    dataset = upload(world, content, "House Prices (2024).csv", target="price")
    assert dataset.name == "House Prices (2024)"
    assert dataset.file == f"projects/{world.project.id}/datasets/{dataset.id}/House_Prices_2024.csv"
    assert dataset.size_bytes == len(content) and dataset.sha256 == hashlib.sha256(content).hexdigest()
    assert dataset.target == "price" and dataset.original_filename == "House Prices (2024).csv"
    with default_storage.open(dataset.file) as fh:
        assert fh.read() == content


def test_it_reads_semicolons_tabs_and_a_byte_order_mark(world):
    semi = upload(world, "\ufeffa;b\n1;x\n2;y\n".encode(), "semi.csv")
    assert semi.column_names == ["a", "b"] and semi.profile["delimiter"] == ";"
    tsv = upload(world, b"a\tb\n1\t2\n", "tabs.tsv")
    assert tsv.column_names == ["a", "b"] and tsv.rows == 1


BAD_FILES = [
    ("empty.csv", b"", {}, "file is empty"),
    ("blank.csv", b"\n\n  \n", {}, "file is empty"),
    ("noheader.csv", b"1,2,3\n4,5,6\n", {}, "no header row"),
    ("dup.csv", b"a,b,a\n1,2,3\n", {}, "column name 'a' is used twice (columns 1 and 3)"),
    ("blankname.csv", b"a,,c\n1,2,3\n", {}, "column 2 has a blank name"),
    ("ragged.csv", b"a,b,c\n1,2,3\n1,2,3,4\n", {}, "row 2 has 4 fields, header has 3"),
    ("latin1.csv", "name,city\nx,Málaga\n".encode("latin-1"), {}, "not UTF-8"),
    ("zipped.csv", b"PK\x03\x04\x14\x00\x00\x00binary", {}, "looks like a ZIP archive"),
    ("nul.csv", b"a,b\n1,\x002\n", {}, "binary data"),
    ("data.json", b'{"a": 1}', {"kind": "tabular"}, "looks like JSON"),
    ("target.csv", b"a,b,c\n1,2,3\n", {"target": "foo"}, "target 'foo' is not a column; columns: a, b, c"),
    ("images.zip", b"PK\x03\x04", {}, "this is not a ZIP archive"),
    ("data.csv", b"a\n1\n", {"kind": "image"}, "this is not a ZIP archive"),
    ("data.csv", b"a\n1\n", {"kind": "video"}, "kind must be one of tabular, text, image"),
    ("arrays.npz", b"\x93NUMPY", {}, "NPZ files are not supported yet"),
]


@pytest.mark.parametrize(("filename", "content", "options", "message"), BAD_FILES,
                         ids=[case[0] + "-" + case[3][:20] for case in BAD_FILES])
def test_it_rejects_bad_files_and_stores_nothing(world, filename, content, options, message):
    with pytest.raises(ValidationError) as exc:
        upload(world, content, filename, **options)
    assert message in " ".join(exc.value.messages)
    assert not Dataset.objects.exists()
    assert stored_files(world.project) == []


def test_it_removes_the_stored_file_when_the_row_cannot_be_written(world, monkeypatch):
    def broken_audit(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(services, "audit", broken_audit)
    with pytest.raises(RuntimeError):
        upload(world, regression_csv(20))
    assert not Dataset.objects.exists() and stored_files(world.project) == []


def test_it_turns_a_name_race_into_409_and_removes_the_file(world, monkeypatch):
    upload(world, b"a\n1\n", "same.csv")
    monkeypatch.setattr(services, "_ensure_name_free", lambda **kwargs: None)  # as if both checked at once
    with pytest.raises(Conflict, match="named 'same' already exists"):
        upload(world, b"a\n2\n", "same.csv")
    assert Dataset.objects.count() == 1 and len(stored_files(world.project)) == 1


def test_it_refuses_a_duplicate_name_in_the_project(world):
    upload(world, b"a\n1\n", "prices.csv")
    with pytest.raises(Conflict, match="named 'Prices' already exists"):
        upload(world, b"a\n2\n", "other.csv", name="Prices")
    assert Dataset.objects.count() == 1 and len(stored_files(world.project)) == 1


def test_it_only_lets_members_upload(world):
    with pytest.raises(PermissionDenied):
        upload(world, b"a\n1\n", user=world.viewer)
    assert not Dataset.objects.exists()


@pytest.mark.parametrize("size_mb", [2, 1.2], ids=["refused-from-content-length", "refused-mid-stream"])
def test_it_answers_413_to_an_oversize_upload_and_stores_nothing(world, upload_tmp, size_mb):
    # 2 MB is refused from the Content-Length alone; 1.2 MB passes that check and is cut off mid-stream.
    content = b"a\n" + b"1\n" * int(size_mb * 1024 * 1024 / 2)
    with override_settings(STUDIO_MAX_UPLOAD_MB=1):
        response = api_client(world.member).post(
            f"/api/v1/projects/{world.project.id}/datasets",
            {"file": io.BytesIO(content), "name": "big"}, format="multipart")
    assert response.status_code == 413
    assert response.json() == {"detail": "File is larger than the 1 MB limit"}
    assert not Dataset.objects.exists() and stored_files(world.project) == []
    assert list(upload_tmp.iterdir()) == []


def test_it_takes_a_file_just_under_the_limit(world, upload_tmp):
    content = b"a\n" + b"1\n" * (500 * 1024)
    with override_settings(STUDIO_MAX_UPLOAD_MB=1):
        response = api_client(world.member).post(
            f"/api/v1/projects/{world.project.id}/datasets", {"file": io.BytesIO(content)}, format="multipart")
    assert response.status_code == 201, response.json()
    assert response.json()["rows"] == 500 * 1024
    assert list(upload_tmp.iterdir()) == []  # the temporary upload is gone once the request ends


def test_it_deletes_the_row_and_the_stored_file(world, django_capture_on_commit_callbacks):
    dataset = upload(world, regression_csv(20))
    assert stored_files(world.project)
    with django_capture_on_commit_callbacks(execute=True):
        services.dataset_delete(user=world.member, dataset=dataset)
    assert not Dataset.objects.exists() and stored_files(world.project) == []


def test_it_keeps_the_file_when_the_delete_rolls_back(world, django_capture_on_commit_callbacks):
    dataset = upload(world, regression_csv(20))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.dataset_delete(user=world.member, dataset=dataset)
    assert len(callbacks) == 2 and stored_files(world.project)  # file removal + activity publish wait for commit


@pytest.mark.parametrize(("status", "field"), [("running", "dataset"), ("pending", "validation_dataset")])
def test_it_refuses_to_delete_a_dataset_an_active_job_uses(world, status, field):
    dataset = upload(world, regression_csv(20))
    TrainingJob.objects.create(project=world.project, name="nightly", algorithm="linear-learner", status=status,
                               **{field: dataset})
    with pytest.raises(Conflict, match=f"dataset is used by {status} training job 'nightly'"):
        services.dataset_delete(user=world.owner, dataset=dataset)
    assert Dataset.objects.filter(id=dataset.id).exists() and stored_files(world.project)


def test_it_deletes_a_dataset_of_finished_jobs_and_keeps_the_jobs(world):
    dataset = upload(world, regression_csv(20))
    job = TrainingJob.objects.create(project=world.project, name="old", algorithm="linear-learner",
                                     status="completed", dataset=dataset)
    services.dataset_delete(user=world.member, dataset=dataset)
    job.refresh_from_db()
    assert job.dataset is None


def test_it_only_lets_members_delete(world):
    dataset = upload(world, regression_csv(20))
    with pytest.raises(PermissionDenied):
        services.dataset_delete(user=world.viewer, dataset=dataset)
