from __future__ import annotations

from django.urls import path

from studio.core import api_views

urlpatterns = [
    path("algorithms", api_views.AlgorithmListApi.as_view(), name="api-algorithms"),
    path("projects/<uuid:project_id>/algorithms", api_views.ProjectAlgorithmListApi.as_view(),
         name="api-project-algorithms"),
]
