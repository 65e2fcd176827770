"""Celery's task_failure signal, sent in the worker process that ran the task: record it as a FailedTask."""

from __future__ import annotations

import logging
import socket
from typing import Any

from celery.signals import task_failure

logger = logging.getLogger(__name__)


@task_failure.connect(weak=False, dispatch_uid="ops-failed-task")
def on_task_failure(sender: Any = None, task_id: str | None = None, exception: BaseException | None = None,
                    args: Any = None, kwargs: Any = None, einfo: Any = None, **extra: Any) -> None:
    from studio.ops import services

    request = getattr(sender, "request", None)
    worker = getattr(request, "hostname", None) or socket.gethostname()
    try:
        services.failed_task_record(
            task_name=getattr(sender, "name", "") or "", task_id=task_id or "", args=args, kwargs=kwargs,
            exception=exception, traceback=str(getattr(einfo, "traceback", "") or ""), worker=worker,
        )
    except Exception:
        # The database may be what failed the task: the worker's log still has it, and the worker goes on.
        logger.exception("could not record the failure of task %s (%s)", task_id, getattr(sender, "name", "?"))
