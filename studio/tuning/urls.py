from __future__ import annotations

from django.urls import path

from studio.tuning import views

urlpatterns = [
    path("", views.tuning_job_list, name="tuning-job-list"),
    path("new/", views.tuning_job_create, name="tuning-job-create"),
    path("new/ranges/", views.tuning_job_ranges, name="tuning-job-ranges"),
    path("<uuid:tuning_job_id>/", views.tuning_job_detail, name="tuning-job-detail"),
    path("<uuid:tuning_job_id>/panel/", views.tuning_job_panel, name="tuning-job-panel"),
    path("<uuid:tuning_job_id>/stop/", views.tuning_job_stop, name="tuning-job-stop"),
]
