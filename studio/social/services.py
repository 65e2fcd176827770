"""Every write of the social layer: comments, tags and notes of runs, notifications and webhooks.

Comments and tags are team writes (member+, viewers read only); notifications and webhooks belong to one
user and are only ever written for or by that user. Live updates are published after commit, so a page
that re-reads on an event finds the row.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import Http404
from django.utils import timezone

from studio.accounts.models import Role
from studio.accounts.permissions import has_role, require_role
from studio.accounts.services import audit
from studio.core.errors import Conflict
from studio.live.publisher import publish
from studio.social import selectors
from studio.social.models import (
    COMMENT_MAX_LENGTH,
    Comment,
    DeliveryStatus,
    Notification,
    NotificationKind,
    TargetType,
    Webhook,
    WebhookDelivery,
)
from studio.training.models import TrainingJob

if TYPE_CHECKING:
    from studio.accounts.models import Project, User

logger = logging.getLogger(__name__)

COMMENTS_KIND = "comments"
NOTIFICATIONS_KIND = "notifications"

TAG_RE = re.compile(r"^[a-z0-9][a-z0-9._:/+=-]*$")
TAG_MAX_LENGTH = 50
MAX_TAGS = 30
NOTES_MAX_LENGTH = 20_000

WEBHOOK_EVENTS = [kind for kind in NotificationKind.values if kind != NotificationKind.OTHER]
WEBHOOK_TEST_EVENT = "test"
# Attempts of one delivery, the first included; retries wait 10 s, 20 s, 40 s, 80 s (capped below).
WEBHOOK_MAX_ATTEMPTS = 5
WEBHOOK_RETRY_BASE_SECONDS = 10
WEBHOOK_RETRY_MAX_SECONDS = 300
SIGNATURE_HEADER = "X-Studio-Signature"


# --- comments ---------------------------------------------------------------------------------------


def comments_group(target_type: str, target_id: Any) -> str:
    """The live object id of a thread: the websocket group is ``comments.<type>.<id>``."""
    return f"{target_type}.{target_id}"


def comment_event(comment: Comment, action: str) -> dict[str, Any]:
    # No body: pages re-render the thread from the server (escaped), so nothing a client sends is ever
    # turned into markup by another client's script.
    return {"type": "comment", "action": action, "id": str(comment.id),
            "author": comment.author.username if comment.author else None,
            "ts": (comment.edited_at or comment.deleted_at or comment.created_at).timestamp()}


def _publish_comment(comment: Comment, action: str) -> None:
    event = comment_event(comment, action)
    group = comments_group(comment.target_type, comment.target_id)
    transaction.on_commit(lambda: publish(kind=COMMENTS_KIND, object_id=group, events=[event]))


def _clean_body(body: Any) -> str:
    if not isinstance(body, str) or not body.strip():
        raise ValidationError({"body": ["Write something: a comment cannot be empty."]})
    body = body.strip()
    if len(body) > COMMENT_MAX_LENGTH:
        raise ValidationError({"body": [f"A comment holds at most {COMMENT_MAX_LENGTH:,} characters "
                                        f"(this one has {len(body):,})."]})
    return body


def comment_target(*, user: User, project: Project, target_type: Any, target_id: Any) -> selectors.Target:
    """The target of a new comment named in a request body: 400 naming the field when it is not there.

    Another team's object reads exactly like a missing one, so nothing leaks.
    """
    if target_type not in TargetType.values:
        raise ValidationError({"target_type": [f"target_type must be one of {', '.join(TargetType.values)} "
                                               f"(got {target_type!r})."]})
    try:
        return selectors.target_get(user=user, project=project, target_type=target_type, target_id=target_id)
    except Http404:
        label = TargetType(target_type).label.lower()
        raise ValidationError({"target_id": [f"No {label} '{target_id}' in this project."]}) from None


@transaction.atomic
def comment_create(*, user: User, project: Project, target_type: str, target_id: Any, body: str) -> Comment:
    """Comment on a visible object of ``project`` (member+; viewers read only)."""
    require_role(user=user, team=project.team, role=Role.MEMBER)
    target = comment_target(user=user, project=project, target_type=target_type, target_id=target_id)
    body = _clean_body(body)
    comment = Comment.objects.create(project=project, target_type=target.type, target_id=target.id, author=user,
                                     body=body)
    audit(actor=user, verb=f"commented on {TargetType(target.type).label.lower()}", project=project,
          target=target.label, data={"comment": str(comment.id), "target_type": target.type,
                                     "target_id": target.id})
    _publish_comment(comment, "created")
    return comment


@transaction.atomic
def comment_update(*, user: User, comment: Comment, body: str) -> Comment:
    """Edit one's own comment (a member still); 409 once deleted."""
    require_role(user=user, team=comment.project.team, role=Role.MEMBER)
    if comment.author_id != user.pk:
        raise PermissionDenied("Only its author can edit a comment.")
    if comment.is_deleted:
        raise Conflict("This comment was deleted; it cannot be edited.")
    body = _clean_body(body)
    if body != comment.body:
        comment.body = body
        comment.edited_at = timezone.now()
        comment.save(update_fields=["body", "edited_at"])
        _publish_comment(comment, "edited")
    return comment


