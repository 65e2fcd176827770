"""REST API of pipelines, their executions, schedules and triggers (API.md "Pipelines").

Thin: definitions are checked by studio.pipelines.definition (which names the step and argument of each
problem), runs are started, stopped and retried by the engine, schedules and triggers live in automation.
Reads go through the scoped selectors, so another team's pipeline is a 404; viewers read, members write.
"""

from __future__ import annotations

from django.db.models import OuterRef, Subquery
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from studio.accounts.models import Role
from studio.accounts.permissions import require_role
from studio.accounts.selectors import project_get
from studio.core.api import StrictBooleanField, StrictCharField, choice_param, single_param
from studio.pipelines import automation, engine, selectors, services
from studio.pipelines.models import (
    ExecutionStatus,
    Pipeline,
    PipelineExecution,
    PipelineSchedule,
    PipelineStep,
    PipelineTrigger,
    StepType,
    TriggerEvent,
)

DEFINITION_HELP = ('{"parameters": {name: default}, "steps": [{"name", "type", "depends_on": [], "arguments": {}, '
                   '"retry"?: {"max_attempts", "backoff_seconds", "backoff_rate"}, "cache"?: {"enabled", '
                   '"expire_after_seconds"}}]}; arguments may hold {"ref": "parameters.<name>"}, '
                   '{"ref": "steps.<step>.<output>"} or {"ref": "steps.<step>.metrics.<metric>"}.')


# --- pipelines ----------------------------------------------------------------------------------


class PipelineIn(serializers.Serializer):
    name = StrictCharField(max_length=200)
    description = StrictCharField(required=False, allow_blank=True, default="")
    # Taken as JSON and checked by the definition validator, which names the step and argument at fault.
    definition = serializers.JSONField(help_text=DEFINITION_HELP)


class PipelinePatch(serializers.Serializer):
    name = StrictCharField(required=False, max_length=200)
    description = StrictCharField(required=False, allow_blank=True)
    definition = serializers.JSONField(required=False, help_text=DEFINITION_HELP)


class LastExecutionOut(serializers.Serializer):
    id = serializers.UUIDField()
    number = serializers.IntegerField()
    # Text, not a choice field: ExecutionOut already names the execution status enum in the schema.
    status = serializers.CharField(help_text=f"One of {', '.join(ExecutionStatus.values)}.")


class PipelineOut(serializers.ModelSerializer):
    definition = serializers.JSONField(help_text=DEFINITION_HELP)
    last_execution = serializers.SerializerMethodField()
    created_by = serializers.SerializerMethodField()

    class Meta:
        model = Pipeline
        fields = ["id", "name", "description", "definition", "version", "created_by", "created_at", "updated_at",
                  "last_execution"]

    @extend_schema_field(LastExecutionOut(allow_null=True))
    def get_last_execution(self, pipeline: Pipeline) -> dict | None:
        if hasattr(pipeline, "_last_execution"):
            last = pipeline._last_execution
        else:
            last = pipeline.executions.order_by("-number").only("id", "number", "status").first()
        return {"id": str(last.id), "number": last.number, "status": last.status} if last is not None else None

    def get_created_by(self, pipeline: Pipeline) -> str | None:
        return pipeline.created_by.username if pipeline.created_by else None


def _with_last_executions(pipelines: list[Pipeline]) -> list[Pipeline]:
    """Attach each pipeline's latest execution with one query for the page rather than one per pipeline."""
    latest = PipelineExecution.objects.filter(pipeline=OuterRef("pipeline")).order_by("-number").values("number")[:1]
    found = {e.pipeline_id: e for e in PipelineExecution.objects.filter(
        pipeline__in=pipelines, number=Subquery(latest)).only("id", "number", "status", "pipeline_id")}
    for pipeline in pipelines:
        pipeline._last_execution = found.get(pipeline.id)
    return pipelines


