"""studio.core.outages in process: which failures are a 503 or a 507, and what the answer looks like."""

from __future__ import annotations

import errno
import json

import kombu.exceptions
import pytest
import redis.exceptions
from django.db import InterfaceError, OperationalError
from django.test import RequestFactory

from studio.core.outages import outage_status, server_error

pytestmark = pytest.mark.faults


def raised(exc: BaseException, path: str):
    """server_error's answer from inside the except block, where Django calls it."""
    try:
        raise exc
    except BaseException:
        return server_error(RequestFactory().get(path))


@pytest.mark.parametrize("exc", [redis.exceptions.ConnectionError("refused"), redis.exceptions.TimeoutError(),
                                 kombu.exceptions.OperationalError("broker"), OperationalError("db gone"),
                                 InterfaceError("closed"), ConnectionRefusedError()])
def test_it_calls_an_unreachable_dependency_a_503(exc):
    assert outage_status(exc) == 503
    response = raised(exc, "/api/v1/projects")
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert "unavailable" in json.loads(response.content)["detail"]


def test_it_calls_a_full_disk_a_507_and_a_page_gets_html():
    exc = OSError(errno.ENOSPC, "No space left on device")
    assert outage_status(exc) == 507
    response = raised(exc, "/projects/x/data/")
    assert response.status_code == 507 and b"Insufficient storage" in response.content


def test_it_follows_raise_from_but_leaves_bugs_a_500():
    try:
        try:
            raise redis.exceptions.ConnectionError("refused")
        except redis.exceptions.ConnectionError as exc:
            raise RuntimeError("the cache is down") from exc
    except RuntimeError as exc:
        assert outage_status(exc) == 503
    try:
        try:
            raise redis.exceptions.ConnectionError("refused")
        except redis.exceptions.ConnectionError:
            raise KeyError("a bug in the handler")  # noqa: B904 - the point: no explicit cause
    except KeyError as exc:
        assert outage_status(exc) is None
    for exc in (ValueError("bad"), OSError(errno.EACCES, "denied")):
        assert outage_status(exc) is None
        assert raised(exc, "/api/v1/me").status_code == 500
