from __future__ import annotations

from django.urls import path

from studio.experiments import views

urlpatterns = [
    path("", views.experiment_list, name="experiment-list"),
    path("compare/", views.experiment_compare, name="experiment-compare"),
]
