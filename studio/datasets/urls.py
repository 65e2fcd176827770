from __future__ import annotations

from django.urls import path

from studio.datasets import views

urlpatterns = [
    path("", views.dataset_list, name="dataset-list"),
    path("<uuid:dataset_id>/", views.dataset_detail, name="dataset-detail"),
    path("<uuid:dataset_id>/download/", views.dataset_download, name="dataset-download"),
    path("<uuid:dataset_id>/delete/", views.dataset_delete, name="dataset-delete"),
]
