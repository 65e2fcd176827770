"""The admin dashboard pages under /ops/ (site admins; anyone else gets 404, anonymous users the sign-in page).

One page of panels (workers, queues and charts, jobs, endpoints, storage and usage, failed tasks, admin actions),
each also served alone for htmx: the page refetches a panel when its live stream says something changed, and
the actions (cancel, drain, resume, scale) answer with the panel they changed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from studio.core.errors import Conflict
from studio.ops import charts, selectors, services
from studio.ops.access import require_site_admin
from studio.ops.consumers import HISTORY_MINUTES

NAV = "ops"
RECENT_FAILED = 10
RECENT_ACTIONS = 10
USERS_SHOWN = 25


def site_admin_page(view: Callable) -> Callable:
    """Sign-in first (anonymous users are sent to it), then 404 for anyone who is not a site admin."""

    @login_required
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        require_site_admin(request.user)
        return view(request, *args, **kwargs)

    return wrapped


# --- what each panel needs --------------------------------------------------------------------------------


def _workers(request, **extra) -> dict[str, Any]:
    return {"workers": selectors.worker_list(user=request.user), **extra}


def _jobs(request, **extra) -> dict[str, Any]:
    return {"jobs": selectors.job_list(user=request.user), **extra}


def _endpoints(request, **extra) -> dict[str, Any]:
    return {"endpoints": selectors.endpoint_list(user=request.user), **extra}


def _usage(request) -> dict[str, Any]:
    users = selectors.user_usage_list(user=request.user)
    teams = selectors.team_usage_list(user=request.user)
    return {"teams": teams, "users": users[:USERS_SHOWN], "users_total": len(users),
            "storage": selectors.storage_summary(user=request.user, teams=teams)}


def _failed(request) -> dict[str, Any]:
    return {"failed_tasks": list(selectors.failed_task_list(user=request.user)[:RECENT_FAILED]),
            "failed_counts": selectors.failed_task_counts(user=request.user)}


def _actions(request) -> dict[str, Any]:
    return {"actions": list(selectors.admin_action_list(user=request.user)[:RECENT_ACTIONS])}


def _page_data(request) -> dict[str, Any]:
    samples = selectors.sample_list(user=request.user, minutes=HISTORY_MINUTES)
    return {
        "ws": "/ws/ops/", "since": samples[-1]["ts"] if samples else time.time(),
        "queues_figure": charts.queue_figure(samples), "invocations_figure": charts.invocation_figure(samples),
        "samples": len(samples),
        "panels": {
            "workers": reverse("ops-panel-workers"), "jobs": reverse("ops-panel-jobs"),
            "endpoints": reverse("ops-panel-endpoints"), "usage": reverse("ops-panel-usage"),
            "failed": reverse("ops-panel-failed"), "actions": reverse("ops-panel-actions"),
        },
    }


# --- pages and panels -------------------------------------------------------------------------------------


def _dashboard(request, status: int = 200) -> HttpResponse:
    return render(request, "ops/dashboard.html", {
        "nav": NAV, "summary": selectors.dashboard_summary(user=request.user),
        "queues": selectors.queue_depths(user=request.user), "page_data": _page_data(request),
        **_workers(request), **_jobs(request), **_endpoints(request), **_usage(request), **_failed(request),
        **_actions(request),
    }, status=status)


@site_admin_page
def dashboard(request):
    return _dashboard(request)


def _panel(panel: str, context: Callable[[Any], dict[str, Any]]) -> Callable:
    """The view of one panel served alone (the template ops/_<panel>.html), which htmx refetches."""

    def view(request):
        return render(request, f"ops/_{panel}.html", context(request))

    view.__name__ = view.__qualname__ = f"{panel}_panel"
    return site_admin_page(view)


workers_panel = _panel("workers", _workers)
jobs_panel = _panel("jobs", _jobs)
endpoints_panel = _panel("endpoints", _endpoints)
usage_panel = _panel("usage", _usage)
failed_panel = _panel("failed_tasks", _failed)
actions_panel = _panel("actions", _actions)


@site_admin_page
def failed_task_list(request):
    task_name = request.GET.get("task", "")[:200]
    page = Paginator(selectors.failed_task_list(user=request.user, task_name=task_name), 50).get_page(
        request.GET.get("page"))
    return render(request, "ops/failed_task_list.html", {"nav": NAV, "page": page, "task_filter": task_name,
                                                          "failed_counts": selectors.failed_task_counts(
                                                              user=request.user)})


@site_admin_page
def failed_task_detail(request, failed_task_id):
    task = selectors.failed_task_get(user=request.user, failed_task_id=failed_task_id)
    return render(request, "ops/failed_task_detail.html", {"nav": NAV, "task": task})


# --- actions ----------------------------------------------------------------------------------------------


def _error_text(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        if hasattr(exc, "error_dict"):
            return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
        return " ".join(exc.messages)
    return str(exc)


def _act(request, action: Callable[[], str], *, panel: str, context: Callable[..., dict[str, Any]]) -> HttpResponse:
    """Run an action; answer htmx with the panel it changed (and what happened), a plain form with the dashboard.

    htmx only swaps 2xx answers, so a refused action is a 200 whose panel shows why; a plain form gets the
    dashboard with the reason and the status code (400 bad input, 409 wrong state), or a redirect once done.
    """
    error = ""
    status = 200
    try:
        done = action()
    except ValidationError as exc:
        error, status = _error_text(exc), 400
    except Conflict as exc:
        error, status = str(exc), 409
    if request.htmx:
        return render(request, f"ops/_{panel}.html", context(request, action_error=error,
                                                             action_done="" if error else done))
    if error:
        messages.error(request, error)
        return _dashboard(request, status=status)
    messages.success(request, done)
    return redirect("ops-dashboard")


@site_admin_page
@require_POST
def job_cancel(request):
    def action() -> str:
        job = services.job_cancel(user=request.user, kind=request.POST.get("kind", ""),
                                  job_id=request.POST.get("id", ""))
        label = request.POST.get("kind", "").replace("-", " ")
        return (f"Cancelled {label} '{job}': it is {job.status}"
                + ("" if job.status == "stopped" else " and stops shortly") + ".")

    return _act(request, action, panel="jobs", context=_jobs)


@site_admin_page
@require_POST
def worker_drain(request):
    def action() -> str:
        result = services.worker_drain(user=request.user, worker=request.POST.get("worker", ""))
        return (f"Worker {result['worker']} no longer takes tasks from {', '.join(result['queues'])}; "
                "it finishes what it runs.")

    return _act(request, action, panel="workers", context=_workers)


@site_admin_page
@require_POST
def worker_resume(request):
    def action() -> str:
        result = services.worker_resume(user=request.user, worker=request.POST.get("worker", ""))
        return f"Worker {result['worker']} takes tasks from {', '.join(result['queues'])} again."

    return _act(request, action, panel="workers", context=_workers)


@site_admin_page
@require_POST
def endpoint_scale(request, endpoint_id):
    endpoint = selectors.endpoint_get(user=request.user, endpoint_id=endpoint_id)

    def action() -> str:
        variant = request.POST.get("variant", "")
        scaled = services.endpoint_scale(user=request.user, endpoint=endpoint, variant=variant,
                                         min_instances=request.POST.get("min_instances"),
                                         max_instances=request.POST.get("max_instances"),
                                         instances=request.POST.get("instances"))
        row = scaled.variants.get(name=variant)
        return (f"Endpoint {scaled.name}, variant {variant}: {row.min_instances} to {row.max_instances} instances "
                f"({row.desired_instances} wanted now).")

    return _act(request, action, panel="endpoints", context=_endpoints)
