"""Training, tuning and batch transform steps: real jobs, created through the apps' own services."""

from __future__ import annotations

import pytest

from studio.endpoints import transform_runner, transforms
from studio.endpoints.models import TransformJob
from studio.pipelines.models import StepStatus
from studio.pipelines.steps import step_kind
from studio.pipelines.steps.base import Done, StepFailed, Waiting
from studio.registry.models import ModelVersion
from studio.training.models import JobStatus, TrainingJob
from studio.tuning.models import TuningJob
from tests.conftest import classification_csv, regression_csv
from tests.pipelines.conftest import drive, make_pipeline, start, statuses, step
from tests.pipelines.test_steps_processing import again, step_context
from tests.training.factories import run_job, uploaded_dataset

pytestmark = pytest.mark.django_db


@pytest.fixture
def churn(world):
    return uploaded_dataset(world, classification_csv(n=160), name="churn", target="churned")


def training_arguments(dataset, **extra) -> dict:
    return {"algorithm": "linear-learner", "dataset": str(dataset.id), "hyperparameters": {"epochs": 3}, **extra}


# --- training ------------------------------------------------------------------------------------------


def test_training_starts_a_job_then_gives_its_model_and_final_metrics(world, churn):
    kind = step_kind("training")
    ctx = step_context(world, "training", training_arguments(churn), name="train")
    waiting = kind.start(ctx)
    assert isinstance(waiting, Waiting) and waiting.job["kind"] == "training_job"
    job = TrainingJob.objects.get(id=waiting.job["id"])
    assert (job.name, job.created_by, job.target, job.status) == ("flow-1-train", world.member, "churned", "pending")
    ctx.step.refresh_from_db()
    assert ctx.step.job == waiting.job  # recorded at once, before the engine records the Waiting
    assert isinstance(kind.poll(ctx), Waiting)

    run_job(job)
    done = kind.poll(ctx)
    assert isinstance(done, Done)
    assert done.outputs["model"] == str(job.model.id) and done.outputs["training_job"] == str(job.id)
    assert done.outputs["metrics"] == job.final_metrics and "validation:accuracy" in done.outputs["metrics"]


def test_a_step_started_again_waits_for_the_job_it_already_made(world, churn):
    kind = step_kind("training")
    ctx = step_context(world, "training", training_arguments(churn), name="train")
    first = kind.start(ctx)
    second = kind.start(again(ctx))
    assert second.job == first.job and TrainingJob.objects.count() == 1


def test_a_failed_or_stopped_job_fails_the_step_with_its_reason(world, churn):
    kind = step_kind("training")
    ctx = step_context(world, "training", training_arguments(churn), name="train")
    job = TrainingJob.objects.get(id=kind.start(ctx).job["id"])
    TrainingJob.objects.filter(id=job.id).update(status=JobStatus.FAILED, failure_reason="target has one class")
    with pytest.raises(StepFailed, match="training job 'flow-1-train' failed: target has one class"):
        kind.poll(ctx)

    other = step_context(world, "training", training_arguments(churn), name="train2")
    kind.start(other)
    kind.stop(other)  # a pending job stops at once
    with pytest.raises(StepFailed, match="training job 'flow-1-train2' was stopped"):
        kind.poll(other)


def test_training_refuses_what_the_api_refuses_naming_the_field(world, churn):
    kind = step_kind("training")
    with pytest.raises(StepFailed, match=r"training job: hyperparameters.epochs: "):
        kind.start(step_context(world, "training", training_arguments(churn, hyperparameters={"epochs": 0})))
    with pytest.raises(StepFailed, match=r"training job: target: 'nope' is not a column of dataset 'churn'"):
        kind.start(step_context(world, "training", training_arguments(churn, target="nope"), name="b"))
    with pytest.raises(StepFailed, match="This needs the member role"):
        kind.start(step_context(world, "training", training_arguments(churn), name="c", user=world.viewer))
    with pytest.raises(StepFailed, match="takes no argument 'epochs'"):
        kind.start(step_context(world, "training", training_arguments(churn, epochs=3), name="d"))
    assert not TrainingJob.objects.exists()


