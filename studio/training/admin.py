from __future__ import annotations

from django.contrib import admin

from studio.training.models import TrainingJob


@admin.register(TrainingJob)
class TrainingJobAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "algorithm", "status", "worker", "attempts", "created_by", "created_at",
                    "started_at", "ended_at", "heartbeat_at"]
    list_filter = ["status", "algorithm"]
    search_fields = ["name", "project__name", "worker"]
    raw_id_fields = ["project", "dataset", "validation_dataset", "created_by"]
    readonly_fields = ["created_at", "started_at", "ended_at", "heartbeat_at", "enqueued_at", "attempts", "worker"]
    date_hierarchy = "created_at"
