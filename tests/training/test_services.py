from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from algorithms import UnknownAlgorithm, get_algorithm
from studio.accounts.models import AuditEvent
from studio.core.errors import Conflict
from studio.registry.models import Model
from studio.training import runner, services
from studio.training.models import LogLine, MetricPoint, TrainingJob
from tests.conftest import csv_bytes, regression_csv
from tests.training.factories import dataset_from_csv, new_job, run_job

pytestmark = pytest.mark.django_db


def errors_of(excinfo) -> dict[str, list[str]]:
    return excinfo.value.message_dict


# --- create --------------------------------------------------------------------------------------


def test_it_creates_a_pending_job_and_enqueues_it_after_commit(world, enqueued, django_capture_on_commit_callbacks):
    dataset = dataset_from_csv(world.project)
    with django_capture_on_commit_callbacks(execute=True):
        job = services.training_job_create(user=world.member, project=world.project, algorithm="linear-learner",
                                           dataset=dataset, target="price", hyperparameters={"epochs": "7"})
    assert job.status == "pending" and job.created_by == world.member
    assert job.hyperparameters["epochs"] == 7 and job.hyperparameters["learning_rate"] == 0.1  # defaults filled
    assert job.name.startswith("linear-learner-20")
    assert enqueued == [str(job.id)]
    assert AuditEvent.objects.filter(verb="created training job", target=job.name).exists()


def test_it_accepts_a_dataset_id_and_defaults_the_target_to_the_datasets(world, enqueued):
    dataset = dataset_from_csv(world.project, target="price")
    job = services.training_job_create(user=world.member, project=world.project, algorithm="linear-learner",
                                       dataset=str(dataset.id))
    assert job.dataset == dataset and job.target == "price"


def test_it_lists_the_known_algorithms_for_an_unknown_one(world):
    dataset = dataset_from_csv(world.project)
    with pytest.raises(ValidationError) as excinfo:
        services.training_job_create(user=world.member, project=world.project, algorithm="xgboost",
                                     dataset=dataset, target="price")
    assert "linear-learner" in errors_of(excinfo)["algorithm"][0]


def test_it_names_the_columns_when_the_target_is_not_one(world):
    dataset = dataset_from_csv(world.project)
    with pytest.raises(ValidationError) as excinfo:
        services.training_job_create(user=world.member, project=world.project, algorithm="linear-learner",
                                     dataset=dataset, target="cost")
    message = errors_of(excinfo)["target"][0]
    assert "'cost'" in message and "x1, x2, x3, price" in message


def test_it_names_each_bad_hyperparameter_and_its_range(world):
    dataset = dataset_from_csv(world.project)
    with pytest.raises(ValidationError) as excinfo:
        services.training_job_create(user=world.member, project=world.project, algorithm="linear-learner",
                                     dataset=dataset, target="price",
                                     hyperparameters={"epochs": 0, "learning_rte": 0.1, "optimizer": "lbfgs"})
    errors = errors_of(excinfo)
    assert "between 1 and 1000" in errors["hyperparameters.epochs"][0]
    assert "unknown hyperparameter 'learning_rte'" in errors["hyperparameters.learning_rte"][0]
    assert "'adam'" in errors["hyperparameters.optimizer"][0]
    assert not TrainingJob.objects.exists()


@pytest.mark.parametrize(("field", "kwargs", "words"), [
    ("validation_fraction", {"validation_fraction": 0.7}, "between 0 and 0.5"),
    ("validation_fraction", {"validation_fraction": "lots"}, "must be a number"),
    ("max_runtime_seconds", {"max_runtime_seconds": 0}, "between 1 and"),
    ("name", {"name": "has spaces"}, "letters, digits"),
    ("hyperparameters", {"hyperparameters": [1, 2]}, "object"),
    ("missing_values", {"missing_values": "impute"}, "must be one of mean, median, zero, drop_rows, fail"),
])
def test_it_rejects_bad_fields_with_a_message(world, field, kwargs, words):
    dataset = dataset_from_csv(world.project)
    with pytest.raises(ValidationError) as excinfo:
        services.training_job_create(user=world.member, project=world.project, algorithm="linear-learner",
                                     dataset=dataset, target="price", **kwargs)
    assert words in errors_of(excinfo)[field][0]


