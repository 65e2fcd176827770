from __future__ import annotations

import io
import uuid

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from studio.datasets.models import Dataset
from studio.training.models import TrainingJob
from tests.conftest import api_client, classification_csv, csv_bytes, regression_csv
from tests.datasets.conftest import stored_files, upload

pytestmark = pytest.mark.django_db


def _url(world, suffix: str = "", project=None) -> str:
    return f"/api/v1/projects/{(project or world.project).id}/datasets{suffix}"


def _named(content: bytes, filename: str) -> io.BytesIO:
    fh = io.BytesIO(content)
    fh.name = filename
    return fh


def test_it_uploads_a_csv_and_describes_it(world):
    response = api_client(world.member).post(
        _url(world), {"file": _named(regression_csv(40), "houses.csv"), "target": "price"}, format="multipart")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["name"] == "houses" and body["kind"] == "tabular" and body["status"] == "ready"
    assert body["rows"] == 40 and body["target"] == "price" and body["created_by"] == world.member.username
    assert [c["name"] for c in body["columns"]] == ["x1", "x2", "x3", "price"]
    assert {c["dtype"] for c in body["columns"]} == {"float"}
    assert len(body["sha256"]) == 64 and body["size_bytes"] > 0 and body["created_at"]
    assert body["profile"]["columns"][3]["histogram"]["counts"]
    assert uuid.UUID(body["id"])


def test_it_answers_400_naming_the_problem(world):
    client = api_client(world.member)
    ragged = client.post(_url(world), {"file": _named(b"a,b,c\n1,2,3\n1,2\n", "r.csv")}, format="multipart")
    assert ragged.status_code == 400
    assert "row 2 has 2 fields, header has 3" in ragged.json()["detail"]
    assert "file" in ragged.json()["errors"]
    target = client.post(_url(world), {"file": _named(b"a,b\n1,2\n", "t.csv"), "target": "foo"},
                         format="multipart")
    assert target.status_code == 400 and "target 'foo' is not a column; columns: a, b" in target.json()["detail"]
    kind = client.post(_url(world), {"file": _named(b"a\n1\n", "t.csv"), "kind": "image"}, format="multipart")
    assert kind.status_code == 400 and "this is not a ZIP archive" in kind.json()["detail"]
    missing = client.post(_url(world), {"name": "nothing"}, format="multipart")
    assert missing.status_code == 400 and "file" in missing.json()["errors"]
    empty = client.post(_url(world), {"file": _named(b"", "e.csv")}, format="multipart")
    assert empty.status_code == 400 and "empty" in empty.json()["detail"]
    assert not Dataset.objects.exists() and stored_files(world.project) == []


def test_it_answers_409_to_a_duplicate_name(world):
    client = api_client(world.member)
    assert client.post(_url(world), {"file": _named(b"a\n1\n", "d.csv")}, format="multipart").status_code == 201
    again = client.post(_url(world), {"file": _named(b"a\n2\n", "e.csv"), "name": "d"}, format="multipart")
    assert again.status_code == 409 and "already exists" in again.json()["detail"]


def test_it_answers_401_without_credentials(world):
    dataset = upload(world, b"a\n1\n")
    client = APIClient()
    for url in (_url(world), _url(world, f"/{dataset.id}"), _url(world, f"/{dataset.id}/preview"),
                _url(world, f"/{dataset.id}/download")):
        assert client.get(url).status_code == 401
    assert client.post(_url(world), {"file": _named(b"a\n1\n", "x.csv")}, format="multipart").status_code == 401
    assert client.delete(_url(world, f"/{dataset.id}")).status_code == 401


def test_it_forbids_viewers_to_upload_or_delete(world):
    dataset = upload(world, b"a\n1\n")
    viewer = api_client(world.viewer)
    response = viewer.post(_url(world), {"file": _named(b"a\n1\n", "v.csv")}, format="multipart")
    assert response.status_code == 403
    assert viewer.delete(_url(world, f"/{dataset.id}")).status_code == 403
    assert Dataset.objects.count() == 1
    # ...but they read everything.
    assert viewer.get(_url(world)).status_code == 200
    assert viewer.get(_url(world, f"/{dataset.id}")).status_code == 200
    assert viewer.get(_url(world, f"/{dataset.id}/preview")).status_code == 200
    assert viewer.get(_url(world, f"/{dataset.id}/download")).status_code == 200


def test_it_hides_everything_from_outsiders(world):
    dataset = upload(world, b"a\n1\n")
    outsider = api_client(world.outsider)
    for suffix in ("", f"/{dataset.id}", f"/{dataset.id}/preview", f"/{dataset.id}/download"):
        assert outsider.get(_url(world, suffix)).status_code == 404, suffix
    assert outsider.post(_url(world), {"file": _named(b"a\n1\n", "o.csv")}, format="multipart").status_code == 404
    assert outsider.delete(_url(world, f"/{dataset.id}")).status_code == 404
    # A dataset id from another project is not found through the outsider's own project either.
    assert outsider.get(_url(world, f"/{dataset.id}", project=world.other_project)).status_code == 404
    assert Dataset.objects.filter(id=dataset.id).exists()


