from __future__ import annotations

from django.contrib import admin

from studio.social.models import Comment, Notification, Webhook, WebhookDelivery


@admin.register(Comment)
class CommentAdmin(admin.ModelAdmin):
    list_display = ("project", "target_type", "target_id", "author", "created_at", "edited_at", "deleted_at")
    list_filter = ("target_type",)
    search_fields = ("body", "author__username")


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("user", "kind", "title", "project", "created_at", "read_at")
    list_filter = ("kind",)
    search_fields = ("title", "user__username")


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    list_display = ("user", "url", "enabled", "updated_at")
    exclude = ("secret",)  # a user's signing secret is theirs; admins need not read it


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ("webhook", "event", "status", "attempts", "last_result", "created_at")
    list_filter = ("status", "event")
