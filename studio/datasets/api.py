"""REST API for datasets (API.md "Datasets"): thin views over selectors and services."""

from __future__ import annotations

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from studio.accounts.models import Role
from studio.accounts.permissions import require_role
from studio.accounts.selectors import project_get
from studio.datasets import selectors, services
from studio.datasets.models import Dataset
from studio.datasets.selectors import PREVIEW_MAX_ROWS
from studio.datasets.uploads import raise_if_upload_rejected


class ColumnOut(serializers.Serializer):
    name = serializers.CharField()
    dtype = serializers.ChoiceField(choices=["int", "float", "bool", "string", "empty"])
    missing = serializers.IntegerField(required=False)


class DatasetOut(serializers.ModelSerializer):
    columns = ColumnOut(many=True)
    # null once the user who made it is deleted (SET_NULL), and the schema says so.
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    project = serializers.UUIDField(source="project_id", read_only=True)

    class Meta:
        model = Dataset
        fields = ["id", "project", "name", "kind", "status", "failure_reason", "original_filename", "size_bytes",
                  "sha256", "rows", "columns", "target", "created_at", "created_by"]


class DatasetDetailOut(DatasetOut):
    profile = serializers.JSONField(help_text=(
        "tabular: per-column statistics, histogram bins and top values; text: label_counts, length (words per "
        "text histogram), sample; image: task, image_size, images, class_counts, boxes, original sizes."))

    class Meta(DatasetOut.Meta):
        fields = [*DatasetOut.Meta.fields, "profile"]


class DatasetUploadIn(serializers.Serializer):
    file = serializers.FileField(allow_empty_file=True, help_text=(
        "tabular: a CSV file with a header row; text: CSV or JSONL with a 'text' column and an optional 'label' "
        "column; image: a ZIP of class folders (classification) or of images plus annotations.json (detection)."))
    name = serializers.CharField(required=False, allow_blank=True, max_length=200,
                                 help_text="Defaults to the file name without its extension.")
    kind = serializers.CharField(required=False, allow_blank=True,
                                 help_text="tabular, text or image. Inferred when left out: .jsonl is text, .zip is "
                                           "image, anything else tabular (send kind=text for a text CSV).")
    image_size = serializers.IntegerField(required=False, allow_null=True, min_value=8, max_value=128,
                                          help_text="image datasets: every image is resized to this many pixels "
                                                    "square (default 32; aspect ratio not kept).")
    target = serializers.CharField(required=False, allow_blank=True, max_length=200,
                                   help_text="The column to predict; must be a column of the file.")


class DatasetListApi(generics.GenericAPIView):
    """List a project's datasets, or upload one (multipart, streamed; at most STUDIO_MAX_UPLOAD_MB)."""

    serializer_class = DatasetOut
    parser_classes = [MultiPartParser, FormParser]

    def get_queryset(self):
        project = project_get(user=self.request.user, project_id=self.kwargs["project_id"])
        return selectors.dataset_list(user=self.request.user, project=project)

    @extend_schema(responses=DatasetOut(many=True))
    def get(self, request, project_id):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(DatasetOut(page, many=True).data)

    @extend_schema(
        request={"multipart/form-data": DatasetUploadIn},
        responses={201: DatasetDetailOut, 400: OpenApiResponse(description="Not a usable file (message says why)"),
                   403: OpenApiResponse(description="Viewers cannot upload"),
                   409: OpenApiResponse(description="Duplicate dataset name"),
                   413: OpenApiResponse(description="File larger than the upload limit")},
    )
    def post(self, request, project_id):
        project = project_get(user=request.user, project_id=project_id)
        # Role before size: a viewer learns they may not upload, whatever the file.
        require_role(user=request.user, team=project.team, role=Role.MEMBER)
        raise_if_upload_rejected(request)
        data = DatasetUploadIn(data=request.data)
        data.is_valid(raise_exception=True)
        dataset = services.dataset_upload(
            user=request.user, project=project, upload=data.validated_data["file"],
            name=data.validated_data.get("name", ""), kind=data.validated_data.get("kind", ""),
            target=data.validated_data.get("target", ""), image_size=data.validated_data.get("image_size"),
        )
        return Response(DatasetDetailOut(dataset).data, status=status.HTTP_201_CREATED)


def _dataset(request, project_id, dataset_id) -> Dataset:
    project = project_get(user=request.user, project_id=project_id)
    return selectors.dataset_get(user=request.user, project=project, dataset_id=dataset_id)


class DatasetDetailApi(APIView):
    @extend_schema(responses=DatasetDetailOut)
    def get(self, request, project_id, dataset_id):
        return Response(DatasetDetailOut(_dataset(request, project_id, dataset_id)).data)

    @extend_schema(responses={204: None, 403: OpenApiResponse(description="Viewers cannot delete"),
                              409: OpenApiResponse(description="A pending or running training job uses it")})
    def delete(self, request, project_id, dataset_id):
        services.dataset_delete(user=request.user, dataset=_dataset(request, project_id, dataset_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class DatasetPreviewApi(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("rows", int, description=f"Rows, 0 to {PREVIEW_MAX_ROWS} (default 50).")],
        responses=inline_serializer("DatasetPreview", {
            "columns": serializers.ListField(child=serializers.CharField()),
            "rows": serializers.ListField(child=serializers.ListField(child=serializers.CharField())),
        }),
    )
    def get(self, request, project_id, dataset_id):
        dataset = _dataset(request, project_id, dataset_id)
        raw = request.query_params.get("rows", "50")
        try:
            rows = int(raw)
        except ValueError:
            rows = -1
        if rows < 0:
            message = f"rows must be a whole number from 0 to {PREVIEW_MAX_ROWS} (got '{raw}')."
            raise ValidationError({"rows": [message]})
        return Response(selectors.dataset_preview(dataset=dataset, rows=min(rows, PREVIEW_MAX_ROWS)))


class DatasetDownloadApi(APIView):
    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})
    def get(self, request, project_id, dataset_id):
        dataset = _dataset(request, project_id, dataset_id)
        # The documented type whatever the file's name: the uploader chose the name, not how clients treat it.
        return FileResponse(selectors.dataset_open(dataset=dataset), as_attachment=True,
                            filename=selectors.dataset_download_name(dataset=dataset),
                            content_type="application/octet-stream")

    def perform_content_negotiation(self, request, force=False):
        # The body is a file whatever the client accepts; only errors are rendered (as JSON).
        return super().perform_content_negotiation(request, force=True)

