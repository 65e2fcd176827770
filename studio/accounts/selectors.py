"""Every read of accounts data, scoped to the teams the user belongs to."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone

from studio.accounts.models import ApiToken, AuditEvent, Invitation, InvitationStatus, Membership, Project, Team

if TYPE_CHECKING:
    from studio.accounts.models import User


def team_list(*, user: User) -> QuerySet[Team]:
    if not user.is_authenticated:
        return Team.objects.none()
    return Team.objects.filter(memberships__user=user)


def team_get(*, user: User, slug: str) -> Team:
    try:
        return team_list(user=user).get(slug=slug)
    except Team.DoesNotExist:
        raise Http404("No such team.") from None


def membership_for(*, user: User, team: Team) -> Membership | None:
    if not user.is_authenticated:
        return None
    return Membership.objects.filter(user=user, team=team).first()


def role_for(*, user: User, team: Team) -> str | None:
    membership = membership_for(user=user, team=team)
    return membership.role if membership else None


def membership_list(*, user: User, team: Team) -> QuerySet[Membership]:
    team_get(user=user, slug=team.slug)  # raises 404 for outsiders
    return Membership.objects.filter(team=team).select_related("user").order_by("user__username")


def project_list(*, user: User, team: Team | None = None) -> QuerySet[Project]:
    if not user.is_authenticated:
        return Project.objects.none()
    projects = Project.objects.filter(team__memberships__user=user).select_related("team")
    if team is not None:
        projects = projects.filter(team=team)
    return projects


def project_get(*, user: User, project_id) -> Project:
    try:
        return project_list(user=user).get(id=project_id)
    except (Project.DoesNotExist, ValueError):
        raise Http404("No such project.") from None


def api_token_list(*, user: User) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=user)


def audit_event_list(*, user: User, project: Project | None = None) -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.filter(team__memberships__user=user).select_related("actor")
    if project is not None:
        events = events.filter(project=project)
    return events


def team_event_list(*, user: User, team: Team) -> QuerySet[AuditEvent]:
    """Team-level events (members, roles, invitations), not those of its projects."""
    team_get(user=user, slug=team.slug)  # raises 404 for outsiders
    return AuditEvent.objects.filter(team=team, project__isnull=True).select_related("actor")


def invitation_list(*, user: User, team: Team) -> QuerySet[Invitation]:
    """A team's invitations, newest first. Who may see them (admins) is the caller's check."""
    team_get(user=user, slug=team.slug)  # raises 404 for outsiders
    return Invitation.objects.filter(team=team).select_related("invitee", "invited_by")


def pending_invitations_for(*, user: User) -> QuerySet[Invitation]:
    """Invitations addressed to ``user`` by username that they can still accept."""
    if not user.is_authenticated:
        return Invitation.objects.none()
    return (Invitation.objects.filter(invitee=user, status=InvitationStatus.PENDING, expires_at__gt=timezone.now())
            .select_related("team", "invited_by"))


def invitation_by_token(*, token: str) -> Invitation:
    """The invitation of a link. Holding the secret is what lets anyone see it, so this is not team-scoped."""
    digest = hashlib.sha256((token or "").encode()).hexdigest()  # the same hash services stores
    invitation = Invitation.objects.select_related("team", "invited_by").filter(token_hash=digest).first()
    if invitation is None:
        raise Http404("No such invitation.")
    return invitation