def test_training_validate_checks_literals_and_skips_what_refs_will_fill(world, churn):
    kind = step_kind("training")
    literal = {"algorithm": "linear-learner", "dataset": "churn", "target": "nope",
               "hyperparameters": {"epochs": 0, "learning_rate": {"ref": "parameters.lr"}}, "epochz": 1}
    errors = kind.validate(literal, project=world.project)
    assert set(errors) == {"arguments.target", "arguments.hyperparameters.epochs", "arguments.epochz"}
    assert "'nope' is not a column of dataset 'churn'" in errors["arguments.target"]

    later = {"algorithm": "linear-learner", "dataset": {"ref": "steps.split.train"}, "target": "nope",
             "hyperparameters": {"learning_rate": {"ref": "parameters.lr"}}}
    assert kind.validate(later, project=world.project) == {}
    # A dataset name nobody uploaded yet may be uploaded before the pipeline runs.
    assert kind.validate({**later, "dataset": "tomorrow"}, project=world.project) == {}


# --- tuning --------------------------------------------------------------------------------------------


def test_tuning_gives_the_best_trials_model_and_metrics(world, churn):
    from tests.tuning.conftest import drive as drive_tuning

    kind = step_kind("tuning")
    arguments = {"algorithm": "linear-learner", "dataset": str(churn.id), "strategy": "random", "max_jobs": 2,
                 "max_parallel_jobs": 1, "static_hyperparameters": {"epochs": 2},
                 "ranges": {"learning_rate": {"type": "continuous", "min": 0.01, "max": 0.2}}}
    assert kind.validate(arguments, project=world.project) == {}
    ctx = step_context(world, "tuning", arguments, name="tune")
    waiting = kind.start(ctx)
    job = TuningJob.objects.get(id=waiting.job["id"])
    assert waiting.job["kind"] == "tuning_job" and job.name == "flow-1-tune"
    drive_tuning(job)
    job.refresh_from_db()
    done = kind.poll(ctx)
    best = job.best_trial.training_job
    assert done.outputs == {"model": str(best.model.id), "tuning_job": str(job.id), "metrics": best.final_metrics}


def test_tuning_validate_names_a_bad_range(world, churn):
    errors = step_kind("tuning").validate({"algorithm": "linear-learner", "dataset": str(churn.id), "ranges": {
        "nosuch": {"type": "continuous", "min": 0, "max": 1}}}, project=world.project)
    assert list(errors) == ["arguments.ranges.nosuch"]


# --- batch transform -----------------------------------------------------------------------------------


def test_transform_predicts_a_dataset_and_gives_the_output_dataset(world, monkeypatch):
    houses = uploaded_dataset(world, regression_csv(n=60), name="houses", target="price")
    training = step_kind("training")
    train_ctx = step_context(world, "training", training_arguments(houses), name="train")
    run_job(TrainingJob.objects.get(id=training.start(train_ctx).job["id"]))
    model_id = training.poll(train_ctx).outputs["model"]

    queue: list[tuple] = []
    monkeypatch.setattr(transforms, "transform_task_send", lambda s, job_id, index=None: queue.append((s, job_id,
                                                                                                      index)))
    kind = step_kind("transform")
    arguments = {"model": model_id, "input_dataset": str(houses.id), "join_source": "input"}
    assert kind.validate(arguments, project=world.project) == {}
    ctx = step_context(world, "transform", arguments, name="score")
    waiting = kind.start(ctx)
    job = TransformJob.objects.get(id=waiting.job["id"])
    assert waiting.job["kind"] == "transform_job" and job.name == "flow-1-score"
    transforms.transform_task_send("plan", job.id)
    while queue:
        what, job_id, index = queue.pop(0)
        if what == "plan":
            transform_runner.run_plan(job_id=job_id)
        elif what == "part":
            transform_runner.run_part(job_id=job_id, index=index)
        else:
            transform_runner.run_finalize(job_id=job_id)
    done = kind.poll(ctx)
    job.refresh_from_db()
    assert done.outputs == {"dataset": str(job.output_dataset_id), "transform_job": str(job.id)}
    assert job.output_dataset.rows == 60


def test_transform_validate_names_a_filter_that_does_not_parse(world):
    errors = step_kind("transform").validate({"model": {"ref": "steps.train.model"}, "input_dataset": "x",
                                              "input_filter": "$[a]"}, project=world.project)
    assert list(errors) == ["arguments.input_filter"]


# --- through the engine --------------------------------------------------------------------------------


def evaluate_flow(world):
    return make_pipeline(world, parameters={"data": "churn", "threshold": 0.6}, name="evaluate", steps=[
        {"name": "split", "type": "processing", "arguments": {
            "operation": "split", "dataset": {"ref": "parameters.data"}, "stratify": "churned",
            "fractions": {"train": 0.75, "validation": 0.25}}},
        {"name": "train", "type": "training", "arguments": {
            "algorithm": "linear-learner", "dataset": {"ref": "steps.split.train"},
            "validation_dataset": {"ref": "steps.split.validation"}, "hyperparameters": {"epochs": 4}}},
        {"name": "evaluate", "type": "condition", "arguments": {
            "left": {"ref": "steps.train.metrics.validation:accuracy"}, "op": ">=",
            "right": {"ref": "parameters.threshold"}, "if_true": ["register"], "if_false": ["reject"]}},
        {"name": "register", "type": "register", "arguments": {
            "model": {"ref": "steps.train.model"}, "model_group": "churn-models", "approve": True}},
        {"name": "reject", "type": "fail", "arguments": {"message": "accuracy is below the threshold"}},
    ])


