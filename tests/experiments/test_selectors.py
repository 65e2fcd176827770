from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.http import Http404, QueryDict
from django.utils import timezone

from studio.experiments import selectors
from studio.experiments.filters import Condition, parse_condition, parse_run_query
from tests.experiments.runs import add_points, make_run, make_trial

pytestmark = pytest.mark.django_db


def names(world, user=None, **params) -> list[str]:
    query = parse_run_query(params)
    return [job.name for job in selectors.run_list(user=user or world.viewer, project=world.project, query=query)]


@pytest.fixture
def runs(world):
    p = world.project
    return {
        "a": make_run(p, "alpha", metrics={"validation:accuracy": 0.95, "validation:loss": 0.2},
                      params={"learning_rate": 0.05, "optimizer": "adam", "use_bias": True, "mini_batch_size": 32},
                      tags=["baseline", "prod"]),
        "b": make_run(p, "beta", metrics={"validation:accuracy": 0.85, "validation:loss": 0.4},
                      params={"learning_rate": 0.2, "optimizer": "sgd", "use_bias": False, "mini_batch_size": "32"},
                      tags=["baseline"]),
        "c": make_run(p, "gamma", metrics={"validation:accuracy": 0.9}, status="failed",
                      params={"learning_rate": "auto", "optimizer": "adam"}),
        "d": make_run(p, "delta-knn", algorithm="knn", status="running", params={"k": 5}),
    }


# --- parsing ------------------------------------------------------------------------------------


def test_it_parses_conditions_with_every_operator():
    expected = Condition("metric", "validation:accuracy", ">=", 0.9)
    assert parse_condition("metric", "validation:accuracy>=0.9") == expected
    assert parse_condition("param", "learning_rate < 1e-2") == Condition("param", "learning_rate", "<", 0.01)
    assert parse_condition("param", "optimizer==adam") == Condition("param", "optimizer", "=", "adam")
    assert parse_condition("param", "use_bias!=TRUE") == Condition("param", "use_bias", "!=", True)
    assert str(parse_condition("metric", "validation:auc>1")) == "metric:validation:auc>1"


@pytest.mark.parametrize("kind,text", [
    ("metric", "validation:accuracy"), ("metric", "validation:accuracy>=high"), ("metric", ">=0.3"),
    ("param", "learning_rate<fast"), ("metric", "validation:accuracy>=nan"), ("param", "epochs="),
])
def test_it_refuses_bad_conditions(kind, text):
    with pytest.raises(ValueError):
        parse_condition(kind, text)


def test_it_names_the_bad_parameter():
    with pytest.raises(ValidationError) as exc:
        parse_run_query({"metric": "accuracy>>1", "param": "x<y", "sort": "colour", "status": "sleeping",
                         "tuning_job": "nope"})
    assert set(exc.value.message_dict) == {"metric", "param", "sort", "status", "tuning_job"}


def test_it_reads_the_search_box_language():
    query = parse_run_query(QueryDict(
        "q=churn metric:validation:accuracy>=0.9 param:epochs>10 tag:prod status:completed,failed "
        "algorithm:knn validation:auc>0.7 learning_rate<=0.1 'two words'"))
    assert query.words == ["churn", "two words"]
    assert query.tags == ["prod"] and query.statuses == ["completed", "failed"] and query.algorithms == ["knn"]
    assert [str(c) for c in query.conditions] == [
        "metric:validation:accuracy>=0.9", "param:epochs>10", "metric:validation:auc>0.7", "param:learning_rate<=0.1"]
    with pytest.raises(ValidationError) as exc:
        parse_run_query({"q": "metric:validation:auc>high"})
    assert list(exc.value.message_dict) == ["q"]


def test_it_caps_the_number_of_filters():
    with pytest.raises(ValidationError) as exc:
        parse_run_query({"metric": [f"m{i}>0" for i in range(25)]})
    assert "q" in exc.value.message_dict


# --- filtering and sorting in the database ------------------------------------------------------


def test_it_filters_by_metric_range(world, runs):
    assert names(world, metric="validation:accuracy>=0.9", sort="name") == ["alpha", "gamma"]
    assert names(world, metric=["validation:accuracy>0.8", "validation:accuracy<0.92"], sort="name") == [
        "beta", "gamma"]
    assert names(world, metric="validation:loss<=0.2") == ["alpha"]
    assert names(world, metric="validation:accuracy=0.85") == ["beta"]
    # A run without the metric is neither above nor below anything, nor "different".
    assert names(world, metric="validation:loss!=0.2") == ["beta"]


def test_it_filters_by_hyperparameter_value_and_range(world, runs):
    assert names(world, param="learning_rate<0.1") == ["alpha"]  # "auto" (a text) is not a number: left out
    assert names(world, param="learning_rate>=0.05", sort="name") == ["alpha", "beta"]
    assert names(world, param="optimizer=adam", sort="name") == ["alpha", "gamma"]
    assert names(world, param="optimizer!=adam") == ["beta"]
    assert names(world, param="use_bias=true") == ["alpha"]
    assert names(world, param="use_bias=false") == ["beta"]
    # 32 the number and "32" the categorical choice are the same setting.
    assert names(world, param="mini_batch_size=32", sort="name") == ["alpha", "beta"]
    assert names(world, param="k>=5") == ["delta-knn"]
    assert names(world, param="learning_rate=auto") == ["gamma"]


