"""Bad tuning specs: a 400 (ValidationError) naming the field, and nothing created."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from studio.tuning import services
from studio.tuning.models import TuningJob
from tests.training.factories import classification_dataset, dataset_from_csv

pytestmark = pytest.mark.django_db


def errors(world, algorithm="linear-learner", dataset=None, **kwargs) -> dict[str, list[str]]:
    dataset = dataset or classification_dataset(world.project)
    kwargs.setdefault("ranges", {"learning_rate": {"type": "continuous", "min": 0.01, "max": 0.1}})
    with pytest.raises(ValidationError) as excinfo:
        services.tuning_job_create(user=world.member, project=world.project, algorithm=algorithm, dataset=dataset,
                                   **kwargs)
    assert not TuningJob.objects.exists()
    return excinfo.value.message_dict


def test_it_names_a_range_whose_min_is_above_its_max(world):
    found = errors(world, ranges={"learning_rate": {"type": "continuous", "min": 0.5, "max": 0.1}})
    assert found["ranges.learning_rate"] == ["ranges.learning_rate: min 0.5 is greater than max 0.1."]


def test_it_refuses_a_log_scale_that_reaches_zero(world):
    found = errors(world, ranges={"l1": {"type": "continuous", "min": 0.0, "max": 0.1, "scale": "log"}})
    assert "log scale needs min > 0" in found["ranges.l1.scale"][0]


def test_it_names_an_unknown_parameter_and_lists_the_tunable_ones(world):
    found = errors(world, ranges={"learning_rat": {"type": "continuous", "min": 0.01, "max": 0.1}})
    assert "no hyperparameter 'learning_rat'" in found["ranges.learning_rat"][0]
    assert "learning_rate" in found["ranges.learning_rat"][0]


def test_it_refuses_a_range_outside_the_declared_bounds(world):
    found = errors(world, ranges={"learning_rate": {"type": "continuous", "min": 0.01, "max": 5}})
    assert "between 1e-06 and 1.0" in found["ranges.learning_rate.max"][0]


def test_it_refuses_a_type_that_does_not_fit_the_parameter(world):
    found = errors(world, ranges={"mini_batch_size": {"type": "continuous", "min": 8, "max": 64}})
    assert "use type 'integer'" in found["ranges.mini_batch_size.type"][0]


def test_it_refuses_categorical_values_that_are_not_choices(world):
    found = errors(world, ranges={"optimizer": {"type": "categorical", "values": ["adam", "lbfgs"]}})
    assert "lbfgs" in found["ranges.optimizer.values"][0]


def test_it_refuses_a_parameter_that_is_both_static_and_tuned(world):
    found = errors(world, static_hyperparameters={"learning_rate": 0.1})
    assert "static_hyperparameters too" in found["ranges.learning_rate"][0]


def test_it_refuses_a_non_tunable_parameter(world):
    found = errors(world, ranges={"num_models": {"type": "integer", "min": 1, "max": 4}})
    assert "not tunable" in found["ranges.num_models"][0]


def test_it_refuses_a_grid_larger_than_max_jobs(world):
    found = errors(world, strategy="grid", max_jobs=3,
                   ranges={"mini_batch_size": {"type": "categorical", "values": [8, 16]},
                           "optimizer": {"type": "categorical", "values": ["adam", "sgd"]}})
    assert found["max_jobs"] == ["The grid has 4 combinations but max_jobs is 3: raise max_jobs to 4 or narrow the "
                                 "ranges."]


def test_it_refuses_a_continuous_range_in_a_grid(world):
    found = errors(world, strategy="grid")
    assert "learning_rate is continuous" in found["strategy"][0]


def test_it_needs_ranges_unless_autotune(world):
    found = errors(world, ranges=None)
    assert "autotune" in found["ranges"][0]


def test_it_names_an_objective_the_algorithm_does_not_report(world):
    found = errors(world, objective={"metric": "validation:rouge1"})
    assert "does not report 'validation:rouge1'" in found["objective.metric"][0]


def test_it_needs_validation_data_for_a_validation_objective(world):
    found = errors(world, validation_fraction=0, objective={"metric": "validation:accuracy"})
    assert "validation_fraction" in found["objective.metric"][0]


def test_it_refuses_hyperband_for_an_algorithm_without_epochs(world):
    blobs = dataset_from_csv(world.project, name="blobs")
    found = errors(world, algorithm="kmeans", dataset=blobs, strategy="hyperband",
                   ranges={"init_method": {"type": "categorical", "values": ["kmeans++", "random"]}},
                   objective={"metric": "validation:msd"})
    assert "hyperband needs an algorithm trained in epochs" in found["strategy"][0]


def test_it_refuses_more_parallel_trials_than_trials(world):
    found = errors(world, max_jobs=2, max_parallel_jobs=3)
    assert found["max_parallel_jobs"] == ["max_parallel_jobs (3) cannot exceed max_jobs (2)."]


def test_it_names_bad_limits_and_criteria(world):
    found = errors(world, max_jobs=0, early_stopping="sometimes", completion={"target_value": "high"},
                   strategy="evolution")
    assert "between 1 and 500" in found["max_jobs"][0]
    assert "off or auto" in found["early_stopping"][0]
    assert "target_value must be a number" in found["completion.target_value"][0]
    assert "random, grid, bayesian, hyperband" in found["strategy"][0]


def test_it_does_not_confirm_another_projects_tuning_job_as_a_parent(world):
    other = classification_dataset(world.other_project)
    from studio.tuning.models import TuningJob as Model

    foreign = Model.objects.create(project=world.other_project, name="theirs", algorithm="linear-learner",
                                   dataset=other, objective_metric="validation:accuracy", objective_goal="maximize",
                                   strategy="random", max_jobs=1, max_parallel_jobs=1, status="completed")
    with pytest.raises(ValidationError) as excinfo:
        services.tuning_job_create(user=world.member, project=world.project, algorithm="linear-learner",
                                   dataset=classification_dataset(world.project, name="mine"),
                                   ranges={"learning_rate": {"type": "continuous", "min": 0.01, "max": 0.1}},
                                   warm_start={"parents": [str(foreign.id)]})
    assert excinfo.value.message_dict["warm_start.parents"] == [f"No tuning job '{foreign.id}' in this project."]


def test_it_names_static_hyperparameters_that_are_invalid(world):
    found = errors(world, static_hyperparameters={"epochs": 0})
    assert "epochs" in found["static_hyperparameters.epochs"][0]


def test_it_autotunes_from_the_declaration_and_explains_each_choice(world, advances):
    job = services.tuning_job_create(user=world.member, project=world.project, algorithm="linear-learner",
                                     dataset=classification_dataset(world.project), autotune=True,
                                     static_hyperparameters={"epochs": 2})
    tunable = [hp.name for hp in __import__("algorithms").get_algorithm("linear-learner").hyperparameters
               if hp.tunable and hp.name != "epochs"]
    assert list(job.ranges) == tunable[:6]
    assert job.ranges["learning_rate"] == {"type": "continuous", "min": 0.001, "max": 1.0, "scale": "log"}
    assert job.strategy == "bayesian" and job.early_stopping == "auto"
    assert 12 <= job.max_jobs <= 50 and job.max_parallel_jobs >= 1
    settings_explained = {row["setting"] for row in job.autotune_report}
    assert {"strategy", "max_jobs", "max_parallel_jobs", "early_stopping", "ranges.learning_rate"} <= settings_explained
    assert all(row["reason"] for row in job.autotune_report)
