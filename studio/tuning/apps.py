from __future__ import annotations

from django.apps import AppConfig


class TuningConfig(AppConfig):
    name = "studio.tuning"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # A finished trial wakes its tuning job up (studio.training.signals).
        from studio.tuning import receivers  # noqa: F401
