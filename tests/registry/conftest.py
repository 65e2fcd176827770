from __future__ import annotations

from studio.endpoints.models import Endpoint, EndpointVariant
from studio.registry.models import Model
from tests.training.factories import enqueued  # noqa: F401


def bare_model(project, name: str = "m", **kwargs) -> Model:
    """A model row without stored files: enough for the registry, which never opens them."""
    kwargs.setdefault("algorithm", "linear-learner")
    kwargs.setdefault("artifact_prefix", f"projects/{project.id}/models/{name}/")
    return Model.objects.create(project=project, name=name, **kwargs)


def deploy(model: Model, name: str = "prod", variant: str = "AllTraffic") -> EndpointVariant:
    """An endpoint with one variant serving ``model``, as rows only (no instance is started)."""
    endpoint = Endpoint.objects.create(project=model.project, name=name, type="realtime", status="in_service")
    return EndpointVariant.objects.create(endpoint=endpoint, name=variant, model=model)
