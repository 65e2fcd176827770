"""Endpoint pages under /projects/<pid>/endpoints/ and batch transform pages under /projects/<pid>/transform-jobs/."""

from __future__ import annotations

from django.urls import path

from studio.endpoints import views

urlpatterns = [
    path("", views.endpoint_list, name="endpoint-list"),
    path("new/", views.endpoint_create, name="endpoint-create"),
    path("<uuid:endpoint_id>/", views.endpoint_detail, name="endpoint-detail"),
    path("<uuid:endpoint_id>/panel/", views.endpoint_panel, name="endpoint-panel"),
    path("<uuid:endpoint_id>/edit/", views.endpoint_edit, name="endpoint-edit"),
    path("<uuid:endpoint_id>/delete/", views.endpoint_delete, name="endpoint-delete"),
    path("<uuid:endpoint_id>/keys/", views.invoke_key_create, name="endpoint-key-create"),
    path("<uuid:endpoint_id>/keys/<uuid:key_id>/revoke/", views.invoke_key_revoke, name="endpoint-key-revoke"),
]

# Included by studio/urls.py under its own prefix: batch transform is not one endpoint's page.
transform_urlpatterns = [
    path("", views.transform_job_list, name="transform-job-list"),
    path("new/", views.transform_job_create, name="transform-job-create"),
    path("<uuid:transform_job_id>/", views.transform_job_detail, name="transform-job-detail"),
    path("<uuid:transform_job_id>/panel/", views.transform_job_panel, name="transform-job-panel"),
    path("<uuid:transform_job_id>/stop/", views.transform_job_stop, name="transform-job-stop"),
]
