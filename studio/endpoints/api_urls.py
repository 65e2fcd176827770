from __future__ import annotations

from django.urls import path

from studio.endpoints import api

urlpatterns = [
    path("endpoints", api.EndpointListApi.as_view(), name="api-endpoints"),
    path("endpoints/<uuid:endpoint_id>", api.EndpointDetailApi.as_view(), name="api-endpoint"),
    path("endpoints/<uuid:endpoint_id>/instances", api.EndpointInstancesApi.as_view(), name="api-endpoint-instances"),
    path("endpoints/<uuid:endpoint_id>/metrics", api.EndpointMetricsApi.as_view(), name="api-endpoint-metrics"),
    path("endpoints/<uuid:endpoint_id>/keys", api.InvokeKeyListApi.as_view(), name="api-endpoint-keys"),
    path("endpoints/<uuid:endpoint_id>/keys/<uuid:key_id>", api.InvokeKeyDetailApi.as_view(), name="api-endpoint-key"),
    path("endpoints/<uuid:endpoint_id>/test-invocations", api.EndpointTestInvocationApi.as_view(),
         name="api-endpoint-test-invocations"),
]