class PipelineListApi(generics.GenericAPIView):
    serializer_class = PipelineOut

    @extend_schema(responses=PipelineOut(many=True))
    def get(self, request, project_id):
        project = project_get(user=request.user, project_id=project_id)
        page = self.paginate_queryset(selectors.pipeline_list(user=request.user, project=project))
        return self.get_paginated_response(PipelineOut(_with_last_executions(list(page)), many=True).data)

    @extend_schema(request=PipelineIn, responses={201: PipelineOut, 403: OpenApiResponse(description="Viewers")})
    def post(self, request, project_id):
        project = project_get(user=request.user, project_id=project_id)
        require_role(user=request.user, team=project.team, role=Role.MEMBER)
        data = PipelineIn(data=request.data)
        data.is_valid(raise_exception=True)
        pipeline = services.pipeline_create(user=request.user, project=project, **data.validated_data)
        return Response(PipelineOut(pipeline).data, status=status.HTTP_201_CREATED)


class PipelineDetailApi(APIView):
    @extend_schema(responses=PipelineOut)
    def get(self, request, project_id, pipeline_id):
        return Response(PipelineOut(_pipeline(request, project_id, pipeline_id)).data)

    @extend_schema(request=PipelinePatch, responses=PipelineOut)
    def patch(self, request, project_id, pipeline_id):
        pipeline = _pipeline(request, project_id, pipeline_id, write=True)
        data = PipelinePatch(data=request.data)
        data.is_valid(raise_exception=True)
        pipeline = services.pipeline_update(user=request.user, pipeline=pipeline, **data.validated_data)
        return Response(PipelineOut(pipeline).data)

    @extend_schema(responses={204: None, 409: OpenApiResponse(description="An execution is still running")})
    def delete(self, request, project_id, pipeline_id):
        services.pipeline_delete(user=request.user, pipeline=_pipeline(request, project_id, pipeline_id, write=True))
        return Response(status=status.HTTP_204_NO_CONTENT)


def _pipeline(request, project_id, pipeline_id, *, write: bool = False) -> Pipeline:
    project = project_get(user=request.user, project_id=project_id)
    pipeline = selectors.pipeline_get(user=request.user, project=project, pipeline_id=pipeline_id)
    if write:
        # Before reading the body: a viewer learns they may not write, not what is wrong with the input.
        require_role(user=request.user, team=project.team, role=Role.MEMBER)
    return pipeline


# --- executions ---------------------------------------------------------------------------------


class ExecutionIn(serializers.Serializer):
    parameters = serializers.JSONField(required=False, help_text="{name: value} over the definition's defaults; "
                                       "a dataset or model parameter takes an id or a name in the project.")


class LinkOut(serializers.Serializer):
    label = serializers.CharField()
    url = serializers.CharField(help_text="The page of the job, model, dataset or endpoint the step made or used.")


class StepOut(serializers.ModelSerializer):
    type = serializers.ChoiceField(choices=StepType.choices)
    depends_on = serializers.ListField(child=serializers.CharField())
    outputs = serializers.JSONField(help_text='{"model", "dataset", "endpoint", "model_version", "metrics": '
                                    '{name: value}, ...} as ids')
    job = serializers.JSONField(help_text='The job the step waits on: {"kind", "id"}, or {}.')
    duration_seconds = serializers.FloatField(allow_null=True)
    links = serializers.SerializerMethodField()

    class Meta:
        model = PipelineStep
        fields = ["name", "type", "status", "depends_on", "started_at", "ended_at", "duration_seconds", "outputs",
                  "cached", "attempts", "status_message", "failure_reason", "job", "links"]

    @extend_schema_field(LinkOut(many=True))
    def get_links(self, step: PipelineStep) -> list[dict[str, str]]:
        return engine.step_links(step, step.execution.project_id)


class ExecutionOut(serializers.ModelSerializer):
    pipeline = serializers.UUIDField(source="pipeline_id")
    parameters = serializers.JSONField()
    trigger_detail = serializers.JSONField(help_text='What started it: {"schedule"} / {"trigger", "dataset"} / '
                                           '{"trigger", "model_version", ...}.')
    created_by = serializers.SerializerMethodField()
    steps = serializers.SerializerMethodField()

    class Meta:
        model = PipelineExecution
        fields = ["id", "pipeline", "number", "status", "status_message", "failure_reason", "parameters", "trigger",
                  "trigger_detail", "pipeline_version", "created_by", "created_at", "started_at", "ended_at",
                  "steps"]

    def get_created_by(self, execution: PipelineExecution) -> str | None:
        return execution.created_by.username if execution.created_by else None

    @extend_schema_field(StepOut(many=True))
    def get_steps(self, execution: PipelineExecution) -> list[dict]:
        return StepOut(selectors.step_list(execution=execution), many=True).data


