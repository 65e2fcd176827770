"""Pipelines in a real browser: a template becomes a pipeline, the builder edits and saves it, a run deploys an
endpoint that answers while the DAG turns green live, and a second run is served from cache."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import classification_csv
from tests.e2e.conftest import run_in_browser
from tests.e2e.test_studio_flow import new_project, shot, upload

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

STEPS = ("split", "train", "evaluate", "register", "deploy")


def test_it_builds_runs_and_reruns_the_template_pipeline_from_the_pages(browse, tmp_path):
    csv_path = tmp_path / "churn.csv"
    csv_path.write_bytes(classification_csv())
    run_in_browser(browse, tmp_path, lambda page, base: pipeline_session(page, base, csv_path), agent=True)


def node_class(page, step: str) -> str:
    return page.get_attribute(f"svg.dag g.node[data-step='{step}']", "class") or ""


def wait_for_execution(page, status: str = "completed", timeout: int = 240_000) -> None:
    page.wait_for_function(
        "(want) => ['completed', 'failed', 'stopped'].includes(window.studioExecutionStatus) && "
        "document.querySelector('[data-testid=execution-status]').textContent.trim() === want",
        arg=status, timeout=timeout,
    )


def pipeline_session(page, base: str, csv_path: Path) -> None:
    new_project(page, base, username="pia", team="Pipers", project="Churn pipelines")
    upload(page, csv_path, name="churn", target="churned")

    # From the template gallery: "Use" asks for a name and opens the builder.
    page.click("nav.sidenav a:has-text('Pipelines')")
    page.wait_for_selector("text=No pipelines yet")
    page.click("[data-testid=from-template]")
    shot(page, "pipeline-gallery", full_page=True)
    card = page.locator("[data-template=train-evaluate-register-deploy]")
    card.locator("input[name=name]").fill("churn-release")
    card.locator("[data-testid=use-train-evaluate-register-deploy]").click()
    page.wait_for_url(re.compile(r".*/pipelines/[0-9a-f-]+/$"))
    pipeline_url = page.url
    assert page.locator("svg.dag g.node").count() == 6
    page.wait_for_selector("[data-step-card=train]")  # the script drew a form per step
    assert page.locator("#palette-items .palette-item").count() == 8

    # The builder edits the definition: the dataset parameter gets the uploaded dataset's name, the
    # threshold is lowered, and a step added from the palette is removed again. The graph follows.
    page.fill("[data-param=dataset] [data-testid=param-default]", "churn")
    page.locator("[data-param=dataset] [data-testid=param-default]").press("Tab")
    page.fill("[data-param=threshold] [data-testid=param-default]", "0.6")
    page.locator("[data-param=threshold] [data-testid=param-default]").press("Tab")
    updates = page.evaluate("window.studioBuilder.dagUpdates")
    page.click("[data-add-step=fail]")
    page.wait_for_function(f"() => window.studioBuilder.dagUpdates > {updates}")
    page.wait_for_selector("svg.dag g.node[data-step=fail]")
    assert page.locator("svg.dag g.node").count() == 7
    page.locator("[data-step-card=fail] [data-testid=remove-step]").click()
    page.wait_for_function("() => !document.querySelector('svg.dag g.node[data-step=fail]')")
    shot(page, "pipeline-builder-steps", full_page=True)
    # The JSON tab shows the same definition.
    page.click("[data-testid=json-tab]")
    text = page.input_value("#id_definition")
    assert '"threshold": 0.6' in text and '"dataset": "churn"' in text and '"name": "fail"' not in text
    shot(page, "pipeline-builder-json")
    page.click("[data-testid=save-pipeline]")
    page.wait_for_selector("text=Pipeline saved (version 2).")
    assert page.url == pipeline_url

    # Run with the saved defaults: the run form opens in a dialog, prefilled.
    page.click("[data-testid=run-pipeline]")
    assert page.input_value("#id_param_dataset") == "churn"
    assert page.input_value("#id_param_threshold") == "0.6"
    page.click("#run-dialog [data-testid=start-run]")
    page.wait_for_url(re.compile(r".*/pipelines/[0-9a-f-]+/executions/[0-9a-f-]+/$"))
    first_url = page.url

    # The nodes change colour over the websocket while the execution runs; the page is not reloaded.
    page.wait_for_function("() => window.studioPipelineSteps && window.studioPipelineSteps.train === 'running'",
                           timeout=120_000)
    assert "status-running" in node_class(page, "train")
    wait_for_execution(page)
    assert page.url == first_url
    for step in STEPS:
        assert "status-completed" in node_class(page, step), (step, node_class(page, step))
    assert "status-skipped" in node_class(page, "too-weak")
    page.wait_for_selector("[data-testid=completed-banner]")
    assert page.locator("[data-step-row=train] [data-testid=step-link]").count() >= 2  # training job and model
    shot(page, "pipeline-execution", full_page=True)

    # The deploy node links the endpoint it made, and that endpoint answers.
    page.click("svg.dag g.node[data-step=deploy] a.node-link")
    page.wait_for_url(re.compile(r".*/endpoints/[0-9a-f-]+/$"))
    page.wait_for_function(
        "() => document.querySelector('[data-testid=endpoint-status]').textContent.trim() === 'in_service'",
        timeout=60_000,
    )
    page.click("[data-testid=send-test]")
    page.wait_for_function("() => !document.querySelector('[data-testid=send-test]').disabled && "
                           "document.querySelector('[data-testid=test-status]').textContent !== 'sending'",
                           timeout=60_000)
    assert page.inner_text("[data-testid=test-status]") == "200", page.inner_text("[data-testid=test-response]")
    assert '"predictions"' in page.inner_text("[data-testid=test-response]")

    # A second run with the same inputs reuses the split and the training from the first one.
    page.goto(pipeline_url)
    page.click("[data-testid=run-pipeline]")
    page.click("#run-dialog [data-testid=start-run]")
    page.wait_for_url(re.compile(r".*/executions/[0-9a-f-]+/$"))
    assert page.url != first_url
    wait_for_execution(page)
    for step in ("split", "train"):
        assert "cached" in node_class(page, step).split(), (step, node_class(page, step))
        assert page.text_content(f"svg.dag g.node[data-step='{step}'] .state").strip() == "cached"
    assert "status-completed" in node_class(page, "deploy")
    page.wait_for_selector("[data-testid=completed-banner]")  # the steps table is refreshed from the server too
    assert "cached" in page.inner_text("[data-step-row=train]")
    shot(page, "pipeline-cached", full_page=True)

    # The pipeline page's history lists both runs, and the list its last one.
    page.click("nav.sidenav a:has-text('Pipelines')")
    assert page.inner_text("[data-testid=execution-count]") == "2"
    shot(page, "pipeline-list")
    page.goto(pipeline_url)
    rows = page.locator("[data-testid=executions] tr[data-execution]")
    assert rows.count() == 2
    assert "completed" in rows.nth(0).inner_text() and "threshold=0.6" in rows.nth(1).inner_text()


def test_it_builds_a_pipeline_step_by_step_in_the_builder_and_runs_it(browse, tmp_path):
    csv_path = tmp_path / "churn.csv"
    csv_path.write_bytes(classification_csv(seed=1))
    run_in_browser(browse, tmp_path, lambda page, base: builder_session(page, base, csv_path))


def arg(step: str, name: str) -> str:
    return f"[data-step-card={step}] [data-arg-field='{name}']"


def blur(page, selector: str, value: str) -> None:
    """Type into a builder input and leave it, as a person would: its change event updates the definition."""
    page.fill(selector, value)
    page.locator(selector).press("Tab")


def builder_session(page, base: str, csv_path: Path) -> None:
    new_project(page, base, username="bea", team="Builders", project="Churn builder")
    dataset_id = upload(page, csv_path, name="customers", target="churned")
    page.wait_for_function("() => document.body.textContent.includes('ready')", timeout=60_000)
    page.click("nav.sidenav a:has-text('Pipelines')")
    page.click("[data-testid=new-pipeline]")
    page.wait_for_url(re.compile(r".*/pipelines/new/$"))
    assert "No steps yet" in page.inner_text("#dag")
    page.fill("#id_name", "hand-made")

    # A processing step: split the uploaded dataset, chosen from the project's datasets.
    page.click("[data-add-step=processing]")
    page.wait_for_selector("[data-step-card=process]")
    assert page.input_value(f"{arg('process', 'operation')} select.literal") == "split"
    page.select_option(f"{arg('process', 'dataset')} select.source", f"obj:{dataset_id}")
    page.select_option(f"{arg('process', 'fractions')} select.source", "value")
    blur(page, f"{arg('process', 'fractions')} textarea.literal", '{"train": 0.75, "validation": 0.25}')
    # A training step fed by the split's training part: the edge appears in the graph.
    page.click("[data-add-step=training]")
    page.wait_for_selector("[data-step-card=train]")
    page.select_option(f"{arg('train', 'dataset')} select.source", "ref:steps.process.train")
    page.select_option(f"{arg('train', 'validation_dataset')} select.source", "ref:steps.process.validation")
    page.wait_for_selector("svg.dag path.edge[data-from=process][data-to=train]", state="attached")
    # A parameter, and a condition comparing the model's accuracy with it.
    page.click("[data-testid=add-parameter]")
    blur(page, "[data-param=param] [data-testid=param-name]", "threshold")
    page.select_option("[data-param=threshold] select[aria-label=Type]", "number")
    blur(page, "[data-param=threshold] [data-testid=param-default]", "0.5")
    page.click("[data-add-step=condition]")
    page.wait_for_selector("[data-step-card=check]")
    page.select_option(f"{arg('check', 'left')} select.source", "ref:steps.train.metrics.validation:accuracy")
    page.select_option(f"{arg('check', 'right')} select.source", "ref:parameters.threshold")
    page.wait_for_selector("svg.dag path.edge[data-from=train][data-to=check]", state="attached")
    # A weak model ends the run with a message: a fail step on the condition's false branch.
    page.click("[data-add-step=fail]")
    page.wait_for_selector("[data-step-card=fail]")
    page.select_option(f"{arg('fail', 'message')} select.source", "value")
    blur(page, f"{arg('fail', 'message')} input.literal", "The model is too weak.")
    page.check(f"{arg('check', 'if_false')} label:has-text('fail') input")
    page.wait_for_selector("svg.dag path.edge.false[data-from=check][data-to=fail]", state="attached")
    # Renaming a step renames every reference to it.
    blur(page, "[data-step-card=process] input.step-name", "prep")
    page.wait_for_selector("svg.dag g.node[data-step=prep]")
    assert page.input_value(f"{arg('train', 'dataset')} select.source") == "ref:steps.prep.train"
    shot(page, "pipeline-builder-new", full_page=True)
    page.click("[data-testid=save-pipeline]")
    page.wait_for_selector("text=Pipeline 'hand-made' saved.")
    pipeline_url = page.url
    assert re.match(r".*/pipelines/[0-9a-f-]+/$", pipeline_url)
    definition = page.input_value("#id_definition")
    assert '"ref": "steps.prep.train"' in definition and '"validation": 0.25' in definition

    # A mistake typed in the JSON tab comes back from the server next to the step's field.
    page.click("[data-testid=json-tab]")
    page.fill("#id_definition", definition.replace("steps.prep.train", "steps.ghost.train"))
    page.click("[data-testid=save-pipeline]")
    page.wait_for_selector("[data-testid=builder-errors]")
    assert "definition.steps.train.arguments.dataset" in page.inner_text("[data-testid=builder-errors]")
    page.click("[data-tab=steps]")
    assert "ghost" in page.inner_text(f"{arg('train', 'dataset')} [data-testid=field-error]")
    assert "has-errors" in page.get_attribute("[data-step-card=train]", "class")
    # Broken JSON is named with its line and column; nothing is saved.
    page.click("[data-testid=json-tab]")
    page.fill("#id_definition", '{"steps": [}')
    assert "Not valid JSON yet" in page.inner_text("[data-testid=json-error]")
    page.click("[data-testid=save-pipeline]")
    page.wait_for_selector("text=Not valid JSON: Expecting value at line 1, column 12.")

    # The saved version runs: split, train and check complete and turn green.
    page.goto(pipeline_url)
    page.click("[data-testid=run-pipeline]")
    page.fill("#id_param_threshold", "0.55")
    page.click("#run-dialog [data-testid=start-run]")
    page.wait_for_url(re.compile(r".*/executions/[0-9a-f-]+/$"))
    wait_for_execution(page)
    for step in ("prep", "train", "check"):
        assert "status-completed" in node_class(page, step)
    assert "status-skipped" in node_class(page, "fail")
    page.wait_for_selector("[data-testid=condition-result]")
