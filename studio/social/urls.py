from __future__ import annotations

from django.urls import path

from studio.social import views

project = "projects/<uuid:project_id>/"

urlpatterns = [
    path("notifications/", views.notification_list, name="notifications"),
    path("notifications/read-all/", views.notification_read_all, name="notifications-read-all"),
    path("notifications/webhook/", views.webhook_settings, name="notifications-webhook"),
    path("notifications/webhook/test/", views.webhook_test, name="notifications-webhook-test"),
    path("notifications/webhook/rotate/", views.webhook_rotate, name="notifications-webhook-rotate"),
    path("notifications/<uuid:notification_id>/", views.notification_open, name="notification-open"),
    path("notifications/<uuid:notification_id>/read/", views.notification_read, name="notification-read"),
    path(project + "comments/<str:target_type>/<str:target_id>/", views.comment_thread, name="comment-thread"),
    path(project + "comment/<uuid:comment_id>/edit/", views.comment_edit, name="comment-edit"),
    path(project + "comment/<uuid:comment_id>/delete/", views.comment_delete, name="comment-delete"),
    path(project + "runs/<uuid:job_id>/tags/", views.training_job_tags, name="training-job-tags"),
    path(project + "runs/<uuid:job_id>/notes/", views.training_job_notes, name="training-job-notes"),
]
