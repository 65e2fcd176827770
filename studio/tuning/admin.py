from __future__ import annotations

from django.contrib import admin

from studio.tuning.models import TuningJob, TuningTrial


@admin.register(TuningJob)
class TuningJobAdmin(admin.ModelAdmin):
    list_display = ("name", "project", "algorithm", "strategy", "status", "max_jobs", "best_objective", "created_at")
    list_filter = ("status", "strategy", "algorithm")
    search_fields = ("name",)


@admin.register(TuningTrial)
class TuningTrialAdmin(admin.ModelAdmin):
    list_display = ("tuning_job", "number", "training_job", "objective_value", "early_stopped", "rung")
