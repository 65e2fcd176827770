"""What the admin dashboard keeps in the database: Celery tasks that failed, with their traceback.

Live numbers (queue depths, invocation rates) are short-lived samples kept in Redis (studio.ops.metrics),
and worker state is asked of the workers themselves (studio.ops.workers): neither needs a table.
"""

from __future__ import annotations

from django.db import models


class FailedTask(models.Model):
    """A Celery task that raised, as its worker saw it. Arguments are kept as ids only (see receivers)."""

    id = models.BigAutoField(primary_key=True)
    task_name = models.CharField(max_length=200, db_index=True)
    task_id = models.CharField(max_length=64, blank=True, db_index=True)
    args = models.TextField(blank=True, help_text="The task's arguments: ids and numbers, anything else elided.")
    exception = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    worker = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.task_name} {self.task_id}"

    @property
    def short_name(self) -> str:
        """The task's function name without its module path, for tables."""
        return self.task_name.rsplit(".", 1)[-1]
