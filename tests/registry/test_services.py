"""Registry services: loading a model for predictions, model groups with numbered versions and approval,
deleting models (409 while something uses them) and the lineage graph."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.storage import default_storage
from django.utils import timezone

from studio.accounts.models import AuditEvent
from studio.accounts.services import project_delete
from studio.core.errors import Conflict
from studio.core.storage import storage_save_stream
from studio.endpoints.models import TransformJob
from studio.registry import selectors, services
from studio.registry.figures import lineage_figure, lineage_positions
from studio.registry.models import Model, ModelGroup, ModelVersion
from studio.registry.services import model_load_bundle, model_predict_frame, model_preprocessing
from studio.training.models import TrainingJob
from studio.tuning.models import TuningJob, TuningTrial
from tests.registry.conftest import bare_model, deploy
from tests.training.factories import dataset_from_csv, new_job, run_job

pytestmark = pytest.mark.django_db


def test_it_predicts_from_records_by_name_or_position(world, enqueued):
    model = run_job(new_job(world, hyperparameters={"epochs": 8})).model
    loaded = model_load_bundle(model=model)
    assert loaded.input_names == ["x1", "x2", "x3"]
    by_name = loaded.predict([{"x1": 1, "x2": 0, "x3": 0, "price": 99}])  # extra keys (the target) are ignored
    by_position = model_predict_frame(model=model, rows=[[1, 0, 0]], loaded=loaded)
    assert by_name[0] == pytest.approx(3.0, abs=0.4) and by_position[0] == by_name[0]
    X = loaded.features([["1", None, "true"]])  # strings, a missing value, a boolean: read like CSV cells
    assert X[0, 0] == 1 and math.isfinite(X[0, 1]) and X[0, 2] == 1


def test_a_model_saved_before_preprocessing_existed_reads_numbers_as_they_are(world, enqueued):
    model = run_job(new_job(world)).model
    Model.objects.filter(id=model.id).update(
        artifact_files=[n for n in model.artifact_files if not n.endswith("preprocessing.json")])
    model.refresh_from_db()
    assert model_preprocessing(model=model) is None
    loaded = model_load_bundle(model=model)
    assert loaded.preprocessor.missing_values == "keep"
    assert np.isnan(loaded.features([[1, None, 2]])[0, 1])  # the estimator imputes it itself
    assert loaded.predict([[1, None, 2]]).shape == (1,)


# --- model groups, versions, approval, delete, lineage ---------------------------------------


def group_of(world, name: str = "churn", user=None):
    return services.model_group_create(user=user or world.member, project=world.project, name=name)


def test_it_numbers_versions_per_group_from_one(world):
    first, second = bare_model(world.project, "m1"), bare_model(world.project, "m2")
    churn, other = group_of(world, "churn"), group_of(world, "other")
    v1 = services.model_version_create(user=world.member, group=churn, model=first)
    v2 = services.model_version_create(user=world.owner, group=churn, model=second)
    elsewhere = services.model_version_create(user=world.member, group=other, model=second)
    assert (v1.version, v2.version, elsewhere.version) == (1, 2, 1)
    assert v1.approval_status == v2.approval_status == "pending" and v2.created_by == world.owner
    churn.refresh_from_db()
    assert churn.last_version == 2
    group = selectors.model_group_get(user=world.viewer, project=world.project, group_id=churn.id)
    assert group.versions_count == 2 and group.latest_version == 2
    assert AuditEvent.objects.filter(verb="registered model version", target="churn v2").count() == 1


def test_it_refuses_a_model_twice_in_one_group(world):
    model, group = bare_model(world.project), group_of(world)
    services.model_version_create(user=world.member, group=group, model=model)
    with pytest.raises(Conflict, match="already version 1 of model group 'churn'"):
        services.model_version_create(user=world.member, group=group, model=model)
    group.refresh_from_db()
    assert group.last_version == 1 and group.versions.count() == 1


def test_it_never_reuses_the_number_of_a_deleted_version(world):
    group = group_of(world)
    models = [bare_model(world.project, f"m{i}") for i in range(3)]
    services.model_version_create(user=world.member, group=group, model=models[0])
    second = services.model_version_create(user=world.member, group=group, model=models[1])
    with pytest.raises(PermissionDenied):
        services.model_version_delete(user=world.member, version=second)  # admin+
    services.model_version_delete(user=world.owner, version=second)
    assert Model.objects.filter(id=models[1].id).exists()  # the model stays
    assert services.model_version_create(user=world.member, group=group, model=models[2]).version == 3


def test_it_refuses_a_model_of_another_project(world):
    stranger = bare_model(world.other_project, "theirs")
    with pytest.raises(ValidationError) as caught:
        services.model_version_create(user=world.member, group=group_of(world), model=stranger)
    assert caught.value.message_dict == {"model": [f"No model '{stranger.id}' in this project."]}


def test_it_refuses_writes_below_the_needed_role(world):
    model, group = bare_model(world.project), group_of(world)
    version = services.model_version_create(user=world.member, group=group, model=model)
    for call in (lambda: group_of(world, "x", user=world.viewer),
                 lambda: services.model_version_create(user=world.viewer, group=group, model=bare_model(
                     world.project, "m2")),
                 lambda: services.model_version_set_approval(user=world.viewer, version=version,
                                                             approval_status="approved"),
                 lambda: services.model_group_delete(user=world.member, group=group),
                 lambda: services.model_delete(user=world.viewer, model=model)):
        with pytest.raises(PermissionDenied):
            call()
    version.refresh_from_db()
    assert version.approval_status == "pending" and ModelGroup.objects.filter(id=group.id).exists()


def test_it_refuses_a_duplicate_or_empty_group_name(world):
    group_of(world, "Churn")
    with pytest.raises(Conflict, match="'churn' already exists"):
        group_of(world, "churn")
    with pytest.raises(ValidationError, match="Give the model group a name"):
        group_of(world, "   ")
    assert group_of(world, "churn-v2").name == "churn-v2"


def test_it_records_who_approved_or_rejected_and_when(world):
    version = services.model_version_create(user=world.member, group=group_of(world), model=bare_model(world.project))
    before = timezone.now()
    approved = services.model_version_set_approval(user=world.member, version=version, approval_status="approved")
    assert approved.approval_status == "approved" and approved.approved_by == world.member
    assert before <= approved.approved_at <= timezone.now()
    assert approved.status_changed_by == world.member and approved.status_changed_at == approved.approved_at
    again = services.model_version_set_approval(user=world.owner, version=approved, approval_status="approved")
    assert again.approved_by == world.member and again.approved_at == approved.approved_at  # no change, no new who
    rejected = services.model_version_set_approval(user=world.owner, version=again, approval_status="rejected")
    rejected.refresh_from_db()
    assert rejected.approval_status == "rejected" and rejected.approved_by is None and rejected.approved_at is None
    assert rejected.status_changed_by == world.owner and rejected.status_changed_at >= approved.approved_at
    verbs = list(AuditEvent.objects.filter(project=world.project, verb__contains="model version")
                 .order_by("created_at", "id").values_list("verb", "actor__username", "data__to"))
    assert verbs == [("registered model version", "mark", None), ("approved model version", "mark", "approved"),
                     ("rejected model version", "olivia", "rejected")]
    with pytest.raises(ValidationError, match="approval_status must be one of pending, approved, rejected"):
        services.model_version_set_approval(user=world.owner, version=rejected, approval_status="maybe")


def test_it_refuses_to_delete_a_model_an_endpoint_serves(world):
    model = bare_model(world.project, "houses")
    variant = deploy(model, name="prod")
    with pytest.raises(Conflict, match="model 'houses' is used by endpoint 'prod' \\(variant 'AllTraffic'\\)"):
        services.model_delete(user=world.member, model=model)
    variant.endpoint.delete()
    services.model_delete(user=world.member, model=model)
    assert not Model.objects.filter(id=model.id).exists()


def test_it_refuses_to_delete_a_model_an_active_transform_job_or_resumed_training_reads(world):
    model = bare_model(world.project, "houses", training_job=new_job(world, name="rung-1"))
    transform = TransformJob.objects.create(project=world.project, name="score-all", model=model, status="running")
    with pytest.raises(Conflict, match="used by running transform job 'score-all'"):
        services.model_delete(user=world.member, model=model)
    TransformJob.objects.filter(id=transform.id).update(status="completed")
    rung = new_job(world, name="rung-2")
    TrainingJob.objects.filter(id=rung.id).update(resume_from=model.training_job)
    with pytest.raises(Conflict, match="pending training job 'rung-2', which continues training from it"):
        services.model_delete(user=world.member, model=model)
    TrainingJob.objects.filter(id=rung.id).update(status="completed")
    services.model_delete(user=world.member, model=model)
    # A finished transform job keeps its record, without the model.
    assert not Model.objects.filter(id=model.id).exists()
    assert TransformJob.objects.get(id=transform.id).model_id is None


def test_it_refuses_to_delete_a_registered_model_naming_its_group(world):
    model = bare_model(world.project, "houses")
    version = services.model_version_create(user=world.member, group=group_of(world, "pricing"), model=model)
    with pytest.raises(Conflict, match="model 'houses' is version 1 of model group 'pricing'"):
        services.model_delete(user=world.member, model=model)
    services.model_version_delete(user=world.owner, version=version)
    services.model_delete(user=world.member, model=model)
    assert not Model.objects.filter(id=model.id).exists()


def test_it_deletes_a_models_files_once_the_delete_commits(world, enqueued, django_capture_on_commit_callbacks):
    model = run_job(new_job(world)).model
    stored = list(model.artifact_files)
    assert stored and all(default_storage.exists(name) for name in stored)
    with django_capture_on_commit_callbacks(execute=True):
        services.model_delete(user=world.member, model=model)
    assert not any(default_storage.exists(name) for name in stored)
    assert AuditEvent.objects.filter(verb="deleted model", target=model.name).exists()
    job = TrainingJob.objects.get(id=model.training_job_id)
    assert getattr(job, "model", None) is None  # the job keeps its record


def test_it_never_deletes_outside_the_models_own_folder(world, django_capture_on_commit_callbacks):
    neighbour = f"projects/{world.project.id}/datasets/keep.csv"
    storage_save_stream(name=neighbour, stream=io.BytesIO(b"a,b\n1,2\n"))
    model = bare_model(world.project, "odd", artifact_prefix=f"projects/{world.project.id}/")
    with django_capture_on_commit_callbacks(execute=True):
        services.model_delete(user=world.member, model=model)
    assert default_storage.exists(neighbour)


def test_it_deletes_a_group_unless_a_version_is_deployed(world):
    group = group_of(world, "pricing")
    served, idle = bare_model(world.project, "served"), bare_model(world.project, "idle")
    services.model_version_create(user=world.member, group=group, model=idle)
    services.model_version_create(user=world.member, group=group, model=served)
    variant = deploy(served, name="prod")
    with pytest.raises(Conflict, match="version 2 of model group 'pricing' \\(model 'served'\\) is deployed on "
                                       "endpoint 'prod'"):
        services.model_group_delete(user=world.owner, group=group)
    variant.endpoint.delete()
    services.model_group_delete(user=world.owner, group=group)
    assert not ModelGroup.objects.filter(id=group.id).exists() and not ModelVersion.objects.exists()
    assert Model.objects.filter(id__in=[served.id, idle.id]).count() == 2


def test_a_project_with_registered_models_can_still_be_deleted(world):
    model = bare_model(world.project)
    services.model_version_create(user=world.member, group=group_of(world), model=model)
    project_delete(user=world.owner, project=world.project)
    assert not Model.objects.filter(id=model.id).exists() and not ModelGroup.objects.exists()


def tuned_model(world):
    """A model trained as trial 3 of a tuning job, registered in a group and served by an endpoint (rows only)."""
    train = dataset_from_csv(world.project, name="houses")
    valid = dataset_from_csv(world.project, name="houses-valid")
    tuning = TuningJob.objects.create(project=world.project, name="tune-houses", algorithm="linear-learner",
                                      dataset=train, validation_dataset=valid, objective_metric="validation:loss",
                                      objective_goal="minimize", strategy="random", max_jobs=4, max_parallel_jobs=2)
    job = TrainingJob.objects.create(project=world.project, name="tune-houses-003", algorithm="linear-learner",
                                     dataset=train, validation_dataset=valid, status="completed")
    TuningTrial.objects.create(tuning_job=tuning, training_job=job, number=3)
    model = bare_model(world.project, "tune-houses-003", training_job=job)
    version = services.model_version_create(user=world.member, group=group_of(world, "pricing"), model=model)
    variant = deploy(model, name="prod")
    return model, {"train": train, "valid": valid, "tuning": tuning, "job": job, "version": version,
                   "endpoint": variant.endpoint}


def test_it_draws_the_lineage_of_a_tuned_model(world):
    model, rows = tuned_model(world)
    pid = world.project.id
    lineage = selectors.model_lineage(model=model)
    ids = {key: f"{kind}:{rows[key].id}" for key, kind in (
        ("train", "dataset"), ("valid", "dataset"), ("tuning", "tuning_job"), ("job", "training_job"),
        ("version", "model_version"), ("endpoint", "endpoint"))}
    ids["model"] = f"model:{model.id}"
    nodes = {n["id"]: n for n in lineage["nodes"]}
    assert set(nodes) == set(ids.values())
    assert [n["kind"] for n in lineage["nodes"]] == ["dataset", "dataset", "tuning_job", "training_job", "model",
                                                     "model_version", "endpoint"]
    assert nodes[ids["version"]]["label"] == "pricing v1"
    assert nodes[ids["version"]]["url"] == f"/projects/{pid}/models/groups/{rows['version'].group_id}/#version-1"
    assert nodes[ids["job"]]["url"] == f"/projects/{pid}/training/{rows['job'].id}/"
    assert nodes[ids["tuning"]]["url"] == f"/projects/{pid}/tuning/{rows['tuning'].id}/"
    assert nodes[ids["endpoint"]]["url"] == f"/projects/{pid}/endpoints/{rows['endpoint'].id}/"
    edges = {(e["from"], e["to"]) for e in lineage["edges"]}
    assert edges == {
        (ids["train"], ids["job"]), (ids["valid"], ids["job"]), (ids["train"], ids["tuning"]),
        (ids["valid"], ids["tuning"]), (ids["tuning"], ids["job"]), (ids["job"], ids["model"]),
        (ids["model"], ids["version"]), (ids["model"], ids["endpoint"]),
    }
    assert len(edges) == len(lineage["edges"])  # no duplicates


def test_the_lineage_keeps_to_the_models_project(world):
    model, rows = tuned_model(world)
    foreign = dataset_from_csv(world.other_project, name="secret")
    TrainingJob.objects.filter(id=rows["job"].id).update(validation_dataset=foreign)
    labels = {n["label"] for n in selectors.model_lineage(model=model)["nodes"]}
    assert "secret" not in labels and "houses" in labels
    alone = selectors.model_lineage(model=bare_model(world.project, "uploaded"))
    assert [n["kind"] for n in alone["nodes"]] == ["model"] and alone["edges"] == []


def test_the_lineage_figure_puts_each_stage_in_its_own_column(world):
    model, _ = tuned_model(world)
    lineage = selectors.model_lineage(model=model)
    positions = lineage_positions(lineage)
    columns = {n["kind"]: positions[n["id"]][0] for n in lineage["nodes"]}
    assert columns == {"dataset": 0, "tuning_job": 1, "training_job": 2, "model": 3, "model_version": 4,
                       "endpoint": 5}
    datasets = sorted(positions[n["id"]][1] for n in lineage["nodes"] if n["kind"] == "dataset")
    assert datasets == [-0.5, 0.5]
    figure = lineage_figure(lineage)
    lines, *markers = figure["data"]
    assert lines["mode"] == "lines" and len(lines["x"]) == 3 * len(lineage["edges"])
    assert [t["name"] for t in markers] == ["Dataset", "Tuning job", "Training job", "Model", "Version", "Endpoint"]
    assert all(t["mode"] == "markers+text" for t in markers)
    assert markers[4]["text"] == ["pricing v1"] and markers[3]["customdata"] == [f"/projects/{world.project.id}"
                                                                                  f"/models/{model.id}/"]
