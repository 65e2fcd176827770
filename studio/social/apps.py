from __future__ import annotations

from django.apps import AppConfig


class SocialConfig(AppConfig):
    name = "studio.social"
    label = "social"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Finished jobs notify whoever started them (studio.training/tuning/endpoints/pipelines signals).
        from studio.social import receivers  # noqa: F401
