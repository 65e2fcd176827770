from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from studio.accounts import ratelimit, selectors, services
from studio.accounts.invite_links import invite_url
from studio.accounts.models import ROLE_RANK, Role, User
from studio.core.errors import Conflict
from studio.core.pages import project_access
from studio.datasets.selectors import dataset_list
from studio.registry.selectors import model_list
from studio.training.selectors import training_job_list
from studio.tuning.selectors import tuning_job_list


class LoginView(auth_views.LoginView):
    """Django's sign-in page, answering 429 (with Retry-After) once the failed sign-in limit is reached."""

    redirect_authenticated_user = True

    def form_invalid(self, form):
        response = super().form_invalid(form)
        limited = ratelimit.rate_limited(self.request)
        if limited is not None:
            form.errors.pop("__all__", None)
            form.add_error(None, str(limited))
            response = self.render_to_response(self.get_context_data(form=form), status=429)
            response["Retry-After"] = str(limited.retry_after)
        return response


def _errors(exc: ValidationError) -> dict[str, list[str]]:
    return exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}


def _safe_next(request) -> str:
    """Where to go after signing up (an invite link, usually); only this site's own paths."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                                  require_https=request.is_secure()):
        return target
    return ""


def signup(request):
    next_url = _safe_next(request)
    if request.user.is_authenticated:
        return redirect(next_url or "home")
    context = {"values": {}, "errors": {}, "first_user": not User.objects.exists(), "next": next_url}
    if request.method == "POST":
        values = {k: request.POST.get(k, "") for k in ("username", "email", "password")}
        try:
            ratelimit.signup_attempt(request)
        except ratelimit.RateLimited as exc:
            context.update(values=values, errors={"non_field_errors": [str(exc)]})
            response = render(request, "accounts/signup.html", context, status=429)
            response["Retry-After"] = str(exc.retry_after)
            return response
        try:
            user = services.user_signup(**values)
        except ValidationError as exc:
            context.update(values=values, errors=_errors(exc))
            return render(request, "accounts/signup.html", context, status=400)
        except (Conflict, PermissionDenied) as exc:
            context.update(values=values, errors={"non_field_errors": [str(exc)]})
            return render(request, "accounts/signup.html", context, status=409 if isinstance(exc, Conflict) else 403)
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        if next_url:
            return redirect(next_url)
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


def _team_context(request, team, **extra) -> dict:
    role = selectors.role_for(user=request.user, team=team)
    rank = ROLE_RANK[Role(role)]
    memberships = list(selectors.membership_list(user=request.user, team=team))
    can_admin = rank >= ROLE_RANK[Role.ADMIN]
    for m in memberships:
        # Only what the role allows is offered: nobody changes someone above them (API and services check too).
        m.can_change = can_admin and m.user != request.user and ROLE_RANK[Role(m.role)] <= rank
    return {
        "team": team, "role": role,
        "can_edit": rank >= ROLE_RANK[Role.MEMBER], "can_admin": can_admin,
        "is_owner": role == Role.OWNER,
        "memberships": memberships,
        "other_members": [m for m in memberships if m.user != request.user],
        "projects": selectors.project_list(user=request.user, team=team),
        "roles": Role.choices,
        # An inviter grants at most their own role.
        "grantable_roles": [(v, label) for v, label in Role.choices if ROLE_RANK[Role(v)] <= rank],
        "invitations": selectors.invitation_list(user=request.user, team=team)[:100] if can_admin else [],
        "events": selectors.team_event_list(user=request.user, team=team)[:20],
        "default_days": services.INVITATION_DEFAULT_DAYS, "max_days": services.INVITATION_MAX_DAYS,
        "max_uses": services.INVITATION_MAX_USES,
        **extra,
    }


@login_required
def team_detail(request, slug: str):
    team = selectors.team_get(user=request.user, slug=slug)
    return render(request, "accounts/team_detail.html", _team_context(request, team))


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
def member_role(request, slug: str, username: str):
    team = selectors.team_get(user=request.user, slug=slug)
    role = request.POST.get("role", "")
    _run(request, lambda: services.member_role_set(actor=request.user, team=team, username=username, role=role),
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
def team_leave(request, slug: str):
    team = selectors.team_get(user=request.user, slug=slug)
    if _run(request, lambda: services.team_leave(user=request.user, team=team), f"You left {team.name}."):
        return redirect("home")
    return redirect("team-detail", slug=team.slug)


@login_required
@require_POST
def team_transfer(request, slug: str):
    team = selectors.team_get(user=request.user, slug=slug)
    username = request.POST.get("username", "").strip()
    _run(request, lambda: services.team_transfer_ownership(actor=request.user, team=team, username=username),
         f"{username} now owns {team.name}; you are an admin.")
    return redirect("team-detail", slug=team.slug)


def _int_or_raw(raw: str | None):
    """Form numbers to int; anything else goes to the service as-is so its message names the field."""
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        return raw


@login_required
@require_POST
def invitation_create(request, slug: str):
    team = selectors.team_get(user=request.user, slug=slug)
    link = request.POST.get("kind") == "link"
    try:
        invitation, secret = services.invitation_create(
            actor=request.user, team=team, role=request.POST.get("role", Role.MEMBER),
            username=None if link else request.POST.get("username", ""), link=link,
            max_uses=_int_or_raw(request.POST.get("max_uses")) if link else None,
            expires_in_days=_int_or_raw(request.POST.get("expires_in_days")))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    except (Conflict, PermissionDenied) as exc:
        messages.error(request, str(exc))
    else:
        if secret:
            # The link is shown in this response only: it is not stored and a redirect would lose it.
            return render(request, "accounts/team_detail.html", _team_context(
                request, team, new_link=invite_url(request, secret), new_invitation=invitation))
        messages.success(request, f"Invited {invitation.invitee.username} as {invitation.role}. "
                                  "They accept on their home page.")
    return redirect("team-detail", slug=team.slug)


@login_required
@require_POST
def invitation_revoke(request, slug: str, invitation_id):
    team = selectors.team_get(user=request.user, slug=slug)
    _run(request, lambda: services.invitation_revoke(actor=request.user, team=team, invitation_id=invitation_id),
         "Invitation revoked.")
    return redirect("team-detail", slug=team.slug)


@login_required
@require_POST
def my_invitation_accept(request, invitation_id):
    joined = {}

    def accept():
        joined["membership"], _ = services.invitation_accept(user=request.user, invitation_id=invitation_id)

    if _run(request, accept, "Invitation accepted."):
        membership = joined["membership"]
        messages.success(request, f"You are now {membership.role} of {membership.team.name}.")
        return redirect("team-detail", slug=membership.team.slug)
    return redirect("home")


@login_required
@require_POST
def my_invitation_decline(request, invitation_id):
    _run(request, lambda: services.invitation_decline(user=request.user, invitation_id=invitation_id),
         "Invitation declined.")
    return redirect("home")


def invite_accept(request, token: str):
    """An invite link: shows what it offers; signed-in users join with one click, others sign in or up first."""
    invitation = selectors.invitation_by_token(token=token)
    membership = selectors.membership_for(user=request.user, team=invitation.team)
    context = {"invitation": invitation, "membership": membership, "next": request.path,
               "reason": "" if invitation.is_usable else services.unusable_reason(invitation),
               "raises_role": membership is not None
               and ROLE_RANK[Role(invitation.role)] > ROLE_RANK[Role(membership.role)]}
    if request.method == "POST":
        if not request.user.is_authenticated:
            return redirect_to_login(request.path)
        try:
            membership, joined = services.invitation_accept_link(user=request.user, token=token)
        except (Conflict, PermissionDenied) as exc:
            context["reason"] = str(exc)
            return render(request, "accounts/invite.html", context, status=409)
        if joined:
            messages.success(request, f"Welcome to {membership.team.name}: you are {membership.role}.")
        else:
            messages.info(request, f"You were already {membership.role} of {membership.team.name}.")
        return redirect("team-detail", slug=membership.team.slug)
    return render(request, "accounts/invite.html", context)


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
