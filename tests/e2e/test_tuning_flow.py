"""Tuning in a real browser: new job from the range editors, trials streamed live, best trial and charts."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import csv_bytes
from tests.e2e.test_studio_flow import new_project, run_in_browser, shot, upload

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def noisy_churn_csv(path: Path, n: int = 400, seed: int = 0) -> Path:
    """Two features and a label that a line separates only roughly: trials differ in validation loss."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    label = np.where(x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.8, size=n) > 0, "yes", "no")
    rows = [[round(a, 5), round(b, 5), lab] for (a, b), lab in zip(x, label, strict=True)]
    path.write_bytes(csv_bytes(rows, ["f1", "f2", "churned"]))
    return path


def test_it_tunes_a_linear_learner_from_the_pages_and_shows_the_best_trial(browse, tmp_path):
    csv_path = noisy_churn_csv(tmp_path / "churn.csv")
    run_in_browser(browse, tmp_path, lambda page, base: tuning_session(page, base, csv_path))


def tuning_session(page, base: str, csv_path: Path) -> None:
    project_url = new_project(page, base, username="tina", team="Tuners", project="Churn tuning")
    dataset_id = upload(page, csv_path, target="churned")

    page.click("nav.sidenav a:has-text('Tuning')")
    page.wait_for_selector("text=No tuning jobs yet")
    page.click("a.btn:has-text('New tuning job')")
    page.wait_for_url(re.compile(r".*/tuning/new/$"))
    page.select_option("#id_algorithm", "linear-learner")
    page.select_option("#id_dataset", dataset_id)
    page.wait_for_selector("#id_target option[value=churned]", state="attached")
    page.select_option("#id_target", "churned")
    # The objective defaults to the algorithm's (validation:loss, minimized).
    assert page.input_value("#id_objective_metric") == "validation:loss"
    page.select_option("#id_strategy", "random")
    page.fill("#id_max_jobs", "4")
    page.fill("#id_max_parallel_jobs", "2")
    page.check("#id_tune_learning_rate")
    page.check("#id_tune_mini_batch_size")
    assert page.input_value("#id_scale_learning_rate") == "log"  # prefilled from the declaration
    assert page.get_attribute("tr[data-range=learning_rate]", "class").split().count("tuned") == 1
    page.fill("#id_hp_epochs", "3")
    shot(page, "tuning-new", full_page=True)
    # A second tab on the tuning list: it must show the new job and its progress without a reload.
    job_list = page.context.new_page()
    job_list.goto(project_url + "tuning/")
    job_list.wait_for_selector("text=No tuning jobs yet")
    page.click("[data-testid=start-tuning]")
    page.wait_for_url(re.compile(r".*/tuning/[0-9a-f-]+/$"))
    detail_url = page.url

    # Trials arrive over the websocket while the job runs; the page is not reloaded.
    page.wait_for_function(
        "() => document.querySelector('[data-testid=tuning-status]').textContent.trim() === 'completed'",
        timeout=90_000,
    )
    page.wait_for_function(
        "() => window.studioTuningTrials === 4 && "
        "document.querySelectorAll('#trials-body .badge.completed').length === 4",
        timeout=30_000,
    )
    assert page.url == detail_url
    assert page.locator("#trials-body tr").count() == 4
    assert page.locator("#trials-body tr.best").count() == 1

    # The best trial card (refreshed from the server when the job finished) links its model.
    page.wait_for_selector("[data-testid=best-model]", timeout=30_000)
    assert page.inner_text("#progress-text") == "4/4"
    best_value = float(page.inner_text("[data-testid=best-objective]"))
    assert 0 < best_value < 1.0  # a logistic loss, and the data is noisy

    # The three kinds of charts hold data: objective per trial, parallel coordinates, one per parameter.
    page.wait_for_function(
        "() => window.studioTuningCharts.objective === 4 && window.studioTuningCharts.parallel === 4 && "
        "window.studioTuningCharts.params === 2",
        timeout=30_000,
    )
    for selector in ("#chart-objective", "#chart-parallel"):
        page.wait_for_selector(f"{selector} .main-svg")
        assert page.evaluate(f"document.querySelector('{selector}').data.length") >= 1
    assert page.evaluate("document.querySelector('#chart-parallel').data[0].dimensions.length") == 3
    assert page.evaluate(
        "Array.from(document.querySelectorAll('[data-testid=chart-param]'))"
        ".map(d => d.dataset.param + ':' + d.layout.xaxis.type).sort().join(',')"
    ) == "learning_rate:log,mini_batch_size:log"

    # Sorting by the objective puts the best trial first (a loss: ascending).
    page.click("#trials-table th[data-sort=objective]")
    assert page.get_attribute("#trials-body tr:first-child", "class") == "best"
    shot(page, "tuning-done", full_page=True)

    job_list.wait_for_selector("[data-testid=tuning-jobs] .badge.completed", timeout=30_000)
    assert job_list.inner_text("[data-testid=tuning-progress]") == "4/4"

    page.click("[data-testid=best-model]")
    page.wait_for_url(re.compile(r".*/models/[0-9a-f-]+/$"))


