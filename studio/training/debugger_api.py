"""GET /api/v1/debugger-rules: the built-in debugger rules, their parameters and actions (a catalog, like
GET /algorithms); a job asks for them in the ``debugger_rules`` of its create call."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from studio.training.debugger import catalog


class RuleParameterOut(serializers.Serializer):
    name = serializers.CharField()
    type = serializers.CharField(help_text="int, float, or metric: the name of a metric the algorithm records "
                                           "(train:loss, validation:accuracy...)")
    default = serializers.JSONField(help_text="For metrics, empty: the channel's loss, else the algorithm's "
                                              "objective on that channel.")
    min = serializers.FloatField(required=False)
    max = serializers.FloatField(required=False)
    help = serializers.CharField()


class DebuggerRuleOut(serializers.Serializer):
    name = serializers.CharField()
    title = serializers.CharField()
    description = serializers.CharField()
    evaluated = serializers.CharField(help_text="epoch (on each epoch's metrics), start (once, from the dataset) "
                                                "or periodic (while the job runs)")
    parameters = RuleParameterOut(many=True)
    actions = serializers.ListField(child=serializers.CharField(), help_text="none, stop, notify")


class DebuggerRuleListApi(APIView):
    """The debugger rules a training job can ask for."""

    @extend_schema(responses=DebuggerRuleOut(many=True))
    def get(self, request):
        return Response(catalog())


urlpatterns = [
    path("debugger-rules", DebuggerRuleListApi.as_view(), name="api-debugger-rules"),
]
