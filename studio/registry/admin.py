from __future__ import annotations

from django.contrib import admin

from studio.registry.models import Model, ModelGroup, ModelVersion
from studio.registry.services import model_files_delete_on_commit


@admin.register(Model)
class ModelAdmin(admin.ModelAdmin):
    list_display = ["name", "algorithm", "project", "size_bytes", "created_by", "created_at"]
    list_filter = ["algorithm"]
    search_fields = ["name", "project__name"]
    raw_id_fields = ["training_job", "project", "created_by"]
    readonly_fields = ["artifact_prefix", "artifact_files", "size_bytes", "created_at"]

    def delete_model(self, request, obj: Model) -> None:
        model_files_delete_on_commit(model=obj)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset) -> None:
        for model in queryset:
            model_files_delete_on_commit(model=model)
        super().delete_queryset(request, queryset)


class ModelVersionInline(admin.TabularInline):
    model = ModelVersion
    extra = 0
    raw_id_fields = ["model", "created_by", "approved_by", "status_changed_by"]
    # Numbers come from the group's counter and approvals record who and when: set them through the app.
    readonly_fields = ["version", "model", "approval_status", "approved_by", "approved_at", "status_changed_by",
                       "status_changed_at", "created_by", "created_at"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ModelGroup)
class ModelGroupAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "last_version", "created_by", "created_at"]
    search_fields = ["name", "project__name"]
    raw_id_fields = ["project", "created_by"]
    readonly_fields = ["last_version", "created_at"]
    inlines = [ModelVersionInline]


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["group", "version", "model", "approval_status", "status_changed_by", "status_changed_at"]
    list_filter = ["approval_status"]
    search_fields = ["group__name", "model__name"]
    raw_id_fields = ["group", "model", "created_by", "approved_by", "status_changed_by"]
    readonly_fields = ["version", "approved_by", "approved_at", "status_changed_by", "status_changed_at",
                       "created_by", "created_at"]

    def has_add_permission(self, request) -> bool:
        return False  # registered from a model's page or the API, which number versions