class _ExecutionPage(generics.GenericAPIView):
    serializer_class = ExecutionOut

    def _page(self, request, executions):
        if wanted := choice_param(request, "status", ExecutionStatus.values):
            executions = executions.filter(status=wanted)
        page = self.paginate_queryset(executions.order_by("-created_at", "-number"))
        return self.get_paginated_response(ExecutionOut(page, many=True).data)


class PipelineExecutionListApi(_ExecutionPage):
    @extend_schema(
        parameters=[OpenApiParameter("status", str, enum=ExecutionStatus.values, description="Only this status.")],
        responses=ExecutionOut(many=True))
    def get(self, request, project_id, pipeline_id):
        pipeline = _pipeline(request, project_id, pipeline_id)
        executions = selectors.execution_list(user=request.user, project=pipeline.project, pipeline=pipeline)
        return self._page(request, executions)

    @extend_schema(request=ExecutionIn, responses={201: ExecutionOut})
    def post(self, request, project_id, pipeline_id):
        pipeline = _pipeline(request, project_id, pipeline_id, write=True)
        data = ExecutionIn(data=request.data)
        data.is_valid(raise_exception=True)
        execution = engine.pipeline_execution_start(user=request.user, pipeline=pipeline,
                                                    parameters=data.validated_data.get("parameters"))
        return Response(ExecutionOut(execution).data, status=status.HTTP_201_CREATED)


class ProjectExecutionListApi(_ExecutionPage):
    """Every execution in the project, newest first (``?pipeline=<id>`` narrows to one pipeline)."""

    @extend_schema(
        parameters=[OpenApiParameter("status", str, enum=ExecutionStatus.values, description="Only this status."),
                    OpenApiParameter("pipeline", OpenApiTypes.UUID, description="Only this pipeline's.")],
        responses=ExecutionOut(many=True))
    def get(self, request, project_id):
        project = project_get(user=request.user, project_id=project_id)
        pipeline = None
        if (raw := single_param(request, "pipeline")) is not None:  # a malformed id is a 400, not "all of them"
            try:
                wanted = serializers.UUIDField().to_internal_value(raw)
            except serializers.ValidationError:
                raise serializers.ValidationError({"pipeline": ["A pipeline id."]}) from None
            pipeline = selectors.pipeline_get(user=request.user, project=project, pipeline_id=wanted)
        return self._page(request, selectors.execution_list(user=request.user, project=project, pipeline=pipeline))


def _execution(request, project_id, execution_id, pipeline_id=None, *, write: bool = False) -> PipelineExecution:
    project = project_get(user=request.user, project_id=project_id)
    if pipeline_id is not None:
        selectors.pipeline_get(user=request.user, project=project, pipeline_id=pipeline_id)
    execution = selectors.execution_get(user=request.user, project=project, execution_id=execution_id)
    if pipeline_id is not None and str(execution.pipeline_id) != str(pipeline_id):
        raise Http404("No such execution of this pipeline.")
    if write:
        require_role(user=request.user, team=project.team, role=Role.MEMBER)
    return execution


class ExecutionDetailApi(APIView):
    @extend_schema(responses=ExecutionOut)
    def get(self, request, project_id, execution_id, pipeline_id=None):
        return Response(ExecutionOut(_execution(request, project_id, execution_id, pipeline_id)).data)


class ExecutionStopApi(APIView):
    @extend_schema(request=None, responses={202: ExecutionOut})
    def post(self, request, project_id, execution_id, pipeline_id=None):
        execution = _execution(request, project_id, execution_id, pipeline_id, write=True)
        execution = engine.pipeline_execution_stop(user=request.user, execution=execution)
        return Response(ExecutionOut(execution).data, status=status.HTTP_202_ACCEPTED)


class ExecutionRetryApi(APIView):
    @extend_schema(request=None, responses={
        202: ExecutionOut, 409: OpenApiResponse(description="Only a failed or stopped execution is retried")})
    def post(self, request, project_id, execution_id, pipeline_id=None):
        execution = _execution(request, project_id, execution_id, pipeline_id, write=True)
        execution = engine.pipeline_execution_retry(user=request.user, execution=execution)
        return Response(ExecutionOut(execution).data, status=status.HTTP_202_ACCEPTED)


