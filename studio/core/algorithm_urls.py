"""Pages of the algorithm catalog, inside a project (so the project's navigation and role apply)."""

from __future__ import annotations

from django.urls import path

from studio.core import views

urlpatterns = [
    path("", views.algorithm_list, name="algorithm-list"),
    path("<str:algorithm>/", views.algorithm_detail, name="algorithm-detail"),
]
