"""Debugger rules on real jobs: the create API and form, the epoch receiver, class imbalance at the start,
the stalled-training beat task, actions and the job page's panel."""

from __future__ import annotations

import pytest
from django.test import Client

from studio.accounts.models import AuditEvent
from studio.training import rules_service, services
from studio.training.models import LogLine, MetricPoint, TrainingJob
from studio.training.signals import training_job_epoch
from studio.training.tasks import stalled_training_check_task
from tests.conftest import PASSWORD, csv_bytes, regression_csv
from tests.training.factories import dataset_from_csv, new_job, uploaded_dataset
from tests.training.factories import run_job as run_in_process


@pytest.fixture
def run_job(django_capture_on_commit_callbacks):
    """Run a job as a worker would, with its on-commit hooks (the final status and its receivers) run too."""

    def run(job: TrainingJob) -> TrainingJob:
        with django_capture_on_commit_callbacks(execute=True):
            run_in_process(job)
        job.refresh_from_db()
        return job

    return run

# A learning rate this small moves the loss by a few hundredths per epoch: loss_not_decreasing with
# min_delta 0.5 over 2 steps fires at step 3, the first step it can look 2 steps back from.
CRAWLING = {"epochs": 8, "learning_rate": 1e-6, "optimizer": "sgd", "early_stopping_patience": 20}
CRAWL_RULE = {"rule": "loss_not_decreasing", "parameters": {"patience": 2, "min_delta": 0.5}}


def result(job: TrainingJob, rule: str) -> dict:
    job.refresh_from_db()
    return next(r for r in job.rule_results if r["rule"] == rule)


