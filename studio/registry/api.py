"""REST API of models, model groups and versions (API.md "Models and registry"): thin, reads through scoped
selectors and writes through services."""

from __future__ import annotations

from django.http import HttpResponse
from django.utils.text import slugify
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from studio.accounts.models import Role
from studio.accounts.permissions import require_role
from studio.accounts.selectors import project_get
from studio.core.api import StrictCharField
from studio.registry import selectors, services
from studio.registry.models import ApprovalStatus, Model, ModelGroup, ModelVersion
from studio.registry.selectors import LINEAGE_KINDS


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


class ModelMembershipOut(serializers.ModelSerializer):
    group = serializers.UUIDField(source="group_id")
    group_name = serializers.CharField(source="group.name")

    class Meta:
        model = ModelVersion
        fields = ["group", "group_name", "version", "approval_status"]


class ModelDetailOut(ModelOut):
    versions = serializers.SerializerMethodField(help_text="The model groups it is registered in, as which version.")

    class Meta(ModelOut.Meta):
        fields = [*ModelOut.Meta.fields, "versions"]

    @extend_schema_field(ModelMembershipOut(many=True))
    def get_versions(self, model: Model) -> list[dict]:
        return ModelMembershipOut(selectors.model_versions_of(model=model), many=True).data


class ModelDetailApi(APIView):
    @extend_schema(responses=ModelDetailOut)
    def get(self, request, project_id, model_id):
        return Response(ModelDetailOut(_model(request, project_id, model_id)).data)

    @extend_schema(responses={
        204: None, 403: OpenApiResponse(description="Viewers cannot delete"),
        409: OpenApiResponse(description="An endpoint serves it, an active transform or training job reads it, "
                                         "or it is a version of a model group (the message names which)")})
    def delete(self, request, project_id, model_id):
        services.model_delete(user=request.user, model=_model(request, project_id, model_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class LineageNodeOut(serializers.Serializer):
    id = serializers.CharField(help_text="'<kind>:<id of the object>'")
    # A CharField, not a ChoiceField: datasets already name their "kind" enum in the schema.
    kind = serializers.CharField(help_text=f"One of {', '.join(LINEAGE_KINDS)}.")
    label = serializers.CharField()
    url = serializers.CharField(help_text="The object's page.")


LineageOut = inline_serializer("ModelLineage", {
    "nodes": LineageNodeOut(many=True),
    "edges": serializers.ListField(child=serializers.DictField(child=serializers.CharField()),
                                   help_text='[{"from": node id, "to": node id}]: data flows from -> to.'),
})


class ModelLineageApi(APIView):
    @extend_schema(responses=LineageOut)
    def get(self, request, project_id, model_id):
        return Response(selectors.model_lineage(model=_model(request, project_id, model_id)))


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


# --- model groups and versions ----------------------------------------------------------------


class ModelGroupIn(serializers.Serializer):
    name = StrictCharField(max_length=services.GROUP_NAME_MAX)
    description = StrictCharField(required=False, allow_blank=True, default="")


class ModelGroupOut(serializers.ModelSerializer):
    versions_count = serializers.IntegerField()
    latest_version = serializers.IntegerField(allow_null=True, help_text="The highest version number, if any.")
    # null once the user who made it is deleted (SET_NULL), and the schema says so.
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = ModelGroup
        fields = ["id", "name", "description", "versions_count", "latest_version", "created_by", "created_at"]


class ModelVersionIn(serializers.Serializer):
    model = StrictCharField(help_text="Id of a model of this project.")
    description = StrictCharField(required=False, allow_blank=True, default="")


class ModelVersionPatch(serializers.Serializer):
    approval_status = serializers.ChoiceField(choices=ApprovalStatus.choices, required=False)
    description = StrictCharField(required=False, allow_blank=True)

    def validate(self, attrs):
        if not attrs:
            raise serializers.ValidationError("Give approval_status and/or description.")
        return attrs


class ModelVersionOut(serializers.ModelSerializer):
    group = serializers.UUIDField(source="group_id")
    model = serializers.UUIDField(source="model_id")
    model_name = serializers.CharField(source="model.name")
    metrics = serializers.JSONField(source="model.metrics", help_text="The model's final metrics.")
    # null once the user who made it is deleted (SET_NULL), and the schema says so.
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    approved_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True,
                                               help_text="Who approved it; null unless approved.")
    status_changed_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True,
                                                     help_text="Who last changed its status (a rejection too).")

    class Meta:
        model = ModelVersion
        fields = ["version", "group", "model", "model_name", "approval_status", "description", "metrics",
                  "created_by", "created_at", "approved_by", "approved_at", "status_changed_by", "status_changed_at"]