# --- schedules ----------------------------------------------------------------------------------


class ScheduleIn(serializers.Serializer):
    cron = StrictCharField(max_length=100, help_text="5 fields 'minute hour day-of-month month day-of-week' "
                           "(e.g. '0 3 * * 1-5'), or @hourly, @daily, @weekly, @monthly, @yearly.")
    parameters = serializers.JSONField(required=False, help_text="Values for this schedule's runs: {name: value}.")
    name = StrictCharField(required=False, allow_blank=True, max_length=200, default="")
    timezone = StrictCharField(required=False, max_length=63, default="UTC",
                               help_text="IANA time zone the cron line is read in, e.g. Europe/Paris.")
    enabled = StrictBooleanField(required=False, default=True)


class SchedulePatch(serializers.Serializer):
    cron = StrictCharField(required=False, max_length=100)
    parameters = serializers.JSONField(required=False)
    name = StrictCharField(required=False, allow_blank=True, max_length=200)
    timezone = StrictCharField(required=False, max_length=63)
    enabled = StrictBooleanField(required=False)


class ScheduleOut(serializers.ModelSerializer):
    parameters = serializers.JSONField()
    next_run_at = serializers.SerializerMethodField(help_text="When beat starts the next run (null when disabled).")
    created_by = serializers.SerializerMethodField()

    class Meta:
        model = PipelineSchedule
        fields = ["id", "name", "cron", "timezone", "parameters", "enabled", "last_run_at", "next_run_at",
                  "created_by", "created_at"]

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_next_run_at(self, schedule: PipelineSchedule) -> str | None:
        when = automation.schedule_next_run(schedule)
        return serializers.DateTimeField().to_representation(when) if when is not None else None

    def get_created_by(self, schedule: PipelineSchedule) -> str | None:
        return schedule.created_by.username if schedule.created_by else None


# A pipeline's schedules or triggers (shown by serializer_class): a page of them, or a new one. A comment, not a
# docstring: the schema would take a docstring as the description of every operation of the subclasses.
class _AutomationListApi(generics.GenericAPIView):
    def _list(self, request, project_id, pipeline_id, *, rows):
        pipeline = _pipeline(request, project_id, pipeline_id)
        page = self.paginate_queryset(rows(pipeline=pipeline))
        return self.get_paginated_response(self.serializer_class(page, many=True).data)

    def _create(self, request, project_id, pipeline_id, *, body: type[serializers.Serializer], create):
        pipeline = _pipeline(request, project_id, pipeline_id, write=True)
        data = body(data=request.data)
        data.is_valid(raise_exception=True)
        created = create(user=request.user, pipeline=pipeline, **data.validated_data)
        return Response(self.serializer_class(created).data, status=status.HTTP_201_CREATED)


class ScheduleListApi(_AutomationListApi):
    serializer_class = ScheduleOut

    @extend_schema(responses=ScheduleOut(many=True))
    def get(self, request, project_id, pipeline_id):
        return self._list(request, project_id, pipeline_id, rows=automation.schedule_list)

    @extend_schema(request=ScheduleIn, responses={201: ScheduleOut})
    def post(self, request, project_id, pipeline_id):
        return self._create(request, project_id, pipeline_id, body=ScheduleIn, create=automation.schedule_create)


class ScheduleDetailApi(APIView):
    @extend_schema(responses=ScheduleOut)
    def get(self, request, project_id, pipeline_id, schedule_id):
        return Response(ScheduleOut(_schedule(request, project_id, pipeline_id, schedule_id)).data)

    @extend_schema(request=SchedulePatch, responses=ScheduleOut)
    def patch(self, request, project_id, pipeline_id, schedule_id):
        schedule = _schedule(request, project_id, pipeline_id, schedule_id, write=True)
        data = SchedulePatch(data=request.data)
        data.is_valid(raise_exception=True)
        schedule = automation.schedule_update(user=request.user, schedule=schedule, **data.validated_data)
        return Response(ScheduleOut(schedule).data)

    @extend_schema(responses={204: None})
    def delete(self, request, project_id, pipeline_id, schedule_id):
        automation.schedule_delete(user=request.user,
                                   schedule=_schedule(request, project_id, pipeline_id, schedule_id, write=True))
        return Response(status=status.HTTP_204_NO_CONTENT)


