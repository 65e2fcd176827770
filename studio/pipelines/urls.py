from __future__ import annotations

from django.urls import path

from studio.pipelines import views

execution = "<uuid:pipeline_id>/executions/<uuid:execution_id>/"

urlpatterns = [
    path("", views.pipeline_list, name="pipeline-list"),
    path("new/", views.pipeline_create, name="pipeline-create"),
    path("dag/", views.pipeline_dag, name="pipeline-dag"),
    path("templates/", views.pipeline_gallery, name="pipeline-gallery"),
    path("templates/<slug:slug>/", views.pipeline_template_use, name="pipeline-template-use"),
    path("<uuid:pipeline_id>/", views.pipeline_detail, name="pipeline-detail"),
    path("<uuid:pipeline_id>/run/", views.pipeline_run, name="pipeline-run"),
    path("<uuid:pipeline_id>/delete/", views.pipeline_delete, name="pipeline-delete"),
    path("<uuid:pipeline_id>/schedules/", views.schedule_create, name="pipeline-schedule-create"),
    path("<uuid:pipeline_id>/schedules/<uuid:schedule_id>/delete/", views.schedule_delete,
         name="pipeline-schedule-delete"),
    path("<uuid:pipeline_id>/schedules/<uuid:schedule_id>/toggle/", views.schedule_toggle,
         name="pipeline-schedule-toggle"),
    path("<uuid:pipeline_id>/triggers/", views.trigger_create, name="pipeline-trigger-create"),
    path("<uuid:pipeline_id>/triggers/<uuid:trigger_id>/delete/", views.trigger_delete,
         name="pipeline-trigger-delete"),
    path(execution, views.execution_detail, name="pipeline-execution-detail"),
    path(execution + "panel/", views.execution_panel, name="pipeline-execution-panel"),
    path(execution + "stop/", views.execution_stop, name="pipeline-execution-stop"),
    path(execution + "retry/", views.execution_retry, name="pipeline-execution-retry"),
]
