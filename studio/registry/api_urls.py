from __future__ import annotations

from django.urls import path

from studio.registry import api

urlpatterns = [
    path("models", api.ModelListApi.as_view(), name="api-models"),
    path("models/<uuid:model_id>", api.ModelDetailApi.as_view(), name="api-model"),
    path("models/<uuid:model_id>/download", api.ModelDownloadApi.as_view(), name="api-model-download"),
]
