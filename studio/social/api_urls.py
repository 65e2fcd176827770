from __future__ import annotations

from django.urls import path

from studio.social import api

project = "projects/<uuid:project_id>/"

urlpatterns = [
    path(project + "comments", api.CommentListApi.as_view(), name="api-comments"),
    path(project + "comments/<uuid:comment_id>", api.CommentDetailApi.as_view(), name="api-comment"),
    path(project + "training-jobs/<uuid:job_id>/tags", api.TrainingJobTagsApi.as_view(),
         name="api-training-job-tags"),
    path(project + "training-jobs/<uuid:job_id>/notes", api.TrainingJobNotesApi.as_view(),
         name="api-training-job-notes"),
    path("notifications", api.NotificationListApi.as_view(), name="api-notifications"),
    path("notifications/read-all", api.NotificationReadAllApi.as_view(), name="api-notifications-read-all"),
    path("notifications/<uuid:notification_id>/read", api.NotificationReadApi.as_view(),
         name="api-notification-read"),
    path("notifications/webhook", api.WebhookApi.as_view(), name="api-notification-webhook"),
    path("notifications/webhook/test", api.WebhookTestApi.as_view(), name="api-notification-webhook-test"),
    path("notifications/webhook/rotate-secret", api.WebhookRotateSecretApi.as_view(),
         name="api-notification-webhook-rotate"),
    path("notifications/webhook/deliveries", api.WebhookDeliveryListApi.as_view(),
         name="api-notification-webhook-deliveries"),
]
