"""REST API of training jobs (API.md "Training jobs"): thin, the rules live in services and selectors."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from studio.accounts.models import Role
from studio.accounts.permissions import require_role
from studio.accounts.selectors import project_get
from studio.core.api import StrictCharField, StrictFloatField, StrictIntegerField, choice_param
from studio.datasets.preprocessing import DEFAULT_MISSING_STRATEGY, MISSING_STRATEGIES
from studio.training import selectors, services
from studio.training.models import JobStatus, TrainingJob


class TrainingJobIn(serializers.Serializer):
    name = StrictCharField(required=False, allow_blank=True, allow_null=True, max_length=200)
    algorithm = StrictCharField(max_length=60)
    dataset = serializers.UUIDField()
    target = StrictCharField(
        required=False, allow_blank=True, default="", max_length=200,
        help_text="Column to predict. Supervised algorithms (target 'required') default to the dataset's target; "
                  "'optional' ones (anomaly detection) take 0/1 labels only to report AUC; 'none' (clustering, "
                  "projections) refuse a target with a 400.",
    )
    validation_dataset = serializers.UUIDField(required=False, allow_null=True)
    validation_fraction = StrictFloatField(required=False, allow_null=True)
    hyperparameters = serializers.DictField(required=False, default=dict, child=serializers.JSONField())
    max_runtime_seconds = StrictIntegerField(required=False, allow_null=True)
    missing_values = StrictCharField(
        required=False, allow_blank=True, allow_null=True, max_length=20,
        help_text="How missing numbers in feature columns are handled: "
                  f"{', '.join(MISSING_STRATEGIES)} (default {DEFAULT_MISSING_STRATEGY}).",
    )
    debugger_rules = serializers.ListField(
        child=serializers.JSONField(), required=False, default=list,
        help_text="Debugger rules to evaluate on the job's metrics (GET /debugger-rules lists them): a rule name, "
                  'or {"rule": "overfit", "parameters": {"patience": 3}, "action": "none"|"stop"|"notify"}.',
    )


class ResultPlotOut(serializers.Serializer):
    id = serializers.CharField(help_text="confusion_matrix, roc, predicted_vs_actual, residuals, clusters, "
                                         "cluster_sizes, scree, projection, anomaly_scores, neighbors, "
                                         "embedding_map, nearest_words, misclassified, detections, class_ap "
                                         "or summaries")
    title = serializers.CharField()
    kind = serializers.CharField(help_text="figure (a plotly figure), table or images")
    figure = serializers.JSONField(required=False, help_text="plotly figure JSON {data, layout} (kind figure)")
    columns = serializers.ListField(child=serializers.CharField(), required=False, help_text="kind table")
    rows = serializers.ListField(child=serializers.ListField(child=serializers.JSONField()), required=False)
    images = serializers.ListField(child=serializers.DictField(child=serializers.CharField()), required=False,
                                   help_text="kind images: {src (a PNG data URI), caption}")
    note = serializers.CharField(help_text="What the plot was drawn on, in words.")


class RuleResultOut(serializers.Serializer):
    rule = serializers.CharField()
    # Plain strings, not enums: several serializers have a "status" and the schema's enum names must not collide.
    status = serializers.CharField(help_text="in_progress, no_issues_found, issues_found or error")
    step = serializers.IntegerField(allow_null=True, help_text="The step (epoch) where the rule fired; 0 at the start.")
    message = serializers.CharField(allow_blank=True)
    action = serializers.CharField(help_text="none, stop or notify: what to do when the rule fires")
    action_taken = serializers.CharField(allow_blank=True, help_text="stop or notify once done; empty otherwise.")
    parameters = serializers.DictField(child=serializers.JSONField())


class TrainingJobOut(serializers.ModelSerializer):
    dataset = serializers.UUIDField(source="dataset_id", allow_null=True)
    validation_dataset = serializers.UUIDField(source="validation_dataset_id", allow_null=True)
    model = serializers.SerializerMethodField()
    created_by = serializers.SerializerMethodField()
    duration_seconds = serializers.FloatField(allow_null=True)
    rule_results = RuleResultOut(many=True, read_only=True)

    class Meta:
        model = TrainingJob
        fields = [
            "id", "name", "algorithm", "status", "status_message", "failure_reason", "hyperparameters",
            "final_metrics", "model", "created_by", "created_at", "started_at", "ended_at", "duration_seconds",
            "rule_results", "dataset", "validation_dataset", "target", "validation_fraction", "max_runtime_seconds",
            "missing_values", "tags", "notes",
        ]

    def get_model(self, job: TrainingJob) -> str | None:
        model = getattr(job, "model", None)
        return str(model.id) if model is not None else None

    def get_created_by(self, job: TrainingJob) -> str | None:
        return job.created_by.username if job.created_by else None


class TrainingJobListApi(generics.GenericAPIView):
    serializer_class = TrainingJobOut

    @extend_schema(
        parameters=[OpenApiParameter("status", str, enum=JobStatus.values, description="Only jobs in this status.")],
        responses=TrainingJobOut(many=True),
    )
    def get(self, request, project_id):
        project = project_get(user=request.user, project_id=project_id)
        jobs = selectors.training_job_list(user=request.user, project=project)
        if wanted := choice_param(request, "status", JobStatus.values):
            jobs = jobs.filter(status=wanted)
        page = self.paginate_queryset(jobs)
        return self.get_paginated_response(TrainingJobOut(page, many=True).data)

    @extend_schema(request=TrainingJobIn, responses={201: TrainingJobOut})
    def post(self, request, project_id):
        project = project_get(user=request.user, project_id=project_id)
        # A viewer learns they may not write before anything about their body (the service checks again).
        require_role(user=request.user, team=project.team, role=Role.MEMBER)
        data = TrainingJobIn(data=request.data)
        data.is_valid(raise_exception=True)
        job = services.training_job_create(user=request.user, project=project, **data.validated_data)
        return Response(TrainingJobOut(job).data, status=status.HTTP_201_CREATED)


class TrainingJobDetailOut(TrainingJobOut):
    """One job, with its result plots (left out of lists: they weigh up to a few hundred KB)."""

    result_plots = ResultPlotOut(many=True, read_only=True)

    class Meta(TrainingJobOut.Meta):
        fields = [*TrainingJobOut.Meta.fields, "result_plots"]


class TrainingJobDetailApi(APIView):
    @extend_schema(responses=TrainingJobDetailOut)
    def get(self, request, project_id, job_id):
        job = _job(request, project_id, job_id)
        return Response(TrainingJobDetailOut(job).data)


class TrainingJobMetricsApi(APIView):
    @extend_schema(responses=inline_serializer("TrainingJobMetrics", {
        "series": serializers.DictField(child=serializers.ListField(child=serializers.ListField(
            child=serializers.FloatField()), help_text="[[step, value, unix_ts], ...] by step")),
    }))
    def get(self, request, project_id, job_id):
        job = _job(request, project_id, job_id)
        return Response({"series": selectors.metric_series(job=job)})


class TrainingJobLogsApi(APIView):
    @extend_schema(responses={(200, "text/plain"): OpenApiTypes.STR})
    def get(self, request, project_id, job_id):
        job = _job(request, project_id, job_id)
        return HttpResponse(selectors.log_text(job=job), content_type="text/plain; charset=utf-8")


class TrainingJobStopApi(APIView):
    @extend_schema(request=None, responses={202: TrainingJobOut})
    def post(self, request, project_id, job_id):
        job = _job(request, project_id, job_id)
        job = services.training_job_stop(user=request.user, job=job)
        return Response(TrainingJobOut(job).data, status=status.HTTP_202_ACCEPTED)


def _job(request, project_id, job_id) -> TrainingJob:
    project = project_get(user=request.user, project_id=project_id)
    return selectors.training_job_get(user=request.user, project=project, job_id=job_id)
