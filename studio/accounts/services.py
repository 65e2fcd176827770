"""Every write to accounts data: sign-up, tokens, teams, members, invitations, projects, audit events."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth import password_validation
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.http import Http404
from django.utils import timezone
from django.utils.text import slugify

from studio.accounts.models import (
    ROLE_RANK,
    ApiToken,
    AuditEvent,
    Invitation,
    InvitationStatus,
    Membership,
    Project,
    Role,
    Team,
    User,
)
from studio.accounts.permissions import require_role
from studio.accounts.selectors import role_for
from studio.core.errors import Conflict
from studio.core.storage import project_storage_prefix, storage_delete_prefix
from studio.live.publisher import publish

if TYPE_CHECKING:
    from uuid import UUID

TOKEN_PREFIX = "stu_"
INVITATION_PREFIX = "inv_"
INVITATION_DEFAULT_DAYS = 7
INVITATION_MAX_DAYS = 90
INVITATION_MAX_USES = 1000


def audit(*, actor: User | None, verb: str, team: Team | None = None, project: Project | None = None,
          target: str = "", data: dict[str, Any] | None = None) -> AuditEvent:
    if project is not None and team is None:
        team = project.team
    event = AuditEvent.objects.create(
        actor=actor if actor is not None and actor.is_authenticated else None,
        verb=verb, team=team, project=project, target=target[:200], data=data or {},
    )
    if project is not None:
        from studio.accounts.consumers import activity_event

        payload = activity_event(event)
        transaction.on_commit(lambda: publish(kind="project", object_id=project.id, events=[payload]))
    return event


@transaction.atomic
def user_signup(*, username: str, password: str, email: str = "") -> User:
    if not settings.STUDIO_ALLOW_SIGNUP:
        raise PermissionDenied("Sign-up is disabled on this studio.")
    username = (username or "").strip()
    errors: dict[str, list[str]] = {}
    if not username:
        errors["username"] = ["Username is required."]
    elif User.objects.filter(username__iexact=username).exists():
        raise Conflict(f"The username '{username}' is taken.")
    else:
        try:
            User.username_validator(username)
        except ValidationError as exc:
            errors["username"] = list(exc.messages)
    candidate = User(username=username, email=email or "")
    try:
        password_validation.validate_password(password or "", user=candidate)
    except ValidationError as exc:
        errors["password"] = list(exc.messages)
    if errors:
        raise ValidationError(errors)
    # The first account on a fresh studio administers it: there is nobody else to do it.
    first = not User.objects.exists()
    user = User.objects.create_user(
        username=username, password=password, email=email or "", is_staff=first, is_superuser=first
    )
    audit(actor=user, verb="signed up", target=username)
    return user


def _hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def api_token_create(*, user: User, name: str = "API token") -> tuple[ApiToken, str]:
    """Return the token row and its secret; the secret is not stored and cannot be shown again."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=(name or "API token").strip()[:100], prefix=secret[:10], key_hash=_hash_token(secret)
    )
    return token, secret


def api_token_revoke(*, user: User, token_id: UUID | str) -> None:
    deleted, _ = ApiToken.objects.filter(user=user, id=token_id).delete()
    if not deleted:
        raise Http404("No such token.")


def api_token_authenticate(*, secret: str) -> User | None:
    if not secret.startswith(TOKEN_PREFIX):
        return None
    token = ApiToken.objects.select_related("user").filter(key_hash=_hash_token(secret)).first()
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    # Writing on every request would serialize API traffic on one row; a minute's precision is enough.
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(id=token.id).update(last_used_at=now)
    return token.user


def _unique_slug(model, base: str, **scope) -> str:
    base = slugify(base)[:50] or "item"
    slug, n = base, 2
    while model.objects.filter(slug=slug, **scope).exists():
        slug = f"{base}-{n}"
        n += 1
    return slug


