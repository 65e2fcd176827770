from __future__ import annotations

from django.contrib import admin

from studio.pipelines.models import Pipeline, PipelineExecution, PipelineSchedule, PipelineStep, PipelineTrigger


@admin.register(Pipeline)
class PipelineAdmin(admin.ModelAdmin):
    list_display = ("name", "project", "version", "created_by", "updated_at")
    search_fields = ("name",)


class PipelineStepInline(admin.TabularInline):
    model = PipelineStep
    fields = ("name", "type", "status", "attempts", "cached", "started_at", "ended_at", "status_message")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(PipelineExecution)
class PipelineExecutionAdmin(admin.ModelAdmin):
    list_display = ("pipeline", "number", "status", "trigger", "created_by", "started_at", "ended_at")
    list_filter = ("status", "trigger")
    inlines = [PipelineStepInline]


@admin.register(PipelineStep)
class PipelineStepAdmin(admin.ModelAdmin):
    list_display = ("execution", "name", "type", "status", "attempts", "cached", "heartbeat_at")
    list_filter = ("status", "type", "cached")
    search_fields = ("name",)


@admin.register(PipelineSchedule)
class PipelineScheduleAdmin(admin.ModelAdmin):
    list_display = ("pipeline", "name", "cron", "timezone", "enabled", "last_run_at")


@admin.register(PipelineTrigger)
class PipelineTriggerAdmin(admin.ModelAdmin):
    list_display = ("pipeline", "event", "parameter", "enabled", "last_fired_at")
