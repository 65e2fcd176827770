"""REST API of batch transform jobs (API.md "Batch transform"): thin, the rules live in transforms.py."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from studio.accounts.models import Role
from studio.accounts.permissions import require_role
from studio.accounts.selectors import project_get
from studio.core.api import StrictCharField, choice_param
from studio.endpoints import transforms
from studio.endpoints.models import TransformJob, TransformStatus

FILTER_HELP = ("Columns to keep: empty for all, $[0,2] / $[1:] / $[0,2:4,-1] (0-based positions, slices leave out "
               "their end), or column names separated by commas.")


class TransformJobIn(serializers.Serializer):
    name = StrictCharField(required=False, allow_blank=True, allow_null=True, max_length=200)
    model = serializers.UUIDField(help_text="A model of this project.")
    input_dataset = serializers.UUIDField(help_text="A tabular dataset of this project (text for text models).")
    split_type = StrictCharField(required=False, allow_blank=True, default="line",
                                 help_text="line: one record per line; none: the whole file as one request.")
    batch_strategy = StrictCharField(required=False, allow_blank=True, default="multi_record",
                                     help_text="single_record or multi_record (as many records as fit in "
                                               "max_payload_mb per request).")
    max_payload_mb = serializers.JSONField(required=False, default=transforms.DEFAULT_MAX_PAYLOAD_MB,
                                           help_text="1..100")
    max_concurrent = serializers.JSONField(required=False, default=transforms.DEFAULT_MAX_CONCURRENT,
                                           help_text="Parts predicted at once, 1..32.")
    input_filter = StrictCharField(required=False, allow_blank=True, default="", help_text=FILTER_HELP)
    join_source = StrictCharField(required=False, allow_blank=True, default="none",
                                  help_text="none, or input: the input columns come before the predictions.")
    output_filter = StrictCharField(required=False, allow_blank=True, default="", help_text=FILTER_HELP)


class TransformJobOut(serializers.ModelSerializer):
    model = serializers.UUIDField(source="model_id", allow_null=True,
                                  help_text="null once the model was deleted (finished jobs keep their record)")
    input_dataset = serializers.UUIDField(source="input_dataset_id", allow_null=True)
    output_dataset = serializers.UUIDField(source="output_dataset_id", allow_null=True)
    created_by = serializers.SerializerMethodField()
    progress = serializers.SerializerMethodField()

    class Meta:
        model = TransformJob
        fields = [
            "id", "name", "model", "input_dataset", "output_dataset", "status", "status_message", "failure_reason",
            "records_total", "records_done", "parts_total", "parts_done", "progress", "split_type", "batch_strategy",
            "max_payload_mb", "max_concurrent", "input_filter", "join_source", "output_filter", "created_by",
            "created_at", "started_at", "ended_at",
        ]

    def get_created_by(self, job: TransformJob) -> str | None:
        return job.created_by.username if job.created_by else None

    def get_progress(self, job: TransformJob) -> float:
        return transforms.transform_job_progress(job)


class TransformJobListApi(generics.GenericAPIView):
    serializer_class = TransformJobOut

    @extend_schema(
        parameters=[OpenApiParameter("status", str, enum=TransformStatus.values,
                                     description="Only jobs in this status.")],
        responses=TransformJobOut(many=True),
    )
    def get(self, request, project_id):
        project = project_get(user=request.user, project_id=project_id)
        jobs = transforms.transform_job_list(user=request.user, project=project)
        if wanted := choice_param(request, "status", TransformStatus.values):
            jobs = jobs.filter(status=wanted)
        page = self.paginate_queryset(jobs)
        return self.get_paginated_response(TransformJobOut(page, many=True).data)

    @extend_schema(request=TransformJobIn, responses={201: TransformJobOut})
    def post(self, request, project_id):
        project = project_get(user=request.user, project_id=project_id)
        require_role(user=request.user, team=project.team, role=Role.MEMBER)  # 403 before validating the body
        data = TransformJobIn(data=request.data)
        data.is_valid(raise_exception=True)
        job = transforms.transform_job_create(user=request.user, project=project, **data.validated_data)
        return Response(TransformJobOut(job).data, status=status.HTTP_201_CREATED)


class TransformJobDetailApi(APIView):
    @extend_schema(responses=TransformJobOut)
    def get(self, request, project_id, transform_job_id):
        return Response(TransformJobOut(_job(request, project_id, transform_job_id)).data)


class TransformJobStopApi(APIView):
    @extend_schema(request=None, responses={202: TransformJobOut})
    def post(self, request, project_id, transform_job_id):
        job = transforms.transform_job_stop(user=request.user, job=_job(request, project_id, transform_job_id))
        return Response(TransformJobOut(job).data, status=status.HTTP_202_ACCEPTED)


def _job(request, project_id, job_id) -> TransformJob:
    project = project_get(user=request.user, project_id=project_id)
    return transforms.transform_job_get(user=request.user, project=project, job_id=job_id)