@transaction.atomic
def comment_delete(*, user: User, comment: Comment) -> Comment:
    """Delete a comment: its author (member+) or a team admin. Soft: the thread shows where it was.

    Deleting twice is a no-op (idempotent, like a retried request).
    """
    team = comment.project.team
    if comment.author_id == user.pk:
        require_role(user=user, team=team, role=Role.MEMBER)
    else:
        require_role(user=user, team=team, role=Role.ADMIN)
    if comment.is_deleted:
        return comment
    comment.deleted_at = timezone.now()
    comment.save(update_fields=["deleted_at"])
    try:
        label = selectors.target_get(user=user, project=comment.project, target_type=comment.target_type,
                                     target_id=comment.target_id).label
    except Http404:  # the commented object is gone; the comment row outlived it
        label = f"{TargetType(comment.target_type).label.lower()} {comment.target_id}"
    audit(actor=user, verb="deleted comment", project=comment.project, target=label,
          data={"comment": str(comment.id), "target_type": comment.target_type, "target_id": comment.target_id})
    _publish_comment(comment, "deleted")
    return comment


# --- tags and notes of runs -----------------------------------------------------------------------------


def _tag_list(value: Any, field: str) -> list[str]:
    """Tags as given in ``add``/``remove``: a list of strings, each normalised (trimmed, lowercase)."""
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ValidationError({field: [f"{field} must be a list of tags, e.g. [\"baseline\", \"v2\"]."]})
    tags: list[str] = []
    for raw in value:
        if not isinstance(raw, str):
            raise ValidationError({field: [f"Every tag must be a string (got {raw!r})."]})
        tag = raw.strip().lower()
        if not tag or len(tag) > TAG_MAX_LENGTH or not TAG_RE.match(tag):
            raise ValidationError({field: [
                f"'{raw}' is not a valid tag: use 1 to {TAG_MAX_LENGTH} letters, digits and . _ : / + = -, "
                "starting with a letter or digit (no spaces)."]})
        if tag not in tags:
            tags.append(tag)
    return tags


def training_job_tag(*, user: User, job: TrainingJob, add: Any = (), remove: Any = ()) -> TrainingJob:
    """Add and remove tags of a run (member+). Tags are lowercase and unique; order is kept (new ones last).

    The row is locked while it changes, so two people tagging at once both keep their tags.
    """
    require_role(user=user, team=job.project.team, role=Role.MEMBER)
    adding, removing = _tag_list(add, "add"), _tag_list(remove, "remove")
    with transaction.atomic():
        locked = TrainingJob.objects.select_for_update().get(id=job.id)
        current = [t for t in (locked.tags or []) if isinstance(t, str)]
        tags = [t for t in current if t not in removing]
        tags += [t for t in adding if t not in tags]
        if len(tags) > MAX_TAGS:
            raise ValidationError({"add": [f"A run holds at most {MAX_TAGS} tags; remove some first."]})
        if tags != current:
            TrainingJob.objects.filter(id=job.id).update(tags=tags)
            added = [t for t in tags if t not in current]
            removed = [t for t in current if t not in tags]
            audit(actor=user, verb="tagged training job", project=job.project, target=job.name,
                  data={"job": str(job.id), "added": added, "removed": removed})
    job.tags = tags
    return job


