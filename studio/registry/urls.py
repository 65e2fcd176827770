from __future__ import annotations

from django.urls import path

from studio.registry import views

urlpatterns = [
    path("", views.model_list, name="model-list"),
    path("<uuid:model_id>/", views.model_detail, name="model-detail"),
    path("<uuid:model_id>/download/", views.model_download, name="model-download"),
    path("<uuid:model_id>/delete/", views.model_delete, name="model-delete"),
    path("<uuid:model_id>/register/", views.model_register, name="model-register"),
    path("groups/new/", views.model_group_create, name="model-group-create"),
    path("groups/<uuid:group_id>/", views.model_group_detail, name="model-group-detail"),
    path("groups/<uuid:group_id>/delete/", views.model_group_delete, name="model-group-delete"),
    path("groups/<uuid:group_id>/versions/<int:version>/approval/", views.model_version_approval,
         name="model-version-approval"),
]