def _schedule(request, project_id, pipeline_id, schedule_id, *, write: bool = False) -> PipelineSchedule:
    pipeline = _pipeline(request, project_id, pipeline_id, write=write)
    return automation.schedule_get(pipeline=pipeline, schedule_id=schedule_id)


# --- triggers -----------------------------------------------------------------------------------


class TriggerIn(serializers.Serializer):
    event = serializers.ChoiceField(choices=TriggerEvent.choices)
    filter = serializers.JSONField(required=False, help_text='dataset_created: {"name_pattern": "customers-*"} '
                                   '(a case-sensitive glob); model_version_approved: {"model_group": "<name>"}.')
    parameter = StrictCharField(required=False, allow_blank=True, max_length=100, default="",
                                help_text="The pipeline parameter that receives the new dataset's id "
                                          "(dataset_created) or the approved version's model id.")
    parameters = serializers.JSONField(required=False, help_text="Fixed values for the other parameters.")
    enabled = StrictBooleanField(required=False, default=True)


class TriggerOut(serializers.ModelSerializer):
    filter = serializers.JSONField()
    parameters = serializers.JSONField()
    created_by = serializers.SerializerMethodField()

    class Meta:
        model = PipelineTrigger
        fields = ["id", "event", "filter", "parameter", "parameters", "enabled", "last_fired_at", "created_by",
                  "created_at"]

    def get_created_by(self, trigger: PipelineTrigger) -> str | None:
        return trigger.created_by.username if trigger.created_by else None


class TriggerListApi(_AutomationListApi):
    serializer_class = TriggerOut

    @extend_schema(responses=TriggerOut(many=True))
    def get(self, request, project_id, pipeline_id):
        return self._list(request, project_id, pipeline_id, rows=automation.trigger_list)

    @extend_schema(request=TriggerIn, responses={201: TriggerOut})
    def post(self, request, project_id, pipeline_id):
        return self._create(request, project_id, pipeline_id, body=TriggerIn, create=automation.trigger_create)


class TriggerDetailApi(APIView):
    @extend_schema(responses=TriggerOut)
    def get(self, request, project_id, pipeline_id, trigger_id):
        pipeline = _pipeline(request, project_id, pipeline_id)
        return Response(TriggerOut(automation.trigger_get(pipeline=pipeline, trigger_id=trigger_id)).data)

    @extend_schema(responses={204: None})
    def delete(self, request, project_id, pipeline_id, trigger_id):
        pipeline = _pipeline(request, project_id, pipeline_id, write=True)
        automation.trigger_delete(user=request.user,
                                  trigger=automation.trigger_get(pipeline=pipeline, trigger_id=trigger_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- what the builder offers --------------------------------------------------------------------


class TemplateOut(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    definition = serializers.JSONField(help_text="Ready to POST as a new pipeline's definition.")


class ArgumentOut(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.CharField(help_text="dataset, model, model_version, endpoint, number, string, boolean, "
                                 "object, list, steps or any")
    required = serializers.BooleanField()
    help = serializers.CharField()
    choices = serializers.ListField(child=serializers.CharField())


class StepOutputOut(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.CharField(help_text="What it holds (metrics: an object read as steps.<s>.metrics.<name>).")


class StepTypeOut(serializers.Serializer):
    # Text, not a choice field: StepOut already names the step type enum in the schema.
    type = serializers.CharField(help_text=f"One of {', '.join(StepType.values)}.")
    title = serializers.CharField()
    description = serializers.CharField()
    cacheable = serializers.BooleanField()
    arguments = ArgumentOut(many=True)
    outputs = StepOutputOut(many=True)


class PipelineTemplateListApi(APIView):
    """The template gallery: whole definitions to start a pipeline from."""

    @extend_schema(responses=TemplateOut(many=True))
    def get(self, request, project_id):
        from studio.pipelines.gallery import pipeline_templates

        project_get(user=request.user, project_id=project_id)
        return Response(pipeline_templates())


class StepTypeListApi(APIView):
    """The step palette: each type's arguments (kinds drive refs and form fields) and outputs."""

    @extend_schema(responses=StepTypeOut(many=True))
    def get(self, request, project_id):
        from studio.pipelines.steps import step_palette

        project_get(user=request.user, project_id=project_id)
        return Response(step_palette())
