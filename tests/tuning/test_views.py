"""Tuning pages: list, new (range editors), detail (live data, best trial, charts), stop; roles and scoping."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client

from studio.training.models import TrainingJob
from studio.tuning import services
from studio.tuning.models import TuningJob
from tests.conftest import PASSWORD
from tests.training.factories import classification_dataset
from tests.tuning.conftest import drive

pytestmark = pytest.mark.django_db

RANGES = {"learning_rate": {"type": "continuous", "min": 0.001, "max": 0.5, "scale": "log"},
          "mini_batch_size": {"type": "integer", "min": 8, "max": 64},
          "optimizer": {"type": "categorical", "values": ["adam", "sgd"]}}


def signed_in(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def page(world, suffix: str = "") -> str:
    return f"/projects/{world.project.id}/tuning/{suffix}"


def create(world, **kwargs) -> TuningJob:
    dataset = kwargs.pop("dataset", None) or classification_dataset(world.project)
    kwargs.setdefault("ranges", RANGES)
    kwargs.setdefault("static_hyperparameters", {"epochs": 2, "num_models": 2})
    kwargs.setdefault("strategy", "random")
    kwargs.setdefault("max_jobs", 3)
    kwargs.setdefault("max_parallel_jobs", 2)
    kwargs.setdefault("objective", {"metric": "validation:accuracy", "goal": "maximize"})
    return services.tuning_job_create(user=world.member, project=world.project, algorithm="linear-learner",
                                      dataset=dataset, **kwargs)


def form(dataset, **overrides) -> dict:
    """What the new-job form posts for a random search over learning_rate and mini_batch_size."""
    data = {
        "algorithm": "linear-learner", "name": "from-form", "dataset": str(dataset.id), "target": "churned",
        "validation_fraction": "0.25", "missing_values": "mean", "objective_metric": "validation:accuracy",
        "objective_goal": "", "strategy": "random", "max_jobs": "4", "max_parallel_jobs": "2",
        "max_runtime_seconds": "", "early_stopping": "off", "completion_target_value": "",
        "completion_best_not_improving_jobs": "", "warm_start_type": "identical_data",
        "tune_learning_rate": "on", "min_learning_rate": "0.001", "max_learning_rate": "0.5",
        "scale_learning_rate": "log",
        "tune_mini_batch_size": "on", "min_mini_batch_size": "8", "max_mini_batch_size": "64",
        "scale_mini_batch_size": "log",
        # Not ticked: their range inputs are posted but ignored; the static values apply.
        "min_learning_rate_decay": "0.5", "max_learning_rate_decay": "1", "scale_learning_rate_decay": "linear",
        "values_optimizer": ["adam", "sgd"],
        "hp_epochs": "3", "hp_learning_rate": "0.1", "hp_mini_batch_size": "32", "hp_optimizer": "adam",
        "hp_num_models": "2", "hp_use_bias": ["false", "true"], "hp_normalize_data": ["false"],
    }
    data.update(overrides)
    return data


# --- list ---------------------------------------------------------------------------------------


def test_it_shows_an_empty_state_with_a_next_step(world):
    body = signed_in(world.member).get(page(world)).content.decode()
    assert "No tuning jobs yet" in body and f'href="{page(world, "new/")}"' in body
    assert f'href="{page(world)}" class="active">Tuning</a>' in body  # the left nav
    viewer = signed_in(world.viewer).get(page(world)).content.decode()
    assert "No tuning jobs yet" in viewer and page(world, "new/") not in viewer
    assert "Members of this team can start tuning jobs." in viewer


def test_it_lists_tuning_jobs_with_strategy_progress_and_best(world, enqueued, advances):
    done = drive(create(world, name="lr-search"))
    create(world, name="waiting-search", strategy="bayesian", dataset=done.dataset)
    response = signed_in(world.viewer).get(page(world))
    body = response.content.decode()
    assert response.status_code == 200
    row = re.search(rf'<tr data-tuning-job="{done.id}">.*?</tr>', body, re.S).group(0)
    assert "lr-search" in row and "Random search" in row and '<span class="badge completed"' in row
    assert ">3/3</td>" in row and "validation:accuracy" in row and f"{done.best_objective:.4g}" in row
    waiting = re.search(r'<tr data-tuning-job="[^"]+">(?:(?!</tr>).)*waiting-search.*?</tr>', body, re.S).group(0)
    assert ">0/3</td>" in waiting and '<span class="badge pending"' in waiting and "Bayesian" in waiting
    assert f'data-project-ws="/ws/projects/{world.project.id}/?since=' in body and "studio/tuning.js" in body
    only_pending = signed_in(world.viewer).get(page(world) + "?status=pending").content.decode()
    assert "waiting-search" in only_pending and "lr-search" not in only_pending


# --- new ----------------------------------------------------------------------------------------


def test_it_prefills_the_range_editors_from_the_declaration(world):
    dataset = classification_dataset(world.project)
    assert signed_in(world.owner).get(page(world, "new/")).status_code == 200
    response = signed_in(world.member).get(page(world, f"new/?dataset={dataset.id}"))
    body = response.content.decode()
    assert response.status_code == 200
    # Log-scale ranges are narrowed around the default, as Autotune would search them.
    assert 'name="min_learning_rate" value="0.001"' in body and 'name="max_learning_rate" value="1"' in body
    assert re.search(r'id="id_scale_learning_rate" name="scale_learning_rate"><option value="linear">linear'
                     r'</option><option value="log" selected>', body)
    assert 'name="min_mini_batch_size" value="4" step="1"' in body
    assert 'name="max_mini_batch_size" value="256" step="1"' in body
    assert 'name="min_learning_rate_decay" value="0.01" step="any"' in body
    for value in ("adam", "sgd"):
        assert f'name="values_optimizer" value="{value}" checked>' in body
    assert 'name="tune_learning_rate" value="on" data-tune>' in body  # nothing is tuned until ticked
    # Not tunable: a static value only.
    assert 'name="tune_use_bias"' not in body and 'name="hp_use_bias" value="true" checked>' in body
    assert 'name="hp_epochs" value="15"' in body
    assert '<option value="validation:loss" selected>validation:loss (minimize) · default</option>' in body
    for strategy in ("random", "grid", "bayesian", "hyperband"):
        assert f'<option value="{strategy}">' in body
    assert f'<option value="{dataset.id}" selected>' in body and '<option value="churned" selected>' in body
    assert "No finished tuning job in this project yet" in body
    assert f'hx-get="{page(world, "new/ranges/")}"' in body


def test_it_refuses_the_form_to_viewers(world):
    dataset = classification_dataset(world.project)
    client = signed_in(world.viewer)
    assert client.get(page(world, "new/")).status_code == 403
    assert client.post(page(world, "new/"), form(dataset)).status_code == 403
    assert not TuningJob.objects.exists()


def test_it_creates_a_tuning_job_from_the_form(world, advances, django_capture_on_commit_callbacks):
    dataset = classification_dataset(world.project)
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in(world.member).post(page(world, "new/"), form(dataset))
    job = TuningJob.objects.get(name="from-form")
    assert response.status_code == 302 and response.url == page(world, f"{job.id}/")
    assert job.ranges == {"learning_rate": {"type": "continuous", "min": 0.001, "max": 0.5, "scale": "log"},
                          "mini_batch_size": {"type": "integer", "min": 8, "max": 64, "scale": "log"}}
    # Values equal to the declared defaults are left out; changed ones are fixed for every trial.
    assert job.static_hyperparameters == {"epochs": 3, "num_models": 2, "normalize_data": False}
    assert (job.strategy, job.max_jobs, job.max_parallel_jobs, job.early_stopping) == ("random", 4, 2, "off")
    assert (job.objective_metric, job.objective_goal) == ("validation:accuracy", "maximize")
    assert job.validation_fraction == 0.25 and job.target == "churned" and job.created_by == world.member
    assert job.completion == {} and job.warm_start == {} and not job.autotune
    assert advances == [str(job.id)]


def test_it_shows_range_errors_next_to_the_fields_and_creates_nothing(world, advances):
    dataset = classification_dataset(world.project)
    response = signed_in(world.member).post(page(world, "new/"), form(
        dataset, min_learning_rate="0.5", max_learning_rate="0.01", values_optimizer=[], tune_optimizer="on",
        hp_epochs="0", max_parallel_jobs="9", completion_target_value="abc", name="bad"))
    body = response.content.decode()
    assert response.status_code == 400
    assert not TuningJob.objects.exists() and not TrainingJob.objects.exists() and advances == []
    rows = {m.group(1): m.group(0) for m in re.finditer(r'<tr data-range="(\w+)".*?</tr>', body, re.S)}
    assert "ranges.learning_rate: min 0.5 is greater than max 0.01." in rows["learning_rate"]
    assert "a categorical range needs a non-empty list of values for optimizer." in rows["optimizer"]
    assert "epochs must be between 1 and 1000" in rows["epochs"]
    assert "range-error" not in rows["mini_batch_size"]
    # What the user typed is shown again, ticks included.
    assert 'name="min_learning_rate" value="0.5"' in rows["learning_rate"]
    assert 'name="tune_learning_rate" value="on" data-tune checked>' in rows["learning_rate"]
    assert 'name="hp_epochs" value="0"' in rows["epochs"]
    assert "max_parallel_jobs (9) cannot exceed max_jobs (4)." in body
    assert "target_value must be a number (got &#x27;abc&#x27;)." in body
    assert 'data-testid="form-errors"' in body


def test_it_asks_for_a_range_or_autotune(world, advances):
    dataset = classification_dataset(world.project)
    data = {k: v for k, v in form(dataset).items() if not k.startswith("tune_")}
    response = signed_in(world.member).post(page(world, "new/"), data)
    assert response.status_code == 400 and not TuningJob.objects.exists()
    assert "Give at least one hyperparameter range, or set autotune" in response.content.decode()


def test_it_lets_autotune_choose_and_reports_why(world, advances):
    dataset = classification_dataset(world.project)
    data = {k: v for k, v in form(dataset, strategy="", max_jobs="", max_parallel_jobs="",
                                    early_stopping="").items() if not k.startswith("tune_")}
    data["autotune"] = "on"
    response = signed_in(world.member).post(page(world, "new/"), data)
    assert response.status_code == 302
    job = TuningJob.objects.get(name="from-form")
    assert job.autotune and job.strategy == "bayesian" and "learning_rate" in job.ranges
    assert "epochs" not in job.ranges  # fixed at 3 in the form, so Autotune leaves it alone
    body = signed_in(world.viewer).get(page(world, f"{job.id}/")).content.decode()
    assert 'data-testid="autotune-report"' in body
    for row in job.autotune_report:
        assert row["setting"] in body


def test_it_serves_the_ranges_partial_for_another_algorithm(world):
    dataset = classification_dataset(world.project)
    client = signed_in(world.member)
    response = client.get(page(world, f"new/ranges/?algorithm=knn&dataset={dataset.id}&target=churned"),
                          HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200 and "<html" not in body
    assert 'id="ranges"' in body and 'name="tune_k"' in body and 'name="tune_learning_rate"' not in body
    for value in ("l2", "cosine"):
        assert f'name="values_distance" value="{value}" checked>' in body
    assert 'name="tune_predictor_type"' not in body and 'name="hp_predictor_type"' in body
    # The objective and the target change with the algorithm: swapped out of band.
    assert 'id="objective-field" hx-swap-oob="true"' in body
    assert '<option value="validation:accuracy" selected>' in body and "validation:loss" not in body
    assert 'id="target-field" hx-swap-oob="true"' in body and '<option value="churned" selected>' in body


def test_it_offers_finished_jobs_as_warm_start_parents(world, enqueued, advances):
    parent = drive(create(world, name="first-search"))
    client = signed_in(world.member)
    body = client.get(page(world, "new/")).content.decode()
    assert f'<option value="{parent.id}">first-search (linear-learner, completed)</option>' in body
    response = client.post(page(world, "new/"), form(parent.dataset, warm_start_parents=[str(parent.id)]))
    assert response.status_code == 302
    child = TuningJob.objects.get(name="from-form")
    assert child.warm_start == {"parents": [str(parent.id)], "type": "identical_data"}
    shown = client.get(page(world, f"{child.id}/")).content.decode()
    assert f'href="{page(world, f"{parent.id}/")}">first-search</a>' in shown


# --- detail -------------------------------------------------------------------------------------


def test_it_shows_a_finished_job_with_its_best_trial_trials_and_chart_data(world, enqueued, advances):
    job = drive(create(world, name="lr-search"))
    best = job.best_trial
    trials = list(job.trials.select_related("training_job__model").order_by("number"))
    for user in (world.owner, world.member, world.viewer):
        response = signed_in(user).get(page(world, f"{job.id}/"))
        assert response.status_code == 200, user.username
    body = response.content.decode()
    assert 'data-testid="tuning-status" title="All 3 trials finished">completed</span>' in body
    assert 'data-testid="stop-tuning"' not in body
    assert f'data-ws="/ws/tuning-jobs/{job.id}/"' in body
    assert "plotly/plotly.min.js" in body and "studio/tuning.js" in body
    assert 'value="3" data-testid="tuning-progress"' in body and '<b id="progress-text">3/3</b>' in body
    # The best trial card: value, parameters, links to its training job and model.
    card = re.search(r'data-testid="best-trial">.*?</section>', body, re.S).group(0)
    assert f"{job.best_objective:.4g}" in card
    assert f'href="/projects/{world.project.id}/training/{best.training_job_id}/"' in card
    model = best.training_job.model
    # The body is the viewer's: a link to the model, but no "Register / deploy" button they cannot use.
    assert 'data-testid="best-model"' not in card and f'href="/projects/{world.project.id}/models/{model.id}/"' in card
    assert "Open the model to register or deploy it" in card
    member_body = signed_in(world.member).get(page(world, f"{job.id}/")).content.decode()
    assert f'href="/projects/{world.project.id}/models/{model.id}/" data-testid="best-model"' in member_body
    # One table row per trial, the best highlighted.
    assert body.count("<tr data-trial-id=") == 3
    assert f'<tr data-trial-id="{best.training_job_id}" class="best">' in body
    for trial in trials:
        assert trial.training_job.name in body
    assert '<th data-sort="p:learning_rate"' in body and '<th data-sort="p:optimizer"' in body
    # The page script draws charts from the embedded data before the socket says anything.
    data = json.loads(re.search(r'<script id="tuning-data" type="application/json">(.*?)</script>', body,
                                re.S).group(1))
    assert [t["number"] for t in data["trials"]] == [1, 2, 3]
    assert data["status"]["best"]["id"] == str(best.training_job_id)
    assert data["ranges"]["optimizer"] == {"type": "categorical", "values": ["adam", "sgd"]}
    assert data["objective"] == {"metric": "validation:accuracy", "goal": "maximize"}
    assert data["trials"][0]["objective_value"] == trials[0].objective_value
    for testid in ("chart-objective", "chart-parallel", "chart-params"):
        assert f'data-testid="{testid}"' in body


def test_it_links_a_trials_training_page_back_to_its_tuning_job(world, enqueued, advances):
    job = create(world, name="lr-search")
    services.tuning_job_advance(tuning_job_id=job.id)
    trial = job.trials.select_related("training_job").get(number=2)
    body = signed_in(world.viewer).get(f"/projects/{world.project.id}/training/{trial.training_job_id}/")
    assert (f'href="{page(world, f"{job.id}/")}" data-testid="tuning-trial-link">Trial 2 of tuning job lr-search</a>'
            in body.content.decode())
    plain = TrainingJob.objects.create(project=world.project, name="plain", algorithm="linear-learner",
                                       dataset=job.dataset, created_by=world.member)
    other = signed_in(world.viewer).get(f"/projects/{world.project.id}/training/{plain.id}/").content.decode()
    assert "tuning-trial-link" not in other


def test_it_shows_hyperband_brackets(world, enqueued, advances):
    job = create(world, strategy="hyperband", max_jobs=9, max_parallel_jobs=3,
                 static_hyperparameters={"epochs": 9, "num_models": 2})
    services.tuning_job_advance(tuning_job_id=job.id)
    body = signed_in(world.viewer).get(page(world, f"{job.id}/")).content.decode()
    brackets = re.search(r'data-testid="hyperband-brackets">.*?</section>', body, re.S).group(0)
    assert "epochs 1 to 9, eta 3" in brackets and "<th>Rung</th>" in brackets
    assert '<th data-sort="budget" class="num sortable">epochs</th>' in body
    rows = re.findall(r"<tr><td>(\d*)</td><td>(\d+)</td><td class=\"num\">(\d+)</td><td class=\"num\">(\d+)</td>",
                      brackets)
    assert rows and sum(int(r[3]) for r in rows) == job.trials.count() == 3


def test_it_stops_a_running_job_for_members_only(world, enqueued, advances):
    job = create(world)
    services.tuning_job_advance(tuning_job_id=job.id)
    viewer = signed_in(world.viewer)
    assert 'data-testid="stop-tuning"' not in viewer.get(page(world, f"{job.id}/")).content.decode()
    assert viewer.post(page(world, f"{job.id}/stop/")).status_code == 403
    client = signed_in(world.member)
    assert 'data-testid="stop-tuning"' in client.get(page(world, f"{job.id}/")).content.decode()
    response = client.post(page(world, f"{job.id}/stop/"), HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200 and 'id="tuning-panel" data-status="stopped"' in body
    assert "Stopped by mark" in body
    job.refresh_from_db()
    assert job.status == "stopped"
    again = client.post(page(world, f"{job.id}/stop/"), HTTP_HX_REQUEST="true")
    assert again.status_code == 409 and "has already finished" in again.content.decode()
    plain = client.post(page(world, f"{job.id}/stop/"))
    assert plain.status_code == 302 and plain.url == page(world, f"{job.id}/")


def test_it_serves_the_panel_partial(world, enqueued, advances):
    job = create(world)
    response = signed_in(world.viewer).get(page(world, f"{job.id}/panel/"))
    body = response.content.decode()
    assert response.status_code == 200 and "<html" not in body and 'id="tuning-panel"' in body
    assert "Waiting for the orchestrator" in body and 'data-count="completed">0<' in body


def test_it_hides_every_tuning_page_from_outsiders(world, enqueued, advances):
    job = create(world)
    client = signed_in(world.outsider)
    for suffix in ("", "new/", "new/ranges/", f"{job.id}/", f"{job.id}/panel/"):
        assert client.get(page(world, suffix)).status_code == 404, suffix
    assert client.post(page(world, f"{job.id}/stop/")).status_code == 404
    assert client.post(page(world, "new/"), form(job.dataset)).status_code == 404
    # Their own project does not open someone else's job either.
    assert client.get(f"/projects/{world.other_project.id}/tuning/{job.id}/").status_code == 404
    assert TuningJob.objects.count() == 1


def test_it_counts_tuning_jobs_on_the_project_overview(world, client, advances):
    from tests.tuning.test_services import create

    create(world)
    client.force_login(world.viewer)
    body = client.get(f"/projects/{world.project.id}/").content.decode()
    assert "Tuning jobs" in body and '<div class="muted" data-testid="tuning-active">1 active</div>' in body
