from __future__ import annotations

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "studio.accounts"
    label = "accounts"

    def ready(self) -> None:
        from studio.accounts import schema  # noqa: F401  (registers the OpenAPI auth extension)
