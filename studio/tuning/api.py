"""REST API of tuning jobs (API.md "Tuning jobs"): thin, the rules live in validation, services, selectors."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from studio.accounts.models import Role
from studio.accounts.permissions import require_role
from studio.accounts.selectors import project_get
from studio.core.api import StrictBooleanField, StrictCharField, StrictFloatField, choice_param
from studio.tuning import selectors, services
from studio.tuning.models import TuningJob, TuningStatus, TuningTrial


class TuningJobIn(serializers.Serializer):
    # Nested objects are taken as JSON and checked by studio.tuning.validation, which names the exact
    # field of each problem (ranges.learning_rate.min), as a client needs to fix it.
    name = StrictCharField(required=False, allow_blank=True, allow_null=True, max_length=200)
    algorithm = StrictCharField(max_length=60)
    dataset = serializers.UUIDField()
    target = StrictCharField(required=False, allow_blank=True, default="", max_length=200)
    validation_dataset = serializers.UUIDField(required=False, allow_null=True)
    validation_fraction = StrictFloatField(required=False, allow_null=True)
    missing_values = StrictCharField(required=False, allow_blank=True, allow_null=True, max_length=20)
    objective = serializers.JSONField(required=False, help_text='{"metric": "validation:accuracy", "goal": '
                                      '"maximize"}; defaults to the algorithm\'s default objective and its direction.')
    ranges = serializers.JSONField(required=False, help_text='{"<param>": {"type": "continuous"|"integer"|'
                                   '"categorical", "min", "max", "values", "scale": "auto"|"linear"|"log"}}')
    autotune = StrictBooleanField(required=False, default=False,
                                  help_text="Pick ranges, strategy and limits left out, and report why.")
    static_hyperparameters = serializers.JSONField(required=False)
    strategy = StrictCharField(required=False, allow_blank=True, allow_null=True,
                               help_text="random, grid, bayesian (default) or hyperband")
    max_jobs = serializers.JSONField(required=False, help_text="Trials in all (hyperband: configurations).")
    max_parallel_jobs = serializers.JSONField(required=False)
    max_runtime_seconds = serializers.JSONField(required=False)
    early_stopping = StrictCharField(required=False, allow_blank=True, allow_null=True,
                                     help_text="off (default) or auto (median rule)")
    completion = serializers.JSONField(required=False, help_text="{target_value?, best_not_improving_jobs?}")
    warm_start = serializers.JSONField(required=False, help_text='{"parents": [id], "type": "identical_data"|'
                                       '"transfer_learning"}')
    hyperband = serializers.JSONField(required=False, help_text="{min_resource?, max_resource?, eta?} over the "
                                      "algorithm's epochs; defaults from its epochs range or value")


class BestTrainingJobOut(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    number = serializers.IntegerField()
    hyperparameters = serializers.DictField()
    objective_value = serializers.FloatField()
    model = serializers.UUIDField(allow_null=True)


class TuningJobOut(serializers.ModelSerializer):
    dataset = serializers.UUIDField(source="dataset_id", allow_null=True)
    validation_dataset = serializers.UUIDField(source="validation_dataset_id", allow_null=True)
    objective = serializers.SerializerMethodField()
    counts = serializers.SerializerMethodField()
    best_training_job = serializers.SerializerMethodField()
    created_by = serializers.SerializerMethodField()
    duration_seconds = serializers.FloatField(allow_null=True)

    class Meta:
        model = TuningJob
        fields = [
            "id", "name", "algorithm", "status", "status_message", "failure_reason", "strategy", "objective",
            "ranges", "static_hyperparameters", "max_jobs", "max_parallel_jobs", "max_runtime_seconds",
            "early_stopping", "completion", "warm_start", "autotune", "autotune_report", "hyperband", "counts",
            "best_training_job", "dataset", "validation_dataset", "target", "validation_fraction", "missing_values",
            "created_by", "created_at", "started_at", "ended_at", "duration_seconds",
        ]

    def get_objective(self, job: TuningJob) -> dict[str, str]:
        return {"metric": job.objective_metric, "goal": job.objective_goal}

    def get_counts(self, job: TuningJob) -> dict[str, int]:
        return services.tuning_counts(job)

    @extend_schema(responses=BestTrainingJobOut(allow_null=True))
    def get_best_training_job(self, job: TuningJob) -> dict | None:
        trial = job.best_trial
        if trial is None:
            return None
        training = trial.training_job
        model = getattr(training, "model", None)
        return {"id": str(training.id), "name": training.name, "number": trial.number,
                "hyperparameters": training.hyperparameters, "objective_value": job.best_objective,
                "model": str(model.id) if model is not None else None}

    def get_created_by(self, job: TuningJob) -> str | None:
        return job.created_by.username if job.created_by else None


class TrialOut(serializers.ModelSerializer):
    """One trial: its training job (same pages, metrics and logs as any) and what the strategy knows of it."""

    id = serializers.UUIDField(source="training_job_id")
    name = serializers.CharField(source="training_job.name")
    status = serializers.CharField(source="training_job.status")
    status_message = serializers.CharField(source="training_job.status_message")
    failure_reason = serializers.CharField(source="training_job.failure_reason")
    hyperparameters = serializers.DictField(source="training_job.hyperparameters")
    final_metrics = serializers.DictField(source="training_job.final_metrics")
    started_at = serializers.DateTimeField(source="training_job.started_at", allow_null=True)
    ended_at = serializers.DateTimeField(source="training_job.ended_at", allow_null=True)
    duration_seconds = serializers.FloatField(source="training_job.duration_seconds", allow_null=True)
    model = serializers.SerializerMethodField()
    resumed_from = serializers.SerializerMethodField()

    class Meta:
        model = TuningTrial
        fields = ["id", "number", "name", "status", "status_message", "failure_reason", "parameters",
                  "hyperparameters", "objective_value", "early_stopped", "final_metrics", "model", "config",
                  "bracket", "rung", "budget", "resumed_from", "started_at", "ended_at", "duration_seconds"]

    def get_model(self, trial: TuningTrial) -> str | None:
        model = getattr(trial.training_job, "model", None)
        return str(model.id) if model is not None else None

    def get_resumed_from(self, trial: TuningTrial) -> str | None:
        return str(trial.resumed_from.training_job_id) if trial.resumed_from is not None else None


class TuningJobListApi(generics.GenericAPIView):
    serializer_class = TuningJobOut

    @extend_schema(
        parameters=[OpenApiParameter("status", str, enum=TuningStatus.values, description="Only jobs in this status.")],
        responses=TuningJobOut(many=True),
    )
    def get(self, request, project_id):
        project = project_get(user=request.user, project_id=project_id)
        jobs = selectors.tuning_job_list(user=request.user, project=project)
        if wanted := choice_param(request, "status", TuningStatus.values):
            jobs = jobs.filter(status=wanted)
        page = self.paginate_queryset(jobs)
        return self.get_paginated_response(TuningJobOut(page, many=True).data)

    @extend_schema(request=TuningJobIn, responses={201: TuningJobOut})
    def post(self, request, project_id):
        project = project_get(user=request.user, project_id=project_id)
        require_role(user=request.user, team=project.team, role=Role.MEMBER)  # 403 before validating the body
        data = TuningJobIn(data=request.data)
        data.is_valid(raise_exception=True)
        job = services.tuning_job_create(user=request.user, project=project, **data.validated_data)
        return Response(TuningJobOut(job).data, status=status.HTTP_201_CREATED)


class TuningJobDetailApi(APIView):
    @extend_schema(responses=TuningJobOut)
    def get(self, request, project_id, tuning_job_id):
        return Response(TuningJobOut(_tuning_job(request, project_id, tuning_job_id)).data)


class TuningJobTrialsApi(generics.GenericAPIView):
    serializer_class = TrialOut

    @extend_schema(responses=TrialOut(many=True))
    def get(self, request, project_id, tuning_job_id):
        job = _tuning_job(request, project_id, tuning_job_id)
        page = self.paginate_queryset(selectors.trial_list(tuning_job=job))
        return self.get_paginated_response(TrialOut(page, many=True).data)


class TuningJobStopApi(APIView):
    @extend_schema(request=None, responses={202: TuningJobOut})
    def post(self, request, project_id, tuning_job_id):
        job = _tuning_job(request, project_id, tuning_job_id)
        job = services.tuning_job_stop(user=request.user, tuning_job=job)
        return Response(TuningJobOut(job).data, status=status.HTTP_202_ACCEPTED)


def _tuning_job(request, project_id, tuning_job_id) -> TuningJob:
    project = project_get(user=request.user, project_id=project_id)
    return selectors.tuning_job_get(user=request.user, project=project, tuning_job_id=tuning_job_id)