@transaction.atomic
def team_create(*, user: User, name: str) -> Team:
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": ["Team name is required."]})
    if len(name) > 100:
        raise ValidationError({"name": ["Team name must be at most 100 characters."]})
    team = Team.objects.create(name=name, slug=_unique_slug(Team, name))
    Membership.objects.create(team=team, user=user, role=Role.OWNER)
    audit(actor=user, verb="created team", team=team, target=team.name)
    return team


def _check_role_value(role: str) -> None:
    if role not in Role.values:
        raise ValidationError({"role": [f"Role must be one of {', '.join(Role.values)} (got {role!r})."]})


def _rank(role: str | None) -> int:
    return -1 if role is None else ROLE_RANK[Role(role)]


def _require_grant(*, actor: User, team: Team, role: str) -> str:
    """Admins manage members, and nobody grants a role above their own: only owners make owners."""
    require_role(user=actor, team=team, role=Role.ADMIN)
    _check_role_value(role)
    own = role_for(user=actor, team=team)
    if _rank(role) > _rank(own):
        raise PermissionDenied(f"You are {own} of '{team.slug}': only an owner can grant the {role} role.")
    return own


def _ensure_another_owner(*, team: Team, leaving: User, reason: str = "") -> None:
    if not Membership.objects.filter(team=team, role=Role.OWNER).exclude(user=leaving).exists():
        raise Conflict(reason or "A team needs at least one owner: make someone else owner first.")


def _membership_or_404(*, team: Team, username: str) -> Membership:
    membership = (Membership.objects.select_for_update().filter(team=team, user__username=username)
                  .select_related("user").first())
    if membership is None:
        raise Http404(f"'{username}' is not a member of this team.")
    return membership


@transaction.atomic
def member_add(*, actor: User, team: Team, username: str, role: str) -> Membership:
    _require_grant(actor=actor, team=team, role=role)
    user = User.objects.filter(username=username).first()
    if user is None:
        raise ValidationError({"username": [f"No user named '{username}'. They must sign up first."]})
    if Membership.objects.filter(team=team, user=user).exists():
        # Adding an existing member changes their role, under the same rules as an explicit change.
        return member_role_set(actor=actor, team=team, username=username, role=role)
    membership = Membership.objects.create(team=team, user=user, role=role)
    audit(actor=actor, verb="added member", team=team, target=username, data={"role": role})
    return membership


@transaction.atomic
def member_role_set(*, actor: User, team: Team, username: str, role: str) -> Membership:
    """Change a member's role. Nobody changes the role of someone above them or grants above their own."""
    own = _require_grant(actor=actor, team=team, role=role)
    membership = _membership_or_404(team=team, username=username)
    if _rank(membership.role) > _rank(own):
        raise PermissionDenied(f"'{username}' is {membership.role}: only an owner can change their role.")
    previous = membership.role
    if previous == role:
        return membership
    if previous == Role.OWNER:
        _ensure_another_owner(team=team, leaving=membership.user, reason=(
            f"'{username}' is the last owner of '{team.slug}': make someone else owner first."))
    membership.role = role
    membership.save(update_fields=["role"])
    audit(actor=actor, verb="changed the role of", team=team, target=f"{username} to {role}",
          data={"username": username, "from": previous, "to": role})
    return membership


@transaction.atomic
def member_remove(*, actor: User, team: Team, username: str) -> None:
    if username == actor.username:
        team_leave(user=actor, team=team)
        return
    require_role(user=actor, team=team, role=Role.ADMIN)  # removing others needs admin
    membership = _membership_or_404(team=team, username=username)
    if _rank(membership.role) > _rank(role_for(user=actor, team=team)):
        raise PermissionDenied(f"'{username}' is {membership.role}: only an owner can remove them.")
    if membership.role == Role.OWNER:
        _ensure_another_owner(team=team, leaving=membership.user)
    membership.delete()
    audit(actor=actor, verb="removed member", team=team, target=username)


