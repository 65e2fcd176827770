"""Fixtures of the security tests: the victims of tests/core/test_tenancy.py, shared so both walks fill URL kwargs
from one place (a new kind of URL argument is taught there once)."""

from __future__ import annotations

from tests.core.test_tenancy import victims  # noqa: F401 - a fixture, used by name