def training_job_notes_set(*, user: User, job: TrainingJob, notes: Any) -> TrainingJob:
    """Replace a run's notes (member+): plain text, shown as written, never as markup."""
    require_role(user=user, team=job.project.team, role=Role.MEMBER)
    if notes is None:
        notes = ""
    if not isinstance(notes, str):
        raise ValidationError({"notes": ["notes must be text."]})
    notes = notes.replace("\r\n", "\n").strip()
    if len(notes) > NOTES_MAX_LENGTH:
        raise ValidationError({"notes": [f"Notes hold at most {NOTES_MAX_LENGTH:,} characters "
                                         f"(got {len(notes):,})."]})
    if notes != job.notes:
        TrainingJob.objects.filter(id=job.id).update(notes=notes)
        job.notes = notes
        audit(actor=user, verb="edited notes of training job", project=job.project, target=job.name,
              data={"job": str(job.id)})
    return job


# --- notifications --------------------------------------------------------------------------------------


def notification_event(notification: Notification) -> dict[str, Any]:
    return {
        "type": "notification", "id": str(notification.id), "kind": notification.kind, "title": notification.title,
        "body": notification.body, "url": notification.url, "read": notification.is_read,
        "project": str(notification.project_id) if notification.project_id else None,
        "ts": notification.created_at.timestamp(),
    }


def unread_event(user: User) -> dict[str, Any]:
    return {"type": "unread", "count": selectors.unread_count(user=user)}


def _publish_unread(user: User, extra: list[dict[str, Any]] | None = None) -> None:
    def send() -> None:
        publish(kind=NOTIFICATIONS_KIND, object_id=user.pk, events=[*(extra or []), unread_event(user)])

    transaction.on_commit(send)


def notify(*, user: User | None, kind: str, title: str, body: str = "", url: str = "",
           project: Project | None = None) -> Notification | None:
    """Tell ``user`` something: a row under their bell, live on their socket, and their webhook if they set one.

    Other apps call this (a debugger rule that fires with the notify action). None when there is nobody to
    tell (a job whose creator was deleted, an inactive account).
    """
    if user is None or not user.is_active:
        return None
    if project is not None and not has_role(user=user, team=project.team, role=Role.VIEWER):
        return None  # they left the team: what happens in it is no longer theirs to hear about
    with transaction.atomic():
        notification = Notification.objects.create(
            user=user, project=project, kind=str(kind)[:40], title=str(title)[:200], body=str(body or ""),
            url=str(url or "")[:500])
        _publish_unread(user, [notification_event(notification)])
        webhook = selectors.webhook_for(user=user)
        if webhook is not None and webhook.wants(notification.kind):
            _delivery_create(webhook=webhook, event=notification.kind, notification=notification)
    return notification


def notification_mark_read(*, user: User, notification: Notification) -> Notification:
    if notification.user_id != user.pk:  # selectors already scope; this keeps the service safe on its own
        raise Http404("No such notification.")
    if notification.read_at is None:
        notification.read_at = timezone.now()
        Notification.objects.filter(id=notification.id, read_at__isnull=True).update(read_at=notification.read_at)
        _publish_unread(user)
    return notification


def notifications_mark_all_read(*, user: User) -> int:
    count = Notification.objects.filter(user=user, read_at__isnull=True).update(read_at=timezone.now())
    if count:
        _publish_unread(user)
    return count


# --- webhooks -------------------------------------------------------------------------------------------


def _new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def webhook_get_or_create(*, user: User) -> Webhook:
    webhook, _ = Webhook.objects.get_or_create(user=user, defaults={"secret": _new_secret()})
    return webhook


