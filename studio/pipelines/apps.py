from __future__ import annotations

from django.apps import AppConfig


class PipelinesConfig(AppConfig):
    name = "studio.pipelines"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Job status changes wake executions up; new datasets and approved versions fire triggers.
        from studio.pipelines import receivers  # noqa: F401
