from __future__ import annotations

from django.contrib import admin

from studio.registry.models import Model


@admin.register(Model)
class ModelAdmin(admin.ModelAdmin):
    list_display = ["name", "algorithm", "project", "size_bytes", "created_by", "created_at"]
    list_filter = ["algorithm"]
    search_fields = ["name", "project__name"]
    raw_id_fields = ["training_job", "project", "created_by"]
    readonly_fields = ["artifact_prefix", "artifact_files", "size_bytes", "created_at"]