def _clean_events(events: Any) -> list[str]:
    if events is None:
        return []
    if isinstance(events, str) or not isinstance(events, list | tuple):
        raise ValidationError({"events": ["events must be a list of notification kinds (empty: all of them)."]})
    unknown = [e for e in events if e not in WEBHOOK_EVENTS]
    if unknown:
        raise ValidationError({"events": [f"Unknown event {unknown[0]!r}; choose from {', '.join(WEBHOOK_EVENTS)}."]})
    return [e for e in WEBHOOK_EVENTS if e in events]


def webhook_update(*, user: User, url: Any = None, enabled: Any = None, events: Any = None) -> Webhook:
    """Set the caller's webhook. A URL is checked when saved (scheme, host, no internal address) and again at
    every delivery, since what a name resolves to can change."""
    from studio.endpoints.notifications import notification_url_problem

    webhook = webhook_get_or_create(user=user)
    errors: dict[str, list[str]] = {}
    new_url = webhook.url if url is None else url
    if not isinstance(new_url, str):
        errors["url"] = ["url must be text."]
        new_url = webhook.url
    new_url = new_url.strip()
    if new_url:
        problem = notification_url_problem(new_url)
        if problem:
            errors["url"] = [problem[0].upper() + problem[1:] + "."]
    new_enabled = webhook.enabled if enabled is None else enabled
    if not isinstance(new_enabled, bool):
        errors["enabled"] = ["enabled must be true or false."]
        new_enabled = webhook.enabled
    elif new_enabled and not new_url and "url" not in errors:
        errors["url"] = ["Give the URL to POST notifications to before turning the webhook on."]
    try:
        new_events = webhook.events if events is None else _clean_events(events)
    except ValidationError as exc:
        errors.update(exc.message_dict)
        new_events = webhook.events
    if errors:
        raise ValidationError(errors)
    webhook.url, webhook.enabled, webhook.events = new_url, new_enabled, new_events
    webhook.save(update_fields=["url", "enabled", "events", "updated_at"])
    return webhook


def webhook_rotate_secret(*, user: User) -> Webhook:
    """A new signing secret; deliveries already queued are signed with it too (they sign when they send)."""
    webhook = webhook_get_or_create(user=user)
    webhook.secret = _new_secret()
    webhook.save(update_fields=["secret", "updated_at"])
    return webhook


