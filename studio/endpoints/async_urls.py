from __future__ import annotations

from django.urls import path

from studio.endpoints import async_api as api

urlpatterns = [
    path("endpoints/<uuid:endpoint_id>/async-invocations", api.AsyncInvocationSubmitApi.as_view(),
         name="api-endpoint-async-invocations"),
    path("async-invocations/<uuid:invocation_id>", api.AsyncInvocationDetailApi.as_view(),
         name="api-async-invocation"),
    path("async-invocations/<uuid:invocation_id>/output", api.AsyncInvocationOutputApi.as_view(),
         name="api-async-invocation-output"),
]
