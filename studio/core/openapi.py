"""The served OpenAPI schema's generator (REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"]).

Its own module: studio.core.api is imported while DRF resolves its settings, before drf-spectacular can be.
"""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers
from rest_framework.settings import api_settings


class ErrorOut(serializers.Serializer):
    """Every error answer (API.md "Conventions"): a sentence, and per-field messages for bad input."""

    detail = serializers.CharField()
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False)


_ERROR_DESCRIPTIONS = {
    "400": "Bad input: `errors` names each field.",
    "401": "No credentials, or invalid ones.",
    "403": "Known, but your role does not allow it.",
    "404": "Absent, or not visible to you.",
    "409": "Conflict: a duplicate name or the wrong state.",
    "413": "The body is too large.",
    "415": "The body is not in a media type this operation takes.",
    "429": "Over capacity; retry after `Retry-After` seconds.",
    "503": "A dependency (database, Redis) is briefly unavailable; retry after `Retry-After` seconds.",
}


class StudioAutoSchema(AutoSchema):
    """drf-spectacular's schema plus the error answers every operation can give (API.md), so clients and
    schema-driven tests know them: 400/401/403/404/429/503 everywhere, 409/413/415 for writes."""

    def map_parsers(self) -> list[str]:
        # API.md: JSON in, multipart only for uploads (views that name their parsers). DRF's default parsers also
        # take HTML forms, where an empty field means "left out": not part of the contract, so not described.
        if list(self.view.parser_classes) == list(api_settings.DEFAULT_PARSER_CLASSES):
            return ["application/json"]
        return super().map_parsers()

    def _get_response_bodies(self, direction: str = "response") -> dict:
        responses = super()._get_response_bodies(direction)
        # 401/403 even where anyone may call: a wrong token is refused before the view runs (401), and a session
        # without its CSRF token is refused on writes (403).
        codes = ["400", "401", "403", "404", "429", "503"]
        if self.method in ("POST", "PUT", "PATCH", "DELETE"):
            codes += ["409", "413", "415"]
        component = self.resolve_serializer(ErrorOut, direction)
        for code in sorted(codes):
            responses.setdefault(code, {
                "description": _ERROR_DESCRIPTIONS[code],
                "content": {"application/json": {"schema": component.ref}},
            })
        return responses
