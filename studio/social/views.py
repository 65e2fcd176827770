"""Pages of the social layer: comment threads and run tags/notes (htmx partials on object pages) and the
notifications page with the webhook settings. Thin: services write, selectors read."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from studio.core.errors import Conflict
from studio.core.pages import project_access
from studio.social import selectors, services
from studio.social.models import NotificationKind
from studio.training.selectors import training_job_get

COMMENTS_CHANGED = "comments-changed"
NOTIFICATIONS_SHOWN = 100
DELIVERIES_SHOWN = 10


def _messages_of(exc: ValidationError) -> list[str]:
    if hasattr(exc, "error_dict"):
        return [m for msgs in exc.message_dict.values() for m in msgs]
    return list(exc.messages)


# --- comments ---------------------------------------------------------------------------------------------


def _thread_context(request, access, target) -> dict[str, Any]:
    comments = selectors.comment_list(user=request.user, project=access.project, target_type=target.type,
                                      target_id=target.id)
    return access.context(access_nav(target.type), target=target, comments=comments,
                          target_type=target.type, target_id=target.id)


def access_nav(target_type: str) -> str:
    return {"training_job": "training", "tuning_job": "tuning", "model": "models", "endpoint": "endpoints",
            "pipeline_execution": "pipelines"}.get(target_type, "overview")


def _target(request, access, target_type, target_id):
    return selectors.target_get(user=request.user, project=access.project, target_type=target_type,
                                target_id=target_id)


@login_required
def comment_thread(request, project_id, target_type, target_id):
    """GET: the thread (htmx partial, re-read on live events); POST: add a comment (member+)."""
    access = project_access(request, project_id)
    target = _target(request, access, target_type, target_id)
    if request.method != "POST":
        return render(request, "social/_comment_list.html", _thread_context(request, access, target))
    if not access.can_edit:
        raise PermissionDenied("Commenting needs the member role.")
    body = request.POST.get("body", "")
    try:
        services.comment_create(user=request.user, project=access.project, target_type=target.type,
                                target_id=target.id, body=body)
    except ValidationError as exc:
        if not request.htmx:
            messages.error(request, " ".join(_messages_of(exc)))
            return redirect(target.url or "home")
        context = access.context(access_nav(target.type), target_type=target.type, target_id=target.id,
                                 comment_error=" ".join(_messages_of(exc)), comment_body=body)
        return render(request, "social/_comment_form.html", context, status=400)
    if not request.htmx:
        return redirect(target.url or "home")
    response = render(request, "social/_comment_form.html",
                      access.context(access_nav(target.type), target_type=target.type, target_id=target.id))
    response["HX-Trigger"] = COMMENTS_CHANGED
    return response


def _comment_changed(request, target_url: str) -> HttpResponse:
    if not request.htmx:
        return redirect(target_url or "home")
    response = HttpResponse("")
    response["HX-Trigger"] = COMMENTS_CHANGED
    return response


@login_required
@require_POST
def comment_edit(request, project_id, comment_id):
    access = project_access(request, project_id)
    comment = selectors.comment_get(user=request.user, project=access.project, comment_id=comment_id)
    target = _target(request, access, comment.target_type, comment.target_id)
    try:
        services.comment_update(user=request.user, comment=comment, body=request.POST.get("body", ""))
    except (ValidationError, Conflict) as exc:
        text = " ".join(_messages_of(exc)) if isinstance(exc, ValidationError) else str(exc)
        if not request.htmx:
            messages.error(request, text)
            return redirect(target.url or "home")
        return HttpResponse(f'<span class="error">{_escape(text)}</span>', status=400)
    return _comment_changed(request, target.url)


@login_required
@require_POST
def comment_delete(request, project_id, comment_id):
    access = project_access(request, project_id)
    comment = selectors.comment_get(user=request.user, project=access.project, comment_id=comment_id)
    target = _target(request, access, comment.target_type, comment.target_id)
    services.comment_delete(user=request.user, comment=comment)
    return _comment_changed(request, target.url)


def _escape(text: str) -> str:
    from django.utils.html import escape

    return escape(text)


# --- tags and notes of a training job ---------------------------------------------------------------------


def _run_tags_response(request, access, job, *, tag_error: str = "", notes_error: str = "", status: int = 200,
                       notes_saved: bool = False):
    if not request.htmx:
        for error in (tag_error, notes_error):
            if error:
                messages.error(request, error)
        return redirect("training-job-detail", project_id=access.project.id, job_id=job.id)
    return render(request, "social/_run_tags.html", access.context(
        "training", job=job, tag_error=tag_error, notes_error=notes_error, notes_saved=notes_saved), status=status)


def _member_job(request, project_id, job_id, what: str):
    """The project access and the training job for a change to it; a viewer gets 403 ("<what> needs ...")."""
    access = project_access(request, project_id)
    job = training_job_get(user=request.user, project=access.project, job_id=job_id)
    if not access.can_edit:
        raise PermissionDenied(f"{what} needs the member role.")
    return access, job


@login_required
@require_POST
def training_job_tags(request, project_id, job_id):
    """Add the tags typed in ``tag`` (comma or space separated) and/or remove ``remove`` (member+)."""
    access, job = _member_job(request, project_id, job_id, "Tagging a run")
    add = [t for t in request.POST.get("tag", "").replace(",", " ").split() if t]
    remove = [t for t in request.POST.getlist("remove") if t]
    try:
        job = services.training_job_tag(user=request.user, job=job, add=add, remove=remove)
    except ValidationError as exc:
        job.refresh_from_db()
        return _run_tags_response(request, access, job, tag_error=" ".join(_messages_of(exc)), status=400)
    return _run_tags_response(request, access, job)


@login_required
@require_POST
def training_job_notes(request, project_id, job_id):
    access, job = _member_job(request, project_id, job_id, "Editing a run's notes")
    try:
        job = services.training_job_notes_set(user=request.user, job=job, notes=request.POST.get("notes", ""))
    except ValidationError as exc:
        job.notes = request.POST.get("notes", "")  # keep what they typed on the form
        return _run_tags_response(request, access, job, notes_error=" ".join(_messages_of(exc)), status=400)
    return _run_tags_response(request, access, job, notes_saved=True)


# --- notifications ----------------------------------------------------------------------------------------


def _notifications_context(request, **extra) -> dict[str, Any]:
    webhook = services.webhook_get_or_create(user=request.user)
    return {
        "notifications": selectors.notification_list(user=request.user)[:NOTIFICATIONS_SHOWN],
        "unread": selectors.unread_count(user=request.user),
        "webhook": webhook,
        "webhook_events": [(kind, NotificationKind(kind).label) for kind in services.WEBHOOK_EVENTS],
        "deliveries": selectors.webhook_delivery_list(user=request.user)[:DELIVERIES_SHOWN],
        "signature_header": services.SIGNATURE_HEADER, **extra,
    }


@login_required
def notification_list(request):
    return render(request, "social/notifications.html", _notifications_context(request))


@login_required
def notification_open(request, notification_id):
    """Follow a notification's link, marking it read on the way (links stay inside the studio)."""
    notification = selectors.notification_get(user=request.user, notification_id=notification_id)
    services.notification_mark_read(user=request.user, notification=notification)
    target = notification.url
    if not target or not url_has_allowed_host_and_scheme(target, allowed_hosts=None) or not target.startswith("/"):
        return redirect("notifications")
    return redirect(target)


