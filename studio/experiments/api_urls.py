from __future__ import annotations

from django.urls import path

from studio.experiments import api

urlpatterns = [
    path("runs", api.RunListApi.as_view(), name="api-runs"),
    path("runs/compare", api.RunCompareApi.as_view(), name="api-runs-compare"),
]
