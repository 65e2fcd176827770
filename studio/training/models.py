from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from studio.accounts.models import Project
from studio.datasets.models import Dataset


class JobStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    STOPPED = "stopped", "Stopped"


ACTIVE_STATUSES = (JobStatus.PENDING, JobStatus.RUNNING)
FINAL_STATUSES = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.STOPPED)


class MissingValues(models.TextChoices):
    # How missing numbers in feature columns are handled (studio.datasets.preprocessing).
    MEAN = "mean", "Fill with the column mean"
    MEDIAN = "median", "Fill with the column median"
    ZERO = "zero", "Fill with 0"
    DROP_ROWS = "drop_rows", "Drop rows with a missing value"
    FAIL = "fail", "Fail the job"


class TrainingJob(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="training_jobs")
    name = models.CharField(max_length=200)
    algorithm = models.CharField(max_length=60)
    # PROTECT: a dataset in use by an active job cannot vanish under it (services give a 409 first);
    # finished jobs keep their record after the dataset goes (SET_NULL is applied by the delete service).
    dataset = models.ForeignKey(Dataset, null=True, on_delete=models.SET_NULL, related_name="training_jobs")
    validation_dataset = models.ForeignKey(
        Dataset, null=True, blank=True, on_delete=models.SET_NULL, related_name="validation_jobs"
    )
    target = models.CharField(max_length=200, blank=True)
    validation_fraction = models.FloatField(default=0.2)
    hyperparameters = models.JSONField(default=dict, blank=True)
    max_runtime_seconds = models.PositiveIntegerField(null=True, blank=True)
    missing_values = models.CharField(max_length=10, choices=MissingValues.choices, default=MissingValues.MEAN)
    debugger_rules = models.JSONField(default=list, blank=True)
    rule_results = models.JSONField(default=list, blank=True)
    # Labels and free notes a team puts on a run (studio.social.services): tags are lowercase, unique, and
    # filter the experiments table; notes are plain text.
    tags = models.JSONField(default=list, blank=True)
    notes = models.TextField(blank=True)

    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.PENDING, db_index=True)
    status_message = models.CharField(max_length=500, blank=True)
    failure_reason = models.TextField(blank=True)
    final_metrics = models.JSONField(default=dict, blank=True)
    # Figures (plotly JSON) and tables drawn by the worker after fit, chosen by the model's task
    # (studio.training.plots); small by construction: at most a few thousand sampled points.
    result_plots = models.JSONField(default=list, blank=True)
    stop_requested = models.BooleanField(default=False)
    # The status message a worker writes when it honours a stop request ("Stopped by olivia"), so
    # whoever asked (a user, a tuning job's early stopping) is named without the worker knowing who.
    stop_message = models.CharField(max_length=500, blank=True)

    # Continue training from this job's model instead of starting over (a Hyperband rung resuming the
    # previous one); algorithms that cannot resume restart with the new hyperparameters.
    resume_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    worker = models.CharField(max_length=200, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # When the run task was last sent to the broker: the reconciler re-sends lost messages of
    # pending jobs, but no more often than STUDIO_PENDING_REQUEUE_SECONDS, so a long queue does
    # not fill up with copies.
    enqueued_at = models.DateTimeField(null=True, blank=True)

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="unique_training_job_name")]
        # The experiments runs table lists thousands of runs of a project: newest first, by status, by algorithm.
        indexes = [
            models.Index(fields=["project", "-created_at"], name="training_job_project_created"),
            models.Index(fields=["project", "status"], name="training_job_project_status"),
            models.Index(fields=["project", "algorithm"], name="training_job_project_algo"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None:
            return None
        from django.utils import timezone

        end = self.ended_at or timezone.now()
        return round((end - self.started_at).total_seconds(), 3)

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES


class MetricPoint(models.Model):
    id = models.BigAutoField(primary_key=True)
    job = models.ForeignKey(TrainingJob, on_delete=models.CASCADE, related_name="metric_points")
    name = models.CharField(max_length=100)
    step = models.IntegerField()
    value = models.FloatField()
    ts = models.FloatField(help_text="Unix time the value was measured.")

    class Meta:
        ordering = ["step", "id"]
        constraints = [models.UniqueConstraint(fields=["job", "name", "step"], name="unique_metric_point")]
        indexes = [models.Index(fields=["job", "ts"])]

    def __str__(self) -> str:
        return f"{self.name}@{self.step}={self.value:g}"


class LogLine(models.Model):
    id = models.BigAutoField(primary_key=True)
    job = models.ForeignKey(TrainingJob, on_delete=models.CASCADE, related_name="log_lines")
    seq = models.IntegerField()
    ts = models.FloatField()
    line = models.TextField()

    class Meta:
        ordering = ["seq"]
        constraints = [models.UniqueConstraint(fields=["job", "seq"], name="unique_log_seq")]

    def __str__(self) -> str:
        return f"{self.seq}: {self.line[:80]}"
