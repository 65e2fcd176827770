from __future__ import annotations

from django.apps import AppConfig


class EndpointsConfig(AppConfig):
    name = "studio.endpoints"
    default_auto_field = "django.db.models.BigAutoField"
