from __future__ import annotations

from django.urls import path

from studio.endpoints import transform_api as api

urlpatterns = [
    path("transform-jobs", api.TransformJobListApi.as_view(), name="api-transform-jobs"),
    path("transform-jobs/<uuid:transform_job_id>", api.TransformJobDetailApi.as_view(), name="api-transform-job"),
    path("transform-jobs/<uuid:transform_job_id>/stop", api.TransformJobStopApi.as_view(),
         name="api-transform-job-stop"),
]