def _group(request, project_id, group_id) -> ModelGroup:
    project = project_get(user=request.user, project_id=project_id)
    return selectors.model_group_get(user=request.user, project=project, group_id=group_id)


def _version(request, project_id, group_id, version) -> ModelVersion:
    return selectors.model_version_get(user=request.user, group=_group(request, project_id, group_id),
                                       version=version)


class ModelGroupListApi(generics.GenericAPIView):
    serializer_class = ModelGroupOut

    @extend_schema(responses=ModelGroupOut(many=True))
    def get(self, request, project_id):
        project = project_get(user=request.user, project_id=project_id)
        page = self.paginate_queryset(selectors.model_group_list(user=request.user, project=project))
        return self.get_paginated_response(ModelGroupOut(page, many=True).data)

    @extend_schema(request=ModelGroupIn, responses={
        201: ModelGroupOut, 403: OpenApiResponse(description="Viewers cannot create groups"),
        409: OpenApiResponse(description="A group of this name exists")})
    def post(self, request, project_id):
        project = project_get(user=request.user, project_id=project_id)
        require_role(user=request.user, team=project.team, role=Role.MEMBER)
        data = ModelGroupIn(data=request.data)
        data.is_valid(raise_exception=True)
        group = services.model_group_create(user=request.user, project=project, **data.validated_data)
        group = selectors.model_group_get(user=request.user, project=project, group_id=group.id)
        return Response(ModelGroupOut(group).data, status=status.HTTP_201_CREATED)


class ModelGroupDetailApi(APIView):
    @extend_schema(responses=ModelGroupOut)
    def get(self, request, project_id, group_id):
        return Response(ModelGroupOut(_group(request, project_id, group_id)).data)

    @extend_schema(responses={204: None, 403: OpenApiResponse(description="Needs the admin role"),
                              409: OpenApiResponse(description="A version's model is deployed on an endpoint")})
    def delete(self, request, project_id, group_id):
        services.model_group_delete(user=request.user, group=_group(request, project_id, group_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ModelVersionListApi(generics.GenericAPIView):
    serializer_class = ModelVersionOut

    @extend_schema(responses=ModelVersionOut(many=True))
    def get(self, request, project_id, group_id):
        group = _group(request, project_id, group_id)
        page = self.paginate_queryset(selectors.model_version_list(user=request.user, group=group))
        return self.get_paginated_response(ModelVersionOut(page, many=True).data)

    @extend_schema(request=ModelVersionIn, responses={
        201: ModelVersionOut, 400: OpenApiResponse(description="No such model in this project"),
        403: OpenApiResponse(description="Viewers cannot register"),
        409: OpenApiResponse(description="The model is already a version of this group")})
    def post(self, request, project_id, group_id):
        group = _group(request, project_id, group_id)
        require_role(user=request.user, team=group.project.team, role=Role.MEMBER)
        data = ModelVersionIn(data=request.data)
        data.is_valid(raise_exception=True)
        model_id = data.validated_data["model"]
        model = selectors.model_find(user=request.user, project=group.project, model_id=model_id)
        if model is None:
            raise serializers.ValidationError({"model": [f"No model '{model_id}' in this project."]})
        version = services.model_version_create(user=request.user, group=group, model=model,
                                                description=data.validated_data["description"])
        version = selectors.model_version_get(user=request.user, group=group, version=version.version)
        return Response(ModelVersionOut(version).data, status=status.HTTP_201_CREATED)


class ModelVersionDetailApi(APIView):
    @extend_schema(responses=ModelVersionOut)
    def get(self, request, project_id, group_id, version):
        return Response(ModelVersionOut(_version(request, project_id, group_id, version)).data)

    @extend_schema(request=ModelVersionPatch, responses={
        200: ModelVersionOut, 403: OpenApiResponse(description="Viewers cannot approve")})
    def patch(self, request, project_id, group_id, version):
        found = _version(request, project_id, group_id, version)
        require_role(user=request.user, team=found.group.project.team, role=Role.MEMBER)
        data = ModelVersionPatch(data=request.data)
        data.is_valid(raise_exception=True)
        services.model_version_update(user=request.user, version=found, **data.validated_data)
        return Response(ModelVersionOut(_version(request, project_id, group_id, version)).data)

    @extend_schema(responses={204: None, 403: OpenApiResponse(description="Needs the admin role"),
                              409: OpenApiResponse(description="Its model is deployed on an endpoint")})
    def delete(self, request, project_id, group_id, version):
        services.model_version_delete(user=request.user, version=_version(request, project_id, group_id, version))
        return Response(status=status.HTTP_204_NO_CONTENT)
