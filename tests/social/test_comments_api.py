"""Comments over the REST API: who may write, what is refused, and that another team's objects stay hidden."""

from __future__ import annotations

import pytest

from studio.accounts.models import AuditEvent
from studio.endpoints.models import Endpoint
from studio.pipelines.models import Pipeline, PipelineExecution
from studio.registry.models import Model
from studio.social.models import Comment
from studio.training.models import TrainingJob
from studio.tuning.models import TuningJob
from tests.training.factories import dataset_from_csv

pytestmark = pytest.mark.django_db


def url(world, suffix: str = "") -> str:
    return f"/api/v1/projects/{world.project.id}/comments{suffix}"


@pytest.fixture
def job(world):
    dataset = dataset_from_csv(world.project)
    return TrainingJob.objects.create(project=world.project, name="run-1", algorithm="linear-learner",
                                      dataset=dataset, created_by=world.member)


@pytest.fixture
def targets(world, job):
    """One object of each kind that takes comments, in world.project."""
    model = Model.objects.create(project=world.project, name="m", algorithm="linear-learner", training_job=job,
                                 artifact_prefix="projects/x/")
    tuning = TuningJob.objects.create(project=world.project, name="t", algorithm="linear-learner",
                                      objective_metric="validation:loss", objective_goal="minimize",
                                      strategy="random", max_jobs=1, max_parallel_jobs=1)
    endpoint = Endpoint.objects.create(project=world.project, name="e", type="realtime")
    pipeline = Pipeline.objects.create(project=world.project, name="p", definition={"parameters": {}, "steps": []})
    execution = PipelineExecution.objects.create(pipeline=pipeline, project=world.project, number=1)
    return {"training_job": job.id, "tuning_job": tuning.id, "model": model.id, "endpoint": endpoint.id,
            "pipeline_execution": execution.id}


def post(api, world, user, target_type, target_id, body="Looks good"):
    return api(user).post(url(world), {"target_type": target_type, "target_id": str(target_id), "body": body},
                          format="json")


def test_it_takes_comments_on_every_kind_of_target(world, api, targets):
    for target_type, target_id in targets.items():
        response = post(api, world, world.member, target_type, target_id, body=f"about the {target_type}")
        assert response.status_code == 201, response.json()
        assert response.json()["author"] == "mark" and response.json()["target_id"] == str(target_id)
        listed = api(world.viewer).get(url(world), {"target_type": target_type, "target_id": str(target_id)}).json()
        assert [c["body"] for c in listed["results"]] == [f"about the {target_type}"]
    assert Comment.objects.count() == 5


def test_it_lists_a_thread_oldest_first_and_audits_each_comment(world, api, job):
    post(api, world, world.member, "training_job", job.id, "first")
    post(api, world, world.owner, "training_job", job.id, "second")
    thread = api(world.viewer).get(url(world), {"target_type": "training_job", "target_id": str(job.id)}).json()
    assert [(c["author"], c["body"]) for c in thread["results"]] == [("mark", "first"), ("olivia", "second")]
    verbs = list(AuditEvent.objects.filter(verb="commented on training job").values_list("target", flat=True))
    assert verbs == ["run-1", "run-1"]


def test_it_keeps_plain_text_as_written(world, api, job):
    body = "<script>alert(1)</script>\n**not bold**"
    response = post(api, world, world.member, "training_job", job.id, body)
    assert response.json()["body"] == body


def test_it_refuses_viewers_with_403(world, api, job):
    response = post(api, world, world.viewer, "training_job", job.id)
    assert response.status_code == 403
    assert not Comment.objects.exists()


def test_it_answers_404_to_outsiders(world, api, job):
    comment = Comment.objects.create(project=world.project, target_type="training_job", target_id=str(job.id),
                                     author=world.member, body="private")
    outsider = api(world.outsider)
    assert post(api, world, world.outsider, "training_job", job.id).status_code == 404
    assert outsider.get(url(world)).status_code == 404
    assert outsider.get(url(world, f"/{comment.id}")).status_code == 404
    assert outsider.patch(url(world, f"/{comment.id}"), {"body": "x"}, format="json").status_code == 404
    assert outsider.delete(url(world, f"/{comment.id}")).status_code == 404
    assert api().get(url(world)).status_code == 401


def test_it_does_not_reveal_another_teams_object_through_its_own_project(world, api):
    secret = TrainingJob.objects.create(project=world.other_project, name="secret", algorithm="linear-learner")
    response = post(api, world, world.member, "training_job", secret.id)
    assert response.status_code == 400
    assert response.json()["errors"] == {"target_id": [f"No training job '{secret.id}' in this project."]}
    listed = api(world.member).get(url(world), {"target_type": "training_job", "target_id": str(secret.id)})
    assert listed.status_code == 404


@pytest.mark.parametrize(("payload", "field"), [
    ({"target_type": "dataset", "body": "x"}, "target_type"),
    ({"target_type": "training_job", "body": ""}, "body"),
    ({"target_type": "training_job", "body": "   "}, "body"),
    ({"target_type": "training_job", "body": "x" * 10_001}, "body"),
    ({"target_type": "training_job", "body": 12}, None),
])
def test_it_names_the_field_of_bad_input(world, api, job, payload, field):
    payload = {"target_id": str(job.id), **payload}
    response = api(world.member).post(url(world), payload, format="json")
    if field is None:
        assert response.status_code == 201  # a number is read as its text, like any form field
        return
    assert response.status_code == 400
    assert field in response.json()["errors"]


@pytest.mark.parametrize("target_type", ["training_job", "tuning_job", "model", "endpoint", "pipeline_execution"])
def test_it_refuses_a_malformed_target_id_with_400(world, api, target_type):
    response = post(api, world, world.member, target_type, "not-a-uuid")
    assert response.status_code == 400 and "target_id" in response.json()["errors"]


def test_it_lets_only_the_author_edit(world, api, job):
    comment_id = post(api, world, world.member, "training_job", job.id, "typo").json()["id"]
    edited = api(world.member).patch(url(world, f"/{comment_id}"), {"body": "fixed"}, format="json")
    assert edited.status_code == 200 and edited.json()["body"] == "fixed" and edited.json()["edited_at"]
    assert api(world.owner).patch(url(world, f"/{comment_id}"), {"body": "hijack"}, format="json").status_code == 403
    assert api(world.viewer).patch(url(world, f"/{comment_id}"), {"body": "hijack"}, format="json").status_code == 403
    assert Comment.objects.get(id=comment_id).body == "fixed"


def test_it_soft_deletes_for_the_author_or_an_admin(world, api, job):
    mine = post(api, world, world.member, "training_job", job.id, "mine").json()["id"]
    theirs = post(api, world, world.owner, "training_job", job.id, "owner's").json()["id"]
    assert api(world.member).delete(url(world, f"/{theirs}")).status_code == 403
    assert api(world.viewer).delete(url(world, f"/{mine}")).status_code == 403
    assert api(world.member).delete(url(world, f"/{mine}")).status_code == 204
    assert api(world.owner).delete(url(world, f"/{mine}")).status_code == 204  # twice: idempotent
    thread = api(world.viewer).get(url(world), {"target_type": "training_job", "target_id": str(job.id)}).json()
    assert [(c["deleted"], c["body"]) for c in thread["results"]] == [(True, ""), (False, "owner's")]
    assert Comment.objects.get(id=mine).deleted_at is not None
    gone = api(world.member).patch(url(world, f"/{mine}"), {"body": "back"}, format="json")
    assert gone.status_code == 409
