"""Endpoints serve registered models: variants of instances (worker processes with the model loaded once),
keys to invoke them, async invocations, batch transform jobs, metrics and autoscaling decisions.

The database holds the desired and observed state; the endpoint agent (studio.endpoints.agent) makes
processes match it, and the gateway (studio.endpoints.gateway) routes invocations to in-service
instances from a routing table the agent publishes in Redis.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from studio.accounts.models import Project
from studio.datasets.models import Dataset
from studio.registry.models import Model


class EndpointType(models.TextChoices):
    REALTIME = "realtime", "Real-time"
    SERVERLESS = "serverless", "Serverless"
    ASYNC = "async", "Asynchronous"


class EndpointStatus(models.TextChoices):
    CREATING = "creating", "Creating"
    IN_SERVICE = "in_service", "In service"
    UPDATING = "updating", "Updating"
    FAILED = "failed", "Failed"
    DELETING = "deleting", "Deleting"


class Endpoint(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="endpoints")
    name = models.CharField(max_length=200)
    type = models.CharField(max_length=10, choices=EndpointType.choices)
    status = models.CharField(max_length=10, choices=EndpointStatus.choices, default=EndpointStatus.CREATING,
                              db_index=True)
    status_message = models.CharField(max_length=500, blank=True)
    failure_reason = models.TextField(blank=True)
    # {"max_concurrency": int, "idle_timeout_seconds": int} (serverless)
    serverless = models.JSONField(default=dict, blank=True)
    # {"target_invocations_per_instance": float (per second), "scale_in_cooldown_seconds",
    #  "scale_out_cooldown_seconds"}; empty = instance counts stay at min_instances.
    autoscaling = models.JSONField(default=dict, blank=True)
    # {"max_payload_mb": int, "notification_url": str} (async)
    async_config = models.JSONField(default=dict, blank=True)
    # Bumped by every change of variants or limits: instances of an older version are replaced.
    config_version = models.PositiveIntegerField(default=1)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="unique_endpoint_name")]

    def __str__(self) -> str:
        return self.name


class EndpointVariant(models.Model):
    id = models.BigAutoField(primary_key=True)
    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="variants")
    name = models.CharField(max_length=100)
    # PROTECT: a model an endpoint serves cannot be deleted (the registry answers 409 first).
    model = models.ForeignKey(Model, on_delete=models.PROTECT, related_name="endpoint_variants")
    weight = models.FloatField(default=1.0)
    min_instances = models.PositiveIntegerField(default=1)
    max_instances = models.PositiveIntegerField(default=1)
    # What the autoscaler (or a scale-from-zero request) wants; the agent makes it so.
    desired_instances = models.PositiveIntegerField(default=0)
    last_scaled_at = models.DateTimeField(null=True, blank=True)
    # The last time a request reached this variant: serverless variants scale to zero after the idle timeout.
    last_invoked_at = models.DateTimeField(null=True, blank=True)
    position = models.PositiveSmallIntegerField(default=0)
    # Removed by an update: takes no traffic, its instances drain, and the row goes once they have stopped.
    retired = models.BooleanField(default=False)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return f"{self.endpoint.name}/{self.name}"


class InstanceStatus(models.TextChoices):
    PENDING = "pending", "Pending"        # wanted; no agent has taken it yet
    STARTING = "starting", "Starting"     # an agent is loading the model
    IN_SERVICE = "in_service", "In service"
    DRAINING = "draining", "Draining"     # takes no new requests, finishes in-flight ones
    STOPPED = "stopped", "Stopped"
    FAILED = "failed", "Failed"


LIVE_INSTANCE_STATUSES = (InstanceStatus.PENDING, InstanceStatus.STARTING, InstanceStatus.IN_SERVICE)


class EndpointInstance(models.Model):
    """One worker process serving one variant; its row is claimed and kept alive by an agent."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    variant = models.ForeignKey(EndpointVariant, on_delete=models.CASCADE, related_name="instances")
    config_version = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=10, choices=InstanceStatus.choices, default=InstanceStatus.PENDING,
                              db_index=True)
    status_message = models.CharField(max_length=500, blank=True)
    agent = models.CharField(max_length=200, blank=True)
    url = models.CharField(max_length=200, blank=True, help_text="http://host:port of the instance server")
    pid = models.PositiveIntegerField(null=True, blank=True)
    cold_start = models.BooleanField(default=False, help_text="Started by a request that found no instance.")
    startup_ms = models.FloatField(null=True, blank=True, help_text="Wanted -> in service, in milliseconds.")
    created_at = models.DateTimeField(auto_now_add=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.variant} {self.status}"