def webhook_signature(secret: str, body: bytes) -> str:
    """The ``X-Studio-Signature`` value: ``sha256=`` and the hex HMAC-SHA256 of the exact body bytes."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _absolute(path: str) -> str:
    if not path or path.startswith(("http://", "https://")):
        return path
    return (getattr(settings, "STUDIO_PUBLIC_URL", "") or "").rstrip("/") + path


def _payload(delivery: WebhookDelivery) -> dict[str, Any]:
    notification = delivery.notification
    data: dict[str, Any] = {"id": str(delivery.id), "event": delivery.event, "timestamp": int(time.time()),
                            "user": delivery.webhook.user.username}
    if notification is not None:
        data["notification"] = {
            "id": str(notification.id), "kind": notification.kind, "title": notification.title,
            "body": notification.body, "url": _absolute(notification.url),
            "project": ({"id": str(notification.project_id), "name": notification.project.name}
                        if notification.project_id else None),
            "created_at": notification.created_at.isoformat(),
        }
    return data


def _delivery_create(*, webhook: Webhook, event: str, notification: Notification | None) -> WebhookDelivery:
    delivery = WebhookDelivery.objects.create(webhook=webhook, event=event, notification=notification)
    delivery.payload = _payload(delivery)
    WebhookDelivery.objects.filter(id=delivery.id).update(payload=delivery.payload)
    transaction.on_commit(lambda: webhook_delivery_enqueue(delivery_id=delivery.id))
    return delivery


def webhook_delivery_enqueue(*, delivery_id: Any, countdown: float | None = None) -> None:
    from studio.social.tasks import webhook_deliver_task

    try:
        webhook_deliver_task.apply_async(args=[str(delivery_id)], countdown=countdown)
    except Exception:
        # The in-app notification stands; the webhook copy is best effort when the broker is down.
        logger.warning("could not enqueue webhook delivery %s", delivery_id, exc_info=True)
        WebhookDelivery.objects.filter(id=delivery_id, status=DeliveryStatus.PENDING).update(
            status=DeliveryStatus.FAILED, last_result="failed: the task queue was unreachable")


def webhook_retry_countdown(attempts: int) -> float:
    return float(min(WEBHOOK_RETRY_MAX_SECONDS, WEBHOOK_RETRY_BASE_SECONDS * 2 ** max(0, attempts - 1)))


def webhook_deliver(*, delivery_id: Any, max_attempts: int = WEBHOOK_MAX_ATTEMPTS) -> str:
    """One attempt at a pending delivery: "delivered", "refused" (an internal target: never retried), "failed"
    (out of attempts), "retry" (the task tries again later) or "done" (nothing to do: already settled)."""
    from studio.endpoints.notifications import notification_body, notification_post

    delivery = (WebhookDelivery.objects.select_related("webhook__user", "notification__project")
                .filter(id=delivery_id).first())
    if delivery is None or delivery.status != DeliveryStatus.PENDING:
        return "done"
    webhook = delivery.webhook
    # Turned off (or emptied) after this was queued: the user no longer wants it. A test is sent regardless.
    problem = ("the webhook has no URL" if not webhook.url else
               "the webhook was turned off" if not webhook.enabled and delivery.event != WEBHOOK_TEST_EVENT else "")
    if problem:
        WebhookDelivery.objects.filter(id=delivery.id, status=DeliveryStatus.PENDING).update(
            status=DeliveryStatus.REFUSED, last_result=f"refused: {problem}")
        return "refused"
    payload = delivery.payload or _payload(delivery)
    body = notification_body(payload)
    result = notification_post(webhook.url, payload, headers={
        SIGNATURE_HEADER: webhook_signature(webhook.secret, body), "X-Studio-Event": delivery.event,
        "X-Studio-Delivery": str(delivery.id)})
    attempts = delivery.attempts + 1
    if result.startswith("delivered"):
        status, outcome = DeliveryStatus.DELIVERED, "delivered"
    elif result.startswith("refused"):
        status, outcome = DeliveryStatus.REFUSED, "refused"
    elif attempts >= max_attempts:
        status, outcome = DeliveryStatus.FAILED, "failed"
    else:
        status, outcome = DeliveryStatus.PENDING, "retry"
    # Conditional on the attempt count read above: a duplicate task racing this one records nothing twice.
    WebhookDelivery.objects.filter(id=delivery.id, attempts=delivery.attempts).update(
        status=status, attempts=attempts, last_result=result[:200],
        delivered_at=timezone.now() if status == DeliveryStatus.DELIVERED else None)
    if outcome in ("failed", "refused"):
        logger.info("webhook delivery %s to %s %s: %s", delivery.id, webhook.url, outcome, result)
    return outcome


def webhook_test(*, user: User) -> WebhookDelivery:
    """Send a test event to the caller's webhook now, once, and return the delivery with its result.

    Synchronous on purpose: the settings page shows at once whether the URL and signature check work.
    """
    webhook = webhook_get_or_create(user=user)
    if not webhook.url:
        raise ValidationError({"url": ["Save a webhook URL first."]})
    delivery = WebhookDelivery.objects.create(webhook=webhook, event=WEBHOOK_TEST_EVENT)
    delivery.payload = {**_payload(delivery), "notification": {
        "title": "Test notification from Studio", "body": "Your webhook works: this POST carried a valid signature.",
        "kind": WEBHOOK_TEST_EVENT}}
    WebhookDelivery.objects.filter(id=delivery.id).update(payload=delivery.payload)
    # One attempt: the page reports the outcome now rather than retrying in the background.
    webhook_deliver(delivery_id=delivery.id, max_attempts=1)
    delivery.refresh_from_db()
    return delivery
