"""REST API of endpoints (API.md "Endpoints"): CRUD, instances, metrics, invoke keys, a test invocation.

The invocation URL itself (POST /api/v1/endpoints/{id}/invocations) is served by the gateway
(studio.endpoints.gateway) before Django, for speed; async invocations and batch transform have
their own modules.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from studio.accounts.models import Role
from studio.accounts.permissions import require_role
from studio.accounts.selectors import project_get
from studio.core.api import StrictCharField, StrictFloatField, StrictIntegerField
from studio.endpoints import selectors, services
from studio.endpoints.models import Endpoint, EndpointInstance, InvokeKey


class VariantIn(serializers.Serializer):
    name = StrictCharField(required=False, max_length=100)
    model = serializers.UUIDField()
    weight = StrictFloatField(required=False, default=1.0)
    min_instances = StrictIntegerField(required=False)
    max_instances = StrictIntegerField(required=False)


class EndpointIn(serializers.Serializer):
    # Nested settings are JSON checked by studio.endpoints.validation, which names the exact field at fault.
    name = StrictCharField(max_length=200)
    type = StrictCharField(help_text="realtime, serverless or async")
    variants = serializers.JSONField(help_text="[{name, model, weight: 1.0, min_instances, max_instances}]")
    serverless = serializers.JSONField(required=False, help_text="{max_concurrency, idle_timeout_seconds}")
    autoscaling = serializers.JSONField(required=False, help_text="{target_invocations_per_instance (per second), "
                                        "scale_in_cooldown_seconds, scale_out_cooldown_seconds}")

    def get_fields(self):
        fields = super().get_fields()
        # "async" is a Python keyword: declared here so the request body keeps API.md's name.
        fields["async"] = serializers.JSONField(required=False, help_text="{max_payload_mb, notification_url?}")
        return fields


class EndpointPatchIn(serializers.Serializer):
    variants = serializers.JSONField(required=False)
    serverless = serializers.JSONField(required=False)
    autoscaling = serializers.JSONField(required=False)

    def get_fields(self):
        fields = super().get_fields()
        fields["async"] = serializers.JSONField(required=False)
        return fields


class VariantOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    model = serializers.UUIDField()
    model_name = serializers.CharField()
    weight = serializers.FloatField()
    min_instances = serializers.IntegerField()
    max_instances = serializers.IntegerField()
    desired_instances = serializers.IntegerField()
    current_instances = serializers.IntegerField(help_text="Instances in service now.")
    starting_instances = serializers.IntegerField()


class MetricsOut(serializers.Serializer):
    invocations = serializers.IntegerField()
    errors = serializers.IntegerField()
    throttled = serializers.IntegerField()
    p50_ms = serializers.FloatField(allow_null=True)
    p99_ms = serializers.FloatField(allow_null=True)
    cold_starts = serializers.IntegerField()


class EndpointOut(serializers.ModelSerializer):
    variants = serializers.SerializerMethodField()
    invocation_url = serializers.SerializerMethodField()
    async_invocation_url = serializers.SerializerMethodField()
    metrics = serializers.SerializerMethodField()
    created_by = serializers.SerializerMethodField()

    class Meta:
        model = Endpoint
        fields = ["id", "name", "type", "status", "status_message", "failure_reason", "variants", "serverless",
                  "autoscaling", "invocation_url", "async_invocation_url", "metrics", "created_by", "created_at",
                  "updated_at"]

    def to_representation(self, endpoint: Endpoint):
        data = super().to_representation(endpoint)
        data["async"] = endpoint.async_config
        return data

    @extend_schema(responses=VariantOut(many=True))
    def get_variants(self, endpoint: Endpoint) -> list[dict]:
        return selectors.variant_list(endpoint=endpoint)

    def _url(self, path: str) -> str:
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path

    def get_invocation_url(self, endpoint: Endpoint) -> str:
        return self._url(f"/api/v1/endpoints/{endpoint.id}/invocations")

    def get_async_invocation_url(self, endpoint: Endpoint) -> str | None:
        return self._url(f"/api/v1/endpoints/{endpoint.id}/async-invocations") if endpoint.type == "async" else None

    @extend_schema(responses=MetricsOut)
    def get_metrics(self, endpoint: Endpoint) -> dict:
        return selectors.metrics_summary(endpoint=endpoint)

    def get_created_by(self, endpoint: Endpoint) -> str | None:
        return endpoint.created_by.username if endpoint.created_by else None


class InstanceOut(serializers.ModelSerializer):
    variant = serializers.CharField(source="variant.name")

    class Meta:
        model = EndpointInstance
        fields = ["id", "variant", "status", "status_message", "agent", "cold_start", "startup_ms", "config_version",
                  "created_at", "ready_at", "stopped_at"]


class InvokeKeyOut(serializers.ModelSerializer):
    class Meta:
        model = InvokeKey
        fields = ["id", "name", "prefix", "created_at", "revoked_at", "last_used_at"]


def _endpoint(request, project_id, endpoint_id) -> Endpoint:
    project = project_get(user=request.user, project_id=project_id)
    return selectors.endpoint_get(user=request.user, project=project, endpoint_id=endpoint_id)


class EndpointListApi(generics.GenericAPIView):
    serializer_class = EndpointOut

    @extend_schema(responses=EndpointOut(many=True))
    def get(self, request, project_id):
        project = project_get(user=request.user, project_id=project_id)
        page = self.paginate_queryset(selectors.endpoint_list(user=request.user, project=project))
        return self.get_paginated_response(EndpointOut(page, many=True, context={"request": request}).data)

    @extend_schema(request=EndpointIn, responses={201: EndpointOut})
    def post(self, request, project_id):
        project = project_get(user=request.user, project_id=project_id)
        require_role(user=request.user, team=project.team, role=Role.MEMBER)  # 403 before validating the body
        data = EndpointIn(data=request.data)
        data.is_valid(raise_exception=True)
        body = data.validated_data
        endpoint = services.endpoint_create(
            user=request.user, project=project, name=body["name"], type=body["type"], variants=body["variants"],
            serverless=body.get("serverless"), autoscaling=body.get("autoscaling"), async_config=body.get("async"))
        return Response(EndpointOut(endpoint, context={"request": request}).data, status=status.HTTP_201_CREATED)


class EndpointDetailApi(APIView):
    @extend_schema(responses=EndpointOut)
    def get(self, request, project_id, endpoint_id):
        endpoint = _endpoint(request, project_id, endpoint_id)
        return Response(EndpointOut(endpoint, context={"request": request}).data)

    @extend_schema(request=EndpointPatchIn, responses=EndpointOut)
    def patch(self, request, project_id, endpoint_id):
        endpoint = _endpoint(request, project_id, endpoint_id)
        data = EndpointPatchIn(data=request.data)
        data.is_valid(raise_exception=True)
        body = data.validated_data
        endpoint = services.endpoint_update(
            user=request.user, endpoint=endpoint, variants=body.get("variants"), serverless=body.get("serverless"),
            autoscaling=body.get("autoscaling"), async_config=body.get("async"))
        return Response(EndpointOut(endpoint, context={"request": request}).data)

    @extend_schema(responses={204: None})
    def delete(self, request, project_id, endpoint_id):
        services.endpoint_delete(user=request.user, endpoint=_endpoint(request, project_id, endpoint_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class EndpointInstancesApi(APIView):
    @extend_schema(responses=InstanceOut(many=True))
    def get(self, request, project_id, endpoint_id):
        endpoint = _endpoint(request, project_id, endpoint_id)
        return Response(InstanceOut(selectors.instance_list(endpoint=endpoint)[:200], many=True).data)


class EndpointMetricsApi(APIView):
    @extend_schema(responses=inline_serializer("EndpointMetrics", {
        "summary": MetricsOut(),
        "series": serializers.ListField(child=serializers.DictField(), help_text="{variant, ts, invocations, errors, "
                                        "throttled, rps, p50_ms, p99_ms, instances, cold_starts} per interval"),
        "scaling_events": serializers.ListField(child=serializers.DictField()),
    }))
    def get(self, request, project_id, endpoint_id):
        endpoint = _endpoint(request, project_id, endpoint_id)
        try:
            since = float(request.query_params["since"]) if "since" in request.query_params else None
        except ValueError:
            since = None
        rows = selectors.metric_rows(endpoint=endpoint, since=since)
        events = [{"variant": e.variant.name, "from": e.from_instances, "to": e.to_instances, "reason": e.reason,
                   "created_at": e.created_at} for e in selectors.scaling_event_list(endpoint=endpoint)[:100]]
        return Response({"summary": selectors.metrics_summary(endpoint=endpoint),
                         "series": [selectors.metric_event(row) for row in rows.order_by("-ts")[:2000][::-1]],
                         "scaling_events": events})


class InvokeKeyIn(serializers.Serializer):
    name = StrictCharField(required=False, allow_blank=True, max_length=100,
                           help_text="What the key is for; 'invoke key' when left out.")


class InvokeKeyListApi(APIView):
    @extend_schema(responses=InvokeKeyOut(many=True))
    def get(self, request, project_id, endpoint_id):
        endpoint = _endpoint(request, project_id, endpoint_id)
        return Response(InvokeKeyOut(selectors.invoke_key_list(endpoint=endpoint), many=True).data)

    @extend_schema(request=InvokeKeyIn,
                   responses={201: inline_serializer("InvokeKeyCreated", {"id": serializers.UUIDField(),
                                                                          "name": serializers.CharField(),
                                                                          "prefix": serializers.CharField(),
                                                                          "key": serializers.CharField()})})
    def post(self, request, project_id, endpoint_id):
        endpoint = _endpoint(request, project_id, endpoint_id)
        data = InvokeKeyIn(data=request.data)  # a body that is not an object is a 400, not a 500
        data.is_valid(raise_exception=True)
        key, secret = services.invoke_key_create(user=request.user, endpoint=endpoint,
                                                 name=data.validated_data.get("name") or "")
        return Response({**InvokeKeyOut(key).data, "key": secret}, status=status.HTTP_201_CREATED)


class InvokeKeyDetailApi(APIView):
    @extend_schema(responses={204: None})
    def delete(self, request, project_id, endpoint_id, key_id):
        endpoint = _endpoint(request, project_id, endpoint_id)
        services.invoke_key_revoke(user=request.user, key=selectors.invoke_key_get(endpoint=endpoint, key_id=key_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class TestInvocationIn(serializers.Serializer):
    body = StrictCharField(help_text="The payload, as a client would send it.", trim_whitespace=False)
    content_type = StrictCharField(required=False, default="application/json")
    target_variant = StrictCharField(required=False, allow_blank=True)


class EndpointTestInvocationApi(APIView):
    """What the endpoint page's test box calls with the browser session; clients use the invocation URL."""

    @extend_schema(request=TestInvocationIn, responses=inline_serializer("TestInvocationOut", {
        "status": serializers.IntegerField(), "response": serializers.JSONField(),
        "elapsed_ms": serializers.FloatField()}))
    def post(self, request, project_id, endpoint_id):
        import json
        import time

        endpoint = _endpoint(request, project_id, endpoint_id)
        require_role(user=request.user, team=endpoint.project.team, role=Role.MEMBER)  # 403 before the body
        data = TestInvocationIn(data=request.data)  # a body that is not an object is a 400, not a 500
        data.is_valid(raise_exception=True)
        start = time.perf_counter()
        code, raw = services.endpoint_test_invoke(
            user=request.user, endpoint=endpoint, body=data.validated_data["body"].encode(),
            content_type=data.validated_data.get("content_type") or "application/json",
            target_variant=data.validated_data.get("target_variant") or "")
        try:
            answer = json.loads(raw or b"null")
        except ValueError:
            answer = raw.decode(errors="replace")
        return Response({"status": code, "response": answer,
                         "elapsed_ms": round((time.perf_counter() - start) * 1000, 2)})