def test_it_filters_by_tags_status_algorithm_and_name(world, runs):
    assert names(world, tag="baseline", sort="name") == ["alpha", "beta"]
    assert names(world, tag=["baseline", " Prod "]) == ["alpha"]
    assert names(world, tag="prod\"") == []
    assert names(world, status="failed,running", sort="name") == ["delta-knn", "gamma"]
    assert names(world, algorithm="knn") == ["delta-knn"]
    assert names(world, q="ALPH") == ["alpha"]
    assert names(world, q="tag:baseline metric:validation:accuracy<0.9") == ["beta"]


def test_it_filters_the_trials_of_a_tuning_job(world, runs):
    trial = make_trial(runs["b"])
    make_trial(runs["c"])
    assert names(world, tuning_job=str(trial.tuning_job_id)) == ["beta"]


def test_it_sorts_by_a_metric_with_empty_cells_last_both_ways(world, runs):
    assert names(world, sort="-metric:validation:accuracy") == ["alpha", "gamma", "beta", "delta-knn"]
    assert names(world, sort="metric:validation:accuracy") == ["beta", "gamma", "alpha", "delta-knn"]
    assert names(world, sort="metric:validation:loss")[:2] == ["alpha", "beta"]
    assert names(world, sort="-param:learning_rate")[:2] == ["beta", "alpha"]
    assert names(world, sort="name") == ["alpha", "beta", "delta-knn", "gamma"]
    assert names(world, sort="-name")[0] == "gamma"


def test_it_sorts_by_duration_and_creation(world, runs):
    now = timezone.now()
    for job, seconds in ((runs["a"], 30), (runs["b"], 10), (runs["c"], 20)):
        job.started_at, job.ended_at = now - dt.timedelta(seconds=seconds), now
        job.save(update_fields=["started_at", "ended_at"])
    assert names(world, sort="duration") == ["beta", "gamma", "alpha", "delta-knn"]
    assert names(world, sort="-duration") == ["alpha", "gamma", "beta", "delta-knn"]
    assert names(world) == ["delta-knn", "gamma", "beta", "alpha"]  # newest first by default


def test_it_shows_nothing_of_a_project_the_user_cannot_see(world, runs):
    make_run(world.other_project, "secret", metrics={"validation:accuracy": 0.99})
    assert names(world, user=world.outsider) == []
    query = parse_run_query({})
    assert [j.name for j in selectors.run_list(user=world.outsider, project=world.other_project, query=query)] == [
        "secret"]


def test_it_declares_columns_from_the_algorithms_used(world, runs):
    algorithms = selectors.project_algorithms(user=world.viewer, project=world.project)
    assert algorithms == ["knn", "linear-learner"]
    declared = selectors.declared_columns(algorithms)
    metrics = [m["name"] for m in declared["metrics"]]
    assert "validation:accuracy" in metrics and metrics.index("validation:accuracy") < metrics.index("train:loss")
    assert {"learning_rate", "k"} <= {p["name"] for p in declared["params"]}
    assert declared["objectives"] == ["validation:accuracy", "validation:loss"] or declared["objectives"]
    assert selectors.metric_direction(algorithms, "validation:loss") == "minimize"
    assert selectors.metric_direction(algorithms, "made-up") is None


# --- compare ------------------------------------------------------------------------------------


def test_it_parses_run_ids_for_compare(world, runs):
    ids = [str(runs["a"].id), str(runs["b"].id)]
    assert selectors.parse_run_ids([",".join(ids + ids[:1])]) == [runs["a"].id, runs["b"].id]
    for bad in (["nope," + ids[0]], [ids[0]], [",".join(str(__import__("uuid").uuid4()) for _ in range(51))]):
        with pytest.raises(ValidationError) as exc:
            selectors.parse_run_ids(bad)
        assert list(exc.value.message_dict) == ["runs"]


def test_it_refuses_to_compare_a_run_of_another_project(world, runs):
    secret = make_run(world.other_project, "secret")
    with pytest.raises(Http404):
        selectors.runs_for_compare(user=world.member, project=world.project, run_ids=[runs["a"].id, secret.id])
    with pytest.raises(Http404):  # visible to its owner, but not in this project
        selectors.runs_for_compare(user=world.outsider, project=world.other_project,
                                   run_ids=[runs["a"].id, secret.id])


def test_it_reads_metric_series_of_many_runs_in_one_query(world, runs, django_assert_num_queries):
    add_points(runs["a"], "validation:loss", [0.5, 0.3, 0.2])
    add_points(runs["b"], "train:loss", [0.9, 0.6])
    with django_assert_num_queries(1):
        series = selectors.metric_series(runs=[runs["a"], runs["b"]])
    assert series[str(runs["a"].id)]["validation:loss"][0][:2] == [1, 0.5]
    assert [p[0] for p in series[str(runs["b"].id)]["train:loss"]] == [1, 2]


def test_it_thins_long_series_keeping_the_last_point():
    values = list(range(10_001))
    thinned = selectors.thin(values, 2_000)
    assert len(thinned) == 2_000 and thinned[0] == 0 and thinned[-1] == 10_000
    assert selectors.thin([1, 2], 5) == [1, 2]


def test_it_lists_the_distinct_tags_of_a_project(world, runs):
    make_run(world.other_project, "secret", tags=["hidden"])
    assert selectors.project_tags(user=world.viewer, project=world.project) == ["baseline", "prod"]
    assert selectors.project_tags(user=world.outsider, project=world.project) == []
