from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import pytest

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
]


def chromium_path() -> str | None:
    return os.environ.get("STUDIO_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def browse() -> Callable:
    """Run ``scenario(page)`` in Debian's Chromium, driven by Playwright from its own thread.

    Playwright's sync API keeps an event loop running in the thread that uses it; in a thread of its
    own that loop cannot make Django's database calls in this thread look async, nor leak into tests
    that run after this one.
    """
    path = chromium_path()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is missing: .ci/run installs it with apt-get install chromium")
        pytest.skip("no chromium on this machine: apt-get install chromium (CI installs it)")

    def run(scenario: Callable) -> None:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS, headless=True)
            try:
                context = browser.new_context(viewport={"width": 1366, "height": 900})
                scenario(context.new_page())
            finally:
                browser.close()

    def browse(scenario: Callable) -> None:
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(run, scenario).result()

    return browse


def run_in_browser(browse: Callable, tmp_path: Path, scenario: Callable, *, agent: bool = False) -> None:
    """Start daphne and a real worker (with ``agent`` the endpoint agent too) on the test database, then run
    ``scenario(page, base)`` in Chromium. On a failure the end of each server's log is printed first."""
    from tests.processes import celery_worker, web_server

    logs = ("web.log", "worker.log", "agent.log") if agent else ("web.log", "worker.log")
    try:
        with ExitStack() as stack:
            base = stack.enter_context(web_server(tmp_path / "web.log"))
            stack.enter_context(celery_worker(tmp_path / "worker.log"))
            if agent:
                from tests.processes import endpoint_agent

                stack.enter_context(endpoint_agent(tmp_path / "agent.log"))
            browse(lambda page: scenario(page, base))
    except Exception:
        for log in logs:  # what the servers said is the first thing to read
            path = tmp_path / log
            if path.exists():
                print(f"--- {log} ---\n" + path.read_text(errors="replace")[-4000:])
        raise
