"""Names the studio makes up for objects the user did not name (jobs, trials)."""

from __future__ import annotations

from typing import Any


def unique_name(*, model: Any, project: Any, base: str) -> str:
    """``base``, or ``base-2``, ``base-3``... whichever is free among ``model``'s rows of ``project``.

    Objects made in the same second (a tuning job's trials, a script's burst) get a suffix, not a 409.
    """
    name, n = base, 2
    while model.objects.filter(project=project, name=name).exists():
        name = f"{base}-{n}"
        n += 1
    return name
