from __future__ import annotations


class Recorder:
    """A fit callback that records every call and can ask to stop at a given step."""

    def __init__(self, stop_at: int | None = None) -> None:
        self.calls: list[tuple[int, dict[str, float]]] = []
        self.stop_at = stop_at

    def __call__(self, step: int, metrics: dict[str, float]) -> bool | None:
        self.calls.append((step, dict(metrics)))
        return False if step == self.stop_at else None