@login_required
@require_POST
def notification_read(request, notification_id):
    notification = selectors.notification_get(user=request.user, notification_id=notification_id)
    services.notification_mark_read(user=request.user, notification=notification)
    return redirect("notifications")


@login_required
@require_POST
def notification_read_all(request):
    marked = services.notifications_mark_all_read(user=request.user)
    messages.success(request, f"Marked {marked} notification{'s' if marked != 1 else ''} read.")
    return redirect("notifications")


@login_required
@require_POST
def webhook_settings(request):
    enabled = request.POST.get("enabled") == "on"
    events = request.POST.getlist("events")
    try:
        services.webhook_update(user=request.user, url=request.POST.get("url", ""), enabled=enabled,
                                events=events if len(events) < len(services.WEBHOOK_EVENTS) else [])
    except ValidationError as exc:
        errors = exc.message_dict
        return render(request, "social/notifications.html", _notifications_context(
            request, webhook_errors=errors, posted={"url": request.POST.get("url", ""), "enabled": enabled,
                                                    "events": events}), status=400)
    messages.success(request, "Webhook settings saved.")
    return redirect("notifications")


@login_required
@require_POST
def webhook_test(request):
    try:
        delivery = services.webhook_test(user=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(_messages_of(exc)))
        return redirect("notifications")
    if delivery.status == "delivered":
        messages.success(request, f"Test event delivered ({delivery.last_result}).")
    else:
        messages.error(request, f"Test event not delivered: {delivery.last_result}")
    return redirect("notifications")


@login_required
@require_POST
def webhook_rotate(request):
    services.webhook_rotate_secret(user=request.user)
    messages.success(request, "A new signing secret was made; update your receiver.")
    return redirect("notifications")
