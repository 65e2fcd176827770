from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from studio.accounts.models import Project
from studio.datasets.models import Dataset
from studio.training.models import MissingValues, TrainingJob


class TuningStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    STOPPED = "stopped", "Stopped"


TUNING_FINAL_STATUSES = (TuningStatus.COMPLETED, TuningStatus.FAILED, TuningStatus.STOPPED)


class Strategy(models.TextChoices):
    RANDOM = "random", "Random search"
    GRID = "grid", "Grid search"
    BAYESIAN = "bayesian", "Bayesian optimisation"
    HYPERBAND = "hyperband", "Hyperband"


class EarlyStopping(models.TextChoices):
    OFF = "off", "Off"
    AUTO = "auto", "Auto (median rule)"


class TuningJob(models.Model):
    """Automatic model tuning: trials are training jobs, chosen by a strategy until a limit is reached.

    The job keeps no strategy state of its own: what to try next is computed from its trials every
    time (studio.tuning.strategies is stateless), so a crashed orchestrator picks up where it was.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="tuning_jobs")
    name = models.CharField(max_length=200)
    algorithm = models.CharField(max_length=60)
    dataset = models.ForeignKey(Dataset, null=True, on_delete=models.SET_NULL, related_name="tuning_jobs")
    validation_dataset = models.ForeignKey(
        Dataset, null=True, blank=True, on_delete=models.SET_NULL, related_name="validation_tuning_jobs"
    )
    target = models.CharField(max_length=200, blank=True)
    validation_fraction = models.FloatField(default=0.2)
    missing_values = models.CharField(max_length=10, choices=MissingValues.choices, default=MissingValues.MEAN)

    objective_metric = models.CharField(max_length=100)
    objective_goal = models.CharField(max_length=10)
    # {"<param>": {"type": "continuous"|"integer"|"categorical", "min", "max", "values", "scale"}}, scale resolved.
    ranges = models.JSONField(default=dict, blank=True)
    static_hyperparameters = models.JSONField(default=dict, blank=True)
    strategy = models.CharField(max_length=10, choices=Strategy.choices)
    max_jobs = models.PositiveIntegerField()
    max_parallel_jobs = models.PositiveIntegerField()
    max_runtime_seconds = models.PositiveIntegerField(null=True, blank=True)
    early_stopping = models.CharField(max_length=4, choices=EarlyStopping.choices, default=EarlyStopping.OFF)
    # {"target_value": float?, "best_not_improving_jobs": int?}
    completion = models.JSONField(default=dict, blank=True)
    # {"parents": [tuning job ids], "type": "identical_data"|"transfer_learning"} or {}
    warm_start = models.JSONField(default=dict, blank=True)
    autotune = models.BooleanField(default=False)
    # What Autotune chose and why: [{"setting", "choice", "reason"}].
    autotune_report = models.JSONField(default=list, blank=True)
    # Hyperband only: {"parameter": "epochs", "min_resource", "max_resource", "eta"}.
    hyperband = models.JSONField(default=dict, blank=True)
    seed = models.PositiveIntegerField(default=0)

    status = models.CharField(max_length=10, choices=TuningStatus.choices, default=TuningStatus.PENDING,
                              db_index=True)
    status_message = models.CharField(max_length=500, blank=True)
    failure_reason = models.TextField(blank=True)
    best_trial = models.ForeignKey("TuningTrial", null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    best_objective = models.FloatField(null=True, blank=True)
    # Bumped by every advance: two orchestrators racing on one job both try the same conditional
    # update and exactly one of them goes on (see services.tuning_job_advance).
    advance_version = models.PositiveIntegerField(default=0)

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="unique_tuning_job_name")]

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.status not in TUNING_FINAL_STATUSES

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.ended_at or timezone.now()
        return round((end - self.started_at).total_seconds(), 3)


class TuningTrial(models.Model):
    """One training job of a tuning job, with what the strategy needs to know about it."""

    id = models.BigAutoField(primary_key=True)
    tuning_job = models.ForeignKey(TuningJob, on_delete=models.CASCADE, related_name="trials")
    training_job = models.OneToOneField(TrainingJob, on_delete=models.CASCADE, related_name="tuning_trial")
    number = models.PositiveIntegerField(help_text="1, 2, 3... in creation order.")
    # The values the strategy chose (the training job holds them merged with the static ones).
    parameters = models.JSONField(default=dict)
    objective_value = models.FloatField(null=True, blank=True)
    early_stopped = models.BooleanField(default=False)
    # Hyperband: a configuration is trained rung by rung, each rung a trial resuming the previous one.
    config = models.PositiveIntegerField(null=True, blank=True)
    bracket = models.PositiveSmallIntegerField(null=True, blank=True)
    rung = models.PositiveSmallIntegerField(null=True, blank=True)
    budget = models.PositiveIntegerField(null=True, blank=True)
    resumed_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["number"]
        constraints = [models.UniqueConstraint(fields=["tuning_job", "number"], name="unique_trial_number")]

    def __str__(self) -> str:
        return f"{self.tuning_job.name} #{self.number}"
