"""Base consumer: authenticate, check visibility, join the group, replay history, then stream."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from studio.live.publisher import group_name

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404


class ObjectConsumer(AsyncJsonWebsocketConsumer):
    """Subclasses set ``kind`` and implement ``get_object`` (scoped) and ``history``.

    ``dedupe_key`` lets the consumer drop a live event that the replayed history already held:
    the group is joined before history is read, so nothing falls between the two.
    """

    kind: str = ""
    url_kwarg: str = ""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        object_id = self.scope["url_route"]["kwargs"][self.url_kwarg]
        self.object = await database_sync_to_async(self.get_object)(user=user, object_id=object_id)
        if self.object is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.group = group_name(self.kind, self.object.pk)
        self.seen: dict[Any, Any] = {}
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        since = self._since()
        for event in await database_sync_to_async(self.history)(since=since):
            self._remember(event)
            await self.send_json(event)

    async def disconnect(self, code: int) -> None:
        if getattr(self, "group", None):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def live_events(self, message: dict) -> None:
        for event in message["events"]:
            key = self.dedupe_key(event)
            if key is not None and key in self.seen:
                continue
            self._remember(event)
            await self.send_json(event)

    async def receive_json(self, content, **kwargs) -> None:
        # Read-only stream: clients act through the REST API, where roles are checked.
        return

    def _since(self) -> float | None:
        query = parse_qs(self.scope.get("query_string", b"").decode())
        try:
            return float(query["since"][0])
        except (KeyError, ValueError, IndexError):
            return None

    def _remember(self, event: dict) -> None:
        key = self.dedupe_key(event)
        if key is not None:
            self.seen[key] = True

    # --- subclass hooks -------------------------------------------------------------------------
    def get_object(self, *, user, object_id):  # pragma: no cover - abstract
        raise NotImplementedError

    def history(self, *, since: float | None) -> list[dict]:  # pragma: no cover - abstract
        raise NotImplementedError

    def dedupe_key(self, event: dict):
        return None
