from __future__ import annotations

from django.apps import AppConfig


class TrainingConfig(AppConfig):
    # Picked up by Django on its own (the one AppConfig in apps.py), so INSTALLED_APPS keeps "studio.training".
    name = "studio.training"

    def ready(self) -> None:
        # Debugger rules follow every job's epochs and status changes (studio.training.signals).
        from studio.training import debugger_receivers  # noqa: F401
