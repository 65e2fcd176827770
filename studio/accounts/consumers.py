"""The project activity stream: who did what, and status changes of the project's jobs."""

from __future__ import annotations

from django.http import Http404

from studio.accounts.selectors import audit_event_list, project_get
from studio.live.consumers import ObjectConsumer

HISTORY_LIMIT = 50


def activity_event(event) -> dict:
    return {
        "type": "activity", "id": event.id, "actor": event.actor.username if event.actor else None,
        "verb": event.verb, "target": event.target, "ts": event.created_at.timestamp(),
    }


class ProjectConsumer(ObjectConsumer):
    kind = "project"
    url_kwarg = "project_id"

    def get_object(self, *, user, object_id):
        try:
            return project_get(user=user, project_id=object_id)
        except Http404:
            return None

    def history(self, *, since: float | None) -> list[dict]:
        from datetime import UTC, datetime

        events = audit_event_list(user=self.scope["user"], project=self.object)
        if since is not None:
            events = events.filter(created_at__gt=datetime.fromtimestamp(since, tz=UTC))
        return [activity_event(e) for e in reversed(events[:HISTORY_LIMIT])]

    def dedupe_key(self, event: dict):
        return ("activity", event["id"]) if event.get("type") == "activity" else None
