"""REST API of models (API.md "Models and registry"): thin, reads through scoped selectors."""

from __future__ import annotations

from django.http import HttpResponse
from django.utils.text import slugify
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from studio.accounts.selectors import project_get
from studio.registry import selectors, services
from studio.registry.models import Model


class ModelOut(serializers.ModelSerializer):
    training_job = serializers.UUIDField(source="training_job_id", allow_null=True)

    class Meta:
        model = Model
        fields = ["id", "name", "algorithm", "training_job", "metrics", "size_bytes", "created_at",
                  "hyperparameters", "feature_names", "target"]


class ModelListApi(generics.GenericAPIView):
    serializer_class = ModelOut

    @extend_schema(responses=ModelOut(many=True))
    def get(self, request, project_id):
        project = project_get(user=request.user, project_id=project_id)
        page = self.paginate_queryset(selectors.model_list(user=request.user, project=project))
        return self.get_paginated_response(ModelOut(page, many=True).data)


class ModelDetailApi(APIView):
    @extend_schema(responses=ModelOut)
    def get(self, request, project_id, model_id):
        return Response(ModelOut(_model(request, project_id, model_id)).data)


class ModelDownloadApi(APIView):
    @extend_schema(responses={(200, "application/zip"): OpenApiTypes.BINARY})
    def get(self, request, project_id, model_id):
        return model_zip_response(_model(request, project_id, model_id))


def model_zip_response(model: Model) -> HttpResponse:
    response = HttpResponse(services.model_archive(model=model), content_type="application/zip")
    filename = f"{slugify(model.name) or 'model'}.zip"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _model(request, project_id, model_id) -> Model:
    project = project_get(user=request.user, project_id=project_id)
    return selectors.model_get(user=request.user, project=project, model_id=model_id)
