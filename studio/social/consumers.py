"""Websockets of the social layer: a comment thread (new comments appear for everyone watching) and each
user's own notification stream (the bell's unread count and new notifications)."""

from __future__ import annotations

from django.http import Http404

from studio.accounts.selectors import project_get
from studio.live.consumers import ObjectConsumer
from studio.social import selectors
from studio.social.services import COMMENTS_KIND, NOTIFICATIONS_KIND, comments_group, unread_event

HISTORY_LIMIT = 20


class CommentThreadConsumer(ObjectConsumer):
    """``/ws/projects/<pid>/comments/<type>/<id>/``: the thread's events; visible to whoever sees the object."""

    kind = COMMENTS_KIND
    url_kwarg = "target_id"

    def get_object(self, *, user, object_id):
        kwargs = self.scope["url_route"]["kwargs"]
        try:
            project = project_get(user=user, project_id=kwargs["project_id"])
            target = selectors.target_get(user=user, project=project, target_type=kwargs["target_type"],
                                          target_id=object_id)
        except Http404:
            return None
        return _Thread(pk=comments_group(target.type, target.id), project=project, target=target)

    def history(self, *, since: float | None) -> list[dict]:
        # The page renders the thread itself; what it may have missed since then is announced so it re-reads.
        from datetime import UTC, datetime

        from studio.social.services import comment_event

        if since is None:
            return []
        moment = datetime.fromtimestamp(since, tz=UTC)
        comments = selectors.comment_list(user=self.scope["user"], project=self.object.project,
                                          target_type=self.object.target.type, target_id=self.object.target.id)
        changed = comments.filter(created_at__gt=moment) | comments.filter(edited_at__gt=moment) | \
            comments.filter(deleted_at__gt=moment)
        return [comment_event(c, "changed") for c in changed.order_by("created_at")[:HISTORY_LIMIT]]


class _Thread:
    def __init__(self, *, pk: str, project, target) -> None:
        self.pk, self.project, self.target = pk, project, target


class NotificationConsumer(ObjectConsumer):
    """``/ws/notifications/``: the signed-in user's own stream; nobody else's can be asked for."""

    kind = NOTIFICATIONS_KIND
    url_kwarg = "user_id"

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is not None and user.is_authenticated:
            # The URL names no one: the stream is always the caller's. ObjectConsumer reads the id from the route.
            self.scope["url_route"] = {**self.scope.get("url_route", {}),
                                       "kwargs": {**self.scope.get("url_route", {}).get("kwargs", {}),
                                                  "user_id": str(user.pk)}}
        await super().connect()

    def get_object(self, *, user, object_id):
        return user if str(user.pk) == str(object_id) else None

    def history(self, *, since: float | None) -> list[dict]:
        from datetime import UTC, datetime

        from studio.social.services import notification_event

        user = self.scope["user"]
        events = []
        if since is not None:
            recent = selectors.notification_list(user=user).filter(
                created_at__gt=datetime.fromtimestamp(since, tz=UTC))[:HISTORY_LIMIT]
            events = [notification_event(n) for n in reversed(recent)]
        return [*events, unread_event(user)]

    def dedupe_key(self, event: dict):
        return ("notification", event["id"]) if event.get("type") == "notification" else None
