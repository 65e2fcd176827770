from __future__ import annotations

from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "studio.ops"
    label = "ops"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = "Operations"

    def ready(self) -> None:
        # A task that fails on any worker is recorded (celery's task_failure signal).
        from studio.ops import receivers  # noqa: F401
