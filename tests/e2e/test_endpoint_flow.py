"""Deploying in a real browser: train a model, Deploy from its page, wait for in_service, test it, watch traffic."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import classification_csv
from tests.e2e.conftest import run_in_browser
from tests.e2e.test_studio_flow import new_project, shot, upload

try:  # the endpoint agent's process helper ships with the endpoint runtime
    from tests.processes import endpoint_agent
except ImportError:
    endpoint_agent = None

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(endpoint_agent is None, reason="tests.processes.endpoint_agent (the endpoint runtime) is not "
                                                      "there yet: nothing would start the endpoint's instances"),
]


def test_it_deploys_a_trained_model_from_its_page_and_invokes_it(browse, tmp_path):
    csv_path = tmp_path / "churn.csv"
    csv_path.write_bytes(classification_csv())
    run_in_browser(browse, tmp_path, lambda page, base: deploy_session(page, base, csv_path), agent=True)


def deploy_session(page, base: str, csv_path: Path) -> None:
    new_project(page, base, username="dora", team="Deployers", project="Churn serving")
    upload(page, csv_path, target="churned")

    # Train a linear learner from the pages.
    page.click("text=Train on this dataset")
    page.wait_for_selector("#id_target option[value=churned]", state="attached")
    page.select_option("#id_target", "churned")
    page.fill("#id_hp_epochs", "3")
    page.click("[data-testid=start-training]")
    page.wait_for_url(re.compile(r".*/training/[0-9a-f-]+/$"))
    page.wait_for_function(
        "() => document.querySelector('[data-testid=job-status]').textContent.trim() === 'completed'",
        timeout=120_000,
    )
    page.click("[data-testid=model-link]")
    page.wait_for_url(re.compile(r".*/models/[0-9a-f-]+/$"))
    model_name = page.inner_text("h1").strip()

    # Deploy: the form comes prefilled, so Create is the only click left.
    page.click("[data-testid=deploy-model]")
    page.wait_for_url(re.compile(r".*/endpoints/new/\?model=[0-9a-f-]+$"))
    assert page.input_value("#id_name").endswith("-endpoint")
    assert page.is_checked("input[name=type][value=realtime]")
    assert page.eval_on_selector("#id_variants-0-model", "s => s.options[s.selectedIndex].text").startswith(model_name)
    shot(page, "endpoint-new", full_page=True)
    page.click("[data-testid=create-endpoint]")
    page.wait_for_url(re.compile(r".*/endpoints/[0-9a-f-]+/$"))

    # The status badge turns in_service over the websocket, without a reload.
    detail_url = page.url
    page.wait_for_function(
        "() => document.querySelector('[data-testid=endpoint-status]').textContent.trim() === 'in_service'",
        timeout=90_000,
    )
    assert page.url == detail_url
    page.wait_for_function("() => document.querySelector('[data-testid=variant-in-service]').textContent.trim() "
                           "=== '1'", timeout=30_000)

    # The test box holds a one-record example in the model's columns; Send answers with predictions.
    example = page.input_value("#id_test_body")
    assert '"instances"' in example
    for _ in range(3):
        page.click("[data-testid=send-test]")
        page.wait_for_function("() => !document.querySelector('[data-testid=send-test]').disabled && "
                               "document.querySelector('[data-testid=test-status]').textContent !== 'sending'",
                               timeout=60_000)
        assert page.inner_text("[data-testid=test-status]") == "200", page.inner_text("[data-testid=test-response]")
    response = page.inner_text("[data-testid=test-response]")
    assert '"predictions"' in response and '"label"' in response and '"probabilities"' in response
    assert page.inner_text("[data-testid=test-elapsed]").endswith(" ms")

    # Test invocations go straight to an instance; clients go through the gateway. An invoke key made on
    # the page (its secret shown once) lets a client call the invocation URL; those calls are counted.
    page.click("[data-testid=create-key]")
    secret = page.inner_text("[data-testid=new-key-secret]").strip()
    assert secret.startswith("sk-ep-")
    url = page.inner_text("[data-testid=invocation-url]").strip()
    for _ in range(5):
        answer = page.request.post(url, headers={"X-Api-Key": secret, "Content-Type": "application/json"},
                                   data=example)
        assert answer.status == 200, answer.text()
        assert len(answer.json()["predictions"]) == 1

    # The traffic reaches the invocations chart as live points, without a reload.
    page.wait_for_function("() => window.studioEndpointInvocations >= 5", timeout=60_000)
    page.wait_for_selector("#chart-invocations .main-svg")
    assert page.url == detail_url
    assert page.evaluate("Math.max(...document.querySelector('#chart-invocations').data[0].y)") > 0
    shot(page, "endpoint-live", full_page=True)
