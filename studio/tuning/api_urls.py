from __future__ import annotations

from django.urls import path

from studio.tuning import api

urlpatterns = [
    path("tuning-jobs", api.TuningJobListApi.as_view(), name="api-tuning-jobs"),
    path("tuning-jobs/<uuid:tuning_job_id>", api.TuningJobDetailApi.as_view(), name="api-tuning-job"),
    path("tuning-jobs/<uuid:tuning_job_id>/trials", api.TuningJobTrialsApi.as_view(), name="api-tuning-job-trials"),
    path("tuning-jobs/<uuid:tuning_job_id>/stop", api.TuningJobStopApi.as_view(), name="api-tuning-job-stop"),
]
