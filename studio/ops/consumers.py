"""The dashboard's live stream (/ws/ops/): metric samples for the charts, failed tasks as they happen.

Site admins only: anyone else is closed with 4404, as for an object they cannot see. On connect the
stored samples since ``?since=`` (or of the charts' window) come first, then live ones, de-duplicated by time.
"""

from __future__ import annotations

from dataclasses import dataclass

from studio.live.consumers import ObjectConsumer
from studio.ops import metrics
from studio.ops.access import is_site_admin

# The window a page without ?since= gets on connect.
HISTORY_MINUTES = 15


@dataclass(frozen=True)
class Board:
    """The one thing this stream is about; its pk names the channel group (ops.dashboard)."""

    pk: str = metrics.BOARD


class OpsConsumer(ObjectConsumer):
    kind = metrics.LIVE_KIND
    url_kwarg = "board"

    async def connect(self) -> None:
        # One dashboard, so no id in the URL: the base consumer looks the object up under url_kwarg.
        self.scope.setdefault("url_route", {"args": (), "kwargs": {}}).setdefault("kwargs", {}).setdefault(
            self.url_kwarg, metrics.BOARD)
        await super().connect()

    def get_object(self, *, user, object_id):
        return Board() if is_site_admin(user) else None

    def history(self, *, since: float | None) -> list[dict]:
        return metrics.samples_since(since=since, minutes=HISTORY_MINUTES)

    def dedupe_key(self, event: dict):
        return ("sample", event.get("ts")) if event.get("type") == "sample" else None
