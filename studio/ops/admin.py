from __future__ import annotations

from django.contrib import admin

from studio.ops.models import FailedTask


@admin.register(FailedTask)
class FailedTaskAdmin(admin.ModelAdmin):
    list_display = ["created_at", "task_name", "task_id", "exception", "worker"]
    list_filter = ["task_name"]
    search_fields = ["task_name", "task_id", "exception", "worker"]
    date_hierarchy = "created_at"
    # A record of what a worker saw: read it, delete it, never rewrite it.
    readonly_fields = ["task_name", "task_id", "args", "exception", "traceback", "worker", "created_at"]

    def has_add_permission(self, request) -> bool:
        return False
