from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, override_settings

from studio.datasets.models import Dataset
from studio.training.models import TrainingJob
from tests.conftest import PASSWORD, classification_csv, regression_csv
from tests.datasets.conftest import stored_files, upload

pytestmark = pytest.mark.django_db


def signed_in(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def _list(world) -> str:
    return f"/projects/{world.project.id}/data/"


def _detail(world, dataset) -> str:
    return f"/projects/{world.project.id}/data/{dataset.id}/"


def test_it_shows_an_empty_state_with_the_upload_form_to_members(world):
    page = signed_in(world.member).get(_list(world))
    assert page.status_code == 200
    html = page.content.decode()
    assert "No datasets yet — upload a CSV with a header row" in html
    assert "data-upload-form" in html and "<progress" in html and "studio/upload.js" in html


def test_it_lists_datasets_for_a_viewer_without_upload_or_delete(world):
    dataset = upload(world, regression_csv(30), "houses.csv", target="price")
    page = signed_in(world.viewer).get(_list(world))
    html = page.content.decode()
    assert page.status_code == 200 and "houses" in html and world.member.username in html
    assert "data-upload-form" not in html
    detail = signed_in(world.viewer).get(_detail(world, dataset)).content.decode()
    assert "Delete" not in detail and "Train on this dataset" not in detail and "Download" in detail


def test_it_shows_the_profile_charts_and_preview(world):
    dataset = upload(world, classification_csv(60), "churn.csv", target="churned")
    page = signed_in(world.owner).get(_detail(world, dataset))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-testid="profile-table"' in html and 'data-testid="preview-table"' in html
    assert "plotly/plotly.min.js" in html and "class balance" in html
    assert dataset.sha256 in html and f"/projects/{world.project.id}/data/{dataset.id}/delete/" in html
    figures = page.context["charts"]
    assert [c["column"] for c in figures] == ["churned", "f1", "f2"]  # target first
    assert figures[0]["figure"]["data"][0]["type"] == "bar"
    json.dumps(figures)  # the figures are plain JSON for json_script
    assert len(page.context["preview"]["rows"]) == 50


def test_it_uploads_through_the_page_with_xhr(world):
    client = signed_in(world.member)
    response = client.post(_list(world), {"file": SimpleUploadedFile("sales.csv", regression_csv(10)),
                                          "name": "Sales", "target": "price"},
                           HTTP_ACCEPT="application/json")
    assert response.status_code == 201
    dataset = Dataset.objects.get(name="Sales")
    assert response.json() == {"id": str(dataset.id), "url": _detail(world, dataset)}
    assert dataset.target == "price" and dataset.created_by == world.member


def test_it_uploads_through_the_page_without_javascript(world):
    response = signed_in(world.member).post(_list(world), {"file": SimpleUploadedFile("a.csv", b"x\n1\n")})
    dataset = Dataset.objects.get()
    assert response.status_code == 302 and response.url == _detail(world, dataset)


def test_it_shows_upload_errors_in_the_form(world):
    client = signed_in(world.member)
    bad = SimpleUploadedFile("bad.csv", b"a,b\n1,2,3\n")
    as_json = client.post(_list(world), {"file": bad}, HTTP_ACCEPT="application/json")
    assert as_json.status_code == 400 and "row 1 has 3 fields, header has 2" in as_json.json()["detail"]
    page = client.post(_list(world), {"file": SimpleUploadedFile("bad.csv", b"a,b\n1,2,3\n"), "name": "Kept"})
    assert page.status_code == 400
    html = page.content.decode()
    assert "row 1 has 3 fields, header has 2" in html and 'value="Kept"' in html
    assert not Dataset.objects.exists() and stored_files(world.project) == []


def test_it_refuses_an_oversize_page_upload(world, upload_tmp):
    big = SimpleUploadedFile("big.csv", b"a\n" + b"1\n" * 700_000)
    with override_settings(STUDIO_MAX_UPLOAD_MB=1):
        response = signed_in(world.member).post(_list(world), {"file": big}, HTTP_ACCEPT="application/json")
    assert response.status_code == 413 and response.json()["detail"] == "File is larger than the 1 MB limit"
    assert not Dataset.objects.exists() and list(upload_tmp.iterdir()) == []


def test_it_refuses_viewer_writes_from_pages(world):
    dataset = upload(world, b"a\n1\n")
    client = signed_in(world.viewer)
    response = client.post(_list(world), {"file": SimpleUploadedFile("v.csv", b"a\n1\n")},
                           HTTP_ACCEPT="application/json")
    assert response.status_code == 403
    assert client.post(f"{_detail(world, dataset)}delete/").status_code == 403
    assert Dataset.objects.count() == 1


def test_it_deletes_from_the_page(world, django_capture_on_commit_callbacks):
    dataset = upload(world, b"a\n1\n")
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in(world.member).post(f"{_detail(world, dataset)}delete/")
    assert response.status_code == 302 and response.url == _list(world)
    assert not Dataset.objects.exists() and stored_files(world.project) == []


def test_it_explains_why_a_dataset_in_use_cannot_be_deleted(world):
    dataset = upload(world, b"a\n1\n")
    TrainingJob.objects.create(project=world.project, name="busy", algorithm="linear-learner", status="running",
                               dataset=dataset)
    client = signed_in(world.owner)
    assert "Used by the running training job" in client.get(_detail(world, dataset)).content.decode()
    response = client.post(f"{_detail(world, dataset)}delete/", follow=True)
    assert "dataset is used by running training job &#x27;busy&#x27;" in response.content.decode()
    assert Dataset.objects.filter(id=dataset.id).exists()


def test_it_downloads_from_the_page(world):
    dataset = upload(world, b"a\n1\n", "tiny.csv")
    response = signed_in(world.viewer).get(f"{_detail(world, dataset)}download/")
    assert response.status_code == 200 and b"".join(response.streaming_content) == b"a\n1\n"
    assert 'filename="tiny.csv"' in response["Content-Disposition"]


def test_it_answers_404_to_outsiders_on_every_page(world):
    dataset = upload(world, b"a\n1\n")
    client = signed_in(world.outsider)
    for url in (_list(world), _detail(world, dataset), f"{_detail(world, dataset)}download/"):
        assert client.get(url).status_code == 404, url
    assert client.post(_list(world), {"file": SimpleUploadedFile("o.csv", b"a\n1\n")}).status_code == 404
    assert client.post(f"{_detail(world, dataset)}delete/").status_code == 404
    assert Dataset.objects.count() == 1


def test_it_sends_anonymous_visitors_to_sign_in(world):
    response = Client().get(_list(world))
    assert response.status_code == 302 and "/login/" in response.url


def test_it_links_members_to_training_on_the_dataset(world):
    dataset = upload(world, regression_csv(10), target="price")
    html = signed_in(world.member).get(_detail(world, dataset)).content.decode()
    assert f"/projects/{world.project.id}/training/new/?dataset={dataset.id}" in html