@transaction.atomic
def team_leave(*, user: User, team: Team) -> None:
    """Anyone may leave, except the last owner: a team without an owner could never be administered again."""
    membership = _membership_or_404(team=team, username=user.username)
    if membership.role == Role.OWNER:
        _ensure_another_owner(team=team, leaving=user, reason=(
            f"You are the last owner of '{team.slug}': transfer ownership to another member before leaving."))
    membership.delete()
    audit(actor=user, verb="left team", team=team, target=team.name)


@transaction.atomic
def team_transfer_ownership(*, actor: User, team: Team, username: str) -> Membership:
    """The named member becomes owner and the actor steps down to admin, in one transaction."""
    require_role(user=actor, team=team, role=Role.OWNER)
    username = (username or "").strip()
    if not username:
        raise ValidationError({"username": ["Name the member who becomes owner."]})
    if username == actor.username:
        raise ValidationError({"username": ["You are already an owner: name another member."]})
    target = Membership.objects.select_for_update().filter(team=team, user__username=username).first()
    if target is None:
        raise ValidationError({"username": [f"'{username}' is not a member of '{team.slug}': invite them first."]})
    target.role = Role.OWNER
    target.save(update_fields=["role"])
    Membership.objects.filter(team=team, user=actor).update(role=Role.ADMIN)
    audit(actor=actor, verb="transferred ownership to", team=team, target=username,
          data={"previous_owner": actor.username})
    return target


def _invitation_days(expires_in_days: int | None) -> int:
    days = INVITATION_DEFAULT_DAYS if expires_in_days is None else expires_in_days
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= INVITATION_MAX_DAYS:
        raise ValidationError({"expires_in_days": [
            f"Expiry must be a whole number of days from 1 to {INVITATION_MAX_DAYS} (got {expires_in_days!r})."]})
    return days


@transaction.atomic
def invitation_create(*, actor: User, team: Team, role: str, username: str | None = None, link: bool = False,
                      max_uses: int | None = None,
                      expires_in_days: int | None = None) -> tuple[Invitation, str | None]:
    """Invite one user by username, or make a link; return the invitation and, for a link, its secret.

    The secret is not stored (only its hash) and cannot be shown again.
    """
    _require_grant(actor=actor, team=team, role=role)
    username = (username or "").strip()
    if bool(username) == bool(link):
        raise ValidationError({"username": ["Give either a username to invite or link: true for an invite link."]})
    days = _invitation_days(expires_in_days)
    expires_at = timezone.now() + timedelta(days=days)
    if link:
        uses = 1 if max_uses is None else max_uses
        if isinstance(uses, bool) or not isinstance(uses, int) or not 1 <= uses <= INVITATION_MAX_USES:
            raise ValidationError({"max_uses": [
                f"A link is used from 1 to {INVITATION_MAX_USES} times (got {max_uses!r})."]})
        secret = INVITATION_PREFIX + secrets.token_urlsafe(32)
        invitation = Invitation.objects.create(
            team=team, role=role, invited_by=actor, token_hash=_hash_token(secret), prefix=secret[:12],
            max_uses=uses, expires_at=expires_at)
        audit(actor=actor, verb="created invite link", team=team, target=f"{invitation.prefix}…",
              data={"role": role, "max_uses": uses, "expires_in_days": days})
        return invitation, secret
    if max_uses not in (None, 1):
        raise ValidationError({"max_uses": ["An invitation by username is used once: max_uses is for links."]})
    invitee = User.objects.filter(username=username, is_active=True).first()
    if invitee is None:
        raise ValidationError({"username": [f"No user named '{username}'. Invite them by link instead."]})
    if Membership.objects.filter(team=team, user=invitee).exists():
        raise Conflict(f"'{username}' is already a member of '{team.slug}': change their role instead.")
    waiting = Invitation.objects.filter(team=team, invitee=invitee, status=InvitationStatus.PENDING,
                                        expires_at__gt=timezone.now()).exists()
    if waiting:
        raise Conflict(f"'{username}' already has a pending invitation to '{team.slug}': revoke it first.")
    invitation = Invitation.objects.create(team=team, role=role, invited_by=actor, invitee=invitee,
                                           expires_at=expires_at)
    audit(actor=actor, verb="invited", team=team, target=username, data={"role": role, "expires_in_days": days})
    return invitation, None


