from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from studio.accounts.models import Project


class DatasetKind(models.TextChoices):
    TABULAR = "tabular", "Tabular"
    TEXT = "text", "Text"
    IMAGE = "image", "Image"


class DatasetStatus(models.TextChoices):
    PROCESSING = "processing", "Processing"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class Dataset(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="datasets")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=10, choices=DatasetKind.choices, default=DatasetKind.TABULAR)
    status = models.CharField(max_length=12, choices=DatasetStatus.choices, default=DatasetStatus.PROCESSING)
    failure_reason = models.TextField(blank=True)
    # Name of the stored object (storage key), not a FileField: the storage layer owns the bytes.
    file = models.CharField(max_length=500)
    original_filename = models.CharField(max_length=255, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    rows = models.BigIntegerField(null=True, blank=True)
    # [{name, dtype, missing, ...}] in file order.
    columns = models.JSONField(default=list, blank=True)
    # Per-column statistics and histogram bins, computed once at upload.
    profile = models.JSONField(default=dict, blank=True)
    target = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="unique_dataset_name")]

    def __str__(self) -> str:
        return self.name

    @property
    def column_names(self) -> list[str]:
        return [c["name"] for c in self.columns]
