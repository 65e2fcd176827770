"""Admin dashboard pages under /ops/ (site admins only)."""

from __future__ import annotations

from django.urls import path

from studio.ops import views

urlpatterns = [
    path("", views.dashboard, name="ops-dashboard"),
    path("panels/workers/", views.workers_panel, name="ops-panel-workers"),
    path("panels/jobs/", views.jobs_panel, name="ops-panel-jobs"),
    path("panels/endpoints/", views.endpoints_panel, name="ops-panel-endpoints"),
    path("panels/usage/", views.usage_panel, name="ops-panel-usage"),
    path("panels/failed-tasks/", views.failed_panel, name="ops-panel-failed"),
    path("panels/actions/", views.actions_panel, name="ops-panel-actions"),
    path("jobs/cancel/", views.job_cancel, name="ops-job-cancel"),
    path("workers/drain/", views.worker_drain, name="ops-worker-drain"),
    path("workers/resume/", views.worker_resume, name="ops-worker-resume"),
    path("endpoints/<uuid:endpoint_id>/scale/", views.endpoint_scale, name="ops-endpoint-scale"),
    path("failed-tasks/", views.failed_task_list, name="ops-failed-tasks"),
    path("failed-tasks/<int:failed_task_id>/", views.failed_task_detail, name="ops-failed-task"),
]
