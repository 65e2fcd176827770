from __future__ import annotations

from django.urls import path

from studio.registry import api

urlpatterns = [
    path("models", api.ModelListApi.as_view(), name="api-models"),
    path("models/<uuid:model_id>", api.ModelDetailApi.as_view(), name="api-model"),
    path("models/<uuid:model_id>/download", api.ModelDownloadApi.as_view(), name="api-model-download"),
    path("models/<uuid:model_id>/lineage", api.ModelLineageApi.as_view(), name="api-model-lineage"),
    path("model-groups", api.ModelGroupListApi.as_view(), name="api-model-groups"),
    path("model-groups/<uuid:group_id>", api.ModelGroupDetailApi.as_view(), name="api-model-group"),
    path("model-groups/<uuid:group_id>/versions", api.ModelVersionListApi.as_view(), name="api-model-versions"),
    path("model-groups/<uuid:group_id>/versions/<int:version>", api.ModelVersionDetailApi.as_view(),
         name="api-model-version"),
]
