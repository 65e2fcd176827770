"""Every websocket route. Each consumer authenticates and checks visibility in connect()."""

from __future__ import annotations

from django.urls import path

from studio.training.consumers import TrainingJobConsumer

websocket_urlpatterns = [
    path("ws/training-jobs/<uuid:job_id>/", TrainingJobConsumer.as_asgi()),
]
