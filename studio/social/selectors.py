"""Every read of comments and notifications, scoped: comments to the projects the user's teams can see
(through the commented object's own selector), notifications and webhooks to their owner."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import Http404
from django.urls import NoReverseMatch, reverse

from studio.accounts.selectors import project_list
from studio.social.models import Comment, Notification, TargetType, Webhook, WebhookDelivery

if TYPE_CHECKING:
    from studio.accounts.models import Project, User


@dataclass(frozen=True)
class Target:
    """The object a comment thread hangs on, already checked visible to the caller."""

    type: str
    id: str
    object: Any
    label: str
    url: str


def _training_job(user, project, target_id):
    from studio.training.selectors import training_job_get

    job = training_job_get(user=user, project=project, job_id=target_id)
    return job, job.name, reverse("training-job-detail", args=[project.id, job.id])


def _tuning_job(user, project, target_id):
    from studio.tuning.selectors import tuning_job_get

    job = tuning_job_get(user=user, project=project, tuning_job_id=target_id)
    return job, job.name, reverse("tuning-job-detail", args=[project.id, job.id])


def _model(user, project, target_id):
    from studio.registry.selectors import model_get

    model = model_get(user=user, project=project, model_id=target_id)
    return model, model.name, reverse("model-detail", args=[project.id, model.id])


def _endpoint(user, project, target_id):
    from studio.endpoints.selectors import endpoint_get

    endpoint = endpoint_get(user=user, project=project, endpoint_id=target_id)
    return endpoint, endpoint.name, reverse("endpoint-detail", args=[project.id, endpoint.id])


def _pipeline_execution(user, project, target_id):
    from studio.pipelines.selectors import execution_get

    execution = execution_get(user=user, project=project, execution_id=target_id)
    try:
        url = reverse("pipeline-execution-detail", args=[project.id, execution.pipeline_id, execution.id])
    except NoReverseMatch:
        url = ""
    return execution, str(execution), url


# Each kind's scoped getter: (user, project, id) -> (object, label, page URL); Http404 when not visible.
_TARGETS: dict[str, Callable[[Any, Any, str], tuple[Any, str, str]]] = {
    TargetType.TRAINING_JOB: _training_job,
    TargetType.TUNING_JOB: _tuning_job,
    TargetType.MODEL: _model,
    TargetType.ENDPOINT: _endpoint,
    TargetType.PIPELINE_EXECUTION: _pipeline_execution,
}


def target_get(*, user: User, project: Project, target_type: str, target_id: Any) -> Target:
    """The commented object if it is in ``project`` and visible to ``user``; Http404 otherwise.

    An unknown type is a 404 too: the URL names nothing that exists.
    """
    getter = _TARGETS.get(str(target_type))
    if getter is None:
        raise Http404(f"Nothing of type '{target_type}' takes comments.")
    try:
        obj, label, url = getter(user, project, str(target_id))
    except (ValidationError, ValueError, TypeError):
        # Some selectors let a malformed id through as a ValidationError: it names nothing, so 404 too.
        raise Http404(f"No such {target_type}.") from None
    return Target(type=str(target_type), id=str(obj.pk), object=obj, label=label, url=url)


def comment_list(*, user: User, project: Project, target_type: str | None = None,
                 target_id: Any = None, include_deleted: bool = True) -> QuerySet[Comment]:
    """Comments of a visible project, oldest first; of one target when given.

    Deleted comments stay in the list (shown as deleted, body withheld) so a thread keeps its shape.
    """
    comments = Comment.objects.filter(project=project, project__in=project_list(user=user)).select_related("author")
    if target_type is not None:
        comments = comments.filter(target_type=target_type, target_id=str(target_id))
    if not include_deleted:
        comments = comments.filter(deleted_at__isnull=True)
    return comments.order_by("created_at", "id")


def comment_get(*, user: User, project: Project, comment_id: Any) -> Comment:
    try:
        return comment_list(user=user, project=project).get(id=comment_id)
    except (Comment.DoesNotExist, ValueError, TypeError):
        raise Http404("No such comment in this project.") from None


def comment_counts(*, user: User, project: Project, target_type: str, target_ids: list[Any]) -> dict[str, int]:
    """Live comments per target id (for list pages that show a count)."""
    from django.db.models import Count

    rows = (comment_list(user=user, project=project, include_deleted=False)
            .filter(target_type=target_type, target_id__in=[str(i) for i in target_ids])
            .values("target_id").annotate(n=Count("id")).order_by())
    return {row["target_id"]: row["n"] for row in rows}


def notification_list(*, user: User, unread_only: bool = False) -> QuerySet[Notification]:
    if not user.is_authenticated:
        return Notification.objects.none()
    notifications = Notification.objects.filter(user=user).select_related("project")
    if unread_only:
        notifications = notifications.filter(read_at__isnull=True)
    return notifications.order_by("-created_at", "-id")


def notification_get(*, user: User, notification_id: Any) -> Notification:
    try:
        return notification_list(user=user).get(id=notification_id)
    except (Notification.DoesNotExist, ValueError, TypeError):
        raise Http404("No such notification.") from None


def unread_count(*, user: User) -> int:
    return notification_list(user=user, unread_only=True).count()


def webhook_for(*, user: User) -> Webhook | None:
    if not user.is_authenticated:
        return None
    return Webhook.objects.filter(user=user).first()


def webhook_delivery_list(*, user: User) -> QuerySet[WebhookDelivery]:
    if not user.is_authenticated:
        return WebhookDelivery.objects.none()
    return WebhookDelivery.objects.filter(webhook__user=user).order_by("-created_at")
