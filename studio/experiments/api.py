"""REST API of experiments: the runs table and the comparison of runs, thin over selectors and compare."""

from __future__ import annotations

from django.core.exceptions import ObjectDoesNotExist
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import generics, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from studio.accounts.selectors import project_get
from studio.experiments import selectors
from studio.experiments.compare import compare_data
from studio.experiments.filters import parse_run_query
from studio.training.models import JobStatus, TrainingJob


class RunTuningRefOut(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    trial = serializers.IntegerField(help_text="The trial's number in its tuning job.")


class RunOut(serializers.ModelSerializer):
    tags = serializers.SerializerMethodField()
    created_by = serializers.SerializerMethodField()
    duration_seconds = serializers.FloatField(allow_null=True)
    tuning_job = serializers.SerializerMethodField()

    class Meta:
        model = TrainingJob
        fields = ["id", "name", "algorithm", "status", "status_message", "tags", "hyperparameters", "final_metrics",
                  "created_by", "created_at", "started_at", "ended_at", "duration_seconds", "tuning_job"]

    def get_tags(self, job: TrainingJob) -> list[str]:
        return list(getattr(job, "tags", None) or [])

    def get_created_by(self, job: TrainingJob) -> str | None:
        return job.created_by.username if job.created_by else None

    @extend_schema_field(RunTuningRefOut(allow_null=True))
    def get_tuning_job(self, job: TrainingJob) -> dict | None:
        try:
            trial = job.tuning_trial  # selected with the job: no query per row
        except ObjectDoesNotExist:
            return None
        return {"id": str(trial.tuning_job_id), "name": trial.tuning_job.name, "trial": trial.number}


FILTER_PARAMETERS = [
    OpenApiParameter("algorithm", str, many=True, description="Algorithm name(s), repeated or comma-separated."),
    OpenApiParameter("status", str, many=True, description=f"Status(es): {', '.join(JobStatus.values)}; "
                                                           "repeated or comma-separated."),
    OpenApiParameter("tag", str, many=True, description="Runs having this tag; repeat for runs having all of them."),
    OpenApiParameter("metric", str, many=True, description="A final metric compared with a number, e.g. "
                     "`validation:accuracy>=0.9` (operators >= <= > < = !=); repeat for a range."),
    OpenApiParameter("param", str, many=True, description="A hyperparameter compared with a value, e.g. "
                     "`learning_rate<0.1` or `optimizer=adam`; repeat for a range."),
    OpenApiParameter("q", str, description="Words of the run's name, and/or tokens `metric:<expr>`, `param:<expr>`, "
                     "`tag:<tag>`, `status:<s>`, `algorithm:<name>` (the runs page's search box)."),
    OpenApiParameter("tuning_job", str, description="Only the trials of this tuning job (its id)."),
    OpenApiParameter("sort", str, description="name, algorithm, status, created_at (default -created_at), "
                     "started_at, ended_at, duration, metric:<name> or param:<name>; a leading '-' sorts "
                     "descending; runs without the value come last."),
]


class RunListApi(generics.GenericAPIView):
    serializer_class = RunOut

    @extend_schema(parameters=FILTER_PARAMETERS, responses=RunOut(many=True))
    def get(self, request, project_id):
        project = project_get(user=request.user, project_id=project_id)
        query = parse_run_query(request.query_params)
        runs = selectors.run_list(user=request.user, project=project, query=query)
        page = self.paginate_queryset(runs)
        return self.get_paginated_response(RunOut(page, many=True).data)


class CompareRunOut(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    algorithm = serializers.CharField()
    status = serializers.ChoiceField(choices=JobStatus.choices)
    status_message = serializers.CharField()
    tags = serializers.ListField(child=serializers.CharField())
    created_by = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)
    duration_seconds = serializers.FloatField(allow_null=True)
    hyperparameters = serializers.DictField(child=serializers.JSONField())
    final_metrics = serializers.DictField(child=serializers.FloatField())
    tuning_job = RunTuningRefOut(allow_null=True)
    color = serializers.CharField(help_text="The run's colour on every chart of the comparison.")
    dash = serializers.CharField(help_text="Its line style (solid, dot, dash) once 20 colours are used.")


class RunHyperparameterRowOut(serializers.Serializer):
    name = serializers.CharField()
    values = serializers.ListField(child=serializers.JSONField(allow_null=True), help_text="One per run, in order.")
    display = serializers.ListField(child=serializers.CharField())
    differs = serializers.BooleanField(help_text="The runs do not all have the same value.")
    scale = serializers.CharField(help_text="linear or log, as the algorithm declares it; empty when unknown.")


class RunFinalMetricRowOut(serializers.Serializer):
    name = serializers.CharField()
    direction = serializers.ChoiceField(choices=["maximize", "minimize"], allow_null=True,
                                        help_text="As the runs' algorithm declares it; null when none does.")
    values = serializers.ListField(child=serializers.FloatField(allow_null=True), help_text="One per run.")
    display = serializers.ListField(child=serializers.CharField())
    best = serializers.ListField(child=serializers.IntegerField(), help_text="Positions of the best run(s).")


class RunChartOut(serializers.Serializer):
    metric = serializers.CharField()
    direction = serializers.ChoiceField(choices=["maximize", "minimize"], allow_null=True)


class RunParallelCoordinatesOut(serializers.Serializer):
    metric = serializers.CharField(allow_null=True)
    choices = serializers.ListField(child=serializers.CharField(), help_text="Metrics ?metric= may choose.")
    runs = serializers.IntegerField(help_text="Runs drawn: those with a final value of the metric.")
    left_out = serializers.ListField(child=serializers.CharField(), help_text="Names of runs without it.")
    figure = serializers.JSONField(allow_null=True, help_text="plotly parcoords figure {data, layout}, or null "
                                                             "when fewer than two runs have the metric.")


class RunCompareOut(serializers.Serializer):
    runs = CompareRunOut(many=True)
    series = serializers.DictField(
        child=serializers.DictField(child=serializers.ListField(child=serializers.ListField(
            child=serializers.FloatField()))),
        help_text='{"<run id>": {"<metric>": [[step, value, unix_ts], ...]}}, at most 2,000 points per series '
                  "(evenly thinned, the last kept).")
    charts = RunChartOut(many=True, help_text="The metrics with series, one chart each on the page.")
    hyperparameters = RunHyperparameterRowOut(many=True)
    differing = serializers.IntegerField(help_text="How many hyperparameters differ.")
    final_metrics = RunFinalMetricRowOut(many=True)
    parallel_coordinates = RunParallelCoordinatesOut()


class RunCompareApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("runs", str, required=True, description="2 to 50 run ids of this project, "
                             "comma-separated (in the order to show them)."),
            OpenApiParameter("metric", str, description="The metric of the parallel coordinates "
                             "(default: the algorithm's default objective)."),
        ],
        responses=RunCompareOut,
    )
    def get(self, request, project_id):
        project = project_get(user=request.user, project_id=project_id)
        run_ids = selectors.parse_run_ids(request.query_params.getlist("runs"))
        jobs = selectors.runs_for_compare(user=request.user, project=project, run_ids=run_ids)
        series = selectors.metric_series(runs=jobs)
        metric = request.query_params.get("metric", "").strip() or None
        return Response(compare_data(jobs=jobs, series=series, metric=metric, figures=False))