def registered(name: str) -> str:
    try:
        get_algorithm(name)
    except UnknownAlgorithm:
        pytest.skip(f"{name} is not registered yet")
    return name


def test_it_defaults_missing_values_to_mean_and_keeps_a_chosen_strategy(world, enqueued):
    dataset = dataset_from_csv(world.project)
    assert new_job(world, dataset=dataset).missing_values == "mean"
    assert new_job(world, dataset=dataset, name="m", missing_values=" median ").missing_values == "median"


def test_it_refuses_a_target_for_an_algorithm_that_takes_none(world):
    name = registered("kmeans")
    dataset = dataset_from_csv(world.project, target="price")
    with pytest.raises(ValidationError) as excinfo:
        services.training_job_create(user=world.member, project=world.project, algorithm=name, dataset=dataset,
                                     target="price")
    assert errors_of(excinfo)["target"] == [f"{name} takes no target: it learns from the feature columns alone. "
                                            "Leave target empty."]


def test_it_needs_no_target_for_unsupervised_algorithms_and_does_not_borrow_the_datasets(world, enqueued):
    name = registered("kmeans")
    dataset = dataset_from_csv(world.project, target="price")
    job = services.training_job_create(user=world.member, project=world.project, algorithm=name, dataset=dataset)
    assert job.target == ""


def test_it_takes_optional_labels_but_never_guesses_them(world, enqueued):
    name = registered("random-cut-forest")
    dataset = dataset_from_csv(world.project, target="price")
    without = services.training_job_create(user=world.member, project=world.project, algorithm=name, dataset=dataset)
    assert without.target == ""
    labelled = services.training_job_create(user=world.member, project=world.project, algorithm=name,
                                            dataset=dataset, target="x1", name="labelled")
    assert labelled.target == "x1"
    with pytest.raises(ValidationError) as excinfo:
        services.training_job_create(user=world.member, project=world.project, algorithm=name, dataset=dataset,
                                     target="nope")
    assert "'nope' is not a column" in errors_of(excinfo)["target"][0]


def test_it_refuses_datasets_of_other_projects_and_unready_ones(world):
    foreign = dataset_from_csv(world.other_project, name="secret")
    with pytest.raises(ValidationError) as excinfo:
        services.training_job_create(user=world.member, project=world.project, algorithm="linear-learner",
                                     dataset=foreign.id, target="price")
    assert "No dataset" in errors_of(excinfo)["dataset"][0]
    processing = dataset_from_csv(world.project, name="slow", status="processing")
    with pytest.raises(ValidationError) as excinfo:
        services.training_job_create(user=world.member, project=world.project, algorithm="linear-learner",
                                     dataset=processing, target="price")
    assert "not ready" in errors_of(excinfo)["dataset"][0]


def test_it_forbids_viewers_to_create_jobs(world):
    dataset = dataset_from_csv(world.project)
    with pytest.raises(PermissionDenied):
        services.training_job_create(user=world.viewer, project=world.project, algorithm="linear-learner",
                                     dataset=dataset, target="price")


def test_it_gives_a_conflict_for_a_duplicate_name_and_suffixes_generated_ones(world, enqueued, monkeypatch):
    dataset = dataset_from_csv(world.project)
    new_job(world, dataset=dataset, name="first")
    with pytest.raises(Conflict):
        new_job(world, dataset=dataset, name="first")
    frozen = timezone.now()
    monkeypatch.setattr(services.timezone, "now", lambda: frozen)
    a, b = new_job(world, dataset=dataset), new_job(world, dataset=dataset)
    assert b.name == f"{a.name}-2"


# --- stop ----------------------------------------------------------------------------------------


def test_it_stops_a_pending_job_at_once(world, enqueued):
    job = services.training_job_stop(user=world.member, job=new_job(world))
    assert job.status == "stopped" and job.status_message == "Stopped by mark" and job.ended_at
    assert run_job(job).status == "stopped"  # a message still in the queue does nothing


