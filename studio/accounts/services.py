"""Every write to accounts data: sign-up, tokens, teams, members, projects, audit events."""

from __future__ import annotations

import hashlib
import secrets
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth import password_validation
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from studio.accounts.models import ApiToken, AuditEvent, Membership, Project, Role, Team, User
from studio.accounts.permissions import require_role
from studio.core.errors import Conflict
from studio.core.storage import project_storage_prefix, storage_delete_prefix
from studio.live.publisher import publish

if TYPE_CHECKING:
    from uuid import UUID

TOKEN_PREFIX = "stu_"


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
        from django.http import Http404

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


@transaction.atomic
def member_add(*, actor: User, team: Team, username: str, role: str) -> Membership:
    require_role(user=actor, team=team, role=Role.ADMIN)
    if role not in Role.values:
        raise ValidationError({"role": [f"Role must be one of {', '.join(Role.values)} (got {role!r})."]})
    if role == Role.OWNER:
        require_role(user=actor, team=team, role=Role.OWNER)
    user = User.objects.filter(username=username).first()
    if user is None:
        raise ValidationError({"username": [f"No user named '{username}'. They must sign up first."]})
    membership, created = Membership.objects.get_or_create(team=team, user=user, defaults={"role": role})
    if not created:
        if membership.role == Role.OWNER and role != Role.OWNER:
            _ensure_another_owner(team=team, leaving=user)
        if membership.role == Role.OWNER:
            require_role(user=actor, team=team, role=Role.OWNER)
        membership.role = role
        membership.save(update_fields=["role"])
    audit(actor=actor, verb="set member role", team=team, target=username, data={"role": role})
    return membership


def _ensure_another_owner(*, team: Team, leaving: User) -> None:
    if not Membership.objects.filter(team=team, role=Role.OWNER).exclude(user=leaving).exists():
        raise Conflict("A team needs at least one owner: make someone else owner first.")


@transaction.atomic
def member_remove(*, actor: User, team: Team, username: str) -> None:
    membership = Membership.objects.filter(team=team, user__username=username).select_related("user").first()
    if membership is None:
        from django.http import Http404

        raise Http404(f"'{username}' is not a member of this team.")
    if membership.user != actor:  # anyone may leave; removing others needs admin
        require_role(user=actor, team=team, role=Role.ADMIN)
        if membership.role == Role.OWNER:
            require_role(user=actor, team=team, role=Role.OWNER)
    if membership.role == Role.OWNER:
        _ensure_another_owner(team=team, leaving=membership.user)
    membership.delete()
    audit(actor=actor, verb="removed member", team=team, target=username)


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