def test_it_lists_datasets_paginated(world):
    for i in range(3):
        upload(world, b"a\n1\n", f"d{i}.csv")
    client = api_client(world.viewer)
    page = client.get(_url(world), {"page_size": 2}).json()
    assert set(page) == {"count", "next", "previous", "results"}
    assert page["count"] == 3 and len(page["results"]) == 2 and page["next"] and page["previous"] is None
    assert [r["name"] for r in page["results"]] == ["d2", "d1"]  # newest first
    assert "profile" not in page["results"][0]
    second = client.get(page["next"]).json()
    assert [r["name"] for r in second["results"]] == ["d0"]
    assert client.get(_url(world), {"page": 9}).status_code == 404


def test_it_shows_one_dataset(world):
    dataset = upload(world, classification_csv(10), target="churned")
    body = api_client(world.viewer).get(_url(world, f"/{dataset.id}")).json()
    assert body["id"] == str(dataset.id) and body["target"] == "churned"
    churned = next(c for c in body["profile"]["columns"] if c["name"] == "churned")
    assert churned["dtype"] == "string" and sum(n for _, n in churned["top_values"]) == 10
    assert api_client(world.viewer).get(_url(world, f"/{uuid.uuid4()}")).status_code == 404


def test_it_previews_rows(world):
    dataset = upload(world, csv_bytes([[i, f"n{i}"] for i in range(1200)], ["i", "name"]))
    client = api_client(world.viewer)
    default = client.get(_url(world, f"/{dataset.id}/preview")).json()
    assert default["columns"] == ["i", "name"] and len(default["rows"]) == 50 and default["rows"][0] == ["0", "n0"]
    assert len(client.get(_url(world, f"/{dataset.id}/preview"), {"rows": 3}).json()["rows"]) == 3
    assert len(client.get(_url(world, f"/{dataset.id}/preview"), {"rows": 5000}).json()["rows"]) == 1000
    for bad in ("abc", "-1", "1.5"):
        response = client.get(_url(world, f"/{dataset.id}/preview"), {"rows": bad})
        assert response.status_code == 400 and "rows" in response.json()["errors"], bad


def test_it_downloads_the_original_file(world):
    content = regression_csv(15)
    dataset = upload(world, content, "Prices 2024.csv")
    response = api_client(world.viewer).get(_url(world, f"/{dataset.id}/download"), HTTP_ACCEPT="text/csv")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == content
    assert response["Content-Disposition"] == 'attachment; filename="Prices 2024.csv"'


def test_it_deletes_a_dataset_and_its_file(world, django_capture_on_commit_callbacks):
    dataset = upload(world, b"a\n1\n")
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client(world.member).delete(_url(world, f"/{dataset.id}"))
    assert response.status_code == 204
    assert not Dataset.objects.exists() and stored_files(world.project) == []
    assert api_client(world.member).delete(_url(world, f"/{dataset.id}")).status_code == 404


def test_it_answers_409_when_deleting_a_dataset_in_use(world):
    dataset = upload(world, b"a\n1\n")
    TrainingJob.objects.create(project=world.project, name="x", algorithm="linear-learner", status="running",
                               dataset=dataset)
    response = api_client(world.owner).delete(_url(world, f"/{dataset.id}"))
    assert response.status_code == 409
    assert "dataset is used by running training job 'x'" in response.json()["detail"]


def test_it_describes_the_endpoints_in_the_schema(world):
    schema = api_client(world.viewer).get("/api/schema/", HTTP_ACCEPT="application/json").json()
    paths = schema["paths"]
    assert "multipart/form-data" in paths["/api/v1/projects/{project_id}/datasets"]["post"]["requestBody"]["content"]
    for suffix in ("", "/preview", "/download"):
        assert f"/api/v1/projects/{{project_id}}/datasets/{{dataset_id}}{suffix}" in paths


def test_it_answers_413_to_a_file_over_the_limit_but_403_to_a_viewer_first(world):
    big = b"a\n" + b"12345\n" * 400_000  # 2.4 MB
    with override_settings(STUDIO_MAX_UPLOAD_MB=1):
        member = api_client(world.member).post(_url(world), {"file": _named(big, "big.csv")}, format="multipart")
        viewer = api_client(world.viewer).post(_url(world), {"file": _named(big, "big.csv")}, format="multipart")
    assert member.status_code == 413 and member.json()["detail"] == "File is larger than the 1 MB limit"
    assert viewer.status_code == 403
    assert not Dataset.objects.exists() and stored_files(world.project) == []