def test_it_asks_a_running_job_to_stop_and_refuses_finished_ones(world, enqueued):
    job = new_job(world)
    services.training_job_claim(job_id=job.id, worker="w1")
    job = services.training_job_stop(user=world.owner, job=job)
    assert job.status == "running" and job.stop_requested and job.stop_message == "Stopped by olivia"
    assert LogLine.objects.filter(job=job, line__contains="Stop requested by olivia").exists()
    TrainingJob.objects.filter(id=job.id).update(status="completed")
    with pytest.raises(Conflict):
        services.training_job_stop(user=world.owner, job=job)


def test_it_forbids_viewers_to_stop_jobs(world, enqueued):
    job = new_job(world)
    with pytest.raises(PermissionDenied):
        services.training_job_stop(user=world.viewer, job=job)
    job.refresh_from_db()
    assert job.status == "pending"


def test_it_finishes_as_stopped_when_a_user_stops_it_mid_run(world, enqueued, monkeypatch):
    job = new_job(world, hyperparameters={"epochs": 50, "early_stopping_patience": 50})
    heartbeat = services.training_job_heartbeat
    calls = []

    def stop_after_second_epoch(*, job_id):
        calls.append(job_id)
        if len(calls) == 2:
            services.training_job_stop(user=world.member, job=TrainingJob.objects.get(id=job_id))
        return heartbeat(job_id=job_id)

    monkeypatch.setattr(services, "training_job_heartbeat", stop_after_second_epoch)
    job = run_job(job)
    assert job.status == "stopped" and job.status_message == "Stopped by mark"
    assert sorted(MetricPoint.objects.filter(job=job, name="train:loss").values_list("step", flat=True)) == [1, 2]
    assert "train:loss" in job.final_metrics
    assert not Model.objects.filter(training_job=job).exists()


def test_it_stops_a_job_that_exceeds_its_max_runtime(world, enqueued, monkeypatch):
    job = new_job(world, max_runtime_seconds=5, hyperparameters={"epochs": 50, "early_stopping_patience": 50})
    clock = iter(range(0, 10_000, 3))  # every reading is 3 s after the previous one
    monkeypatch.setattr(runner, "clock", lambda: next(clock))
    job = run_job(job)
    assert job.status == "stopped" and job.status_message == "Max runtime of 5 s exceeded"
    assert MetricPoint.objects.filter(job=job, name="train:loss").count() == 2


# --- the run -------------------------------------------------------------------------------------


def test_it_claims_a_job_once_so_a_redelivered_message_does_nothing(world, enqueued):
    job = new_job(world)
    assert runner.training_job_run(job_id=job.id, worker="w1") == "completed"
    assert runner.training_job_run(job_id=job.id, worker="w2") == "skipped"
    job.refresh_from_db()
    assert job.attempts == 1 and job.worker == "w1"
    assert Model.objects.filter(training_job=job).count() == 1


def test_it_fails_with_the_datasets_own_words(world, enqueued):
    content = csv_bytes([[1, 2, 3], ["abc", 1, 4], [3, 1, 5]], ["x1", "x2", "price"])
    job = new_job(world, dataset=dataset_from_csv(world.project, name="dirty", content=content))
    job = run_job(job)
    assert job.status == "failed"
    assert job.failure_reason.startswith("column 'x1' has non-numeric values in row 2")
    assert LogLine.objects.filter(job=job, line__startswith="Failed: column 'x1'").exists()


def test_it_fails_with_the_algorithms_words_for_unusable_targets(world, enqueued):
    content = csv_bytes([[i, "a"] for i in range(10)], ["x", "label"])
    dataset = dataset_from_csv(world.project, name="one-class", content=content)
    job = run_job(new_job(world, dataset=dataset, target="label"))
    assert job.status == "failed" and "at least 2 classes" in job.failure_reason


def test_it_reports_unexpected_errors_as_internal(world, enqueued, monkeypatch):
    def boom(name):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(runner, "get_algorithm", boom)
    job = run_job(new_job(world))
    assert job.status == "failed" and job.failure_reason == "Internal error: RuntimeError: disk on fire"


