from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from studio.accounts.models import Project


class Model(models.Model):
    """A trained model: JSON manifest + .npz arrays in object storage, never a pickle."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="models")
    name = models.CharField(max_length=200)
    algorithm = models.CharField(max_length=60)
    training_job = models.OneToOneField(
        "training.TrainingJob", null=True, on_delete=models.SET_NULL, related_name="model"
    )
    hyperparameters = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    # What the model expects and predicts, so inference can check inputs by name.
    feature_names = models.JSONField(default=list, blank=True)
    target = models.CharField(max_length=200, blank=True)
    artifact_prefix = models.CharField(max_length=500)
    artifact_files = models.JSONField(default=list, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name
