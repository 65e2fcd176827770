from __future__ import annotations

from django.contrib import admin
from django.db import transaction

from studio.core.storage import storage_delete, storage_delete_prefix
from studio.datasets.models import Dataset
from studio.datasets.services import dataset_storage_prefix


def _delete_files_on_commit(dataset: Dataset) -> None:
    prefix = dataset_storage_prefix(project_id=dataset.project_id, dataset_id=dataset.id)
    name = dataset.file
    transaction.on_commit(lambda: (storage_delete(name), storage_delete_prefix(prefix)))


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "kind", "status", "rows", "size_bytes", "created_by", "created_at"]
    list_filter = ["kind", "status"]
    search_fields = ["name", "original_filename", "sha256"]
    # Everything but the name comes from the uploaded file; editing it here would make the profile lie.
    readonly_fields = ["id", "project", "kind", "status", "failure_reason", "file", "original_filename",
                       "size_bytes", "sha256", "rows", "columns", "profile", "created_by", "created_at"]

    def has_add_permission(self, request) -> bool:
        return False  # datasets are created by uploading a file, which validates and profiles it

    def delete_model(self, request, obj: Dataset) -> None:
        _delete_files_on_commit(obj)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset) -> None:
        for dataset in queryset:
            _delete_files_on_commit(dataset)
        super().delete_queryset(request, queryset)