def test_it_trains_against_a_separate_validation_dataset(world, enqueued):
    train = dataset_from_csv(world.project, name="train", content=regression_csv(n=150, seed=1))
    valid = dataset_from_csv(world.project, name="valid", content=regression_csv(n=60, seed=2))
    job = run_job(new_job(world, dataset=train, validation_dataset=valid))
    assert job.status == "completed" and job.validation_fraction == 0.0
    assert job.final_metrics["validation:r2"] > 0.9
    assert LogLine.objects.filter(job=job, line__contains="on 150 rows, validating on 60").exists()


def test_it_leaves_a_job_the_reconciler_failed_mid_run_failed(world, enqueued, monkeypatch):
    job = new_job(world, hyperparameters={"epochs": 20, "early_stopping_patience": 20})
    record = services.job_metrics_record

    def reconciled_meanwhile(*, job, step, **kwargs):
        record(job=job, step=step, **kwargs)
        if step == 2:
            TrainingJob.objects.filter(id=job.id).update(status="failed", failure_reason="Worker lost")

    monkeypatch.setattr(services, "job_metrics_record", reconciled_meanwhile)
    job = run_job(job)
    assert job.status == "failed" and job.failure_reason == "Worker lost"
    assert not Model.objects.exists()


# --- reconciler ----------------------------------------------------------------------------------


def test_it_fails_running_jobs_whose_worker_went_silent(world, enqueued, settings):
    settings.STUDIO_HEARTBEAT_TIMEOUT = 60
    stale, fresh = new_job(world, name="stale"), new_job(world, name="fresh")
    for job in (stale, fresh):
        services.training_job_claim(job_id=job.id, worker="celery@gpu-7")
    long_ago = timezone.now() - timedelta(seconds=300)
    TrainingJob.objects.filter(id=stale.id).update(heartbeat_at=long_ago)
    assert services.training_jobs_reconcile() == {"failed": 1, "requeued": 0}
    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert stale.status == "failed" and fresh.status == "running"
    assert stale.failure_reason.startswith("Worker celery@gpu-7 stopped responding (last heartbeat ")
    assert stale.failure_reason.endswith("the job was marked failed.")
    assert services.training_jobs_reconcile()["failed"] == 0


def test_it_re_enqueues_old_pending_jobs_but_not_over_and_over(world, enqueued, settings):
    settings.STUDIO_PENDING_REQUEUE_SECONDS = 300
    old, new = new_job(world, name="old"), new_job(world, name="new")
    long_ago = timezone.now() - timedelta(seconds=900)
    TrainingJob.objects.filter(id=old.id).update(created_at=long_ago, enqueued_at=long_ago)
    enqueued.clear()
    assert services.training_jobs_reconcile() == {"failed": 0, "requeued": 1}
    assert enqueued == [str(old.id)]
    assert services.training_jobs_reconcile()["requeued"] == 0  # sent again only after another 300 s
    assert run_job(old).status == "completed"
    assert run_job(old).attempts == 1  # the duplicate message is a no-op
    assert new.id not in enqueued


def test_the_reconcile_task_calls_the_service(world, enqueued):
    from studio.training.tasks import training_jobs_reconcile_task

    assert training_jobs_reconcile_task.apply().get() == {"failed": 0, "requeued": 0}


def test_it_lowers_data_bound_defaults_to_fit_a_small_dataset_but_never_a_given_value(world, enqueued):
    pca, kmeans = registered("pca"), registered("kmeans")
    small = dataset_from_csv(world.project, name="small", content=csv_bytes([[1, 2, 3]] * 5, ["a", "b", "c"]))
    job = services.training_job_create(user=world.member, project=world.project, algorithm=pca, dataset=small)
    assert job.hyperparameters["num_components"] == 3  # declared default 10 > 3 feature columns
    clusters = services.training_job_create(user=world.member, project=world.project, algorithm=kmeans,
                                            dataset=small, name="few-rows")
    assert clusters.hyperparameters["k"] == 4  # 8 clusters of 4 training rows cannot be; 5 rows, 20% held out
    given = services.training_job_create(user=world.member, project=world.project, algorithm=pca, dataset=small,
                                         hyperparameters={"num_components": 7}, name="as-given")
    assert given.hyperparameters["num_components"] == 7  # the algorithm explains the problem at run time
    big = dataset_from_csv(world.project)  # 200 rows, 4 columns
    assert services.data_bound_defaults(get_algorithm(kmeans), dataset=big) == {}