def login(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def jobs_url(world) -> str:
    return f"/api/v1/projects/{world.project.id}/training-jobs"


# --- the API ----------------------------------------------------------------------------------------------


def test_it_lists_the_rules_and_their_parameters(world, api):
    response = api(world.viewer).get("/api/v1/debugger-rules")
    assert response.status_code == 200
    rules = {r["name"]: r for r in response.json()}
    assert set(rules) == {"loss_not_decreasing", "overfit", "overtraining", "class_imbalance", "exploding_loss",
                          "vanishing_loss_change", "stalled_training"}
    patience = next(p for p in rules["overfit"]["parameters"] if p["name"] == "patience")
    assert patience["type"] == "int" and patience["default"] == 3 and patience["min"] == 1
    assert rules["stalled_training"]["evaluated"] == "periodic"
    assert rules["overfit"]["actions"] == ["none", "stop", "notify"]
    assert api().get("/api/v1/debugger-rules").status_code == 401


def test_it_creates_a_job_with_rules_all_in_progress(world, api, enqueued):
    dataset = dataset_from_csv(world.project)
    response = api(world.member).post(jobs_url(world), {
        "algorithm": "linear-learner", "dataset": str(dataset.id), "target": "price",
        "debugger_rules": ["overfit", {"rule": "loss_not_decreasing", "parameters": {"patience": 2},
                                       "action": "stop"}],
    }, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    # The request as it is evaluated: every parameter, defaults and metrics filled in.
    assert body["rule_results"][1]["parameters"] == {"metric": "train:loss", "patience": 2, "min_delta": 0.0}
    assert [(r["rule"], r["status"], r["step"], r["action"]) for r in body["rule_results"]] == [
        ("overfit", "in_progress", None, "none"), ("loss_not_decreasing", "in_progress", None, "stop")]
    detail = api(world.viewer).get(f"{jobs_url(world)}/{body['id']}").json()
    assert detail["rule_results"] == body["rule_results"]


@pytest.mark.parametrize(("rules", "field"), [
    ([{"rule": "overfit", "parameters": {"patience": -1}}], "debugger_rules.0.parameters.patience"),
    (["overfit", {"rule": "overtraining", "parameters": {"metric": "validation:msd"}}],
     "debugger_rules.1.parameters.metric"),
    ([{"rule": "overfit", "action": "page-someone"}], "debugger_rules.0.action"),
    (["made_up"], "debugger_rules.0.rule"),
    ("overfit", "debugger_rules"),
])
def test_it_answers_400_naming_the_bad_rule_field(world, api, enqueued, rules, field):
    dataset = dataset_from_csv(world.project)
    response = api(world.member).post(jobs_url(world), {
        "algorithm": "linear-learner", "dataset": str(dataset.id), "target": "price", "debugger_rules": rules,
    }, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"], response.json()
    assert not TrainingJob.objects.exists()


def test_it_keeps_rules_from_viewers_and_outsiders(world, api, enqueued):
    dataset = dataset_from_csv(world.project)
    body = {"algorithm": "linear-learner", "dataset": str(dataset.id), "target": "price",
            "debugger_rules": ["overfit"]}
    assert api(world.viewer).post(jobs_url(world), body, format="json").status_code == 403
    assert api(world.outsider).post(jobs_url(world), body, format="json").status_code == 404


# --- evaluation on a real run ------------------------------------------------------------------------------


def test_it_stops_a_job_when_a_rule_with_the_stop_action_fires(world, enqueued, run_job):
    job = new_job(world, hyperparameters=CRAWLING, debugger_rules=[{**CRAWL_RULE, "action": "stop"}])
    job = run_job(job)
    assert job.status == "stopped"
    assert job.status_message.startswith("Stopped by debugger rule loss_not_decreasing: train:loss has not decreased")
    fired = result(job, "loss_not_decreasing")
    assert (fired["status"], fired["step"], fired["action_taken"]) == ("issues_found", 3, "stop")
    assert "in 2 steps" in fired["message"]
    # It stopped right there: no epoch after the one the rule fired on.
    assert MetricPoint.objects.filter(job=job).values_list("step", flat=True).distinct().order_by("step").last() == 3
    assert LogLine.objects.filter(job=job, line__startswith="Debugger rule loss_not_decreasing: issues found at "
                                                             "step 3").count() == 1


def test_it_reports_and_goes_on_when_a_rule_has_no_action(world, enqueued, run_job):
    job = run_job(new_job(world, hyperparameters=CRAWLING, debugger_rules=[CRAWL_RULE, "exploding_loss"]))
    assert job.status == "completed"
    assert MetricPoint.objects.filter(job=job, name="train:loss").count() == 8
    fired = result(job, "loss_not_decreasing")
    assert (fired["status"], fired["step"], fired["action_taken"]) == ("issues_found", 3, "")
    healthy = result(job, "exploding_loss")
    assert healthy["status"] == "no_issues_found" and healthy["message"] == "Checked 8 step(s) of train:loss."


def test_it_finds_no_issues_on_a_healthy_run(world, enqueued, run_job):
    job = run_job(new_job(world, hyperparameters={"epochs": 6, "early_stopping_patience": 20},
                          debugger_rules=["loss_not_decreasing", "exploding_loss", "vanishing_loss_change"]))
    assert job.status == "completed"
    assert [(r["rule"], r["status"]) for r in job.rule_results] == [
        ("loss_not_decreasing", "no_issues_found"), ("exploding_loss", "no_issues_found"),
        ("vanishing_loss_change", "no_issues_found")]


def test_it_marks_a_rule_whose_metric_never_came_as_an_error(world, enqueued, run_job):
    job = run_job(new_job(world, validation_fraction=0, hyperparameters={"epochs": 2},
                          debugger_rules=["overtraining"]))
    assert job.status == "completed"
    entry = result(job, "overtraining")
    assert entry["status"] == "error"
    assert entry["message"] == ("No validation:loss was recorded, so the rule could not be evaluated "
                                "(is there a validation set?).")


def test_it_closes_the_rules_of_a_job_stopped_before_it_started(world, enqueued):
    job = new_job(world, debugger_rules=["overfit"])
    services.training_job_stop(user=world.member, job=job)
    entry = result(job, "overfit")
    assert entry["status"] == "no_issues_found"
    assert entry["message"] == "The job ended (stopped) before its first epoch."


# --- the epoch receiver ------------------------------------------------------------------------------------


def running_job(world, rules, **kwargs) -> TrainingJob:
    job = new_job(world, debugger_rules=rules, **kwargs)
    return services.training_job_claim(job_id=job.id, worker="w1")


def epoch(job: TrainingJob, step: int, metrics: dict[str, float]) -> list[str]:
    """Store an epoch as the worker does, then send the signal; return the receivers' stop messages."""
    services.job_metrics_record(job=job, step=step, metrics=metrics)
    return [answer for _, answer in training_job_epoch.send(sender=TrainingJob, job=job, step=step, metrics=metrics)
            if answer]


def test_it_answers_the_epoch_signal_with_the_stop_message(world, enqueued):
    job = running_job(world, [{"rule": "overfit", "parameters": {"patience": 2}, "action": "stop"}])
    curves = [(1.0, 1.0), (0.8, 0.9), (0.6, 1.0), (0.4, 1.1), (0.3, 1.2)]
    answers = [epoch(job, step, {"train:loss": t, "validation:loss": v})
               for step, (t, v) in enumerate(curves, start=1)]
    assert answers[:3] == [[], [], []]
    assert answers[3] == [rules_service.stop_message(result(job, "overfit"))]
    assert result(job, "overfit")["step"] == 4
    assert answers[4] == []  # a rule fires once


def test_it_sees_a_non_finite_loss_that_is_never_stored(world, enqueued):
    job = running_job(world, [{"rule": "exploding_loss", "action": "stop"}])
    assert epoch(job, 1, {"train:loss": 1.0}) == []
    answers = epoch(job, 2, {"train:loss": float("nan")})
    assert not MetricPoint.objects.filter(job=job, step=2).exists()
    assert answers == ["Stopped by debugger rule exploding_loss: train:loss is nan at step 2: training diverged."]


def test_it_evaluates_a_replayed_epoch_to_the_same_finding_once(world, enqueued):
    job = running_job(world, [{"rule": "exploding_loss", "parameters": {"factor": 2}}])
    for step, loss in ((1, 1.0), (2, 5.0), (2, 5.0), (3, 9.0)):
        epoch(job, step, {"train:loss": loss})
    assert result(job, "exploding_loss")["step"] == 2
    assert LogLine.objects.filter(job=job, line__startswith="Debugger rule exploding_loss").count() == 1


def test_it_notifies_through_the_activity_feed(world, enqueued):
    job = running_job(world, [{"rule": "exploding_loss", "parameters": {"factor": 2}, "action": "notify"}])
    assert epoch(job, 1, {"train:loss": 1.0}) == []
    assert epoch(job, 2, {"train:loss": 3.0}) == []  # notify does not stop the job
    event = AuditEvent.objects.get(verb="rule fired")
    assert (event.project, event.target, event.actor) == (world.project, job.name, None)
    assert event.data["rule"] == "exploding_loss" and event.data["step"] == 2
    assert result(job, "exploding_loss")["action_taken"] == "notify"
    from studio.social.models import Notification

    note = Notification.objects.get(user=world.member)  # who started the job
    assert (note.kind, note.title) == ("rule.fired", f"Debugger rule exploding_loss fired on training job {job.name}")
    assert note.url == f"/projects/{world.project.id}/training/{job.id}/" and "over 2 times" in note.body


def test_it_publishes_the_rule_results_to_the_job_page(world, enqueued, monkeypatch,
                                                       django_capture_on_commit_callbacks):
    published: list[tuple[str, str, dict]] = []
    monkeypatch.setattr(rules_service, "publish",
                        lambda *, kind, object_id, events: published.extend((kind, str(object_id), e)
                                                                            for e in events))
    job = running_job(world, [{"rule": "exploding_loss", "parameters": {"factor": 2}}])
    with django_capture_on_commit_callbacks(execute=True):  # published once the results are committed
        epoch(job, 1, {"train:loss": 1.0})
        epoch(job, 2, {"train:loss": 3.0})
    assert len(published) == 1
    kind, object_id, event = published[0]
    assert (kind, object_id, event["type"]) == ("training-job", str(job.id), "rules")
    assert event["rule_results"][0]["status"] == "issues_found"


def test_it_marks_a_rule_that_cannot_evaluate_as_an_error_without_failing_the_job(world, enqueued, monkeypatch):
    job = running_job(world, ["exploding_loss"])

    def broken(*args, **kwargs):
        raise ZeroDivisionError("float division by zero")

    monkeypatch.setattr(rules_service.debugger, "evaluate_epoch_rule", broken)
    assert epoch(job, 1, {"train:loss": 1.0}) == []
    entry = result(job, "exploding_loss")
    assert entry["status"] == "error" and "ZeroDivisionError: float division by zero" in entry["message"]


# --- class imbalance, at the start ---------------------------------------------------------------------------


def imbalanced_csv(n_yes: int, n_no: int) -> bytes:
    rows = [[i % 7, (i * 3) % 5, "yes"] for i in range(n_yes)] + [[i % 5, (i * 2) % 7, "no"] for i in range(n_no)]
    return csv_bytes(rows, ["f1", "f2", "churned"])


def test_it_fires_class_imbalance_when_the_job_starts_and_stops_it(world, enqueued, run_job):
    dataset = uploaded_dataset(world, imbalanced_csv(300, 12), name="skewed", target="churned")
    job = new_job(world, dataset=dataset, target="churned", hyperparameters={"epochs": 5},
                  debugger_rules=[{"rule": "class_imbalance", "action": "stop"}])
    job = run_job(job)
    entry = result(job, "class_imbalance")
    assert (entry["status"], entry["step"]) == ("issues_found", 0)
    assert entry["message"] == ("Class 'yes' has 300 rows and class 'no' 12: a ratio of 25, over the threshold 10.")
    assert job.status == "stopped" and job.status_message.startswith("Stopped by debugger rule class_imbalance")


def test_it_finds_balanced_classes_and_skips_regression_targets(world, enqueued, run_job):
    balanced = uploaded_dataset(world, imbalanced_csv(150, 120), name="even", target="churned")
    job = run_job(new_job(world, dataset=balanced, target="churned", hyperparameters={"epochs": 2},
                          debugger_rules=["class_imbalance"]))
    assert result(job, "class_imbalance")["status"] == "no_issues_found"
    houses = uploaded_dataset(world, regression_csv(), name="houses", target="price")
    houses = run_job(new_job(world, dataset=houses, hyperparameters={"epochs": 2}, debugger_rules=["class_imbalance"]))
    entry = result(houses, "class_imbalance")
    assert entry["status"] == "no_issues_found" and "regression" in entry["message"]


# --- stalled training, by the beat task ----------------------------------------------------------------------


def test_it_fires_stalled_training_from_the_beat_task_with_a_frozen_clock(world, enqueued, monkeypatch):
    job = running_job(world, [{"rule": "stalled_training", "parameters": {"threshold_seconds": 600},
                               "action": "stop"}])
    last = job.started_at.timestamp() + 5
    services.job_metrics_record(job=job, step=4, metrics={"train:loss": 0.5}, ts=last)
    monkeypatch.setattr(rules_service, "clock", lambda: last + 599)
    assert stalled_training_check_task.apply().get() == {"checked": 1, "fired": 0}
    assert result(job, "stalled_training")["status"] == "in_progress"

    monkeypatch.setattr(rules_service, "clock", lambda: last + 600)
    assert stalled_training_check_task.apply().get() == {"checked": 1, "fired": 1}
    entry = result(job, "stalled_training")
    assert (entry["status"], entry["step"], entry["action_taken"]) == ("issues_found", 4, "stop")
    assert entry["message"] == "No metric for 600 s since step 4 (threshold 600 s): training looks stalled."
    job.refresh_from_db()
    assert job.status == "stopped" and job.status_message.startswith("Stopped by debugger rule stalled_training")
    # Nothing left to check: the job is no longer running.
    assert stalled_training_check_task.apply().get() == {"checked": 0, "fired": 0}


def test_it_counts_a_stall_from_the_start_before_the_first_metric(world, enqueued, monkeypatch):
    job = running_job(world, [{"rule": "stalled_training", "parameters": {"threshold_seconds": 60}}])
    started = job.started_at.timestamp()
    monkeypatch.setattr(rules_service, "clock", lambda: started + 61)
    assert rules_service.stalled_rules_check() == {"checked": 1, "fired": 1}
    entry = result(job, "stalled_training")
    assert entry["message"].endswith("since the job started (threshold 60 s): training looks stalled.")
    job.refresh_from_db()
    assert job.status == "running"  # no stop action: reported only


# --- pages ---------------------------------------------------------------------------------------------------


def test_it_shows_the_debugger_panel_to_a_viewer(world, enqueued, run_job):
    job = run_job(new_job(world, hyperparameters=CRAWLING, debugger_rules=[CRAWL_RULE, "exploding_loss"]))
    url = f"/projects/{world.project.id}/training/{job.id}/"
    page = login(world.viewer).get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-testid="debugger-panel"' in html
    assert 'data-rule="loss_not_decreasing" data-status="issues_found"' in html
    assert ">issues found</span>" in html and ">no issues found</span>" in html
    assert "train:loss has not decreased by more than 0.5 in 2 steps" in html
    assert 'data-testid="stop-job"' not in html  # nothing to act on for a viewer (the job is over anyway)
    assert login(world.outsider).get(url).status_code == 404
    assert Client().get(url).status_code == 302


def test_it_leaves_the_panel_out_for_a_job_without_rules(world, enqueued):
    job = new_job(world)
    html = login(world.viewer).get(f"/projects/{world.project.id}/training/{job.id}/").content.decode()
    assert 'data-testid="debugger-panel"' not in html


def test_it_creates_a_job_with_rules_from_the_form(world, enqueued):
    dataset = dataset_from_csv(world.project)
    url = f"/projects/{world.project.id}/training/new/"
    client = login(world.member)
    assert 'data-testid="debugger-rules-form"' in client.get(url).content.decode()
    form = {"algorithm": "linear-learner", "dataset": str(dataset.id), "target": "price", "validation_fraction": "0.2",
            "debugger_rule": ["overfit", "stalled_training"], "rule_overfit__patience": "4",
            "rule_overfit__action": "stop", "rule_stalled_training__action": "notify",
            "rule_exploding_loss__factor": "3"}  # not ticked: ignored
    response = client.post(url, form)
    assert response.status_code == 302
    job = TrainingJob.objects.get()
    assert [(r["rule"], r["action"]) for r in job.debugger_rules] == [("overfit", "stop"),
                                                                      ("stalled_training", "notify")]
    assert job.debugger_rules[0]["parameters"]["patience"] == 4


def test_it_shows_a_bad_rule_parameter_on_its_row(world, enqueued):
    dataset = dataset_from_csv(world.project)
    response = login(world.member).post(f"/projects/{world.project.id}/training/new/", {
        "algorithm": "linear-learner", "dataset": str(dataset.id), "target": "price",
        "debugger_rule": ["overtraining"], "rule_overtraining__patience": "0"})
    assert response.status_code == 400
    html = response.content.decode()
    row = html[html.index('<tr data-rule="overtraining">'):]
    row = row[:row.index("</tr>")]
    assert "patience must be between 1 and 10000 (got &#x27;0&#x27;)." in row
    assert 'value="overtraining" checked' in row
    assert not TrainingJob.objects.exists()


def test_it_refuses_the_form_to_a_viewer(world):
    assert login(world.viewer).get(f"/projects/{world.project.id}/training/new/").status_code == 403


def test_it_schedules_the_stalled_training_check_on_beat():
    from django.conf import settings

    from studio.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["debugger-stalled-training"]
    assert entry["task"] in app.tasks and entry["schedule"] > 0
