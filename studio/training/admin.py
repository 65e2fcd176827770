from __future__ import annotations

from django.contrib import admin

from studio.training.models import LogLine, MetricPoint, TrainingJob


@admin.register(TrainingJob)
class TrainingJobAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "algorithm", "status", "worker", "attempts", "created_by", "created_at",
                    "started_at", "ended_at", "heartbeat_at"]
    list_filter = ["status", "algorithm"]
    search_fields = ["name", "project__name", "worker"]
    raw_id_fields = ["project", "dataset", "validation_dataset", "created_by"]
    readonly_fields = ["created_at", "started_at", "ended_at", "heartbeat_at", "enqueued_at", "attempts", "worker"]
    date_hierarchy = "created_at"


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows a worker writes (metrics, logs): looked at, never typed in. Counting millions of rows is skipped."""

    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(MetricPoint)
class MetricPointAdmin(ReadOnlyAdmin):
    list_display = ["job", "name", "step", "value", "ts"]
    list_filter = ["name"]
    search_fields = ["job__name", "name"]
    raw_id_fields = ["job"]
    list_select_related = ["job"]


@admin.register(LogLine)
class LogLineAdmin(ReadOnlyAdmin):
    list_display = ["job", "seq", "ts", "line"]
    search_fields = ["job__name", "line"]
    raw_id_fields = ["job"]
    list_select_related = ["job"]
