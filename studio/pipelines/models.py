"""Pipelines: a definition (a DAG of steps), its executions and each execution's steps.

An execution keeps a snapshot of the definition it ran, so editing a pipeline never changes history.
Step rows are the truth of where an execution is; the engine (studio.pipelines.engine) computes what
to do next from them every time, so a crashed orchestrator picks up where it was.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from studio.accounts.models import Project


class StepType(models.TextChoices):
    PROCESSING = "processing", "Processing"
    TRAINING = "training", "Training"
    TUNING = "tuning", "Tuning"
    CONDITION = "condition", "Condition"
    REGISTER = "register", "Register model"
    DEPLOY = "deploy", "Deploy"
    TRANSFORM = "transform", "Batch transform"
    FAIL = "fail", "Fail"


class Pipeline(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="pipelines")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    # {"parameters": {name: default}, "steps": [{name, type, depends_on, arguments, retry?, cache?}]}, validated.
    definition = models.JSONField(default=dict)
    # Bumped on every definition change; executions record the version they ran.
    version = models.PositiveIntegerField(default=1)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="unique_pipeline_name")]

    def __str__(self) -> str:
        return self.name


class ExecutionStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    STOPPING = "stopping", "Stopping"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    STOPPED = "stopped", "Stopped"


EXECUTION_FINAL_STATUSES = (ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.STOPPED)


class TriggerKind(models.TextChoices):
    MANUAL = "manual", "Manual"
    SCHEDULE = "schedule", "Schedule"
    DATASET = "dataset", "New dataset"
    MODEL_APPROVED = "model_approved", "Model version approved"


class PipelineExecution(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="executions")
    # Denormalised for scoping without a join through the pipeline.
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="pipeline_executions")
    number = models.PositiveIntegerField()
    definition = models.JSONField(default=dict)
    pipeline_version = models.PositiveIntegerField(default=1)
    # Every parameter resolved: the definition's defaults overridden by the run's values.
    parameters = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=ExecutionStatus.choices, default=ExecutionStatus.PENDING,
                              db_index=True)
    status_message = models.CharField(max_length=500, blank=True)
    failure_reason = models.TextField(blank=True)
    trigger = models.CharField(max_length=16, choices=TriggerKind.choices, default=TriggerKind.MANUAL)
    # What started it: {"schedule": id} / {"trigger": id, "dataset": id} / {"trigger": id, "model_version": id}.
    trigger_detail = models.JSONField(default=dict, blank=True)
    # Guards the engine against two advances of one execution at once (compare-and-swap on this counter).
    advance_version = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    last_advanced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["pipeline", "number"], name="unique_execution_number")]

    def __str__(self) -> str:
        return f"{self.pipeline.name} #{self.number}"

    @property
    def is_final(self) -> bool:
        return self.status in EXECUTION_FINAL_STATUSES


class StepStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    CACHED = "cached", "Cached"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"
    STOPPED = "stopped", "Stopped"


STEP_FINAL_STATUSES = (StepStatus.COMPLETED, StepStatus.CACHED, StepStatus.FAILED, StepStatus.SKIPPED,
                       StepStatus.STOPPED)
# A dependant may start once every dependency is in one of these.
STEP_DONE_STATUSES = (StepStatus.COMPLETED, StepStatus.CACHED)


class PipelineStep(models.Model):
    id = models.BigAutoField(primary_key=True)
    execution = models.ForeignKey(PipelineExecution, on_delete=models.CASCADE, related_name="steps")
    name = models.CharField(max_length=100)
    type = models.CharField(max_length=12, choices=StepType.choices)
    # Position in the definition, for stable ordering in lists and the DAG.
    position = models.PositiveIntegerField(default=0)
    depends_on = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=10, choices=StepStatus.choices, default=StepStatus.PENDING, db_index=True)
    status_message = models.CharField(max_length=500, blank=True)
    failure_reason = models.TextField(blank=True)
    # Arguments with every ref replaced by its value (ids for datasets/models/...), stored when the step starts.
    arguments = models.JSONField(default=dict, blank=True)
    # {"model": id, "dataset": id, "endpoint": id, "model_version": id, "metrics": {name: value}, ...}
    outputs = models.JSONField(default=dict, blank=True)
    # The asynchronous job the step waits on: {"kind": "training_job"|"tuning_job"|"transform_job"|"endpoint", "id"}.
    job = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # sha256 of type + resolved arguments + input content hashes; empty when caching is off for the step.
    cache_key = models.CharField(max_length=64, blank=True, db_index=True)
    cached = models.BooleanField(default=False)
    cached_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    # Touched by the worker running a synchronous step; a stale one means the worker died.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # When a worker started the current attempt; None while its task still waits in the queue (which is not a
    # dead worker: a step may queue behind long jobs for minutes).
    executing_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["execution", "position"]
        constraints = [models.UniqueConstraint(fields=["execution", "name"], name="unique_step_name")]

    def __str__(self) -> str:
        return f"{self.execution_id}:{self.name}"

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()


class PipelineSchedule(models.Model):
    """A cron schedule that starts executions; the timing lives in a django-celery-beat PeriodicTask."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="schedules")
    name = models.CharField(max_length=200, blank=True)
    cron = models.CharField(max_length=100)
    timezone = models.CharField(max_length=63, default="UTC")
    parameters = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    periodic_task = models.OneToOneField("django_celery_beat.PeriodicTask", null=True, blank=True,
                                         on_delete=models.SET_NULL, related_name="+")
    last_run_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.pipeline.name}: {self.cron}"


class TriggerEvent(models.TextChoices):
    DATASET_CREATED = "dataset_created", "A new dataset is ready in the project"
    MODEL_VERSION_APPROVED = "model_version_approved", "A model version is approved"


class PipelineTrigger(models.Model):
    """Starts an execution when an event happens in the pipeline's project."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="triggers")
    event = models.CharField(max_length=30, choices=TriggerEvent.choices)
    # dataset_created: {"name_pattern": "customers*"} (fnmatch, optional);
    # model_version_approved: {"model_group": "<name>"} (optional).
    filter = models.JSONField(default=dict, blank=True)
    # The pipeline parameter that receives the event's object id (a dataset id or a model version's model id).
    parameter = models.CharField(max_length=100, blank=True)
    parameters = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    last_fired_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.pipeline.name}: on {self.event}"
