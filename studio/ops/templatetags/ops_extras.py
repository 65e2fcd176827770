"""Filters of the admin dashboard's templates."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django import template

register = template.Library()


@register.filter
def unix_time(value: Any) -> datetime | None:
    """A unix time (what Celery and the Redis samples carry) as an aware datetime, for |date and |timesince."""
    try:
        return datetime.fromtimestamp(float(value), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


@register.filter
def task_short(name: Any) -> str:
    """studio.training.tasks.training_job_run_task -> training_job_run_task."""
    return str(name or "").rsplit(".", 1)[-1]
