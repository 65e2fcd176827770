"""Experiments in a real browser: filter and sort the runs table, choose columns, tick three runs, compare them
with live charts (a zoom survives a live point), the hyperparameter diff and the best final values.

Two finished runs have stored metric points; the third is running, and the test writes its next points through
the same service a worker uses (stored, then published to its websocket), so the live part is deterministic.
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.db import connections

from studio.accounts import services as account_services
from studio.accounts.models import User
from studio.training.models import MetricPoint, TrainingJob
from studio.training.services import job_metrics_record, training_job_finish
from tests.conftest import PASSWORD
from tests.e2e.test_studio_flow import shot
from tests.processes import web_server

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def off_loop(fn):
    """Run a database write outside Playwright's thread, whose event loop makes Django refuse sync ORM calls."""
    def call():
        try:
            return fn()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(call).result()


def run(project, user, name: str, *, status: str, learning_rate: float, losses: list[float],
        accuracy: float | None = None, algorithm: str = "linear-learner") -> TrainingJob:
    metrics = {"validation:loss": losses[-1], "validation:accuracy": accuracy} if accuracy is not None else {}
    job = TrainingJob.objects.create(
        project=project, name=name, algorithm=algorithm, status=status, created_by=user, final_metrics=metrics,
        hyperparameters={"learning_rate": learning_rate, "epochs": 10, "optimizer": "adam"}, tags=["sweep"])
    now = time.time() - 600  # measured a while ago: before the page is rendered
    MetricPoint.objects.bulk_create(
        [MetricPoint(job=job, name="validation:loss", step=i + 1, value=v, ts=now + i) for i, v in enumerate(losses)]
        + [MetricPoint(job=job, name="train:loss", step=i + 1, value=v * 0.9, ts=now + i)
           for i, v in enumerate(losses)])
    return job


def test_it_compares_three_runs_live_from_the_runs_table(browse, tmp_path):
    user = User.objects.create_user(username="erin")
    # Tests hash with MD5 (fast); the web server only knows the default hashers.
    hasher = PBKDF2PasswordHasher()
    user.password = hasher.encode(PASSWORD, hasher.salt())
    user.save(update_fields=["password"])
    team = account_services.team_create(user=user, name="Explorers")
    project = account_services.project_create(user=user, team=team, name="Churn sweep")
    small = run(project, user, "lr-0.01", status="completed", learning_rate=0.01, losses=[0.7, 0.45, 0.3, 0.25],
                accuracy=0.91)
    big = run(project, user, "lr-0.5", status="completed", learning_rate=0.5, losses=[0.8, 0.6, 0.5, 0.45],
              accuracy=0.82)
    live = run(project, user, "lr-0.1", status="running", learning_rate=0.1, losses=[0.75, 0.5, 0.4])
    TrainingJob.objects.create(project=project, name="other-knn", algorithm="knn", status="completed",
                               final_metrics={"validation:accuracy": 0.99}, hyperparameters={"k": 5})
    try:
        with web_server(tmp_path / "web.log") as base:
            browse(lambda page: compare_session(page, base, project, small, big, live))
    except Exception:
        print("--- web.log ---\n" + (tmp_path / "web.log").read_text(errors="replace")[-4000:])
        raise


