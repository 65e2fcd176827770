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


class ApprovalStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"


class ModelGroup(models.Model):
    """A named line of model versions (SageMaker's model package group): one use case, many trained models."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="model_groups")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    # The highest number ever given; new versions count on from it, so a deleted version's number is never reused.
    last_version = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="unique_model_group_name")]

    def __str__(self) -> str:
        return self.name


class ModelVersion(models.Model):
    """A model registered in a group under a number (1, 2, 3... per group), with its approval status."""

    id = models.BigAutoField(primary_key=True)
    group = models.ForeignKey(ModelGroup, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    # RESTRICT, not PROTECT: a project's deletion cascades to both the model and the group, and RESTRICT
    # lets that through while still refusing to delete a registered model on its own.
    model = models.ForeignKey(Model, on_delete=models.RESTRICT, related_name="versions")
    description = models.TextField(blank=True)
    approval_status = models.CharField(max_length=10, choices=ApprovalStatus.choices, default=ApprovalStatus.PENDING,
                                       db_index=True)
    # Who approved the current approval; cleared when the version leaves "approved".
    approved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    approved_at = models.DateTimeField(null=True, blank=True)
    # The last change of status, whichever it was (a rejection included).
    status_changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                          on_delete=models.SET_NULL, related_name="+")
    status_changed_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["group", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["group", "version"], name="unique_model_version_number"),
            models.UniqueConstraint(fields=["group", "model"], name="unique_model_version_model"),
        ]

    def __str__(self) -> str:
        return f"{self.group.name} v{self.version}"
