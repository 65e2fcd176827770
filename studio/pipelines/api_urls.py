from __future__ import annotations

from django.urls import path

from studio.pipelines import api

PIPELINE = "pipelines/<uuid:pipeline_id>"
NESTED_EXECUTION = f"{PIPELINE}/executions/<uuid:execution_id>"
# An execution has a project-level address too (the websocket and activity feed carry only its id).
EXECUTION = "pipeline-executions/<uuid:execution_id>"

urlpatterns = [
    path("pipelines", api.PipelineListApi.as_view(), name="api-pipelines"),
    path(PIPELINE, api.PipelineDetailApi.as_view(), name="api-pipeline"),
    path(f"{PIPELINE}/executions", api.PipelineExecutionListApi.as_view(), name="api-pipeline-executions"),
    path(NESTED_EXECUTION, api.ExecutionDetailApi.as_view(), name="api-pipeline-execution"),
    path(f"{NESTED_EXECUTION}/stop", api.ExecutionStopApi.as_view(), name="api-pipeline-execution-stop"),
    path(f"{NESTED_EXECUTION}/retry", api.ExecutionRetryApi.as_view(), name="api-pipeline-execution-retry"),
    path("pipeline-executions", api.ProjectExecutionListApi.as_view(), name="api-project-pipeline-executions"),
    path(EXECUTION, api.ExecutionDetailApi.as_view(), name="api-project-pipeline-execution"),
    path(f"{EXECUTION}/stop", api.ExecutionStopApi.as_view(), name="api-project-pipeline-execution-stop"),
    path(f"{EXECUTION}/retry", api.ExecutionRetryApi.as_view(), name="api-project-pipeline-execution-retry"),
    path(f"{PIPELINE}/schedules", api.ScheduleListApi.as_view(), name="api-pipeline-schedules"),
    path(f"{PIPELINE}/schedules/<uuid:schedule_id>", api.ScheduleDetailApi.as_view(), name="api-pipeline-schedule"),
    path(f"{PIPELINE}/triggers", api.TriggerListApi.as_view(), name="api-pipeline-triggers"),
    path(f"{PIPELINE}/triggers/<uuid:trigger_id>", api.TriggerDetailApi.as_view(), name="api-pipeline-trigger"),
    path("pipeline-templates", api.PipelineTemplateListApi.as_view(), name="api-pipeline-templates"),
    path("pipeline-step-types", api.StepTypeListApi.as_view(), name="api-pipeline-step-types"),
]