def compare_session(page, base: str, project, small, big, live) -> None:
    page.set_default_timeout(20_000)
    page.goto(f"{base}/login/?next=/projects/{project.id}/")
    page.fill("#id_username", "erin")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/projects/{project.id}/")

    # The runs table, from the project's navigation.
    page.click("nav.sidenav a:has-text('Experiments')")
    page.wait_for_selector("[data-testid=runs-table]")
    assert page.locator("[data-testid=run-name]").count() == 4

    # Filter with the search box: words of the name and a hyperparameter range.
    page.fill("#id_q", "lr- param:learning_rate<=0.5")
    page.click("[data-testid=apply-filters]")
    page.wait_for_url(re.compile(r".*q=lr-.*"))
    assert page.locator("[data-testid=run-name]").count() == 3

    # Sort by accuracy, best first: the run without a final value comes last.
    page.click("th[data-col='metric:validation:accuracy'] a")
    page.wait_for_url(re.compile(r".*sort=-metric%3Avalidation%3Aaccuracy.*"))
    assert page.locator("[data-testid=run-name]").all_inner_texts() == ["lr-0.01", "lr-0.5", "lr-0.1"]

    # Choose a hyperparameter column; a later visit without it in the URL gets it back from localStorage.
    page.click("[data-testid=columns-button]")
    page.check("#columns-form input[value='param:learning_rate']")
    page.click("[data-testid=apply-columns]")
    page.wait_for_url(re.compile(r".*cols=.*param%3Alearning_rate.*"))
    page.wait_for_selector("th[data-col='param:learning_rate']")
    page.goto(f"{base}/projects/{project.id}/experiments/?q=lr-")
    page.wait_for_url(re.compile(r".*cols=.*"))
    page.wait_for_selector("th[data-col='param:learning_rate']")

    # Tick the three runs; Compare is enabled from two.
    assert page.is_disabled("[data-testid=compare-button]")
    for job in (small, big, live):
        page.check(f"tr[data-run-id='{job.id}'] input[name=run]")
    assert page.inner_text("[data-testid=compare-button]") == "Compare 3"
    shot(page, "experiments-runs", full_page=True)
    page.click("[data-testid=compare-button]")
    page.wait_for_url(re.compile(r".*/experiments/compare/\?runs=.*"))

    # Charts: one per metric, a line per run; the running run's websocket is open.
    page.wait_for_function("() => window.studioCompare && window.studioCompare.charts === 2 && "
                           "window.studioCompare.live === 1")
    chart = "[data-testid=compare-chart][data-metric='validation:loss']"
    assert page.evaluate(f"document.querySelector(\"{chart}\").data.length") == 3

    # The diff highlights what differs; the best final values are marked by direction.
    assert page.locator("#param-diff tr.differs[data-param=learning_rate]").count() == 1
    assert page.locator("#param-diff tr.same[data-param=epochs]").count() == 1
    assert page.inner_text("[data-testid=final-metrics] tr[data-metric='validation:accuracy'] td.best") == "0.91"
    assert page.inner_text("[data-testid=final-metrics] tr[data-metric='validation:loss'] td.best") == "0.25"
    page.check("[data-testid=only-differences]")
    assert not page.is_visible("#param-diff tr[data-param=epochs]")
    page.wait_for_function("() => window.studioCompare.parallel === 2")  # learning_rate and the metric

    # Zoom the loss chart by dragging a box, as a user does.
    page.locator(chart).scroll_into_view_if_needed()
    box = page.locator(f"{chart} .nsewdrag").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.8, steps=8)
    page.mouse.up()
    page.wait_for_function(f"() => document.querySelector(\"{chart}\").layout.xaxis.autorange === false")
    zoom = page.evaluate(f"(() => {{ const l = document.querySelector(\"{chart}\").layout;"
                         f" return [l.xaxis.range, l.yaxis.range]; }})()")

    # The running run reports its next epoch: the point is drawn, the zoom stays.
    off_loop(lambda: job_metrics_record(job=TrainingJob.objects.get(id=live.id), step=4,
                                        metrics={"validation:loss": 0.33, "train:loss": 0.3}))
    trace = f"document.querySelector(\"{chart}\").data.find(t => t.uid === '{live.id}')"
    page.wait_for_function(f"() => {trace}.x.join(',') === '1,2,3,4'")
    assert page.evaluate(f"(() => {{ const l = document.querySelector(\"{chart}\").layout;"
                         f" return [l.xaxis.range, l.yaxis.range]; }})()") == zoom
    assert page.evaluate(f"document.querySelector(\"{chart}\").layout.xaxis.autorange") is False
    shot(page, "experiments-compare", full_page=True)

    # It finishes: its badge turns, and the tables are fetched again with its final values.
    off_loop(lambda: training_job_finish(job=TrainingJob.objects.get(id=live.id), status="completed",
                                         final_metrics={"validation:loss": 0.33, "validation:accuracy": 0.95}))
    page.wait_for_function(f"() => document.querySelector(\"[data-status-of='{live.id}']\").textContent === "
                           "'completed'")
    page.wait_for_function("() => document.querySelector(\"[data-testid=final-metrics] "
                           "tr[data-metric='validation:accuracy'] td.best\").textContent === '0.95'")
    # The zoom survived the refresh of the tables too.
    assert page.evaluate(f"(() => {{ const l = document.querySelector(\"{chart}\").layout;"
                         f" return [l.xaxis.range, l.yaxis.range]; }})()") == zoom
