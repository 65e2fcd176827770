from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from studio.endpoints.urls import transform_urlpatterns

api_v1 = [
    path("", include("studio.accounts.api_urls")),
    path("", include("studio.core.api_urls")),
    path("", include("studio.training.debugger_api")),
    path("", include("studio.endpoints.async_urls")),
    path("projects/<uuid:project_id>/", include("studio.datasets.api_urls")),
    path("projects/<uuid:project_id>/", include("studio.training.api_urls")),
    path("projects/<uuid:project_id>/", include("studio.registry.api_urls")),
    path("projects/<uuid:project_id>/", include("studio.tuning.api_urls")),
    path("projects/<uuid:project_id>/", include("studio.endpoints.transform_urls")),
    path("projects/<uuid:project_id>/", include("studio.endpoints.api_urls")),
    path("projects/<uuid:project_id>/", include("studio.pipelines.api_urls")),
    path("projects/<uuid:project_id>/", include("studio.experiments.api_urls")),
    path("", include("studio.social.api_urls")),
    path("ops/", include("studio.ops.api_urls")),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include("studio.core.urls")),
    path("", include("studio.accounts.urls")),
    path("projects/<uuid:project_id>/data/", include("studio.datasets.urls")),
    path("projects/<uuid:project_id>/training/", include("studio.training.urls")),
    path("projects/<uuid:project_id>/tuning/", include("studio.tuning.urls")),
    path("projects/<uuid:project_id>/models/", include("studio.registry.urls")),
    path("projects/<uuid:project_id>/endpoints/", include("studio.endpoints.urls")),
    path("projects/<uuid:project_id>/transform-jobs/", include(transform_urlpatterns)),
    path("projects/<uuid:project_id>/pipelines/", include("studio.pipelines.urls")),
    path("projects/<uuid:project_id>/experiments/", include("studio.experiments.urls")),
    path("", include("studio.social.urls")),
    path("ops/", include("studio.ops.urls")),
    path("projects/<uuid:project_id>/algorithms/", include("studio.core.algorithm_urls")),
]

# A dependency down (Redis, the broker, the database) is a 503, a full disk a 507: see studio/core/outages.py.
handler500 = "studio.core.outages.server_error"
