"""Every websocket route. Each consumer authenticates and checks visibility in connect()."""

from __future__ import annotations

from django.urls import path

from studio.accounts.consumers import ProjectConsumer
from studio.endpoints.consumers import EndpointConsumer
from studio.ops.consumers import OpsConsumer
from studio.pipelines.consumers import PipelineExecutionConsumer
from studio.social.consumers import CommentThreadConsumer, NotificationConsumer
from studio.training.consumers import TrainingJobConsumer
from studio.tuning.consumers import TuningJobConsumer

websocket_urlpatterns = [
    path("ws/training-jobs/<uuid:job_id>/", TrainingJobConsumer.as_asgi()),
    path("ws/tuning-jobs/<uuid:tuning_job_id>/", TuningJobConsumer.as_asgi()),
    path("ws/endpoints/<uuid:endpoint_id>/", EndpointConsumer.as_asgi()),
    path("ws/pipeline-executions/<uuid:execution_id>/", PipelineExecutionConsumer.as_asgi()),
    path("ws/projects/<uuid:project_id>/", ProjectConsumer.as_asgi()),
    path("ws/projects/<uuid:project_id>/comments/<str:target_type>/<str:target_id>/", CommentThreadConsumer.as_asgi()),
    path("ws/notifications/", NotificationConsumer.as_asgi()),
    path("ws/ops/", OpsConsumer.as_asgi()),
]
