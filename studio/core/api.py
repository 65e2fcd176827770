"""Shared REST pieces: pagination and the error format of API.md."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from studio.core.errors import Conflict, PayloadTooLarge


class Pagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 500


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


def exception_handler(exc, context):
    """Every error as ``{"detail", "errors"?}`` with the right 4xx code; unknown errors stay 500."""
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
