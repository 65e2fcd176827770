"""A dependency that is down is not a bug: answer 503 (or 507 for a full disk) instead of 500.

Django calls ``handler500`` (see studio/urls.py) from inside the ``except`` block of whatever failed, in a view or
in a middleware, so the exception is still in ``sys.exc_info()`` here. Redis or the broker unreachable and the
database gone are 503 with ``Retry-After``: clients (the Python client, load balancers) retry those. A full disk
is 507 Insufficient Storage. Anything else stays a 500. The response touches neither the database nor Redis.
"""

from __future__ import annotations

import errno
import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse

RETRY_AFTER_SECONDS = 5
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def _unavailable_types() -> tuple[type[BaseException], ...]:
    import kombu.exceptions
    import redis.exceptions

    return (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, kombu.exceptions.OperationalError,
            OperationalError, InterfaceError, ConnectionError)


def outage_status(exc: BaseException | None) -> int | None:
    """503 or 507 when ``exc`` (or what it was explicitly raised from) is an unreachable dependency or a full disk.

    Only ``raise ... from`` links are followed: a bug in code that was handling an outage stays a 500.
    """
    unavailable = _unavailable_types()
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
            return 507
        if isinstance(exc, unavailable):
            return 503
        exc = exc.__cause__
        seen += 1
    return None


def server_error(request) -> HttpResponse:
    status = outage_status(sys.exc_info()[1]) or 500
    if status == 503:
        detail = "A service the studio depends on is unavailable right now; retry shortly."
    elif status == 507:
        detail = "The studio's storage is full; nothing was stored. Free some space or retry later."
    else:
        detail = "Server error."
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status == 503 else {}
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": detail}, status=status, headers=headers)
    title = {503: "Service unavailable", 507: "Insufficient storage"}.get(status, "Server error")
    body = f"<!doctype html><title>{title} ({status})</title><h1>{title} ({status})</h1><p>{detail}</p>"
    return HttpResponse(body, status=status, headers=headers)
