from __future__ import annotations

from django.urls import path

from studio.registry import views

urlpatterns = [
    path("", views.model_list, name="model-list"),
    path("<uuid:model_id>/", views.model_detail, name="model-detail"),
    path("<uuid:model_id>/download/", views.model_download, name="model-download"),
]
