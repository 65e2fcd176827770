"""REST API of the admin dashboard under /api/v1/ops/ (site admins; anyone else gets 404): thin, the reads are in
selectors and the actions in services."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from studio.ops import selectors, services
from studio.ops.access import IsSiteAdmin
from studio.ops.models import FailedTask

TAGS = ["ops"]


# --- serializers (responses) ----------------------------------------------------------------------------


class OpsActiveTaskOut(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    args = serializers.CharField()
    started = serializers.FloatField(allow_null=True, help_text="Unix time the worker started it.")


class OpsWorkerOut(serializers.Serializer):
    name = serializers.CharField()
    alive = serializers.BooleanField(help_text="Answered the ping just now.")
    last_seen = serializers.FloatField(allow_null=True, help_text="Unix time of its last answer.")
    queues = serializers.ListField(child=serializers.CharField(), help_text="Queues it consumes (last known when "
                                                                            "it is not answering).")
    drained = serializers.ListField(child=serializers.CharField(), help_text="Queues an admin drained it of.")
    active = OpsActiveTaskOut(many=True)
    processed = serializers.IntegerField(allow_null=True, help_text="Tasks it ran since it started.")
    pool = serializers.CharField(allow_null=True)
    concurrency = serializers.IntegerField(allow_null=True)
    pid = serializers.IntegerField(allow_null=True)


class OpsWorkersOut(serializers.Serializer):
    workers = OpsWorkerOut(many=True)
    checked_at = serializers.FloatField(help_text="Unix time the workers were asked (answers are cached a few "
                                                  "seconds; ?refresh=1 asks again).")
    error = serializers.CharField(allow_null=True)


class OpsQueuesOut(serializers.Serializer):
    queues = serializers.DictField(child=serializers.IntegerField(allow_null=True),
                                   help_text="Messages waiting per queue (training, inference, default).")


class OpsSampleOut(serializers.Serializer):
    type = serializers.CharField()
    ts = serializers.FloatField()
    queues = serializers.DictField(child=serializers.IntegerField(allow_null=True))
    invocations = serializers.DictField(help_text='{"total": requests/s, "endpoints": {id: {"name", "rps"}}}')


class OpsSamplesOut(serializers.Serializer):
    samples = OpsSampleOut(many=True)


class OpsJobOut(serializers.Serializer):
    kind = serializers.CharField(help_text="training-job, tuning-job, transform-job or pipeline-execution")
    id = serializers.UUIDField()
    name = serializers.CharField()
    status = serializers.CharField()
    status_message = serializers.CharField()
    team = serializers.CharField()
    team_name = serializers.CharField()
    project = serializers.CharField()
    project_id = serializers.UUIDField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    worker = serializers.CharField()
    heartbeat_at = serializers.DateTimeField(allow_null=True)
    stuck = serializers.BooleanField()
    stuck_reason = serializers.CharField()
    note = serializers.CharField()


class OpsVariantOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    model = serializers.UUIDField()
    model_name = serializers.CharField()
    weight = serializers.FloatField()
    min_instances = serializers.IntegerField()
    max_instances = serializers.IntegerField()
    desired_instances = serializers.IntegerField()
    in_service = serializers.IntegerField()
    starting = serializers.IntegerField()
    draining = serializers.IntegerField()


class OpsEndpointOut(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    type = serializers.CharField()
    status = serializers.CharField()
    team = serializers.CharField()
    team_name = serializers.CharField()
    project = serializers.CharField()
    project_id = serializers.UUIDField()
    variants = OpsVariantOut(many=True)
    in_service = serializers.IntegerField()
    desired = serializers.IntegerField()
    rps = serializers.FloatField(allow_null=True, help_text="Requests per second over the last minute.")
    p99_ms = serializers.FloatField(allow_null=True)


class OpsStorageOut(serializers.Serializer):
    datasets_bytes = serializers.IntegerField()
    models_bytes = serializers.IntegerField()
    payloads_bytes = serializers.IntegerField(help_text="Async invocation request bodies.")
    total_bytes = serializers.IntegerField()


class OpsTeamStorageOut(OpsStorageOut):
    slug = serializers.CharField()
    name = serializers.CharField()


class OpsStorageSummaryOut(OpsStorageOut):
    teams = OpsTeamStorageOut(many=True)


class OpsTeamUsageOut(serializers.Serializer):
    id = serializers.UUIDField()
    slug = serializers.CharField()
    name = serializers.CharField()
    members = serializers.IntegerField()
    projects = serializers.IntegerField()
    datasets = serializers.IntegerField()
    models = serializers.IntegerField()
    async_invocations = serializers.IntegerField()
    training_jobs = serializers.IntegerField()
    training_jobs_active = serializers.IntegerField()
    tuning_jobs = serializers.IntegerField()
    endpoints = serializers.IntegerField()
    storage = OpsStorageOut()


class OpsUserUsageOut(serializers.Serializer):
    id = serializers.UUIDField()
    username = serializers.CharField()
    email = serializers.CharField()
    is_active = serializers.BooleanField()
    is_site_admin = serializers.BooleanField()
    teams = serializers.IntegerField()
    training_jobs = serializers.IntegerField()
    tuning_jobs = serializers.IntegerField()
    endpoints = serializers.IntegerField()
    datasets = serializers.IntegerField()
    uploaded_bytes = serializers.IntegerField()
    last_login = serializers.DateTimeField(allow_null=True)
    date_joined = serializers.DateTimeField()


class OpsFailedTaskOut(serializers.ModelSerializer):
    class Meta:
        model = FailedTask
        fields = ["id", "task_name", "task_id", "args", "exception", "worker", "created_at"]


class OpsFailedTaskDetailOut(serializers.ModelSerializer):
    class Meta:
        model = FailedTask
        fields = [*OpsFailedTaskOut.Meta.fields, "traceback"]


class OpsAdminActionOut(serializers.Serializer):
    id = serializers.IntegerField()
    actor = serializers.CharField(source="actor.username", allow_null=True, default=None)
    verb = serializers.CharField()
    target = serializers.CharField()
    team = serializers.CharField(source="team.slug", allow_null=True, default=None)
    data = serializers.DictField()
    created_at = serializers.DateTimeField()


# --- serializers (requests) -----------------------------------------------------------------------------


class OpsJobCancelIn(serializers.Serializer):
    # A string, checked by the service (which names the kinds): a choice field here would make a second enum
    # called "kind" in the schema, next to the datasets' kinds.
    kind = serializers.CharField(max_length=40, help_text="training-job, tuning-job, transform-job or "
                                                          "pipeline-execution")
    id = serializers.UUIDField()


class OpsJobCancelOut(serializers.Serializer):
    kind = serializers.CharField()
    id = serializers.UUIDField()
    name = serializers.CharField()
    status = serializers.CharField(help_text="stopped, or still running with a stop requested (a training job stops "
                                             "after its epoch, a pipeline execution is stopping).")
    status_message = serializers.CharField()


class OpsWorkerIn(serializers.Serializer):
    worker = serializers.CharField(max_length=200, help_text="The worker's name (celery@host).")


class OpsWorkerActionOut(serializers.Serializer):
    worker = serializers.CharField()
    queues = serializers.ListField(child=serializers.CharField(), help_text="Queues drained (or resumed).")
    replies = serializers.DictField(help_text="The worker's answer per queue (null: no answer in time).")


class OpsEndpointScaleIn(serializers.Serializer):
    variant = serializers.CharField(max_length=100)
    # Checked by the service, which names the field and the allowed range.
    instances = serializers.JSONField(required=False, help_text="Pin the count: min = max = instances.")
    min_instances = serializers.JSONField(required=False)
    max_instances = serializers.JSONField(required=False)


# --- views ----------------------------------------------------------------------------------------------


class OpsApiView(APIView):
    permission_classes = [IsAuthenticated, IsSiteAdmin]


class OpsListApiView(generics.GenericAPIView):
    permission_classes = [IsAuthenticated, IsSiteAdmin]

    def paginated(self, rows: Any, serializer: type[serializers.Serializer]) -> Response:
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(serializer(page, many=True).data)


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


class WorkersApi(OpsApiView):
    @extend_schema(tags=TAGS, parameters=[OpenApiParameter("refresh", bool, description="Ask the workers now "
                                                                                        "instead of the cache.")],
                   responses=OpsWorkersOut)
    def get(self, request):
        return Response(OpsWorkersOut(selectors.worker_list(user=request.user,
                                                         refresh=_flag(request.query_params.get("refresh")))).data)


class QueuesApi(OpsApiView):
    @extend_schema(tags=TAGS, responses=OpsQueuesOut)
    def get(self, request):
        return Response({"queues": selectors.queue_depths(user=request.user)})


class SamplesApi(OpsApiView):
    @extend_schema(tags=TAGS, parameters=[
        OpenApiParameter("minutes", float, description="The last N minutes (default 15, at most the kept hour)."),
        OpenApiParameter("since", float, description="Only samples after this unix time."),
    ], responses=OpsSamplesOut)
    def get(self, request):
        errors = {}
        values: dict[str, float | None] = {"minutes": 15.0, "since": None}
        for name in values:
            raw = request.query_params.get(name)
            if raw in (None, ""):
                continue
            try:
                values[name] = float(raw)
            except ValueError:
                errors[name] = [f"{name} must be a number (got {raw!r})."]
        if values["minutes"] is not None and not 0 < values["minutes"] <= 24 * 60:
            errors["minutes"] = ["minutes must be above 0 and at most 1440."]
        if errors:
            raise serializers.ValidationError(errors)
        samples = selectors.sample_list(user=request.user, since=values["since"], minutes=values["minutes"])
        return Response({"samples": samples})


class JobListApi(OpsListApiView):
    serializer_class = OpsJobOut

    @extend_schema(tags=TAGS, parameters=[OpenApiParameter("stuck", bool, description="Only stuck jobs.")],
                   responses=OpsJobOut(many=True))
    def get(self, request):
        rows = selectors.job_list(user=request.user)
        if _flag(request.query_params.get("stuck")):
            rows = [r for r in rows if r["stuck"]]
        return self.paginated(rows, OpsJobOut)


class JobCancelApi(OpsApiView):
    @extend_schema(tags=TAGS, request=OpsJobCancelIn, responses={202: OpsJobCancelOut})
    def post(self, request):
        data = OpsJobCancelIn(data=request.data)
        data.is_valid(raise_exception=True)
        kind = data.validated_data["kind"]
        job = services.job_cancel(user=request.user, kind=kind, job_id=data.validated_data["id"])
        return Response({"kind": kind, "id": job.id, "name": str(job), "status": job.status,
                         "status_message": job.status_message}, status=status.HTTP_202_ACCEPTED)


def _worker(request) -> str:
    data = OpsWorkerIn(data=request.data)
    data.is_valid(raise_exception=True)
    return data.validated_data["worker"]


class WorkerDrainApi(OpsApiView):
    @extend_schema(tags=TAGS, request=OpsWorkerIn, responses=OpsWorkerActionOut)
    def post(self, request):
        return Response(services.worker_drain(user=request.user, worker=_worker(request)))


class WorkerResumeApi(OpsApiView):
    @extend_schema(tags=TAGS, request=OpsWorkerIn, responses=OpsWorkerActionOut)
    def post(self, request):
        return Response(services.worker_resume(user=request.user, worker=_worker(request)))


class EndpointListApi(OpsListApiView):
    serializer_class = OpsEndpointOut

    @extend_schema(tags=TAGS, responses=OpsEndpointOut(many=True))
    def get(self, request):
        return self.paginated(selectors.endpoint_list(user=request.user), OpsEndpointOut)


class EndpointScaleApi(OpsApiView):
    @extend_schema(tags=TAGS, request=OpsEndpointScaleIn, responses=OpsEndpointOut)
    def post(self, request, endpoint_id):
        endpoint = selectors.endpoint_get(user=request.user, endpoint_id=endpoint_id)
        data = OpsEndpointScaleIn(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint = services.endpoint_scale(user=request.user, endpoint=endpoint, **data.validated_data)
        return Response(OpsEndpointOut(selectors.endpoint_detail(user=request.user, endpoint=endpoint)).data)


class StorageApi(OpsApiView):
    @extend_schema(tags=TAGS, responses=OpsStorageSummaryOut)
    def get(self, request):
        return Response(OpsStorageSummaryOut(selectors.storage_summary(user=request.user)).data)


class TeamListApi(OpsListApiView):
    serializer_class = OpsTeamUsageOut

    @extend_schema(tags=TAGS, responses=OpsTeamUsageOut(many=True))
    def get(self, request):
        return self.paginated(selectors.team_usage_list(user=request.user), OpsTeamUsageOut)


class UserListApi(OpsListApiView):
    serializer_class = OpsUserUsageOut

    @extend_schema(tags=TAGS, responses=OpsUserUsageOut(many=True))
    def get(self, request):
        return self.paginated(selectors.user_usage_list(user=request.user), OpsUserUsageOut)


class FailedTaskListApi(OpsListApiView):
    serializer_class = OpsFailedTaskOut

    @extend_schema(tags=TAGS, parameters=[OpenApiParameter("task", str, description="Task names containing this.")],
                   responses=OpsFailedTaskOut(many=True))
    def get(self, request):
        tasks = selectors.failed_task_list(user=request.user, task_name=request.query_params.get("task") or "")
        return self.paginated(tasks, OpsFailedTaskOut)


class FailedTaskDetailApi(OpsApiView):
    @extend_schema(tags=TAGS, responses=OpsFailedTaskDetailOut)
    def get(self, request, failed_task_id):
        return Response(OpsFailedTaskDetailOut(selectors.failed_task_get(user=request.user,
                                                                      failed_task_id=failed_task_id)).data)


class AdminActionListApi(OpsListApiView):
    serializer_class = OpsAdminActionOut

    @extend_schema(tags=TAGS, responses=OpsAdminActionOut(many=True))
    def get(self, request):
        return self.paginated(selectors.admin_action_list(user=request.user), OpsAdminActionOut)
