"""Shared REST pieces: pagination, the error format of API.md, and input read as strictly as the schema says it."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent, TooManyFilesSent
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, QueryDict
from rest_framework import exceptions, serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from studio.core.errors import Conflict, PayloadTooLarge


class _StrictJson:
    """A field that refuses a JSON value of the wrong type (0 for false, 0 for "0") instead of coercing it, as the
    schema says. Form bodies carry only text: there, ``form_texts`` (when set) are the only texts taken."""

    json_types: tuple[type, ...] = ()
    form_texts: tuple[str, ...] = ()

    def to_internal_value(self, data):
        if isinstance(getattr(self.root, "initial_data", None), QueryDict):
            ok = not self.form_texts or data in self.form_texts
        else:
            ok = isinstance(data, self.json_types)
        if not ok:
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictCharField(_StrictJson, serializers.CharField):
    json_types = (str,)


class StrictBooleanField(_StrictJson, serializers.BooleanField):
    json_types = (bool,)
    form_texts = ("true", "false")


class StrictIntegerField(_StrictJson, serializers.IntegerField):
    json_types = (int,)

    def to_internal_value(self, data):
        if isinstance(data, bool):  # a bool is an int to Python, not to JSON
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictFloatField(_StrictJson, serializers.FloatField):
    json_types = (int, float)

    def to_internal_value(self, data):
        if isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


def single_param(request, name: str) -> str | None:
    """A query parameter given at most once: with two values Django would silently keep the last one."""
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise exceptions.ValidationError({name: ["Give it once."]})
    return values[0] if values else None


def choice_param(request, name: str, choices) -> str | None:
    """A query parameter that must be one of ``choices`` when given: a filter on a misspelt status is a 400 that
    says so, not an empty page that looks like the answer."""
    value = single_param(request, name)
    if value is None:
        return None
    if value not in choices:
        raise exceptions.ValidationError({name: [f"One of {', '.join(choices)}."]})
    return value


class Pagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request) -> int:
        # DRF ignores a page_size it cannot read; a client that sent one wants to hear it was wrong (400).
        raw = single_param(request, self.page_size_query_param)
        if raw is None:
            return self.page_size
        try:
            size = int(raw)
        except ValueError:
            size = 0
        if size < 1:
            raise exceptions.ValidationError({self.page_size_query_param: [
                f"A whole number from 1 (at most {self.max_page_size} are returned)."]})
        return min(size, self.max_page_size)

    def get_page_number(self, request, paginator):
        # DRF reads an empty ?page= as page 1; like any other page that is not a number, it is not found.
        if single_param(request, self.page_query_param) == "":
            raise exceptions.NotFound("Invalid page.")
        return super().get_page_number(request, paginator)

    def get_schema_operation_parameters(self, view) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] in (self.page_query_param, self.page_size_query_param):
                parameter["schema"]["minimum"] = 1
        return parameters


def _django_validation_errors(exc: DjangoValidationError) -> dict[str, list[str]]:
    if hasattr(exc, "error_dict"):
        return {field: [m for e in errs for m in e.messages] for field, errs in exc.error_dict.items()}
    return {"non_field_errors": list(exc.messages)}


def _flatten(errors) -> dict[str, list[str]]:
    if isinstance(errors, dict):
        out = {}
        for key, value in errors.items():
            if isinstance(value, dict):
                for sub, msgs in _flatten(value).items():
                    out[f"{key}.{sub}"] = msgs
            else:
                out[key] = [str(v) for v in (value if isinstance(value, list) else [value])]
        return out
    return {"non_field_errors": [str(e) for e in (errors if isinstance(errors, list) else [errors])]}


def _summary(errors: dict[str, list[str]]) -> str:
    parts = []
    for field, msgs in errors.items():
        text = " ".join(msgs)
        parts.append(text if field == "non_field_errors" else f"{field}: {text}")
    return "; ".join(parts) or "Invalid input."


def error_response(detail: str, code: int, errors: dict | None = None, headers: dict | None = None) -> Response:
    body = {"detail": detail}
    if errors:
        body["errors"] = errors
    return Response(body, status=code, headers=headers)


def _suspicious_response(exc: SuspiciousOperation) -> Response:
    """Django's request limits (DATA_UPLOAD_*), which would otherwise answer an HTML page, in the API's format."""
    # Logged where Django logs what it handles itself, so security monitoring sees the same events.
    logging.getLogger(f"django.security.{type(exc).__name__}").warning("%s", exc)
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE / (1024 * 1024)
        return error_response(f"The request body is larger than {limit:g} MB; send files as multipart uploads.",
                              status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, TooManyFieldsSent):
        return error_response(f"The request has more than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} form fields.",
                              status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, TooManyFilesSent):
        return error_response(f"The request has more than {settings.DATA_UPLOAD_MAX_NUMBER_FILES} files; "
                              "upload one file per request.", status.HTTP_400_BAD_REQUEST)
    return error_response("Bad request.", status.HTTP_400_BAD_REQUEST)


def exception_handler(exc, context):
    """Every error as ``{"detail", "errors"?}`` with the right 4xx code; unknown errors stay 500."""
    if isinstance(exc, SuspiciousOperation):
        return _suspicious_response(exc)
    if isinstance(exc, DjangoValidationError):
        errors = _django_validation_errors(exc)
        return error_response(_summary(errors), status.HTTP_400_BAD_REQUEST, errors)
    if isinstance(exc, Conflict):
        return error_response(str(exc), status.HTTP_409_CONFLICT)
    if isinstance(exc, PayloadTooLarge):
        return error_response(str(exc), status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or "You do not have permission to do this.")
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        return error_response(_summary(errors), status.HTTP_400_BAD_REQUEST, errors)
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict) and "detail" in response.data:
        response.data = {"detail": str(response.data["detail"])}
    return response
