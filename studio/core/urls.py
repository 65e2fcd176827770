from __future__ import annotations

from django.urls import path

from studio.core import views

urlpatterns = [
    path("", views.home, name="home"),
    path("health/", views.health, name="health"),
]
