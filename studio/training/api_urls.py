from __future__ import annotations

from django.urls import path

from studio.training import api

urlpatterns = [
    path("training-jobs", api.TrainingJobListApi.as_view(), name="api-training-jobs"),
    path("training-jobs/<uuid:job_id>", api.TrainingJobDetailApi.as_view(), name="api-training-job"),
    path("training-jobs/<uuid:job_id>/metrics", api.TrainingJobMetricsApi.as_view(), name="api-training-job-metrics"),
    path("training-jobs/<uuid:job_id>/logs", api.TrainingJobLogsApi.as_view(), name="api-training-job-logs"),
    path("training-jobs/<uuid:job_id>/stop", api.TrainingJobStopApi.as_view(), name="api-training-job-stop"),
]
