"""Pages and API of text and image datasets: owner, viewer, outsider."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from studio.datasets.images import BOX_COLOUR
from studio.datasets.models import Dataset
from tests.conftest import api_client
from tests.datasets.conftest import classification_zip, detection_zip, stored_files, upload, zip_bytes
from tests.datasets.test_views import signed_in

pytestmark = pytest.mark.django_db

JSONL = b'{"text": "good film", "label": "pos"}\n{"text": "bad film, long and dull", "label": "neg"}\n'


def _detail(world, dataset) -> str:
    return f"/projects/{world.project.id}/data/{dataset.id}/"


def _api(world, suffix: str = "") -> str:
    return f"/api/v1/projects/{world.project.id}/datasets{suffix}"


def _named(content: bytes, filename: str) -> io.BytesIO:
    fh = io.BytesIO(content)
    fh.name = filename
    return fh


def test_it_shows_a_text_dataset_with_class_balance_lengths_and_samples(world):
    dataset = upload(world, JSONL, "reviews.jsonl")
    page = signed_in(world.owner).get(_detail(world, dataset))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-testid="class-chart"' in html and 'data-testid="length-chart"' in html
    assert 'data-testid="preview-table"' in html and "bad film, long and dull" in html
    assert "Delete" in html and "plotly/plotly.min.js" in html
    assert page.context["class_chart"]["figure"]["data"][0]["x"] == ["neg", "pos"]  # by count, ties by name
    json.dumps(page.context["length_chart"]["figure"])


def test_it_shows_a_gallery_of_labelled_thumbnails(world):
    dataset = upload(world, classification_zip(per_class=15), "pets.zip")
    page = signed_in(world.owner).get(_detail(world, dataset))
    assert page.status_code == 200
    gallery = page.context["gallery"]
    assert len(gallery) == 24 and {g["label"] for g in gallery} == {"cats", "dogs"}
    assert gallery[0]["src"].startswith("data:image/png;base64,")
    html = page.content.decode()
    assert 'data-testid="gallery"' in html and 'data-testid="class-chart"' in html and "classification" in html


def test_it_draws_boxes_on_detection_thumbnails(world):
    import base64

    import numpy as np
    from PIL import Image

    dataset = upload(world, detection_zip(), "shapes.zip")
    page = signed_in(world.owner).get(_detail(world, dataset))
    gallery = page.context["gallery"]
    assert [g["label"] for g in gallery] == ["square", "square, dot", ""]
    drawn = np.asarray(Image.open(io.BytesIO(base64.b64decode(gallery[0]["src"].split(",", 1)[1]))))
    plain = np.asarray(Image.open(io.BytesIO(base64.b64decode(gallery[2]["src"].split(",", 1)[1]))))
    assert (drawn == BOX_COLOUR).all(axis=-1).any() and not (plain == BOX_COLOUR).all(axis=-1).any()
    assert "(no objects)" in page.content.decode()


@pytest.mark.parametrize("kind", ["text", "image"])
def test_it_shows_text_and_image_pages_read_only_to_viewers_and_404_to_outsiders(world, kind):
    dataset = upload(world, JSONL, "t.jsonl") if kind == "text" else upload(world, classification_zip(), "p.zip")
    viewer = signed_in(world.viewer).get(_detail(world, dataset))
    html = viewer.content.decode()
    assert viewer.status_code == 200 and "Delete" not in html and "Train on this dataset" not in html
    assert "Download" in html
    outsider = signed_in(world.outsider)
    for suffix in ("", "download/"):
        assert outsider.get(_detail(world, dataset) + suffix).status_code == 404
    assert outsider.post(_detail(world, dataset) + "delete/").status_code == 404
    assert Dataset.objects.filter(id=dataset.id).exists()


def test_it_uploads_text_and_images_through_the_page(world):
    client = signed_in(world.member)
    text = client.post(f"/projects/{world.project.id}/data/", {
        "file": SimpleUploadedFile("t.csv", b"text,label\nhello there,a\nbye,b\n"), "kind": "text", "name": "T"})
    assert text.status_code == 302 and Dataset.objects.get(name="T").kind == "text"
    image = client.post(f"/projects/{world.project.id}/data/", {
        "file": SimpleUploadedFile("p.zip", classification_zip()), "image_size": "16"},
        HTTP_ACCEPT="application/json")
    assert image.status_code == 201 and Dataset.objects.get(name="p").profile["image_size"] == 16
    bad = client.post(f"/projects/{world.project.id}/data/", {
        "file": SimpleUploadedFile("evil.zip", zip_bytes({"../x.png": b"x"}))}, HTTP_ACCEPT="application/json")
    assert bad.status_code == 400 and "'../x.png' points outside the archive" in bad.json()["detail"]


def test_it_uploads_and_previews_text_through_the_api(world):
    client = api_client(world.member)
    response = client.post(_api(world), {"file": _named(JSONL, "reviews.jsonl")}, format="multipart")
    assert response.status_code == 201
    body = response.json()
    assert body["kind"] == "text" and body["rows"] == 2 and body["profile"]["label_counts"] == {"pos": 1, "neg": 1}
    preview = api_client(world.viewer).get(_api(world, f"/{body['id']}/preview?rows=1")).json()
    assert preview == {"columns": ["text", "label"], "rows": [["good film", "pos"]]}
    missing = client.post(_api(world), {"file": _named(b"body\nx\n", "x.csv"), "kind": "text"}, format="multipart")
    assert missing.status_code == 400 and "no 'text' column" in missing.json()["detail"]


def test_it_uploads_and_previews_images_through_the_api(world):
    client = api_client(world.member)
    response = client.post(_api(world), {"file": _named(detection_zip(), "shapes.zip"), "image_size": 24},
                           format="multipart")
    assert response.status_code == 201
    body = response.json()
    assert body["kind"] == "image" and body["rows"] == 3 and body["profile"]["task"] == "detection"
    preview = api_client(world.viewer).get(_api(world, f"/{body['id']}/preview")).json()
    assert preview == {"columns": ["file", "label"],
                       "rows": [["img/a.png", "square"], ["img/b.png", "square, dot"], ["img/c.png", ""]]}
    too_big = client.post(_api(world), {"file": _named(detection_zip(), "s2.zip"), "image_size": 999},
                          format="multipart")
    assert too_big.status_code == 400 and "image_size" in too_big.json()["errors"]


def test_it_forbids_viewers_to_upload_text_or_images_and_hides_them_from_outsiders(world):
    viewer = api_client(world.viewer)
    assert viewer.post(_api(world), {"file": _named(JSONL, "t.jsonl")}, format="multipart").status_code == 403
    assert viewer.post(_api(world), {"file": _named(classification_zip(), "p.zip")},
                       format="multipart").status_code == 403
    assert not Dataset.objects.exists() and stored_files(world.project) == []
    dataset = upload(world, classification_zip(), "p.zip")
    outsider = api_client(world.outsider)
    for suffix in ("", "/preview", "/download"):
        assert outsider.get(_api(world, f"/{dataset.id}{suffix}")).status_code == 404


def test_it_deletes_the_arrays_with_an_image_dataset(world, django_capture_on_commit_callbacks):
    dataset = upload(world, classification_zip(), "p.zip")
    assert len(stored_files(world.project)) == 2
    with django_capture_on_commit_callbacks(execute=True):
        assert api_client(world.member).delete(_api(world, f"/{dataset.id}")).status_code == 204
    assert stored_files(world.project) == []


def test_it_refuses_an_image_zip_over_the_upload_limit_while_streaming(world, upload_tmp):
    from django.test import override_settings

    from tests.datasets.conftest import png_bytes

    noisy = zip_bytes({f"c{i % 2}/{i}.bin": bytes(np.random.default_rng(i).integers(0, 256, 200_000, dtype=np.uint8))
                       for i in range(8)} | {"a/1.png": png_bytes()}, compression=0)
    with override_settings(STUDIO_MAX_UPLOAD_MB=1):
        response = api_client(world.member).post(_api(world), {"file": _named(noisy, "big.zip")}, format="multipart")
    assert response.status_code == 413 and response.json()["detail"] == "File is larger than the 1 MB limit"
    assert not Dataset.objects.exists() and stored_files(world.project) == [] and not list(upload_tmp.iterdir())
