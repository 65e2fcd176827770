"""Tags and notes of runs over the REST API (PATCH .../training-jobs/{id}/tags and .../notes)."""

from __future__ import annotations

import pytest

from studio.accounts.models import AuditEvent
from studio.social import services
from studio.training.models import TrainingJob
from tests.training.factories import dataset_from_csv

pytestmark = pytest.mark.django_db


@pytest.fixture
def job(world):
    return TrainingJob.objects.create(project=world.project, name="run-1", algorithm="linear-learner",
                                      dataset=dataset_from_csv(world.project), created_by=world.member)


def tags_url(world, job) -> str:
    return f"/api/v1/projects/{world.project.id}/training-jobs/{job.id}/tags"


def notes_url(world, job) -> str:
    return f"/api/v1/projects/{world.project.id}/training-jobs/{job.id}/notes"


def test_it_adds_and_removes_tags_normalised_and_unique(world, api, job):
    client = api(world.member)
    response = client.patch(tags_url(world, job), {"add": ["Baseline", " lr-sweep ", "baseline"]}, format="json")
    assert response.status_code == 200
    assert response.json() == {"id": str(job.id), "tags": ["baseline", "lr-sweep"], "notes": ""}
    response = client.patch(tags_url(world, job), {"add": ["v2"], "remove": ["BASELINE", "absent"]}, format="json")
    assert response.json()["tags"] == ["lr-sweep", "v2"]
    job.refresh_from_db()
    assert job.tags == ["lr-sweep", "v2"]
    audited = AuditEvent.objects.filter(verb="tagged training job").order_by("id")
    assert [e.data["added"] for e in audited] == [["baseline", "lr-sweep"], ["v2"]]
    assert audited.last().data["removed"] == ["baseline"]


def test_it_changes_nothing_and_audits_nothing_for_a_no_op(world, api, job):
    api(world.member).patch(tags_url(world, job), {"remove": ["nothing"]}, format="json")
    assert not AuditEvent.objects.filter(verb="tagged training job").exists()


@pytest.mark.parametrize(("payload", "field"), [
    ({"add": "baseline"}, "add"),
    ({"add": ["has space"]}, "add"),
    ({"add": ["-dash-first"]}, "add"),
    ({"add": ["x" * 51]}, "add"),
    ({"add": [""]}, "add"),
    ({"add": [3]}, "add"),
    ({"remove": [None]}, "remove"),
    ({"add": [f"t{i}" for i in range(services.MAX_TAGS + 1)]}, "add"),
])
def test_it_refuses_bad_tags_naming_the_field(world, api, job, payload, field):
    response = api(world.member).patch(tags_url(world, job), payload, format="json")
    assert response.status_code == 400
    assert any(key.split(".")[0] == field for key in response.json()["errors"]), response.json()
    job.refresh_from_db()
    assert job.tags == []


def test_it_sets_notes_as_plain_text(world, api, job):
    response = api(world.member).patch(notes_url(world, job), {"notes": "  Tried <b>lower</b> lr.\r\nBetter.  "},
                                       format="json")
    assert response.status_code == 200 and response.json()["notes"] == "Tried <b>lower</b> lr.\nBetter."
    job.refresh_from_db()
    assert job.notes == "Tried <b>lower</b> lr.\nBetter."
    assert AuditEvent.objects.filter(verb="edited notes of training job", target="run-1").count() == 1
    cleared = api(world.member).patch(notes_url(world, job), {"notes": ""}, format="json")
    assert cleared.json()["notes"] == ""


def test_it_refuses_notes_that_are_too_long_or_missing(world, api, job):
    too_long = api(world.member).patch(notes_url(world, job), {"notes": "x" * (services.NOTES_MAX_LENGTH + 1)},
                                       format="json")
    assert too_long.status_code == 400 and "notes" in too_long.json()["errors"]
    missing = api(world.member).patch(notes_url(world, job), {}, format="json")
    assert missing.status_code == 400 and "notes" in missing.json()["errors"]


def test_it_lets_viewers_read_but_not_write(world, api, job):
    assert api(world.viewer).patch(tags_url(world, job), {"add": ["x"]}, format="json").status_code == 403
    assert api(world.viewer).patch(notes_url(world, job), {"notes": "x"}, format="json").status_code == 403
    job.refresh_from_db()
    assert job.tags == [] and job.notes == ""


def test_it_answers_404_to_outsiders_and_401_to_anonymous(world, api, job):
    assert api(world.outsider).patch(tags_url(world, job), {"add": ["x"]}, format="json").status_code == 404
    assert api(world.outsider).patch(notes_url(world, job), {"notes": "x"}, format="json").status_code == 404
    assert api().patch(tags_url(world, job), {"add": ["x"]}, format="json").status_code == 401