def test_it_autotunes_with_hyperband_from_the_pages(browse, tmp_path):
    csv_path = noisy_churn_csv(tmp_path / "churn.csv", seed=1)
    run_in_browser(browse, tmp_path, lambda page, base: autotune_session(page, base, csv_path))


def autotune_session(page, base: str, csv_path: Path) -> None:
    new_project(page, base, username="hana", team="Bandits", project="Churn bandits")
    dataset_id = upload(page, csv_path, target="churned")
    page.click("nav.sidenav a:has-text('Tuning')")
    page.click("a.btn:has-text('New tuning job')")
    page.wait_for_url(re.compile(r".*/tuning/new/$"))
    page.select_option("#id_dataset", dataset_id)
    page.wait_for_selector("#id_target option[value=churned]", state="attached")
    page.select_option("#id_target", "churned")
    # Autotune picks the ranges (none ticked); the user asks for Hyperband over up to 9 epochs.
    page.check("#id_autotune")
    page.select_option("#id_strategy", "hyperband")
    page.fill("#id_max_jobs", "5")
    page.fill("#id_max_parallel_jobs", "2")
    page.fill("#id_hp_epochs", "9")
    page.click("[data-testid=start-tuning]")
    page.wait_for_url(re.compile(r".*/tuning/[0-9a-f-]+/$"))

    report = page.inner_text("[data-testid=autotune-report]")
    assert "ranges.learning_rate" in report and "given in the request" in report
    page.wait_for_function(
        "() => document.querySelector('[data-testid=tuning-status]').textContent.trim() === 'completed'",
        timeout=120_000,
    )
    page.wait_for_selector("[data-testid=hyperband-brackets]")
    # Rung 0 trains 1 epoch; the best configurations go on to 3 and 9 epochs, resuming where they were.
    column = page.evaluate("Array.from(document.querySelectorAll('#trials-table th'))"
                           ".findIndex(th => th.dataset.sort === 'budget')")
    budgets = (f"Array.from(document.querySelectorAll('#trials-body tr'))"
               f".map(r => r.children[{column}].textContent.trim())")
    page.wait_for_function(f"() => {budgets}.includes('9')", timeout=30_000)
    assert "1" in page.evaluate(budgets)
    # Every finished trial shows its objective (published once the tuning job has read it).
    page.wait_for_function("() => Array.from(document.querySelectorAll('#trials-body tr'))"
                           ".every(r => r.children[3].textContent.trim() !== '—')", timeout=30_000)
    page.wait_for_selector("[data-testid=best-model]", timeout=30_000)
    finished, planned = page.inner_text("#progress-text").split("/")
    assert finished == planned
    shot(page, "tuning-hyperband", full_page=True)