class InvokeKey(models.Model):
    """An endpoint's own key for `X-Api-Key`; only a SHA-256 of the secret is kept."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="invoke_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12)
    key_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class ScalingEvent(models.Model):
    """Every autoscaling decision, with its reason, for the endpoint page and the audit of capacity."""

    id = models.BigAutoField(primary_key=True)
    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="scaling_events")
    variant = models.ForeignKey(EndpointVariant, on_delete=models.CASCADE, related_name="scaling_events")
    from_instances = models.PositiveIntegerField()
    to_instances = models.PositiveIntegerField()
    reason = models.CharField(max_length=500)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.from_instances} -> {self.to_instances}: {self.reason[:60]}"


class EndpointMetric(models.Model):
    """Per-variant traffic over one interval (a few seconds), rolled up from the gateways' counters."""

    id = models.BigAutoField(primary_key=True)
    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="metrics")
    variant = models.ForeignKey(EndpointVariant, on_delete=models.CASCADE, related_name="metrics")
    ts = models.FloatField(help_text="Unix time of the interval's end.")
    seconds = models.FloatField()
    invocations = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    throttled = models.PositiveIntegerField(default=0)
    p50_ms = models.FloatField(null=True, blank=True)
    p99_ms = models.FloatField(null=True, blank=True)
    instances = models.PositiveIntegerField(default=0)
    cold_starts = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["ts", "id"]
        indexes = [models.Index(fields=["endpoint", "ts"])]

    def __str__(self) -> str:
        return f"{self.variant_id}@{self.ts:.0f}: {self.invocations}"


class AsyncStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"


class AsyncInvocation(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="async_invocations")
    variant = models.ForeignKey(EndpointVariant, null=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=10, choices=AsyncStatus.choices, default=AsyncStatus.QUEUED, db_index=True)
    input_file = models.CharField(max_length=500, blank=True, help_text="Stored request body.")
    input_dataset = models.ForeignKey(Dataset, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    content_type = models.CharField(max_length=100, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    output_file = models.CharField(max_length=500, blank=True)
    records = models.PositiveIntegerField(null=True, blank=True)
    failure_reason = models.TextField(blank=True)
    notification_status = models.CharField(max_length=200, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.endpoint_id} {self.status}"


class TransformStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    STOPPED = "stopped", "Stopped"


class TransformJob(models.Model):
    """Batch transform: every record of a dataset through a model, output in input order."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="transform_jobs")
    name = models.CharField(max_length=200)
    # SET_NULL: a finished job keeps its record (and its output dataset) after its model is deleted; the
    # registry refuses to delete a model a pending or running job reads.
    model = models.ForeignKey(Model, null=True, on_delete=models.SET_NULL, related_name="transform_jobs")
    input_dataset = models.ForeignKey(Dataset, null=True, on_delete=models.SET_NULL, related_name="transform_inputs")
    output_dataset = models.ForeignKey(Dataset, null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="transform_outputs")
    split_type = models.CharField(max_length=10, default="line")
    batch_strategy = models.CharField(max_length=20, default="multi_record")
    max_payload_mb = models.PositiveIntegerField(default=6)
    max_concurrent = models.PositiveIntegerField(default=2)
    input_filter = models.CharField(max_length=500, blank=True)
    join_source = models.CharField(max_length=10, default="none")
    output_filter = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=10, choices=TransformStatus.choices, default=TransformStatus.PENDING,
                              db_index=True)
    status_message = models.CharField(max_length=500, blank=True)
    failure_reason = models.TextField(blank=True)
    records_total = models.PositiveBigIntegerField(null=True, blank=True)
    records_done = models.PositiveBigIntegerField(default=0)
    parts_total = models.PositiveIntegerField(null=True, blank=True)
    parts_done = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="unique_transform_job_name")]

    def __str__(self) -> str:
        return self.name
