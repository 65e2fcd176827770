from __future__ import annotations

from tests.benchmarks.harness import write_results


def pytest_sessionfinish(session, exitstatus):
    write_results()