@transaction.atomic
def invitation_revoke(*, actor: User, team: Team, invitation_id: UUID | str) -> Invitation:
    require_role(user=actor, team=team, role=Role.ADMIN)
    invitation = Invitation.objects.select_for_update().filter(team=team, id=invitation_id).first()
    if invitation is None:
        raise Http404("No such invitation.")
    if invitation.status in (InvitationStatus.ACCEPTED, InvitationStatus.DECLINED):
        raise Conflict(f"This invitation was already {invitation.status}: remove the member instead.")
    if invitation.status == InvitationStatus.REVOKED:
        return invitation  # revoking twice is the same as once
    invitation.status = InvitationStatus.REVOKED
    invitation.responded_at = timezone.now()
    invitation.save(update_fields=["status", "responded_at"])
    audit(actor=actor, verb="revoked invitation", team=team, target=_invitation_label(invitation))
    return invitation


def _invitation_label(invitation: Invitation) -> str:
    return invitation.invitee.username if invitation.invitee_id else f"link {invitation.prefix}…"


def unusable_reason(invitation: Invitation) -> str:
    return {
        "accepted": "This invitation was already accepted.",
        "declined": "This invitation was declined.",
        "revoked": "This invitation was revoked by a team admin.",
        "expired": "This invitation has expired: ask a team admin for a new one.",
        "used up": "This invite link has been used as many times as allowed: ask a team admin for a new one.",
    }.get(invitation.state, "This invitation cannot be used.")


def _accept(*, user: User, invitation: Invitation) -> tuple[Membership, bool]:
    """Join (or raise the role of) ``user``; the caller holds the invitation row locked."""
    if not invitation.is_usable:
        raise Conflict(unusable_reason(invitation))
    team = invitation.team
    # The grant is the inviter's: one who has since left or been demoted can no longer give it.
    inviter_role = role_for(user=invitation.invited_by, team=team) if invitation.invited_by_id else None
    if _rank(inviter_role) < max(_rank(invitation.role), ROLE_RANK[Role.ADMIN]):
        raise Conflict("The person who sent this invitation can no longer grant it: ask a team admin for a new one.")
    membership = Membership.objects.select_for_update().filter(team=team, user=user).first()
    changed = False
    if membership is None:
        membership = Membership.objects.create(team=team, user=user, role=invitation.role)
        changed = True
    elif _rank(invitation.role) > _rank(membership.role):
        # An invitation never lowers a role someone already has; it may raise it.
        membership.role = invitation.role
        membership.save(update_fields=["role"])
        changed = True
    if changed or not invitation.is_link:
        Invitation.objects.filter(id=invitation.id).update(uses=F("uses") + 1)
        invitation.refresh_from_db(fields=["uses"])
    if not invitation.is_link:
        invitation.status = InvitationStatus.ACCEPTED
        invitation.responded_at = timezone.now()
        invitation.save(update_fields=["status", "responded_at"])
    if changed:
        audit(actor=user, verb="joined team", team=team, target=team.name,
              data={"role": membership.role, "via": "link" if invitation.is_link else "invitation",
                    "invited_by": invitation.invited_by.username if invitation.invited_by_id else None})
    return membership, changed


@transaction.atomic
def invitation_accept_link(*, user: User, token: str) -> tuple[Membership, bool]:
    """Join the team of an invite link. Returns the membership and whether it changed (False: already in)."""
    # of=self: invited_by is nullable, an outer join, whose rows PostgreSQL refuses to lock.
    invitation = (Invitation.objects.select_for_update(of=("self",)).select_related("team", "invited_by")
                  .filter(token_hash=_hash_token(token or "")).first())
    if invitation is None:
        raise Http404("No such invitation.")
    return _accept(user=user, invitation=invitation)