def test_the_engine_runs_split_train_evaluate_register_and_caches_a_second_run(world, churn, pipeline_tasks):
    pipeline = evaluate_flow(world)
    first = drive(start(world, pipeline), pipeline_tasks)
    assert first.status == "completed", first.failure_reason
    assert statuses(first) == {"split": "completed", "train": "completed", "evaluate": "completed",
                               "register": "completed", "reject": "skipped"}
    version = ModelVersion.objects.get()
    assert version.approval_status == "approved" and version.group.name == "churn-models"
    assert step(first, "evaluate").outputs == {"result": True}

    second = drive(start(world, pipeline), pipeline_tasks)
    assert statuses(second) == {"split": StepStatus.CACHED, "train": StepStatus.CACHED, "evaluate": "completed",
                                "register": "completed", "reject": "skipped"}
    assert step(second, "train").outputs == step(first, "train").outputs
    assert ModelVersion.objects.count() == 1 and TrainingJob.objects.count() == 1  # nothing piled up


def test_the_engine_fails_a_run_whose_model_is_not_good_enough(world, churn, pipeline_tasks):
    failed = drive(start(world, evaluate_flow(world), parameters={"threshold": 1.5}), pipeline_tasks)
    assert failed.status == "failed" and "accuracy is below the threshold" in failed.failure_reason
    assert statuses(failed)["register"] == "skipped" and not ModelVersion.objects.exists()


def test_the_gallery_template_trains_registers_and_deploys_end_to_end(world, churn, pipeline_tasks):
    from studio.endpoints.models import Endpoint
    from studio.pipelines.gallery import pipeline_template
    from tests.pipelines.test_steps_deploy import serve_all

    template = pipeline_template("train-evaluate-register-deploy")
    pipeline = make_pipeline(world, template["definition"]["steps"], name="template",
                             parameters={**template["definition"]["parameters"], "dataset": "churn"})

    def serve(execution) -> None:
        for endpoint in Endpoint.objects.filter(status__in=("creating", "updating")):
            serve_all(endpoint)

    done = drive(start(world, pipeline), pipeline_tasks, on_round=serve)
    assert done.status == "completed", done.failure_reason
    assert statuses(done)["deploy"] == "completed" and statuses(done)["too-weak"] == "skipped"
    endpoint = Endpoint.objects.get(name="pipeline-endpoint")
    assert step(done, "deploy").outputs == {"endpoint": str(endpoint.id)}
    assert endpoint.variants.get().model_id == ModelVersion.objects.get().model_id

    again = drive(start(world, pipeline), pipeline_tasks, on_round=serve)
    assert statuses(again)["train"] == StepStatus.CACHED and statuses(again)["deploy"] == "completed"
    endpoint.refresh_from_db()
    assert endpoint.config_version == 1 and Endpoint.objects.count() == 1  # already serving: left alone


def test_the_preprocess_template_imputes_encodes_splits_and_trains(world, pipeline_tasks):
    from studio.datasets.models import Dataset
    from studio.pipelines.gallery import pipeline_template
    from tests.training.factories import mixed_classification_csv

    uploaded_dataset(world, mixed_classification_csv(n=120), name="mixed", target="churned")
    template = pipeline_template("preprocess-and-train")
    pipeline = make_pipeline(world, template["definition"]["steps"], name="prep", parameters={
        **template["definition"]["parameters"], "dataset": "mixed", "category_column": "city"})
    done = drive(start(world, pipeline), pipeline_tasks)
    assert done.status == "completed", done.failure_reason
    imputed = Dataset.objects.get(id=step(done, "impute").outputs["dataset"])
    assert imputed.profile["pipeline"]["filled_with"].keys() == {"age"}  # median fills numbers, not text
    encoded = Dataset.objects.get(id=step(done, "encode").outputs["dataset"])
    assert [c for c in encoded.column_names if c.startswith("city_")] == ["city_Lille", "city_Lyon", "city_Nice",
                                                                          "city_Paris"]
    assert encoded.target == "churned"
    assert str(TrainingJob.objects.get().dataset_id) == step(done, "split").outputs["train"]
