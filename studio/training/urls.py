from __future__ import annotations

from django.urls import path

from studio.training import views

urlpatterns = [
    path("", views.training_job_list, name="training-job-list"),
    path("new/", views.training_job_create, name="training-job-create"),
    path("new/hyperparameters/", views.training_job_hyperparameters, name="training-job-hyperparameters"),
    path("new/target/", views.training_job_target_field, name="training-job-target-field"),
    path("<uuid:job_id>/", views.training_job_detail, name="training-job-detail"),
    path("<uuid:job_id>/panel/", views.training_job_panel, name="training-job-panel"),
    path("<uuid:job_id>/stop/", views.training_job_stop, name="training-job-stop"),
    path("<uuid:job_id>/nearest-words/", views.training_job_nearest_words, name="training-job-nearest-words"),
]
