from __future__ import annotations

from django.contrib import admin

from studio.endpoints.models import Endpoint, EndpointInstance, EndpointVariant, TransformJob


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
