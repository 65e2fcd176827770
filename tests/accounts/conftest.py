from __future__ import annotations

from tests.training.factories import enqueued  # noqa: F401