def _own_invitation(*, user: User, invitation_id: UUID | str) -> Invitation:
    """An invitation addressed to ``user``; anyone else's is not found (404), like another team's object."""
    invitation = None
    if user.is_authenticated:
        try:
            invitation = (Invitation.objects.select_for_update(of=("self",)).select_related("team", "invited_by")
                          .filter(invitee=user, id=invitation_id).first())
        except (ValidationError, ValueError):
            invitation = None
    if invitation is None:
        raise Http404("No such invitation.")
    return invitation


@transaction.atomic
def invitation_accept(*, user: User, invitation_id: UUID | str) -> tuple[Membership, bool]:
    """Accept an invitation addressed to ``user`` by username."""
    return _accept(user=user, invitation=_own_invitation(user=user, invitation_id=invitation_id))


@transaction.atomic
def invitation_decline(*, user: User, invitation_id: UUID | str) -> Invitation:
    invitation = _own_invitation(user=user, invitation_id=invitation_id)
    if invitation.status != InvitationStatus.PENDING:
        raise Conflict(unusable_reason(invitation))
    invitation.status = InvitationStatus.DECLINED
    invitation.responded_at = timezone.now()
    invitation.save(update_fields=["status", "responded_at"])
    audit(actor=user, verb="declined the invitation to", team=invitation.team, target=invitation.team.name)
    return invitation


def _validate_project_fields(*, name: str | None, description: str | None) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if name is not None:
        if not name.strip():
            errors["name"] = ["Project name is required."]
        elif len(name.strip()) > 100:
            errors["name"] = ["Project name must be at most 100 characters."]
    if description is not None and len(description) > 5000:
        errors["description"] = ["Description must be at most 5000 characters."]
    return errors


@transaction.atomic
def project_create(*, user: User, team: Team, name: str, description: str = "") -> Project:
    require_role(user=user, team=team, role=Role.MEMBER)
    errors = _validate_project_fields(name=name, description=description)
    if errors:
        raise ValidationError(errors)
    name = name.strip()
    if Project.objects.filter(team=team, name__iexact=name).exists():
        raise Conflict(f"Team '{team.slug}' already has a project named '{name}'.")
    try:
        with transaction.atomic():
            project = Project.objects.create(
                team=team, name=name, description=description or "", created_by=user,
                slug=_unique_slug(Project, name, team=team),
            )
    except IntegrityError:
        raise Conflict(f"Team '{team.slug}' already has a project named '{name}'.") from None
    audit(actor=user, verb="created project", project=project, target=name)
    return project


@transaction.atomic
def project_update(*, user: User, project: Project, name: str | None = None,
                   description: str | None = None) -> Project:
    require_role(user=user, team=project.team, role=Role.MEMBER)
    errors = _validate_project_fields(name=name, description=description)
    if errors:
        raise ValidationError(errors)
    if name is not None:
        name = name.strip()
        if Project.objects.filter(team=project.team, name__iexact=name).exclude(id=project.id).exists():
            raise Conflict(f"Team '{project.team.slug}' already has a project named '{name}'.")
        project.name = name
    if description is not None:
        project.description = description
    project.save()
    audit(actor=user, verb="updated project", project=project, target=project.name)
    return project


@transaction.atomic
def project_delete(*, user: User, project: Project) -> None:
    require_role(user=user, team=project.team, role=Role.ADMIN)
    prefix = project_storage_prefix(project_id=project.id)
    # Files go only once the rows are gone for good; a rolled-back delete keeps both.
    transaction.on_commit(lambda: storage_delete_prefix(prefix))
    audit(actor=user, verb="deleted project", team=project.team, target=project.name)
    project.delete()
