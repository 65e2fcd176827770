from __future__ import annotations

from django.apps import AppConfig


class ExperimentsConfig(AppConfig):
    """The runs table and the comparison of runs: reads over training jobs, no models of its own."""

    name = "studio.experiments"
    default_auto_field = "django.db.models.BigAutoField"
