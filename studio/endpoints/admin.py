from __future__ import annotations

from django.contrib import admin

from studio.endpoints.models import (
    AsyncInvocation,
    Endpoint,
    EndpointInstance,
    EndpointMetric,
    EndpointVariant,
    InvokeKey,
    ScalingEvent,
    TransformJob,
)


class VariantInline(admin.TabularInline):
    model = EndpointVariant
    extra = 0


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    list_display = ("name", "project", "type", "status", "created_at")
    list_filter = ("type", "status")
    inlines = [VariantInline]


@admin.register(EndpointInstance)
class EndpointInstanceAdmin(admin.ModelAdmin):
    list_display = ("id", "variant", "status", "agent", "url", "cold_start", "startup_ms", "created_at")
    list_filter = ("status",)


@admin.register(TransformJob)
class TransformJobAdmin(admin.ModelAdmin):
    list_display = ("name", "project", "model", "status", "records_done", "records_total", "created_at")
    list_filter = ("status",)


@admin.register(EndpointVariant)
class EndpointVariantAdmin(admin.ModelAdmin):
    list_display = ("endpoint", "name", "model", "weight", "min_instances", "max_instances", "desired_instances",
                    "retired")
    list_filter = ("retired",)
    search_fields = ("name", "endpoint__name")
    raw_id_fields = ("endpoint", "model")
    list_select_related = ("endpoint", "model")


@admin.register(InvokeKey)
class InvokeKeyAdmin(admin.ModelAdmin):
    list_display = ("name", "endpoint", "prefix", "created_by", "created_at", "last_used_at", "revoked_at")
    search_fields = ("name", "prefix", "endpoint__name")
    raw_id_fields = ("endpoint", "created_by")
    # Only the hash of the secret is kept; neither it nor the prefix means anything typed by hand.
    readonly_fields = ("prefix", "key_hash", "created_at", "last_used_at")


class RecordAdmin(admin.ModelAdmin):
    """What the autoscaler and the metrics rollup wrote: read, never edited. Counting big tables is skipped."""

    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ScalingEvent)
class ScalingEventAdmin(RecordAdmin):
    list_display = ("created_at", "endpoint", "variant", "from_instances", "to_instances", "reason")
    raw_id_fields = ("endpoint", "variant")
    list_select_related = ("endpoint", "variant")


@admin.register(EndpointMetric)
class EndpointMetricAdmin(RecordAdmin):
    list_display = ("endpoint", "variant", "ts", "seconds", "invocations", "errors", "throttled", "p50_ms", "p99_ms",
                    "instances", "cold_starts")
    raw_id_fields = ("endpoint", "variant")
    list_select_related = ("endpoint", "variant")


@admin.register(AsyncInvocation)
class AsyncInvocationAdmin(admin.ModelAdmin):
    list_display = ("id", "endpoint", "status", "size_bytes", "records", "attempts", "created_by", "created_at",
                    "ended_at")
    list_filter = ("status",)
    raw_id_fields = ("endpoint", "variant", "input_dataset", "created_by")
    list_select_related = ("endpoint",)
    readonly_fields = ("input_file", "output_file", "size_bytes", "records", "attempts", "heartbeat_at",
                       "created_at", "started_at", "ended_at")
