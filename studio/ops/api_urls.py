"""/api/v1/ops/...: the admin dashboard's API (site admins only)."""

from __future__ import annotations

from django.urls import path

from studio.ops import api

urlpatterns = [
    path("workers", api.WorkersApi.as_view(), name="api-ops-workers"),
    path("workers/drain", api.WorkerDrainApi.as_view(), name="api-ops-worker-drain"),
    path("workers/resume", api.WorkerResumeApi.as_view(), name="api-ops-worker-resume"),
    path("queues", api.QueuesApi.as_view(), name="api-ops-queues"),
    path("samples", api.SamplesApi.as_view(), name="api-ops-samples"),
    path("jobs", api.JobListApi.as_view(), name="api-ops-jobs"),
    path("jobs/cancel", api.JobCancelApi.as_view(), name="api-ops-job-cancel"),
    path("endpoints", api.EndpointListApi.as_view(), name="api-ops-endpoints"),
    path("endpoints/<uuid:endpoint_id>/scale", api.EndpointScaleApi.as_view(), name="api-ops-endpoint-scale"),
    path("storage", api.StorageApi.as_view(), name="api-ops-storage"),
    path("teams", api.TeamListApi.as_view(), name="api-ops-teams"),
    path("users", api.UserListApi.as_view(), name="api-ops-users"),
    path("failed-tasks", api.FailedTaskListApi.as_view(), name="api-ops-failed-tasks"),
    path("failed-tasks/<int:failed_task_id>", api.FailedTaskDetailApi.as_view(), name="api-ops-failed-task"),
    path("actions", api.AdminActionListApi.as_view(), name="api-ops-actions"),
]
