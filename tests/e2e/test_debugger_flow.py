"""Debugger rules in a real browser: chosen on the training form, fired on the live run, shown without a reload."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.test_studio_flow import houses_csv, new_project, shot, upload
from tests.processes import celery_worker, web_server

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def rule_cell(page, rule: str, cell: str) -> str:
    return page.inner_text(f"#debugger-panel tr[data-rule={rule}] [data-testid={cell}]").strip()


def test_it_fires_a_rule_on_a_live_run_and_shows_it_on_the_job_page(browse, tmp_path):
    csv_path = houses_csv(tmp_path / "houses.csv", n=2000)
    logs = tmp_path / "web.log", tmp_path / "worker.log"
    try:
        with web_server(logs[0]) as base:
            browse(lambda page: debugger_session(page, base, csv_path, logs[1]))
    except Exception:
        for log in logs:  # what the servers said is the first thing to read
            if log.exists():
                print(f"--- {log.name} ---\n" + log.read_text(errors="replace")[-4000:])
        raise


def debugger_session(page, base: str, csv_path: Path, worker_log: Path) -> None:
    new_project(page, base, username="debby", team="Debuggers", project="Slow houses")
    upload(page, csv_path, target="price")
    page.click("text=Train on this dataset")
    page.wait_for_selector("#id_target option[value=price]", state="attached")
    page.select_option("#id_target", "price")
    # A learning rate this small moves the loss by a few hundredths per epoch: "not decreasing by 0.5 over
    # 2 steps" fires at step 3, whatever the machine's speed.
    page.fill("#id_hp_learning_rate", "0.000001")
    page.select_option("#id_hp_optimizer", "sgd")
    page.fill("#id_hp_epochs", "8")
    page.fill("#id_hp_early_stopping_patience", "100")

    page.click("#debugger-rules summary")
    page.check("#id_rule_loss_not_decreasing")
    page.fill("#id_rule_loss_not_decreasing__patience", "2")
    page.fill("#id_rule_loss_not_decreasing__min_delta", "0.5")
    page.select_option("#id_rule_loss_not_decreasing__action", "stop")
    page.check("#id_rule_exploding_loss")
    shot(page, "debugger-new", full_page=True)
    page.click("[data-testid=start-training]")
    page.wait_for_url(re.compile(r".*/training/[0-9a-f-]+/$"))

    # No worker yet: the job waits, its rules are in progress, and everything after this is live.
    assert rule_cell(page, "loss_not_decreasing", "rule-status") == "in progress"
    assert rule_cell(page, "exploding_loss", "rule-status") == "in progress"
    assert rule_cell(page, "loss_not_decreasing", "rule-action") == "stop when fired"
    page.evaluate("window.studioSamePage = true")

    with celery_worker(worker_log):
        page.wait_for_function(
            "() => document.querySelector('#debugger-panel tr[data-rule=loss_not_decreasing] "
            "[data-testid=rule-status]').textContent.trim() === 'issues found'",
            timeout=90_000,
        )
        page.wait_for_function(
            "() => document.querySelector('[data-testid=job-status]').textContent.trim() === 'stopped'",
            timeout=60_000,
        )
        page.wait_for_function(
            "() => document.querySelector('#debugger-panel tr[data-rule=exploding_loss] "
            "[data-testid=rule-status]').textContent.trim() === 'no issues found'",
            timeout=30_000,
        )
    assert page.evaluate("window.studioSamePage") is True  # shown live, not by a reload
    assert page.evaluate("window.studioDebuggerUpdates") >= 1
    assert rule_cell(page, "loss_not_decreasing", "rule-step") == "3"
    assert rule_cell(page, "loss_not_decreasing", "rule-message").startswith(
        "train:loss has not decreased by more than 0.5 in 2 steps")
    assert rule_cell(page, "loss_not_decreasing", "rule-action") == "stopped the job"
    assert rule_cell(page, "exploding_loss", "rule-message") == "Checked 3 step(s) of train:loss."
    page.wait_for_selector("text=Stopped by debugger rule loss_not_decreasing")  # the job panel's status message
    shot(page, "debugger-fired", full_page=True)

    # A reload shows the same results, from the server.
    page.reload()
    assert rule_cell(page, "loss_not_decreasing", "rule-status") == "issues found"
    assert rule_cell(page, "exploding_loss", "rule-status") == "no issues found"
