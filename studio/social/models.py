"""Comments on a project's objects, in-app notifications, and each user's notification webhook."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from studio.accounts.models import Project


class TargetType(models.TextChoices):
    """What a comment can be about; each maps to a scoped selector in studio.social.selectors."""

    TRAINING_JOB = "training_job", "Training job"
    TUNING_JOB = "tuning_job", "Tuning job"
    MODEL = "model", "Model"
    ENDPOINT = "endpoint", "Endpoint"
    PIPELINE_EXECUTION = "pipeline_execution", "Pipeline execution"


COMMENT_MAX_LENGTH = 10_000


class Comment(models.Model):
    """A plain-text comment (never rendered as markdown or HTML) on one object of a project.

    The target is generic (type + id string) rather than a foreign key per kind: comments outlive nothing
    they could dangle on badly (a deleted project takes them along) and one table serves every page.
    Deleting is soft so a thread keeps its shape ("comment deleted") and the audit trail stays whole.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="comments")
    target_type = models.CharField(max_length=20, choices=TargetType.choices)
    target_id = models.CharField(max_length=64)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    body = models.TextField(max_length=COMMENT_MAX_LENGTH)
    created_at = models.DateTimeField(auto_now_add=True)
    edited_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["project", "target_type", "target_id", "created_at"],
                                name="comment_target_idx")]

    def __str__(self) -> str:
        return f"{self.author} on {self.target_type} {self.target_id}: {self.body[:40]}"

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


class NotificationKind(models.TextChoices):
    TRAINING_JOB_COMPLETED = "training_job.completed", "Training job completed"
    TRAINING_JOB_FAILED = "training_job.failed", "Training job failed"
    TRAINING_JOB_STOPPED = "training_job.stopped", "Training job stopped"
    TUNING_JOB_COMPLETED = "tuning_job.completed", "Tuning job completed"
    TUNING_JOB_FAILED = "tuning_job.failed", "Tuning job failed"
    TUNING_JOB_STOPPED = "tuning_job.stopped", "Tuning job stopped"
    TRANSFORM_JOB_COMPLETED = "transform_job.completed", "Batch transform job completed"
    TRANSFORM_JOB_FAILED = "transform_job.failed", "Batch transform job failed"
    TRANSFORM_JOB_STOPPED = "transform_job.stopped", "Batch transform job stopped"
    PIPELINE_EXECUTION_COMPLETED = "pipeline_execution.completed", "Pipeline execution completed"
    PIPELINE_EXECUTION_FAILED = "pipeline_execution.failed", "Pipeline execution failed"
    PIPELINE_EXECUTION_STOPPED = "pipeline_execution.stopped", "Pipeline execution stopped"
    RULE_FIRED = "rule.fired", "Debugger rule fired"
    OTHER = "other", "Other"


class Notification(models.Model):
    """Something a user should know about; shown under the bell until read."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    project = models.ForeignKey(Project, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    # A NotificationKind value; no DB choices, so a new kind (another app's) needs no migration here.
    kind = models.CharField(max_length=40)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    # A path inside the studio (/projects/.../training/<id>/); absolute only in webhook payloads.
    url = models.CharField(max_length=500, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "read_at", "created_at"], name="notification_unread_idx")]

    def __str__(self) -> str:
        return f"{self.user}: {self.title}"

    @property
    def is_read(self) -> bool:
        return self.read_at is not None


class Webhook(models.Model):
    """A user's webhook: notifications are also POSTed there, signed with HMAC-SHA256 of ``secret``.

    The secret is kept in clear because the studio must sign with it; it is the user's own, shown only to
    them, and rotated on demand.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook")
    url = models.CharField(max_length=2000, blank=True)
    secret = models.CharField(max_length=100)
    enabled = models.BooleanField(default=False)
    # Notification kinds to send; empty means every kind.
    events = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.user}'s webhook ({'on' if self.enabled else 'off'})"

    def wants(self, kind: str) -> bool:
        return self.enabled and bool(self.url) and (not self.events or kind in self.events)


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"
    REFUSED = "refused", "Refused"


class WebhookDelivery(models.Model):
    """One POST of one event to a webhook: the task's unit of work, so a redelivered task does nothing twice."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    notification = models.ForeignKey(Notification, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="deliveries")
    event = models.CharField(max_length=40)
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_result = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.event} → {self.webhook.url} ({self.status})"
