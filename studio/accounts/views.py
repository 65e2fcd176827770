from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from studio.accounts import selectors, services
from studio.accounts.models import ROLE_RANK, Role, User
from studio.core.errors import Conflict
from studio.core.pages import project_access
from studio.datasets.selectors import dataset_list
from studio.registry.selectors import model_list
from studio.training.selectors import training_job_list
from studio.tuning.selectors import tuning_job_list


def _errors(exc: ValidationError) -> dict[str, list[str]]:
    return exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}


def signup(request):
    if request.user.is_authenticated:
        return redirect("home")
    context = {"values": {}, "errors": {}, "first_user": not User.objects.exists()}
    if request.method == "POST":
        values = {k: request.POST.get(k, "") for k in ("username", "email", "password")}
        try:
            user = services.user_signup(**values)
        except ValidationError as exc:
            context.update(values=values, errors=_errors(exc))
            return render(request, "accounts/signup.html", context, status=400)
        except (Conflict, PermissionDenied) as exc:
            context.update(values=values, errors={"non_field_errors": [str(exc)]})
            return render(request, "accounts/signup.html", context, status=409 if isinstance(exc, Conflict) else 403)
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, f"Welcome, {user.username}. Create a team to start.")
        return redirect("home")
    return render(request, "accounts/signup.html", context)


@login_required
def team_create(request):
    error = ""
    if request.method == "POST":
        try:
            team = services.team_create(user=request.user, name=request.POST.get("name", ""))
        except ValidationError as exc:
            error = " ".join(exc.messages)
        else:
            messages.success(request, f"Team '{team.name}' created. Now create a project in it.")
            return redirect("team-detail", slug=team.slug)
    return render(request, "accounts/team_create.html", {"error": error}, status=400 if error else 200)


@login_required
def team_detail(request, slug: str):
    team = selectors.team_get(user=request.user, slug=slug)
    role = selectors.role_for(user=request.user, team=team)
    rank = ROLE_RANK[Role(role)]
    return render(request, "accounts/team_detail.html", {
        "team": team, "role": role,
        "can_edit": rank >= ROLE_RANK[Role.MEMBER], "can_admin": rank >= ROLE_RANK[Role.ADMIN],
        "is_owner": role == Role.OWNER,
        "memberships": selectors.membership_list(user=request.user, team=team),
        "projects": selectors.project_list(user=request.user, team=team),
        "roles": Role.choices,
    })


def _run(request, action, success: str) -> bool:
    try:
        action()
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    except (Conflict, PermissionDenied) as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, success)
        return True
    return False


@login_required
@require_POST
def member_add(request, slug: str):
    team = selectors.team_get(user=request.user, slug=slug)
    username, role = request.POST.get("username", "").strip(), request.POST.get("role", Role.MEMBER)
    _run(request, lambda: services.member_add(actor=request.user, team=team, username=username, role=role),
         f"{username} is now {role} of {team.name}.")
    return redirect("team-detail", slug=team.slug)


@login_required
@require_POST
def member_remove(request, slug: str, username: str):
    team = selectors.team_get(user=request.user, slug=slug)
    ok = _run(request, lambda: services.member_remove(actor=request.user, team=team, username=username),
              f"{username} removed from {team.name}.")
    if ok and username == request.user.username:
        return redirect("home")
    return redirect("team-detail", slug=team.slug)


@login_required
@require_POST
def project_create(request, slug: str):
    team = selectors.team_get(user=request.user, slug=slug)
    created = {}

    def create():
        created["project"] = services.project_create(
            user=request.user, team=team, name=request.POST.get("name", ""),
            description=request.POST.get("description", ""))

    if _run(request, create, "Project created. Upload a dataset to begin."):
        return redirect("project-detail", project_id=created["project"].id)
    return redirect("team-detail", slug=team.slug)


@login_required
def project_detail(request, project_id):
    access = project_access(request, project_id)
    project = access.project
    jobs = training_job_list(user=request.user, project=project)
    tuning = tuning_job_list(user=request.user, project=project)
    return render(request, "accounts/project_detail.html", access.context(
        "overview",
        counts={
            "datasets": dataset_list(user=request.user, project=project).count(),
            "jobs": jobs.count(),
            "running": jobs.filter(status__in=["pending", "running"]).count(),
            "models": model_list(user=request.user, project=project).count(),
            "tuning": tuning.count(),
            "tuning_active": tuning.filter(status__in=["pending", "running"]).count(),
        },
        active_jobs=jobs.filter(status__in=["pending", "running"])[:10],
        recent_jobs=jobs[:5],
        events=selectors.audit_event_list(user=request.user, project=project)[:15],
    ))


@login_required
@require_POST
def project_delete(request, project_id):
    access = project_access(request, project_id)
    team_slug = access.project.team.slug
    if _run(request, lambda: services.project_delete(user=request.user, project=access.project),
            f"Project '{access.project.name}' deleted."):
        return redirect("team-detail", slug=team_slug)
    return redirect("project-detail", project_id=project_id)


@login_required
def project_activity(request, project_id):
    access = project_access(request, project_id)
    events = selectors.audit_event_list(user=request.user, project=access.project)[:200]
    return render(request, "accounts/project_activity.html", access.context("activity", events=events))


@login_required
def tokens(request):
    new_secret = None
    if request.method == "POST":
        _, new_secret = services.api_token_create(user=request.user, name=request.POST.get("name", "API token"))
    return render(request, "accounts/tokens.html", {
        "tokens": selectors.api_token_list(user=request.user), "new_secret": new_secret,
    })


@login_required
@require_POST
def token_revoke(request, token_id):
    services.api_token_revoke(user=request.user, token_id=token_id)
    messages.success(request, "Token revoked.")
    return redirect("tokens")
