"""Live stream of one endpoint: status, instance counts, traffic metrics and scaling decisions."""

from __future__ import annotations

import time

from studio.endpoints import selectors
from studio.endpoints.services import instances_event, status_event
from studio.live.consumers import ObjectConsumer

# A page opened without ?since= gets the last quarter of an hour of traffic, then live points.
HISTORY_SECONDS = 900


class EndpointConsumer(ObjectConsumer):
    kind = "endpoint"
    url_kwarg = "endpoint_id"

    def get_object(self, *, user, object_id):
        return selectors.endpoint_get_any_project(user=user, endpoint_id=object_id)

    def history(self, *, since: float | None) -> list[dict]:
        endpoint = self.object
        endpoint.refresh_from_db()
        since = since if since is not None else time.time() - HISTORY_SECONDS
        events = [status_event(endpoint), instances_event(endpoint)]
        events += [selectors.metric_event(row) for row in selectors.metric_rows(endpoint=endpoint, since=since)]
        events += [{"type": "scaling", "variant": e.variant.name, "from": e.from_instances, "to": e.to_instances,
                    "reason": e.reason, "ts": e.created_at.timestamp()}
                   for e in selectors.scaling_event_list(endpoint=endpoint)[:20][::-1]]
        return events

    def dedupe_key(self, event: dict):
        if event.get("type") == "metric":
            return ("metric", event.get("variant"), event.get("ts"))
        return None
