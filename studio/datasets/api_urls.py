from __future__ import annotations

from django.urls import path

from studio.datasets import api

urlpatterns = [
    path("datasets", api.DatasetListApi.as_view(), name="api-datasets"),
    path("datasets/<uuid:dataset_id>", api.DatasetDetailApi.as_view(), name="api-dataset"),
    path("datasets/<uuid:dataset_id>/preview", api.DatasetPreviewApi.as_view(), name="api-dataset-preview"),
    path("datasets/<uuid:dataset_id>/download", api.DatasetDownloadApi.as_view(), name="api-dataset-download"),
]
