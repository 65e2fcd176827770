"""REST API of async invocations (API.md "Endpoints", async part): submit, status, output.

The submit view streams the body to storage: it reads ``request.stream`` in chunks and never touches
``request.body``, ``request.data`` or ``request.POST`` (which would hold the whole body in memory and
hit DATA_UPLOAD_MAX_MEMORY_SIZE). Callers authenticate with a Bearer token (member+ of the endpoint's
team; viewers may read) or with ``X-Api-Key``, an invoke key of the endpoint concerned.
"""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser
from django.http import FileResponse, Http404
from django.urls import reverse
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import authentication, exceptions, permissions, serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.response import Response
from rest_framework.views import APIView

from studio.accounts.authentication import BearerTokenAuthentication
from studio.core.errors import Conflict
from studio.core.storage import storage_open
from studio.endpoints import async_invocations as services
from studio.endpoints.models import AsyncInvocation, AsyncStatus, InvokeKey


class InvokeKeyAuthentication(authentication.BaseAuthentication):
    """``X-Api-Key: <secret>``: an endpoint's own invoke key (its SHA-256 is stored, never the secret).

    The request is then anonymous as a user; ``request.auth`` is the InvokeKey, which grants access to
    its endpoint only (views check that).
    """

    def authenticate(self, request):
        secret = request.META.get("HTTP_X_API_KEY", "").strip()
        if not secret:
            return None
        from studio.endpoints.services import invoke_key_hash

        key = (InvokeKey.objects.select_related("endpoint").filter(key_hash=invoke_key_hash(secret),
                                                                   revoked_at__isnull=True).first())
        if key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked invoke key.")
        return AnonymousUser(), key

    def authenticate_header(self, request) -> str:
        return "X-Api-Key"


class InvokeKeyScheme(OpenApiAuthenticationExtension):
    """Describes ``X-Api-Key`` in the OpenAPI schema (defining the class registers it)."""

    target_class = "studio.endpoints.async_api.InvokeKeyAuthentication"
    name = "invokeKey"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "X-Api-Key",
                "description": "An invoke key of the endpoint (endpoint page > Invoke keys)."}


class MemberTokenOrInvokeKey(permissions.BasePermission):
    """A signed-in user (roles are checked by the services) or a valid invoke key."""

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated) or isinstance(request.auth, InvokeKey)


def _principal(request) -> tuple[object | None, InvokeKey | None]:
    key = request.auth if isinstance(request.auth, InvokeKey) else None
    return (None if key is not None else request.user), key


class AsyncInvocationOut(serializers.ModelSerializer):
    endpoint = serializers.UUIDField(source="endpoint_id")
    variant = serializers.SerializerMethodField()
    input_dataset = serializers.UUIDField(source="input_dataset_id", allow_null=True)
    status_url = serializers.SerializerMethodField()
    output_url = serializers.SerializerMethodField()

    class Meta:
        model = AsyncInvocation
        fields = ["id", "endpoint", "variant", "status", "status_url", "output_url", "failure_reason", "records",
                  "size_bytes", "content_type", "input_dataset", "notification_status", "attempts", "created_at",
                  "started_at", "ended_at"]

    def _url(self, name: str, invocation: AsyncInvocation) -> str:
        path = reverse(name, kwargs={"invocation_id": invocation.id})
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else services.public_url(path)

    def get_variant(self, invocation: AsyncInvocation) -> str | None:
        return invocation.variant.name if invocation.variant_id and invocation.variant else None

    def get_status_url(self, invocation: AsyncInvocation) -> str:
        return self._url("api-async-invocation", invocation)

    def get_output_url(self, invocation: AsyncInvocation) -> str:
        return self._url("api-async-invocation-output", invocation)


class _Api(APIView):
    authentication_classes = [BearerTokenAuthentication, InvokeKeyAuthentication, SessionAuthentication]
    permission_classes = [MemberTokenOrInvokeKey]


class AsyncInvocationSubmitApi(_Api):
    # No parser ever runs: the view reads the raw stream itself.
    parser_classes: list = []

    @extend_schema(
        request={"application/jsonlines": OpenApiTypes.BINARY, "text/csv": OpenApiTypes.BINARY,
                 "application/json": OpenApiTypes.OBJECT},
        responses={202: AsyncInvocationOut},
        description="The body is the input: JSON lines, CSV rows or one JSON document {\"instances\": [...]} "
                    "(up to STUDIO_ASYNC_MAX_PAYLOAD_MB and the endpoint's async max_payload_mb; 413 above), or "
                    "{\"input_dataset\": \"<dataset id>\"} as application/json.",
    )
    def post(self, request, endpoint_id):
        user, key = _principal(request)
        endpoint = services.async_endpoint_get(user=user, endpoint_id=endpoint_id, key=key)
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        invocation = services.async_invocation_submit(
            endpoint=endpoint, user=user, key=key, stream=request._request if length else None,
            content_type=request.META.get("CONTENT_TYPE", ""), content_length=length,
        )
        return Response(AsyncInvocationOut(invocation, context={"request": request}).data,
                        status=status.HTTP_202_ACCEPTED)


class AsyncInvocationDetailApi(_Api):
    @extend_schema(responses=AsyncInvocationOut)
    def get(self, request, invocation_id):
        user, key = _principal(request)
        invocation = services.async_invocation_get(user=user, invocation_id=invocation_id, key=key)
        return Response(AsyncInvocationOut(invocation, context={"request": request}).data)


class AsyncInvocationOutputApi(_Api):
    @extend_schema(responses={(200, "application/jsonlines"): OpenApiTypes.BINARY})
    def get(self, request, invocation_id):
        user, key = _principal(request)
        invocation = services.async_invocation_get(user=user, invocation_id=invocation_id, key=key)
        if invocation.status == AsyncStatus.FAILED:
            raise Conflict(f"The invocation failed and has no output: {invocation.failure_reason}")
        if invocation.status != AsyncStatus.COMPLETED or not invocation.output_file:
            raise Http404(f"The output is not ready: the invocation is {invocation.status}.")
        try:
            handle = storage_open(invocation.output_file)
        except OSError:
            raise Http404("The output file is gone.") from None
        return FileResponse(handle, content_type="application/jsonlines", filename=f"{invocation.id}.jsonl")
