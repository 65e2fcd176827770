from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from algorithms import list_algorithms
from studio.accounts.selectors import project_get


class HyperparameterOut(serializers.Serializer):
    name = serializers.CharField()
    type = serializers.ChoiceField(choices=["float", "int", "categorical", "bool"])
    default = serializers.JSONField()
    min = serializers.FloatField(required=False)
    max = serializers.FloatField(required=False)
    choices = serializers.ListField(child=serializers.JSONField(), required=False)
    scale = serializers.ChoiceField(choices=["linear", "log"], required=False)
    tunable = serializers.BooleanField()
    help = serializers.CharField(required=False)


class MetricOut(serializers.Serializer):
    name = serializers.CharField()
    direction = serializers.ChoiceField(choices=["maximize", "minimize"])


class AlgorithmOut(serializers.Serializer):
    name = serializers.CharField()
    title = serializers.CharField()
    task = serializers.CharField()
    target = serializers.ChoiceField(choices=["required", "optional", "none"],
                                     help_text="Whether training needs a target column: required (supervised), "
                                               "optional (labels only to score, e.g. anomaly AUC) or none.")
    input = serializers.ChoiceField(choices=["tabular", "text", "image"])
    hyperparameters = HyperparameterOut(many=True)
    metrics = MetricOut(many=True)
    default_objective = serializers.CharField()


def _algorithms() -> list[dict]:
    return [algorithm.describe() for algorithm in list_algorithms()]


class AlgorithmListApi(APIView):
    """The built-in algorithms and their hyperparameter declarations (drives forms and validation)."""

    @extend_schema(responses=AlgorithmOut(many=True))
    def get(self, request):
        return Response(_algorithms())


class ProjectAlgorithmListApi(APIView):
    @extend_schema(responses=AlgorithmOut(many=True))
    def get(self, request, project_id):
        project_get(user=request.user, project_id=project_id)
        return Response(_algorithms())
