"""The one way events reach websocket pages: a group per object on the channel layer.

Writers store the event first (the database is the truth), then publish; a page that connects
late reads history from the database and de-duplicates what also arrives live.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)


def group_name(kind: str, object_id) -> str:
    return f"{kind}.{object_id}"


def publish(*, kind: str, object_id, events: list[dict[str, Any]]) -> None:
    """Send events to everyone watching ``kind``/``object_id``; never fails the caller."""
    if not events:
        return
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group_name(kind, object_id), {"type": "live.events", "events": events})
    except Exception:
        # Live updates are a convenience on top of stored data: a broken Redis must not fail a job.
        logger.warning("could not publish %d live event(s) to %s %s", len(events), kind, object_id, exc_info=True)
